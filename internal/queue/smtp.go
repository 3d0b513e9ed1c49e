package queue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/store"
)

// TLS modes of a relay.
const (
	TLSStartTLS = "starttls" // STARTTLS required
	TLSImplicit = "implicit" // TLS from the first byte (port 465)
	TLSNone     = "none"     // plain text (loopback relays)
)

// Relay is a smarthost.
type Relay struct {
	Host string
	Port int
	TLS  string
	// RootCAs verifies the relay's certificate; nil uses the system roots.
	RootCAs *x509.CertPool
	// Username, with Password, enables AUTH PLAIN (or LOGIN). Password
	// is called on each new connection, so a rotated secret file is
	// picked up; its value is never logged.
	Username string
	Password func() (string, error)
}

func (r *Relay) String() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// SMTPOptions configure the SMTP transport.
type SMTPOptions struct {
	// Smarthost, when set, receives all mail (smarthost mode); otherwise
	// mail goes to the destination's MX hosts (direct mode).
	Smarthost *Relay
	// Routes send chosen destination domains through a relay in either
	// mode; a key "*.example.com" matches subdomains.
	Routes map[string]*Relay
	// EHLOName is the name in EHLO (the server's hostname).
	EHLOName string
	// SourceIPv4/SourceIPv6 are local addresses to connect from.
	SourceIPv4, SourceIPv6 netip.Addr
	// IPPreference: "ipv4" (default), "ipv6", "ipv4-only", "ipv6-only".
	IPPreference   string
	ConnectTimeout time.Duration // default 30s
	CommandTimeout time.Duration // default 5m
	DataTimeout    time.Duration // reply to the message data; default 10m
	// Resolver is the DNS; nil uses net.DefaultResolver.
	Resolver Resolver
	// MTASTS enforces MTA-STS policies in direct mode; nil disables.
	MTASTS *MTASTS
	// DANE, when set, authenticates MX hosts with DNSSEC-secure TLSA
	// records (RFC 7672) in direct mode; it also answers the MX lookups
	// then, since only a secure MX answer lets DANE apply. nil disables.
	DANE dnsresolver.DNSSEC
	// RootCAs verifies MX certificates where a policy requires it; nil
	// uses the system roots.
	RootCAs *x509.CertPool
	// Port is the port of MX hosts (25; tests change it).
	Port int
	// IdleTimeout is how long a connection is kept for reuse (default
	// 10s); MaxMessagesPerConn bounds reuse (default 100).
	IdleTimeout        time.Duration
	MaxMessagesPerConn int
	// TLSResults, when set, receives the outcome of every TLS session of
	// direct delivery per policy domain and day (RFC 8460), counted in
	// memory and flushed every few seconds and at Close.
	TLSResults TLSResultStore
	// Now is the clock that dates TLS results (tests); nil is time.Now.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// SMTP delivers queue entries over SMTP.
type SMTP struct {
	opts     SMTPOptions
	log      *slog.Logger
	pool     *pool
	failures *prometheus.CounterVec
	tlsrec   *tlsRecorder // nil: TLS results not recorded
	stop     chan struct{}
	stopOnce sync.Once
	flushed  chan struct{} // closed when the TLS result flusher is done
}

// NewSMTP returns an SMTP transport. Close it to drop idle connections.
func NewSMTP(o SMTPOptions) *SMTP {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = 5 * time.Minute
	}
	if o.DataTimeout <= 0 {
		o.DataTimeout = 10 * time.Minute
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Port == 0 {
		o.Port = 25
	}
	if o.EHLOName == "" {
		o.EHLOName = "localhost"
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Second
	}
	if o.MaxMessagesPerConn <= 0 {
		o.MaxMessagesPerConn = 100
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := &SMTP{opts: o, log: o.Logger, stop: make(chan struct{}), flushed: make(chan struct{})}
	t.pool = &pool{idle: map[string][]*session{}, timeout: o.IdleTimeout, maxPerKey: 32}
	t.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailstead_outbound_smtp_failures_total",
		Help: "Outbound SMTP connection-level failures by kind (connect, tls, starttls_missing, mta_sts, dane, auth, protocol).",
	}, []string{"kind"})
	if o.Registerer != nil {
		if err := o.Registerer.Register(t.failures); err != nil {
			t.log.Warn("register smtp transport metric", "err", err)
		}
	}
	go t.janitor()
	if o.TLSResults != nil {
		t.tlsrec = newTLSRecorder(o.TLSResults, t.log, o.Now, o.Registerer)
		go t.flusher()
	} else {
		close(t.flushed)
	}
	return t
}

