// Package server assembles a running mailstead from its parts: it takes the
// data directory lock, opens the store, sets up TLS, starts every
// configured listener (SMTP, submission, IMAP, admin HTTP) with PROXY
// protocol where asked, serves the control socket for the CLI, writes the
// ready file, and handles SIGHUP (reload) and SIGTERM (drain and stop).
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/adminhttp"
	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/control"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/imapserver"
	"github.com/mailstead/mailstead/internal/manage"
	"github.com/mailstead/mailstead/internal/managesieve"
	"github.com/mailstead/mailstead/internal/smtpserver"
	"github.com/mailstead/mailstead/internal/spam"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
	"github.com/mailstead/mailstead/internal/tlsutil"
)

// Options are run-time options that are not configuration.
type Options struct {
	// ReadyFile, when set, receives a JSON object with the bound address
	// of every listener once all accept connections (tests start the
	// server on port 0 and read it).
	ReadyFile string
	// ShutdownTimeout bounds the drain on SIGTERM (default 30s).
	ShutdownTimeout time.Duration
	// Reload re-reads the configuration on SIGHUP; nil keeps the current
	// one (embedded default) and only reloads certificates.
	Reload func() (*config.Config, error)
	Logger *slog.Logger
	// LogLevel is adjusted on reload.
	LogLevel *slog.LevelVar
	// Resolver replaces the system DNS resolver (tests).
	Resolver dnsresolver.Resolver
}

// Ready is the ready file's content.
type Ready struct {
	PID       int               `json:"pid"`
	Listeners map[string]string `json:"listeners"`
}

type shutdowner interface {
	Shutdown(ctx context.Context) error
}

type listener struct {
	cfg     config.Listener
	l       net.Listener
	addr    string
	serving atomic.Bool
	srv     shutdowner
}

