package imapserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/acceptloop"
	"github.com/mailstead/mailstead/internal/store"
)

// Store is the subset of store.Store the IMAP server uses.
type Store interface {
	GetAccountByID(ctx context.Context, id int64) (store.Account, error)

	ListMailboxes(ctx context.Context, accountID int64) ([]store.Mailbox, error)
	GetMailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error)
	GetMailboxByID(ctx context.Context, id int64) (store.Mailbox, error)
	CreateMailbox(ctx context.Context, accountID int64, name, role string, uidValidity uint32) (store.Mailbox, error)
	DeleteMailbox(ctx context.Context, id int64) error
	RenameMailbox(ctx context.Context, id int64, newName string) error
	SetSubscribed(ctx context.Context, accountID int64, name string, subscribed bool) error
	Subscriptions(ctx context.Context, accountID int64) ([]string, error)
	MailboxStatus(ctx context.Context, id int64) (store.Status, error)

	Deliver(ctx context.Context, d store.Delivery) ([]store.Delivered, error)
	ListMessages(ctx context.Context, mailboxID int64) ([]store.MessageMeta, error)
	GetMessages(ctx context.Context, mailboxID int64, uids []uint32) ([]store.Message, error)
	Changes(ctx context.Context, mailboxID int64, sinceModSeq int64) (store.Changes, error)
	OpenBlob(ctx context.Context, blobID int64) (store.BlobReader, error)
	StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, u store.FlagUpdate) (store.StoreResult, error)
	Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dstMailboxID int64) (store.CopyResult, error)
	Move(ctx context.Context, srcMailboxID int64, uids []uint32, dstMailboxID int64) (store.CopyResult, error)
	Expunge(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error)
	ClaimRecent(ctx context.Context, mailboxID int64) (uint32, error)
	Watch(mailboxID int64) (<-chan struct{}, func())
	// WatchAccount signals changes anywhere in the account (NOTIFY).
	WatchAccount(accountID int64) (<-chan struct{}, func())

	GetMetadata(ctx context.Context, accountID, mailboxID int64) ([]store.MetadataEntry, error)
	SetMetadata(ctx context.Context, accountID, mailboxID int64, entries []store.MetadataEntry) error
}

// Authenticator checks credentials (account.Authenticator). On failure it
// has already applied the configured failed-authentication delay (in the
// caller's goroutine, so other clients are unaffected) and returns an
// error wrapping account.ErrAuthFailed or account.ErrTooManyFailures, or
// store.ErrUnavailable when it could not check.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote netip.Addr) (store.Account, error)
}

// Config configures a Server.
type Config struct {
	Hostname  string
	Store     Store
	Auth      Authenticator
	TLSConfig *tls.Config // nil: no STARTTLS
	// ImplicitTLS makes every connection start with a TLS handshake
	// (port 993).
	ImplicitTLS bool
	// AllowInsecureAuth permits LOGIN and AUTHENTICATE PLAIN on
	// connections without TLS.
	AllowInsecureAuth bool
	Logger            *slog.Logger
	Metrics           prometheus.Registerer // may be nil

	IdleTimeout       time.Duration // default 30 minutes
	MaxLiteral        int64         // argument literals, default 64 KiB
	MaxLine           int           // default 64 KiB
	MaxConnsPerUserIP int           // default 50
	AppendLimit       int64         // default 64 MiB
	// CompressRelease is how long a session with COMPRESS=DEFLATE may
	// wait for its next command before its compressor (about 800 KiB)
	// goes back to a shared pool; default 5 seconds. Sessions in IDLE
	// release it at once.
	CompressRelease time.Duration
	// SpoolDir holds APPEND messages over 1 MiB while they are received
	// (unlinked files); "" is os.TempDir().
	SpoolDir string
	// MetadataAdmin and MetadataComment are the read-only server
	// annotations /shared/admin (a URI to reach the administrator, e.g.
	// "mailto:postmaster@example.org") and /shared/comment (RFC 5464
	// 3.2.1.1); empty ones are absent.
	MetadataAdmin   string
	MetadataComment string
	Now             func() time.Time
}

// Server is an IMAP server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	mu        sync.Mutex
	conns     acceptloop.Group // listeners and sessions, for Shutdown
	perUserIP map[userIP]int
	nextID    atomic.Uint64
	panics    atomic.Int64 // recovered session panics (bugs), for tests and logs
}