// Close closes idle connections, stops reusing connections and writes
// the TLS results not yet flushed.
func (t *SMTP) Close() {
	t.stopOnce.Do(func() { close(t.stop) })
	t.pool.closeAll()
	<-t.flushed
}

// FlushTLSResults writes the TLS results counted so far to the store.
func (t *SMTP) FlushTLSResults(ctx context.Context) error {
	return t.tlsrec.flush(ctx)
}

func (t *SMTP) flusher() {
	defer close(t.flushed)
	tick := time.NewTicker(tlsFlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := t.tlsrec.flush(ctx); err != nil {
				t.log.Error("tls results: final flush failed; counts lost", "err", err)
			}
			cancel()
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := t.tlsrec.flush(ctx); err != nil {
				t.log.Warn("tls results: flush failed; retried", "err", err)
			}
			cancel()
		}
	}
}

// tlsResult records the outcome of a TLS session (err nil: success) of
// a direct-delivery target.
func (t *SMTP) tlsResult(tg target, raw net.Conn, err error) {
	if t.tlsrec == nil || tg.relay != nil || tg.noReport {
		return
	}
	s := tlsSession{policy: tg.policy, mx: tg.host, rip: tg.addr.Addr().Unmap().String()}
	if ta, ok := raw.LocalAddr().(*net.TCPAddr); ok {
		s.sip = ta.AddrPort().Addr().Unmap().String()
	}
	if err != nil {
		s.result, s.reason = TLSResultType(err)
	}
	t.tlsrec.record(s)
}

// verifyPeer validates a server's certificate chain for host as
// crypto/tls would, for sessions that validate without enforcing
// (MTA-STS testing mode).
func verifyPeer(cs tls.ConnectionState, host string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no server certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
	return err
}

func (t *SMTP) janitor() {
	tick := time.NewTicker(t.opts.IdleTimeout)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.pool.expire()
		}
	}
}

// relayFor returns the relay for a destination domain, nil for direct
// delivery.
func (t *SMTP) relayFor(domain string) *Relay {
	domain = strings.ToLower(domain)
	if r, ok := t.opts.Routes[domain]; ok {
		return r
	}
	for d := domain; ; {
		i := strings.IndexByte(d, '.')
		if i < 0 {
			break
		}
		d = d[i+1:]
		if r, ok := t.opts.Routes["*."+d]; ok {
			return r
		}
	}
	return t.opts.Smarthost
}

// target is one address to try.
type target struct {
	host  string // name for TLS and logs
	addr  netip.AddrPort
	relay *Relay
	// verify requires STARTTLS with a certificate valid for host
	// (MTA-STS enforce).
	verify bool
	// dane, when set, requires STARTTLS with a certificate that these
	// usable TLSA records authenticate (DANE); requireTLS requires
	// STARTTLS without authentication (DANE with only unusable records).
	dane       []dnsresolver.TLSA
	requireTLS bool
	// noTLS skips STARTTLS (retry after a failed opportunistic handshake).
	noTLS bool
	// domain is the destination, for TLS failure reports.
	domain string
	// policy is the policy TLS results are recorded under; stsTesting
	// validates the certificate and records the outcome without
	// enforcing it (MTA-STS testing mode); noReport records nothing (TLS
	// reports themselves, RFC 8460 5.3).
	policy     tlsPolicy
	stsTesting bool
	noReport   bool
}