// Run runs the server until ctx is cancelled or SIGTERM/SIGINT arrives.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	lock, err := LockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	for _, w := range cfg.Warnings() {
		log.Warn("config", "warning", w)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	expungeWindow := cfg.Store.ExpungeRetention.D()
	if expungeWindow == 0 {
		expungeWindow = -1 // "0s": keep forever
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, "store"), sqlitestore.Options{Logger: log.With("component", "store"), Registerer: reg, ExpungeWindow: expungeWindow})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()

	var certs *tlsutil.CertStore
	var tlsCfg *tls.Config
	if cfg.NeedsTLS() {
		certs, err = cfg.NewCertStore(log.With("component", "tls"))
		if err != nil {
			return fmt.Errorf("certificates: %w", err)
		}
		tlsCfg = certs.ServerConfig()
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		go certs.WatchFiles(wctx, 30*time.Second)
	}

	// One resolver for every DNS consumer (SPF/DKIM/DMARC, MX lookups).
	var resolver dnsresolver.Resolver = dnsresolver.System{}
	if opts.Resolver != nil {
		resolver = opts.Resolver
	}
	var exempt []netip.Prefix
	for _, c := range cfg.Limits.ExemptNetworks {
		exempt = append(exempt, c.Prefix)
	}
	tmp := filepath.Join(cfg.DataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("create tmp directory: %w", err)
	}
	auth := account.NewAuthenticator(st, account.AuthOptions{
		FailureDelay: cfg.Limits.AuthFailureDelay.D(),
		Logger:       log.With("component", "auth"),
		Registerer:   reg,
	})
	replier := &lateReplier{}
	forwarder, reverseSRS, err := newForwarder(cfg, st, resolver, log.With("component", "forward"))
	if err != nil {
		return err
	}
	deliv := delivery.New(st, delivery.Options{
		Forwarder:           forwarder,
		Sieve:               st,
		VacationLog:         delivery.StoreReplyLog{St: st},
		Policy:              domainPolicy(st),
		Replier:             replier,
		Hostname:            cfg.Hostname,
		ReverseSRS:          reverseSRS,
		SubaddressDelimiter: cfg.Accounts.SubaddressDelimiter,
		Postmaster:          cfg.Accounts.Postmaster,
		MaxReceived:         cfg.Limits.MaxReceivedHeaders,
		TmpDir:              tmp,
		Logger:              log.With("component", "delivery"),
		Registerer:          reg,
		// SPF, DKIM and DMARC for mail from the internet; forged verdict
		// headers are stripped from all mail.
		Resolver:    resolver,
		AuthServID:  cfg.Hostname,
		StripFields: StripFields(), // ours and the spam check's
		// Like Postfix's mynetworks: local applications are not checked
		// as if they were the internet.
		TrustedNetworks: exempt,
	})
	smtpMetrics := smtpserver.NewMetrics(reg)

	// ---- spam defence of the MX listeners (spam.go) ----
	spamDef, closeSpam, err := newSpamDefence(cfg, deliv, resolver, exempt, reg, log)
	if err != nil {
		return err
	}
	defer closeSpam() // deferred: runs after the listeners have drained
	// ---- end spam defence ----

	// Outbound: DKIM keys, the submitter that queues mail for remote
	// recipients, and the queue runner (stopped after the listeners have
	// drained, before the store closes).
	outbound, stopOutbound, err := StartOutbound(ctx, cfg, st, st.QueueWake(), deliv, resolver, reg, log, opts.ShutdownTimeout)
	if err != nil {
		return err
	}
	defer stopOutbound()
	var submitter smtpserver.Submitter
	if outbound != nil && outbound.Submitter != nil {
		submitter = outbound.Submitter
		replier.inj = outbound.Submitter
	}
	// One sending limiter for all submission listeners: a user may use
	// 587 and 465 alike.
	sendLimits := smtpserver.NewSendLimiter(smtpserver.SendLimits{
		MessagesPerHour:      cfg.Limits.UserMessagesPerHour,
		RecipientsPerMessage: cfg.Limits.UserRecipientsPerMessage,
		RecipientsPerDay:     cfg.Limits.UserRecipientsPerDay,
	})
	var listeners []*listener
	closeAll := func() {
		for _, l := range listeners {
			l.l.Close()
		}
	}
	for _, lc := range cfg.Listeners {
		nl, err := net.Listen("tcp", lc.Address)
		if err != nil {
			closeAll()
			return fmt.Errorf("listener %s: %w", lc.Name, err)
		}
		listeners = append(listeners, &listener{cfg: lc, l: nl, addr: nl.Addr().String()})
	}

	readyChecks := func() []adminhttp.Check {
		checks := []adminhttp.Check{{Name: "store", Fn: st.Ping}}
		for _, l := range listeners {
			l := l
			checks = append(checks, adminhttp.Check{Name: "listener " + l.cfg.Name, Fn: func(context.Context) error {
				if !l.serving.Load() {
					return errors.New("not accepting connections")
				}
				return nil
			}})
		}
		return checks
	}

	var wg sync.WaitGroup
	var mxServers []*smtpserver.Server // spam checks swapped on reload
	for _, l := range listeners {
		lc := l.cfg
		llog := log.With("listener", lc.Name, "protocol", string(lc.Protocol))
		var ln net.Listener = l.l
		if lc.Proxy != config.ProxyOff && lc.Proxy != "" {
			ln = proxyListener(l.l, lc, llog)
		}
		implicit := lc.TLS == config.TLSImplicit
		var starttls *tls.Config
		if lc.TLS != config.TLSNone {
			starttls = tlsCfg
		}
		var serve func(net.Listener) error
		switch lc.Protocol {
		case config.ProtoSMTP, config.ProtoSubmission, config.ProtoSubmissions:
			role := smtpserver.RoleMX
			if lc.Protocol != config.ProtoSMTP {
				role = smtpserver.RoleSubmission
			}
			srv, err := smtpserver.New(spamDef.apply(smtpserver.Config{
				Name: lc.Name, Role: role, Hostname: cfg.Hostname, Deliverer: deliv, Auth: auth,
				TLSConfig: starttls, ImplicitTLS: implicit, AllowInsecureAuth: lc.AllowInsecureAuth,
				MaxMessageBytes: int64(cfg.Limits.MaxMessageSize), MaxLineLength: int(cfg.Limits.MaxLineLength),
				MaxRecipients: cfg.Limits.MaxRecipients, CommandTimeout: cfg.Limits.SMTPCommandTimeout.D(),
				DataTimeout: cfg.Limits.SMTPDataTimeout.D(), MaxConnsPerIP: cfg.Limits.MaxConnectionsPerIP, SubaddressDelimiter: cfg.Accounts.SubaddressDelimiter,
				MaxConnsPerNet: cfg.Limits.MaxConnectionsPerNetwork, ConnRatePerMinute: cfg.Limits.ConnectionRatePerIP,
				PregreetWait: cfg.Limits.PregreetWait.D(), MaxMessagesPerConn: cfg.Limits.MaxMessagesPerConnection,
				MaxErrors: cfg.Limits.MaxErrorsPerSession, Exempt: exempt, SendLimits: sendLimits,
				Logger: llog, Metrics: smtpMetrics, Submitter: submitter,
			}))
			if err != nil {
				closeAll()
				return fmt.Errorf("listener %s: %w", lc.Name, err)
			}
			if role == smtpserver.RoleMX {
				mxServers = append(mxServers, srv)
			}
			l.srv, serve = srv, srv.Serve
		case config.ProtoIMAP, config.ProtoIMAPS:
			srv, err := imapserver.New(imapserver.Config{
				Hostname: cfg.Hostname, Store: st, Auth: auth, TLSConfig: starttls, ImplicitTLS: implicit,
				AllowInsecureAuth: lc.AllowInsecureAuth, Logger: llog, Metrics: reg,
				IdleTimeout: cfg.Limits.IMAPIdleTimeout.D(), MaxLiteral: int64(cfg.Limits.IMAPMaxLiteral),
				MaxLine: int(cfg.Limits.IMAPMaxLine), MaxConnsPerUserIP: cfg.Limits.IMAPConnectionsPerUserIP,
				AppendLimit: int64(cfg.Limits.MaxMessageSize), MetadataAdmin: metadataAdmin(cfg),
			})
			if err != nil {
				closeAll()
				return fmt.Errorf("listener %s: %w", lc.Name, err)
			}
			l.srv, serve = srv, srv.Serve
		case config.ProtoManageSieve:
			srv, err := managesieve.New(managesieve.Config{
				Hostname: cfg.Hostname, Store: st, Auth: auth, TLSConfig: starttls, ImplicitTLS: implicit,
				AllowInsecureAuth: lc.AllowInsecureAuth, Logger: llog,
			})
			if err != nil {
				closeAll()
				return fmt.Errorf("listener %s: %w", lc.Name, err)
			}
			l.srv, serve = srv, srv.Serve
		case config.ProtoHTTP:
			h, err := apiHandler(cfg, deliv, deliv.IsLocalDomain, llog)
			if err != nil {
				closeAll()
				return fmt.Errorf("listener %s: %w", lc.Name, err)
			}
			hs := &http.Server{
				Handler:           h,
				ReadHeaderTimeout: 10 * time.Second,
				ErrorLog:          slog.NewLogLogger(llog.Handler(), slog.LevelDebug),
			}
			if implicit {
				ln = tls.NewListener(ln, tlsCfg)
			}
			l.srv, serve = hs, hs.Serve
		case config.ProtoAdmin:
			hs := &http.Server{
				Handler:           adminhttp.Handler(reg, readyChecks),
				ReadHeaderTimeout: 10 * time.Second,
				ErrorLog:          slog.NewLogLogger(llog.Handler(), slog.LevelDebug),
			}
			if implicit {
				hs.TLSConfig = tlsCfg
				ln = tls.NewListener(ln, tlsCfg)
			}
			l.srv, serve = hs, hs.Serve
		default:
			llog.Warn("protocol not implemented yet; listener not started", "address", l.addr)
			l.l.Close()
			continue
		}
		wg.Add(1)
		go func(l *listener, serve func(net.Listener) error, ln net.Listener, llog *slog.Logger) {
			defer wg.Done()
			l.serving.Store(true)
			err := serve(ln)
			l.serving.Store(false)
			if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
				llog.Error("listener stopped", "err", err)
			}
		}(l, serve, ln, llog)
		llog.Info("listening", "address", l.addr, "tls", string(lc.TLS), "proxy", string(lc.Proxy))
	}

	// Control socket for the CLI.
	creg := control.NewRegistry()
	(&manage.Ops{St: st, DefaultQuota: int64(cfg.Accounts.DefaultQuota)}).Register(creg)
	(&manage.QueueOps{St: st, Bounce: BounceFunc(cfg, st, outbound.Submitter)}).Register(creg)
	ctl := &control.Server{R: creg, Log: log.With("component", "control")}
	if err := ctl.Listen(filepath.Join(cfg.DataDir, control.SocketName)); err != nil {
		closeAll()
		return err
	}
	go ctl.Serve(ctx)
	defer ctl.Close()

	if opts.ReadyFile != "" {
		if err := writeReady(opts.ReadyFile, listeners); err != nil {
			closeAll()
			return err
		}
	}
	log.Info("mailstead started", "hostname", cfg.Hostname, "data", cfg.DataDir, "pid", os.Getpid())

	// The reloader works on its own copy: the running parts keep cfg.
	running := *cfg
	rl := &reloader{cur: &running, opts: opts, certs: certs, log: log, mx: mxServers,
		newSpam: func(nc *config.Config) (*spam.Checker, error) {
			return newSpamChecker(nc, deliv.IsLocalDomain, resolver, exempt, reg, log.With("component", "spam"))
		}}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				rl.reload()
				continue
			}
			log.Info("shutting down", "signal", sig.String(), "deadline", opts.ShutdownTimeout)
			break loop
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	var swg sync.WaitGroup
	for _, l := range listeners {
		if l.srv == nil {
			continue
		}
		swg.Add(1)
		go func(l *listener) {
			defer swg.Done()
			if err := l.srv.Shutdown(sctx); err != nil {
				log.Warn("listener did not drain in time; connections closed", "listener", l.cfg.Name, "err", err)
			}
		}(l)
	}
	swg.Wait()
	closeAll()
	wg.Wait()
	if opts.ReadyFile != "" {
		os.Remove(opts.ReadyFile)
	}
	log.Info("mailstead stopped")
	return nil
}

