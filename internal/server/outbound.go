package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dkim"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
)

// Outbound is the outbound side of a server: DKIM keys, the submitter that
// queues mail, and the queue runner with its SMTP transport.
type Outbound struct {
	Keys      *dkim.Keys
	Submitter *delivery.Submitter
	Runner    *queue.Runner
	SMTP      *queue.SMTP
	cfg       *config.Config
	st        store.Store
}

// DKIMKeys opens the data directory's DKIM keys with the configured active
// selectors.
func DKIMKeys(cfg *config.Config) *dkim.Keys {
	active := map[string]string{}
	for _, d := range cfg.Outbound.DKIM {
		active[d.Domain] = d.Selector
	}
	return dkim.Open(filepath.Join(cfg.DataDir, "dkim"), active)
}

// NewSubmitter returns the submitter that signs and queues mail.
func NewSubmitter(keys *dkim.Keys, deliv *delivery.Deliverer, log *slog.Logger) *delivery.Submitter {
	return delivery.NewSubmitter(deliv, delivery.SubmitOptions{
		Signer:  keys,
		IsNoKey: func(err error) bool { return errors.Is(err, dkim.ErrNoKey) },
		Logger:  log,
	})
}

// BounceFunc returns what `mailstead queue bounce` runs.
func BounceFunc(cfg *config.Config, st queue.Store, inj queue.Injector) func(ctx context.Context, id int64, reason string) error {
	return func(ctx context.Context, id int64, reason string) error {
		return queue.Bounce(ctx, st, inj, cfg.Hostname, int64(cfg.Outbound.BounceMaxSize), id, reason)
	}
}

// relay builds a queue.Relay from configuration.
func relay(name string, r config.Relay) (*queue.Relay, error) {
	out := &queue.Relay{Host: r.Host, Port: r.RelayPort(), TLS: string(r.TLS), Username: r.Username}
	if out.TLS == "" {
		out.TLS = queue.TLSStartTLS
	}
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file %s: no certificates", name, r.CAFile)
		}
		out.RootCAs = pool
	}
	if r.Username != "" {
		secret := r.Password(name)
		if _, err := secret.Value(); err != nil {
			return nil, err
		}
		out.Password = secret.Value
	}
	return out, nil
}

// SMTPOptions translates [outbound] into transport options.
// res is the server's resolver; when it also answers DNSSEC questions (the
// test zone, dnsresolver.Fake) DANE uses it, else DANE asks the resolvers
// of /etc/resolv.conf and trusts their AD bit.
func SMTPOptions(cfg *config.Config, res dnsresolver.Resolver, log *slog.Logger, reg prometheus.Registerer) (queue.SMTPOptions, error) {
	o := cfg.Outbound
	if res == nil {
		res = dnsresolver.System{}
	}
	so := queue.SMTPOptions{
		EHLOName: o.EHLOName, IPPreference: o.IPPreference,
		ConnectTimeout: o.ConnectTimeout.D(), CommandTimeout: o.CommandTimeout.D(),
		Routes: map[string]*queue.Relay{}, Logger: log, Registerer: reg,
		Resolver: res,
	}
	if so.EHLOName == "" {
		so.EHLOName = cfg.Hostname
	}
	if o.SourceIPv4 != "" {
		so.SourceIPv4, _ = netip.ParseAddr(o.SourceIPv4)
	}
	if o.SourceIPv6 != "" {
		so.SourceIPv6, _ = netip.ParseAddr(o.SourceIPv6)
	}
	if o.Mode == config.OutboundSmarthost {
		r, err := relay("outbound.smarthost", o.Smarthost)
		if err != nil {
			return so, err
		}
		so.Smarthost = r
	}
	for i, rt := range o.Routes {
		r, err := relay(fmt.Sprintf("outbound.route[%d]", i), rt.Relay())
		if err != nil {
			return so, err
		}
		for _, d := range rt.Domains {
			so.Routes[d] = r
		}
	}
	if o.MTASTS {
		so.MTASTS = queue.NewMTASTS(so.Resolver, log)
	}
	if o.DANE {
		if sec, ok := res.(dnsresolver.DNSSEC); ok {
			so.DANE = sec
		} else {
			so.DANE = &dnsresolver.TrustAD{Logger: log}
		}
	}
	return so, nil
}

// StartOutbound builds the outbound side and starts the queue runner; stop
// waits for it (deliveries in flight get up to grace to finish).
func StartOutbound(ctx context.Context, cfg *config.Config, st store.Store, wake <-chan struct{}, deliv *delivery.Deliverer, res dnsresolver.Resolver, reg prometheus.Registerer, log *slog.Logger, grace time.Duration) (*Outbound, func(), error) {
	keys := DKIMKeys(cfg)
	sub := NewSubmitter(keys, deliv, log.With("component", "submit"))
	so, err := SMTPOptions(cfg, res, log.With("component", "smtp-out"), reg)
	if err != nil {
		return nil, nil, fmt.Errorf("outbound: %w", err)
	}
	// Per-domain TLS outcomes of direct delivery, for `queue tls` and
	// the RFC 8460 reports.
	so.TLSResults = st
	tr := queue.NewSMTP(so)
	var retry []time.Duration
	for _, d := range cfg.Outbound.RetrySchedule {
		retry = append(retry, d.D())
	}
	r := queue.New(st, queue.Options{
		Transports:        map[string]queue.Transport{queue.TransportSMTP: tr, queue.TransportTLSReport: tr, "http": webhooks(cfg, log.With("component", "webhook"))},
		Retry:             retry,
		MaxAge:            cfg.Outbound.MaxAge.D(),
		DelayWarning:      cfg.Outbound.DelayWarning.D(),
		MaxConcurrency:    cfg.Outbound.MaxConcurrency,
		MaxPerDestination: cfg.Outbound.MaxPerDestination,
		Hostname:          cfg.Hostname,
		BounceMaxSize:     int64(cfg.Outbound.BounceMaxSize),
		Injector:          sub,
		Wake:              wake,
		ShutdownGrace:     grace,
		Logger:            log.With("component", "queue"),
		Registerer:        reg,
	})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(rctx)
	}()
	log.Info("outbound queue started", "mode", cfg.Outbound.Mode, "max_concurrency", cfg.Outbound.MaxConcurrency)
	reported := make(chan struct{})
	if rc := cfg.Outbound.TLSReports; rc.Enabled {
		rep, err := queue.NewTLSReporter(st, so.Resolver, queue.TLSReporterOptions{
			OrganizationName: rc.Organization,
			Contact:          rc.Contact,
			From:             rc.From,
			Submitter:        cfg.Hostname,
			Injector:         sub,
			Retention:        rc.Retention.D(),
			Logger:           log.With("component", "tlsrpt"),
		})
		if err != nil {
			cancel()
			<-done
			tr.Close()
			return nil, nil, fmt.Errorf("outbound.tls_reports: %w", err)
		}
		go func() {
			defer close(reported)
			rep.Run(rctx)
		}()
	} else {
		close(reported)
	}
	stop := func() {
		cancel()
		<-done
		<-reported
		tr.Close() // writes the last TLS results; before the store closes
	}
	return &Outbound{Keys: keys, Submitter: sub, Runner: r, SMTP: tr, cfg: cfg, st: st}, stop, nil
}