func (tg *target) key() string {
	if tg.relay != nil {
		return "relay|" + tg.addr.String() + "|" + tg.relay.Username
	}
	return fmt.Sprintf("mx|%s|%s|%t|%t|%t|%t|%t", tg.addr, tg.host, tg.verify, tg.noTLS, tg.stsTesting, tg.dane != nil, tg.requireTLS)
}

// mustTLS reports whether tg may only be used with TLS: no plain-text
// fallback when STARTTLS is missing or its handshake fails.
func (tg *target) mustTLS() bool {
	return tg.relay != nil || tg.verify || tg.dane != nil || tg.requireTLS
}

func (tg *target) remote() string {
	return fmt.Sprintf("%s[%s]:%d", tg.host, tg.addr.Addr(), tg.addr.Port())
}

// Deliver implements Transport.
func (t *SMTP) Deliver(ctx context.Context, e store.QueueEntry, msg Message) []Result {
	var pend []store.QueueRecipient
	for _, rc := range e.Recipients {
		if rc.Status == store.RcptPending {
			pend = append(pend, rc)
		}
	}
	if len(pend) == 0 {
		return nil
	}
	all := func(err error) []Result {
		out := make([]Result, len(pend))
		for i, rc := range pend {
			out[i] = resultFromErr(rc.Address, err)
		}
		return out
	}
	var targets []func() ([]target, error)
	relay := t.relayFor(e.Destination)
	if relay != nil {
		targets = append(targets, func() ([]target, error) {
			addrs, err := hostAddrs(ctx, t.opts.Resolver, relay.Host, t.opts.IPPreference)
			if err != nil {
				return nil, err
			}
			var out []target
			for _, a := range addrs {
				out = append(out, target{host: relay.Host, addr: netip.AddrPortFrom(a, uint16(relay.Port)), relay: relay, domain: e.Destination, noReport: true})
			}
			return out, nil
		})
	} else {
		// A TLS report is delivered despite TLS failures and its
		// sessions are not reported (RFC 8460 5.3). Only the reporter
		// queues entries with this transport; a header in the message
		// proves nothing (anyone can write one into forwarded mail).
		report := e.Transport == TransportTLSReport
		dom := strings.ToLower(e.Destination)
		var hosts []string
		var dane map[string]*daneHost // nil: DANE does not apply
		if t.opts.DANE != nil && !report {
			var secure bool
			var err error
			hosts, secure, err = mxHostsFrom(ctx, t.opts.DANE.LookupMXSecure, t.opts.Resolver, e.Destination)
			if err != nil {
				return all(err)
			}
			if secure {
				dane = t.daneLookup(ctx, hosts)
			} else {
				t.log.Debug("dane", "domain", dom, "decision", daneNone.String(), "reason", "MX answer not DNSSEC-secure")
			}
		} else {
			var err error
			hosts, err = mxHosts(ctx, t.opts.Resolver, e.Destination)
			if err != nil {
				return all(err)
			}
		}
		pol := tlsPolicy{typ: PolicyNoPolicyFound, domain: dom}
		verify, testing := false, false
		if t.opts.MTASTS != nil {
			p, ferr := t.opts.MTASTS.lookup(ctx, e.Destination)
			if ferr != nil && !report && t.tlsrec != nil {
				t.tlsrec.record(tlsSession{policy: tlsPolicy{typ: PolicySTS, domain: dom}, result: ferr.result, reason: ferr.reason})
			}
			if p != nil && p.Mode != STSNone {
				pol = tlsPolicy{typ: PolicySTS, lines: p.Lines, domain: dom}
				enforce := p.Mode == STSEnforce && !report
				var ok []string
				for _, h := range hosts {
					// DANE wins over MTA-STS for a host it
					// authenticates (RFC 8461 2).
					if p.Match(h) || dane[h].authenticates() {
						ok = append(ok, h)
						continue
					}
					if !report && t.tlsrec != nil {
						t.tlsrec.record(tlsSession{policy: pol, result: ResultValidationFailure, reason: "mx host not in mta-sts policy", mx: h})
					}
					if enforce {
						t.log.Warn("mta-sts: MX host not in policy; skipped", "domain", e.Destination, "mx", h)
					} else {
						ok = append(ok, h)
						t.log.Warn("mta-sts (testing): MX host not in policy", "domain", e.Destination, "mx", h)
					}
				}
				if len(ok) == 0 {
					t.failures.WithLabelValues("mta_sts").Inc()
					return all(tempErr("4.7.5", "no MX host of %s matches its MTA-STS policy", e.Destination))
				}
				hosts = ok
				verify = enforce
				testing = p.Mode == STSTesting && !report
			}
		}
		for _, h := range hosts {
			dh := dane[h]
			targets = append(targets, func() ([]target, error) {
				if dh != nil && dh.mode == daneFail {
					t.daneFailed(dom, h, dh)
					return nil, dh.err
				}
				addrs, err := hostAddrs(ctx, t.opts.Resolver, h, t.opts.IPPreference)
				if err != nil {
					return nil, err
				}
				base := target{host: h, verify: verify, domain: e.Destination, policy: pol, stsTesting: testing, noReport: report}
				t.daneApply(&base, dh)
				var out []target
				for _, a := range addrs {
					tg := base
					tg.addr = netip.AddrPortFrom(a, uint16(t.opts.Port))
					out = append(out, tg)
				}
				return out, nil
			})
		}
	}
	var lastErr error = tempErr("4.4.1", "no host to deliver to")
	dials := 0
	for _, tf := range targets {
		tgs, err := tf()
		if err != nil {
			lastErr = err
			continue
		}
		for _, tg := range tgs {
			if dials >= maxDialsPerTry || ctx.Err() != nil {
				break
			}
			dials++
			res, err := t.try(ctx, e, msg, pend, tg)
			if err == nil {
				return res
			}
			lastErr = err
			var de *deliveryError
			if errors.As(err, &de) && de.perm {
				// The sender was refused (MAIL FROM 5xx): another
				// host of the same domain will not think otherwise.
				return all(err)
			}
		}
	}
	if ctx.Err() != nil {
		return all(tempErr("4.4.2", "delivery interrupted: %v", ctx.Err()))
	}
	return all(lastErr)
}