// metadataAdmin is the IMAP METADATA /shared/admin server annotation
// (RFC 5464: a URI to contact the administrator): the configured
// postmaster, if any.
func metadataAdmin(cfg *config.Config) string {
	if pm := cfg.Accounts.Postmaster; pm != "" {
		return "mailto:" + pm
	}
	return ""
}

// reloader applies a new configuration on SIGHUP: the log level,
// certificates and the MX listeners' spam checks change in place; every
// other section needs a restart, and a changed one is named in a warning
// so the admin is not left guessing. A file with errors changes nothing.
type reloader struct {
	cur   *config.Config // what is in effect
	opts  Options
	certs *tlsutil.CertStore
	log   *slog.Logger
	// newSpam builds a checker from a config's [spam]; mx are the
	// servers that use it.
	newSpam func(*config.Config) (*spam.Checker, error)
	mx      []*smtpserver.Server
}

func (r *reloader) reload() {
	log := r.log
	log.Info("SIGHUP: reloading")
	if r.opts.Reload == nil {
		r.reloadCerts()
		return
	}
	nc, err := r.opts.Reload()
	if err != nil {
		log.Error("reload: config has errors; keeping the running configuration", "err", err)
		r.reloadCerts()
		return
	}
	if r.opts.LogLevel != nil {
		r.opts.LogLevel.Set(nc.SlogLevel())
	}
	if changed := restartOnlyChanges(r.cur, nc); len(changed) > 0 {
		log.Warn("reload: these changes take effect after a restart", "sections", changed)
	}
	if !reflect.DeepEqual(spamLive(r.cur.Spam), spamLive(nc.Spam)) && len(r.mx) > 0 {
		if c, err := r.newSpam(nc); err != nil {
			log.Error("reload: keeping the running spam checks", "err", err)
		} else {
			for _, m := range r.mx {
				m.SetSpam(c)
			}
			g := r.cur.Spam.Greylist // the running greylist stays
			r.cur.Spam = nc.Spam
			r.cur.Spam.Greylist = g
			log.Info("spam checks reloaded", "dnsbl", len(nc.Spam.DNSBL), "dnswl", len(nc.Spam.DNSWL), "rspamd", nc.Spam.RspamdURL != "",
				"junk_score", nc.Spam.JunkScore, "reject_score", nc.Spam.RejectScore)
		}
	}
	r.cur.LogLevel = nc.LogLevel
	if r.certs != nil {
		def, sni, ok, err := nc.CertFiles()
		if err == nil && ok {
			if err := r.certs.Update(def, sni); err != nil {
				log.Error("reload certificates; keeping the old ones", "err", err)
			} else {
				r.cur.TLS = nc.TLS
				log.Info("certificates reloaded")
			}
			return
		}
	}
	r.reloadCerts()
}

