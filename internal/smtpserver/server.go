// Package smtpserver runs mailstead's SMTP listeners: the MX role (port 25:
// mail for local domains from anyone, never relay) and the submission role
// (587 STARTTLS / 465 implicit TLS: authenticated users only, AUTH only over
// TLS). The protocol engine is github.com/emersion/go-smtp; this package
// owns the accept loop (so per-IP limits and the PROXY header read happen
// in the connection's goroutine, never blocking accepts), the session
// policy, the Received header and the mapping of delivery errors to SMTP
// replies.
package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/store"
)

// Role is what a listener is for.
type Role int

const (
	RoleMX Role = iota
	RoleSubmission
)

// Deliverer resolves recipients and stores messages (package delivery).
type Deliverer interface {
	Resolve(ctx context.Context, rcpt string) (delivery.Target, error)
	Deliver(ctx context.Context, env delivery.Envelope, sp *delivery.Spool) ([]store.Delivered, error)
	TmpDir() string
}

// Authenticator checks credentials (package account); it applies the
// failed-auth delay itself.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote netip.Addr) (store.Account, error)
}

// Config configures one listener's server.
type Config struct {
	Name      string // listener name, for logs and metrics
	Role      Role
	Hostname  string
	Deliverer Deliverer
	Auth      Authenticator // required for RoleSubmission
	TLSConfig *tls.Config   // nil: no STARTTLS
	// ImplicitTLS wraps every connection in TLS before the greeting (465).
	ImplicitTLS       bool
	AllowInsecureAuth bool
	MaxMessageBytes   int64
	MaxLineLength     int
	MaxRecipients     int
	CommandTimeout    time.Duration
	DataTimeout       time.Duration
	MaxConnsPerIP     int
	// SubaddressDelimiter: a submitting user may send as user+tag too.
	SubaddressDelimiter string
	Logger              *slog.Logger
	Metrics             *Metrics
}

// Metrics are shared by all SMTP listeners of a process.
type Metrics struct {
	conns    *prometheus.CounterVec
	active   *prometheus.GaugeVec
	messages *prometheus.CounterVec
	rcpts    *prometheus.CounterVec
}

// NewMetrics creates and registers the SMTP metrics (reg may be nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_smtp_connections_total",
			Help: "SMTP connections accepted, by listener and outcome (served, refused_ip_limit).",
		}, []string{"listener", "outcome"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailstead_smtp_connections_active",
			Help: "SMTP connections open now, by listener.",
		}, []string{"listener"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_smtp_messages_total",
			Help: "Messages after DATA/BDAT, by listener and result (accepted, rejected, tempfail).",
		}, []string{"listener", "result"}),
		rcpts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_smtp_recipients_total",
			Help: "RCPT TO commands, by listener and result.",
		}, []string{"listener", "result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.conns, m.active, m.messages, m.rcpts} {
			reg.MustRegister(c)
		}
	}
	return m
}

// Server is one SMTP listener's server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	inner *smtp.Server
	pipe  *chanListener
	perIP *ipLimiter

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*trackedConn]struct{} // open connections, closed when Shutdown's deadline passes
	closed    bool
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
}