func resultFromErr(addr string, err error) Result {
	var de *deliveryError
	if errors.As(err, &de) {
		o := Temporary
		if de.perm {
			o = Permanent
		}
		return Result{Address: addr, Outcome: o, Reply: de.status + " " + de.msg, Status: de.status, Remote: de.remote}
	}
	return Result{Address: addr, Outcome: Temporary, Reply: "4.4.0 " + err.Error(), Status: "4.4.0"}
}

// errBroken marks a connection that failed below SMTP (I/O): a pooled
// connection the server has closed meanwhile fails like this.
var errBroken = errors.New("connection broken")

// try delivers on one target, reusing a pooled connection when there is
// one. A nil error means the recipients' results are final for this
// attempt; an error means "try the next host".
func (t *SMTP) try(ctx context.Context, e store.QueueEntry, msg Message, pend []store.QueueRecipient, tg target) ([]Result, error) {
	for round := 0; round < 3; round++ {
		s := t.pool.get(tg.key())
		pooled := s != nil
		if s == nil {
			var err error
			s, err = t.dial(ctx, tg)
			if errors.Is(err, errTLSFallback) && !tg.mustTLS() {
				// Opportunistic TLS failed: RFC 7435 says deliver
				// in plain text rather than not at all.
				tg.noTLS = true
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		res, err := t.transaction(ctx, s, e, msg, pend)
		if err != nil {
			s.close()
			if pooled && errors.Is(err, errBroken) {
				continue // stale pooled connection: dial afresh
			}
			return nil, err
		}
		s.used++
		if s.healthy && s.used < t.opts.MaxMessagesPerConn && ctx.Err() == nil {
			t.pool.put(tg.key(), s)
		} else {
			s.quit()
		}
		return res, nil
	}
	return nil, tempErr("4.4.2", "%s: connection failed repeatedly", tg.remote())
}

// session is one SMTP connection.
type session struct {
	c       *smtp.Client
	raw     net.Conn
	remote  string
	tls     string // TLS version, "" for plain text
	dane    bool   // TLS authenticated by DANE
	used    int
	healthy bool // the last exchange ended in a clean reply
	idle    time.Time
}

func (s *session) close() { s.raw.Close() }

func (s *session) quit() {
	s.raw.SetDeadline(time.Now().Add(5 * time.Second))
	if err := s.c.Quit(); err != nil {
		s.raw.Close()
	}
}

// greeted replays a greeting to go-smtp's client after we read the real
// one ourselves (to send our EHLO name before STARTTLS, which go-smtp's
// exported API cannot do).
type greeted struct {
	net.Conn
	pre []byte
}

func (g *greeted) Read(p []byte) (int, error) {
	if len(g.pre) > 0 {
		n := copy(p, g.pre)
		g.pre = g.pre[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

var errTLSFallback = errors.New("TLS handshake failed")

func (t *SMTP) fail(kind string, tg target, err *deliveryError) *deliveryError {
	t.failures.WithLabelValues(kind).Inc()
	err.remote = tg.remote()
	return err
}

// dial connects, reads the greeting, says EHLO, does TLS and AUTH.
func (t *SMTP) dial(ctx context.Context, tg target) (*session, error) {
	d := net.Dialer{Timeout: t.opts.ConnectTimeout}
	if tg.addr.Addr().Is4() && t.opts.SourceIPv4.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: t.opts.SourceIPv4.AsSlice()}
	} else if tg.addr.Addr().Is6() && t.opts.SourceIPv6.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: t.opts.SourceIPv6.AsSlice()}
	}
	raw, err := d.DialContext(ctx, "tcp", tg.addr.String())
	if err != nil {
		return nil, t.fail("connect", tg, tempErr("4.4.1", "connect to %s: %v", tg.remote(), unwrapOp(err)))
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	raw.SetDeadline(time.Now().Add(t.opts.CommandTimeout))
	s := &session{raw: raw, remote: tg.remote()}
	ok := false
	defer func() {
		if !ok {
			raw.Close()
		}
	}()

	mode := TLSStartTLS
	if tg.relay != nil {
		mode = tg.relay.TLS
	}
	tlsCfg := &tls.Config{ServerName: tg.host}
	// verifyErr is the validation outcome of a testing-mode session.
	var verifyErr error
	switch {
	case tg.relay != nil:
		tlsCfg.RootCAs = tg.relay.RootCAs
	case tg.dane != nil:
		daneTLSConfig(tlsCfg, tg)
	case tg.verify:
		tlsCfg.RootCAs = t.opts.RootCAs
	case tg.stsTesting:
		// MTA-STS testing: validate and report, but deliver anyway
		// (RFC 8461 5).
		tlsCfg.InsecureSkipVerify = true
		tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error {
			verifyErr = verifyPeer(cs, tg.host, t.opts.RootCAs)
			return nil
		}
	default:
		// Opportunistic (RFC 7435): encrypt, do not authenticate.
		tlsCfg.InsecureSkipVerify = true
	}
	var conn net.Conn = raw
	switch {
	case mode == TLSImplicit:
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			t.log.Warn("outbound TLS handshake failed", "domain", tg.domain, "remote", tg.remote(), "err", err)
			return nil, t.fail("tls", tg, tempErr("4.7.5", "TLS with %s failed: %v", tg.remote(), err))
		}
		s.tls = tls.VersionName(tc.ConnectionState().Version)
		conn = tc
	case mode == TLSStartTLS && !tg.noTLS:
		tp := textproto.NewConn(raw)
		_, greet, err := tp.ReadResponse(220)
		if err != nil {
			return nil, t.fail("protocol", tg, tempErr("4.4.2", "greeting from %s: %v", tg.remote(), replyText(err)))
		}
		id, err := tp.Cmd("EHLO %s", t.opts.EHLOName)
		if err != nil {
			return nil, t.fail("protocol", tg, tempErr("4.4.2", "EHLO to %s: %v", tg.remote(), err))
		}
		tp.StartResponse(id)
		_, ext, err := tp.ReadResponse(250)
		tp.EndResponse(id)
		offered := false
		if err == nil {
			for _, l := range strings.Split(ext, "\n")[1:] {
				if strings.EqualFold(strings.TrimSpace(l), "STARTTLS") {
					offered = true
				}
			}
		} else if _, isProto := err.(*textproto.Error); !isProto {
			return nil, t.fail("protocol", tg, tempErr("4.4.2", "EHLO to %s: %v", tg.remote(), err))
		}
		if !offered {
			t.tlsResult(tg, raw, errSTARTTLSNotOffered)
			if tg.mustTLS() {
				why := "the relay requires TLS"
				switch {
				case tg.dane != nil || tg.requireTLS:
					why = daneRequired(tg.host)
				case tg.verify:
					why = "the domain's MTA-STS policy requires TLS"
				}
				t.log.Warn("STARTTLS not offered", "domain", tg.domain, "remote", tg.remote(), "reason", why)
				return nil, t.fail("starttls_missing", tg, tempErr("4.7.10", "%s does not offer STARTTLS and %s", tg.remote(), why))
			}
			conn = &greeted{Conn: raw, pre: []byte("220 " + firstLine(greet) + "\r\n")}
			break
		}
		id, err = tp.Cmd("STARTTLS")
		if err == nil {
			tp.StartResponse(id)
			_, _, err = tp.ReadResponse(220)
			tp.EndResponse(id)
		}
		if err != nil {
			if _, isProto := err.(*textproto.Error); isProto {
				t.tlsResult(tg, raw, fmt.Errorf("%w: %w", errSTARTTLSNotOffered, err))
				if !tg.mustTLS() {
					// Refused rather than not offered: the same
					// opportunistic fallback (RFC 7435).
					t.failures.WithLabelValues("tls").Inc()
					return nil, errTLSFallback
				}
			}
			return nil, t.fail("tls", tg, tempErr("4.7.5", "STARTTLS with %s: %v", tg.remote(), replyText(err)))
		}
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			t.tlsResult(tg, raw, err)
			t.log.Warn("outbound TLS handshake failed", "domain", tg.domain, "remote", tg.remote(), "err", err, "verify", tg.verify || tg.relay != nil, "dane", tg.dane != nil)
			t.failures.WithLabelValues("tls").Inc()
			if !tg.mustTLS() {
				return nil, errTLSFallback
			}
			return nil, &deliveryError{status: "4.7.5", msg: fmt.Sprintf("TLS with %s failed: %v", tg.remote(), err), remote: tg.remote()}
		}
		if verifyErr != nil {
			t.log.Info("mta-sts (testing): certificate not valid; delivering anyway", "domain", tg.domain, "remote", tg.remote(), "err", verifyErr)
		}
		t.tlsResult(tg, raw, verifyErr)
		s.tls = tls.VersionName(tc.ConnectionState().Version)
		s.dane = tg.dane != nil
		conn = &greeted{Conn: tc, pre: []byte("220 " + firstLine(greet) + "\r\n")}
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = t.opts.CommandTimeout
	c.SubmissionTimeout = t.opts.DataTimeout
	if err := c.Hello(t.opts.EHLOName); err != nil {
		return nil, t.fail("protocol", tg, tempErr("4.4.2", "EHLO to %s: %v", tg.remote(), replyText(err)))
	}
	s.c = c
	if r := tg.relay; r != nil && r.Username != "" {
		if s.tls == "" && !tg.addr.Addr().IsLoopback() {
			return nil, t.fail("auth", tg, tempErr("4.7.0", "not sending credentials to %s without TLS", tg.remote()))
		}
		pw, err := r.Password()
		if err != nil {
			t.log.Error("smarthost password unavailable", "relay", r.String(), "err", err)
			return nil, t.fail("auth", tg, tempErr("4.7.0", "smarthost password unavailable"))
		}
		var mech sasl.Client
		switch {
		case c.SupportsAuth("PLAIN"):
			mech = sasl.NewPlainClient("", r.Username, pw)
		case c.SupportsAuth("LOGIN"):
			mech = sasl.NewLoginClient(r.Username, pw)
		default:
			return nil, t.fail("auth", tg, tempErr("4.7.0", "%s offers neither AUTH PLAIN nor AUTH LOGIN", tg.remote()))
		}
		if err := c.Auth(mech); err != nil {
			t.log.Error("smarthost authentication failed", "relay", r.String(), "username", r.Username, "reply", replyText(err))
			return nil, t.fail("auth", tg, tempErr("4.7.0", "authentication as %s at %s failed: %s", r.Username, tg.remote(), replyText(err)))
		}
	}
	raw.SetDeadline(time.Time{})
	s.healthy = true
	ok = true
	return s, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// replyText renders an SMTP error as "550 5.1.1 text".
func replyText(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return formatReply(se)
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return fmt.Sprintf("%d %s", te.Code, strings.ReplaceAll(te.Msg, "\n", " "))
	}
	return err.Error()
}

func formatReply(se *smtp.SMTPError) string {
	msg := strings.ReplaceAll(se.Message, "\n", " ")
	ec := se.EnhancedCode
	if ec != (smtp.EnhancedCode{}) && ec != smtp.NoEnhancedCode && ec[0] > 0 {
		return fmt.Sprintf("%d %d.%d.%d %s", se.Code, ec[0], ec[1], ec[2], msg)
	}
	return fmt.Sprintf("%d %s", se.Code, msg)
}

func replyResult(addr string, se *smtp.SMTPError, remote string) Result {
	o := Temporary
	if se.Code >= 500 {
		o = Permanent
	}
	return Result{Address: addr, Outcome: o, Reply: formatReply(se), Remote: remote}
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

// rcptOptions carries NOTIFY and ORCPT on; go-smtp sends them only when
// the server announces DSN. Values it would refuse are dropped rather
// than failing the recipient.
func rcptOptions(rc store.QueueRecipient) *smtp.RcptOptions {
	o := &smtp.RcptOptions{}
	never := false
	for _, n := range rc.Notify {
		switch v := smtp.DSNNotify(strings.ToUpper(n)); v {
		case smtp.DSNNotifyNever:
			never = true
		case smtp.DSNNotifyDelayed, smtp.DSNNotifyFailure, smtp.DSNNotifySuccess:
			o.Notify = append(o.Notify, v)
		}
	}
	if never {
		if len(o.Notify) == 0 {
			o.Notify = []smtp.DSNNotify{smtp.DSNNotifyNever}
		} else {
			o.Notify = nil
		}
	}
	if typ, a, ok := strings.Cut(rc.ORCPT, ";"); ok && a != "" {
		switch strings.ToLower(strings.TrimSpace(typ)) {
		case "rfc822":
			if printable(a) {
				o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, a
			}
		case "utf-8":
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeUTF8, a
		}
	}
	return o
}

// transaction sends one message on s. An error means no recipient has a
// final result from this host (try another); errBroken marks I/O errors.
func (t *SMTP) transaction(ctx context.Context, s *session, e store.QueueEntry, msg Message, pend []store.QueueRecipient) ([]Result, error) {
	stop := context.AfterFunc(ctx, func() { s.raw.Close() })
	defer stop()
	s.healthy = false
	mo := &smtp.MailOptions{Size: msg.Size()}
	if r := strings.ToUpper(e.DSNRet); r == "FULL" || r == "HDRS" {
		mo.Return = smtp.DSNReturn(r)
	}
	if printable(e.DSNEnvID) && len(e.DSNEnvID) <= 100 {
		mo.EnvelopeID = e.DSNEnvID
	}
	utf8 := !isASCII(e.From)
	for _, rc := range pend {
		utf8 = utf8 || !isASCII(rc.Address)
	}
	if utf8 {
		if ok, _ := s.c.Extension("SMTPUTF8"); !ok {
			s.healthy = true
			return nil, &deliveryError{perm: true, status: "5.6.7", msg: fmt.Sprintf("%s does not support SMTPUTF8, needed for a non-ASCII address", s.remote), remote: s.remote}
		}
		mo.UTF8 = true
	}
	if err := s.c.Mail(e.From, mo); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			s.c.Reset()
			if se.Code >= 500 {
				return nil, &deliveryError{perm: true, status: statusOf(Result{Reply: formatReply(se), Outcome: Permanent}), msg: "MAIL FROM refused: " + formatReply(se), remote: s.remote}
			}
			return nil, &deliveryError{status: statusOf(Result{Reply: formatReply(se)}), msg: "MAIL FROM: " + formatReply(se), remote: s.remote}
		}
		return nil, fmt.Errorf("%w: MAIL FROM to %s: %v", errBroken, s.remote, err)
	}
	results := make([]Result, len(pend))
	var accepted []int
	for i, rc := range pend {
		err := s.c.Rcpt(rc.Address, rcptOptions(rc))
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return nil, fmt.Errorf("%w: RCPT TO to %s: %v", errBroken, s.remote, err)
		}
		results[i] = replyResult(rc.Address, se, s.remote)
	}
	if len(accepted) == 0 {
		if err := s.c.Reset(); err == nil {
			s.healthy = true
		}
		return results, nil
	}
	setAll := func(r Result) {
		for _, i := range accepted {
			r.Address = pend[i].Address
			results[i] = r
		}
	}
	w, err := s.c.Data()
	if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return nil, fmt.Errorf("%w: DATA to %s: %v", errBroken, s.remote, err)
		}
		setAll(replyResult("", se, s.remote))
		if s.c.Reset() == nil {
			s.healthy = true
		}
		return results, nil
	}
	if _, err := io.Copy(w, NewCRLFReader(io.NewSectionReader(msg, 0, msg.Size()))); err != nil {
		return nil, fmt.Errorf("%w: sending message to %s: %v", errBroken, s.remote, err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			// No reply to the data: the remote may or may not have
			// the message. Retrying risks a duplicate, not retrying
			// risks a loss; retry (RFC 5321 6.1: "duplicates, not
			// losses").
			return nil, fmt.Errorf("%w: end of data to %s: %v", errBroken, s.remote, err)
		}
		setAll(replyResult("", se, s.remote))
		s.healthy = true
		return results, nil
	}
	setAll(Result{Outcome: Delivered, Reply: "250 " + firstLine(resp.StatusText), Remote: s.remote + tlsNote(s.tls, s.dane)})
	s.healthy = true
	return results, nil
}