func (r *reloader) reloadCerts() {
	if r.certs == nil {
		return
	}
	if err := r.certs.Reload(); err != nil {
		r.log.Error("reload certificates; keeping the old ones", "err", err)
	} else {
		r.log.Info("certificates reloaded")
	}
}

// spamLive is the part of [spam] a reload applies: all but the greylist,
// whose state file and running sweeper belong to the process.
func spamLive(s config.Spam) config.Spam {
	s.Greylist = config.Greylist{}
	return s
}

// restartOnlyChanges names the sections of nc that differ from cur and
// that only a restart applies.
func restartOnlyChanges(cur, nc *config.Config) []string {
	var out []string
	check := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, name)
		}
	}
	check("hostname", cur.Hostname, nc.Hostname)
	check("data_dir", cur.DataDir, nc.DataDir)
	check("log_format", cur.LogFormat, nc.LogFormat)
	check("[[listener]]", cur.Listeners, nc.Listeners)
	check("[limits]", cur.Limits, nc.Limits)
	check("[store]", cur.Store, nc.Store)
	check("[accounts]", cur.Accounts, nc.Accounts)
	check("[outbound]", cur.Outbound, nc.Outbound)
	check("[api]", cur.API, nc.API)
	check("[forwarding]", cur.Forwarding, nc.Forwarding)
	check("[[webhook]]", cur.Webhooks, nc.Webhooks)
	check("[spam.greylist]", cur.Spam.Greylist, nc.Spam.Greylist)
	return out
}

func writeReady(path string, ls []*listener) error {
	r := Ready{PID: os.Getpid(), Listeners: map[string]string{}}
	for _, l := range ls {
		r.Listeners[l.cfg.Name] = l.addr
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	return os.Rename(tmp, path)
}