type userIP struct {
	account int64
	ip      netip.Addr
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Auth == nil {
		return nil, errors.New("imapserver: Store and Auth are required")
	}
	if cfg.ImplicitTLS && cfg.TLSConfig == nil {
		return nil, errors.New("imapserver: ImplicitTLS needs a TLSConfig")
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.MaxLiteral <= 0 {
		cfg.MaxLiteral = 64 * 1024
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 64 * 1024
	}
	if cfg.MaxConnsPerUserIP <= 0 {
		cfg.MaxConnsPerUserIP = 50
	}
	if cfg.CompressRelease <= 0 {
		cfg.CompressRelease = 5 * time.Second
	}
	if cfg.AppendLimit <= 0 {
		cfg.AppendLimit = 64 << 20
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		now:       now,
		metrics:   m,
		perUserIP: map[userIP]int{},
	}, nil
}

// ErrServerClosed is returned by Serve after Shutdown. It wraps
// net.ErrClosed so callers can treat both alike.
var ErrServerClosed = fmt.Errorf("imapserver: server closed: %w", net.ErrClosed)

// Serve accepts connections on l until Shutdown. The listener may hand out
// PROXY-protocol wrapped connections: the remote address is read inside
// the connection's goroutine, where reading the header may block.
func (s *Server) Serve(l net.Listener) error {
	if err := s.conns.Serve(l, s.log, s.serveConn); err != nil {
		return fmt.Errorf("imap accept: %w", err)
	}
	return ErrServerClosed
}

// ServeConn serves one connection and returns when it is closed.
func (s *Server) ServeConn(c net.Conn) {
	if !s.conns.Run(func() { s.serveConn(c) }) {
		c.Close()
	}
}

func (s *Server) serveConn(c net.Conn) {
	sess := newSession(s, c)
	if !s.conns.Add(sess) {
		c.Close()
		return
	}
	s.metrics.sessions.Inc()
	defer func() {
		s.metrics.sessions.Dec()
		s.conns.Remove(sess)
	}()
	sess.serve()
}

// Shutdown stops accepting connections, tells every session goodbye (a
// session finishes the command it is executing first) and waits until all
// sessions ended or ctx is done; then remaining connections are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.conns.Shutdown(ctx)
}

// acquireUserIP counts a logged-in session against the per-user-per-IP
// limit; it returns false when the limit is reached.
func (s *Server) acquireUserIP(account int64, ip netip.Addr) bool {
	k := userIP{account, ip}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUserIP[k] >= s.cfg.MaxConnsPerUserIP {
		return false
	}
	s.perUserIP[k]++
	return true
}

func (s *Server) releaseUserIP(account int64, ip netip.Addr) {
	k := userIP{account, ip}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUserIP[k] <= 1 {
		delete(s.perUserIP, k)
	} else {
		s.perUserIP[k]--
	}
}

type metrics struct {
	connections  prometheus.Counter
	sessions     prometheus.Gauge
	commands     *prometheus.CounterVec
	authFailures prometheus.Counter
	compressors  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mailstead", Subsystem: "imap", Name: "connections_total",
			Help: "IMAP connections accepted.",
		}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "mailstead", Subsystem: "imap", Name: "sessions",
			Help: "IMAP sessions currently open.",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mailstead", Subsystem: "imap", Name: "commands_total",
			Help: "IMAP commands by name and result (ok, no, bad).",
		}, []string{"command", "result"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mailstead", Subsystem: "imap", Name: "auth_failures_total",
			Help: "Failed IMAP authentications.",
		}),
		compressors: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "mailstead", Subsystem: "imap", Name: "compressors_held",
			Help: "COMPRESS=DEFLATE compressors held by busy sessions (idle sessions hold none).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	// Two servers (ports 143 and 993) share one registry: the second
	// uses the collectors the first registered.
	register := func(c prometheus.Collector) (prometheus.Collector, error) {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector, nil
			}
			return nil, fmt.Errorf("imapserver: register metrics: %w", err)
		}
		return c, nil
	}
	var err error
	var c prometheus.Collector
	if c, err = register(m.connections); err != nil {
		return nil, err
	}
	m.connections = c.(prometheus.Counter)
	if c, err = register(m.sessions); err != nil {
		return nil, err
	}
	m.sessions = c.(prometheus.Gauge)
	if c, err = register(m.commands); err != nil {
		return nil, err
	}
	m.commands = c.(*prometheus.CounterVec)
	if c, err = register(m.authFailures); err != nil {
		return nil, err
	}
	m.authFailures = c.(prometheus.Counter)
	if c, err = register(m.compressors); err != nil {
		return nil, err
	}
	m.compressors = c.(prometheus.Gauge)
	return m, nil
}