// New builds a server; call Serve with one or more listeners.
func New(cfg Config) (*Server, error) {
	if cfg.Deliverer == nil {
		return nil, errors.New("smtpserver: no deliverer")
	}
	if cfg.Role == RoleSubmission && cfg.Auth == nil {
		return nil, errors.New("smtpserver: submission needs an authenticator")
	}
	if cfg.ImplicitTLS && cfg.TLSConfig == nil {
		return nil, errors.New("smtpserver: implicit TLS needs a TLS config")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.MaxLineLength == 0 {
		cfg.MaxLineLength = 1 << 20
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 5 * time.Minute
	}
	if cfg.DataTimeout == 0 {
		cfg.DataTimeout = 10 * time.Minute
	}
	s := &Server{cfg: cfg, log: cfg.Logger, perIP: newIPLimiter(cfg.MaxConnsPerIP), conns: map[*trackedConn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pipe = newChanListener()
	in := smtp.NewServer(backend{s})
	in.Domain = cfg.Hostname
	in.MaxMessageBytes = cfg.MaxMessageBytes
	in.MaxRecipients = cfg.MaxRecipients
	// go-smtp's default of 2000 applies inside DATA too and refuses real
	// mail with long lines; the reader does not buffer whole lines, so a
	// large limit does not cost memory.
	in.MaxLineLength = cfg.MaxLineLength
	in.ReadTimeout = cfg.CommandTimeout
	in.WriteTimeout = cfg.CommandTimeout
	in.EnableSMTPUTF8 = true
	in.EnableDSN = false // until the outbound queue can honour DSN requests
	in.AllowInsecureAuth = cfg.AllowInsecureAuth
	if cfg.TLSConfig != nil && !cfg.ImplicitTLS {
		in.TLSConfig = cfg.TLSConfig
	}
	in.ErrorLog = slogLogger{s.log}
	s.inner = in
	go func() {
		if err := in.Serve(s.pipe); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("smtp engine stopped", "err", err)
		}
	}()
	return s, nil
}

// slogLogger routes go-smtp's logging (one line per dropped connection,
// among others) to debug level, so health checks and scanners cannot
// flood the log.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Printf(format string, v ...any) {
	l.log.Debug("smtp engine", "msg", strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (l slogLogger) Println(v ...any) {
	l.log.Debug("smtp engine", "msg", strings.TrimSpace(fmt.Sprintln(v...)))
}

// Serve accepts connections from l until Shutdown. l may be a PROXY
// protocol listener: RemoteAddr is first called in the connection's own
// goroutine.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return net.ErrClosed
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			// go-proxyproto reports a rejected (untrusted) peer as an
			// accept error; the listener itself is fine.
			if strings.Contains(err.Error(), "proxyproto") || strings.Contains(err.Error(), "PROXY") {
				s.log.Debug("proxy accept", "err", err)
				continue
			}
			return fmt.Errorf("accept on %s: %w", s.cfg.Name, err)
		}
		delay = 0
		// wg.Add under mu, after checking closed: Shutdown's wg.Wait
		// must not race an Add from zero.
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(c)
	}
}

func isTemporary(err error) bool {
	type temp interface{ Temporary() bool }
	var t temp
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) handle(c net.Conn) {
	defer s.wg.Done()
	ip := remoteIP(c.RemoteAddr())
	if !s.perIP.acquire(ip) {
		s.cfg.Metrics.conns.WithLabelValues(s.cfg.Name, "refused_ip_limit").Inc()
		s.log.Info("connection refused: too many connections from address", "remote", ip)
		if !s.cfg.ImplicitTLS { // a cleartext reply would be garbage to a TLS client
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "421 4.7.0 %s Too many connections from your address, try later\r\n", s.cfg.Hostname)
		}
		c.Close()
		return
	}
	s.cfg.Metrics.conns.WithLabelValues(s.cfg.Name, "served").Inc()
	s.cfg.Metrics.active.WithLabelValues(s.cfg.Name).Inc()
	tc := &trackedConn{Conn: c, ip: ip}
	tc.onClose = func() {
		s.perIP.release(ip)
		s.cfg.Metrics.active.WithLabelValues(s.cfg.Name).Dec()
		s.mu.Lock()
		delete(s.conns, tc)
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	var nc net.Conn = tc
	if s.cfg.ImplicitTLS {
		nc = tls.Server(tc, s.cfg.TLSConfig)
	}
	if !s.pipe.deliver(nc) {
		nc.Close()
	}
}

// Shutdown stops accepting, then waits for sessions to end until ctx is
// done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	err := s.inner.Shutdown(ctx)
	if err != nil {
		// go-smtp's Close is a no-op once its Shutdown has begun, so the
		// sessions still open are ended here: abort their store calls,
		// then drop their connections.
		s.cancel()
		s.mu.Lock()
		conns := make([]*trackedConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
	s.cancel()
	return err
}

func remoteIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// trackedConn runs onClose once when the connection closes.
type trackedConn struct {
	net.Conn
	ip      netip.Addr
	once    sync.Once
	onClose func()
}

// Close releases the connection's slot before closing the socket, so a
// client that sees the close can reconnect at once.
func (c *trackedConn) Close() error {
	c.once.Do(c.onClose)
	return c.Conn.Close()
}

// chanListener hands connections that passed our checks to go-smtp's
// Serve loop.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// ipLimiter counts open connections per client IP (IPv6 per /64).
type ipLimiter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Prefix]int
}

func newIPLimiter(max int) *ipLimiter { return &ipLimiter{max: max, n: map[netip.Prefix]int{}} }

func ipKey(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

func (l *ipLimiter) acquire(ip netip.Addr) bool {
	if l.max <= 0 || !ip.IsValid() {
		return true
	}
	k := ipKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[k] >= l.max {
		return false
	}
	l.n[k]++
	return true
}

func (l *ipLimiter) release(ip netip.Addr) {
	if l.max <= 0 || !ip.IsValid() {
		return
	}
	k := ipKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[k]--; l.n[k] <= 0 {
		delete(l.n, k)
	}
}