// tlsNote is the TLS part of a delivery's remote in the attempt log:
// " (TLS 1.3)", " (TLS 1.3, dane)" when DANE authenticated the server.
func tlsNote(v string, dane bool) string {
	if v == "" {
		return ""
	}
	if dane {
		return " (" + v + ", dane)"
	}
	return " (" + v + ")"
}

// pool keeps idle connections for reuse, per target.
type pool struct {
	mu        sync.Mutex
	idle      map[string][]*session
	timeout   time.Duration
	maxPerKey int
	closed    bool
}

func (p *pool) get(key string) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[key]
	for len(l) > 0 {
		s := l[len(l)-1]
		l = l[:len(l)-1]
		if time.Since(s.idle) < p.timeout {
			p.idle[key] = l
			return s
		}
		go s.quit()
	}
	delete(p.idle, key)
	return nil
}

func (p *pool) put(key string, s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[key]) >= p.maxPerKey {
		go s.quit()
		return
	}
	s.idle = time.Now()
	p.idle[key] = append(p.idle[key], s)
}

func (p *pool) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, l := range p.idle {
		kept := l[:0]
		for _, s := range l {
			if time.Since(s.idle) >= p.timeout {
				go s.quit()
			} else {
				kept = append(kept, s)
			}
		}
		if len(kept) == 0 {
			delete(p.idle, k)
		} else {
			p.idle[k] = kept
		}
	}
}

func (p *pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for k, l := range p.idle {
		for _, s := range l {
			go s.quit()
		}
		delete(p.idle, k)
	}
}
