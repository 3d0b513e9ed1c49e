// Package managesieve implements a ManageSieve server (RFC 5804) so mail
// clients (Thunderbird's sieve add-on, Roundcube's managesieve plugin,
// sieve-connect) can upload, validate and activate users' sieve scripts.
// Scripts are validated with package sieve and kept in the store; the
// global before/after scripts (account 0) are not reachable from here.
//
// Authentication is SASL PLAIN, only over TLS (STARTTLS or implicit)
// unless AllowInsecureAuth is set. Everything is bounded: line length,
// literal size, script size and count per user, failed authentications,
// idle time.
package managesieve

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

	"github.com/mailstead/mailstead/internal/acceptloop"
	"github.com/mailstead/mailstead/internal/sieve"
	"github.com/mailstead/mailstead/internal/store"
)

// Store is the subset of store.Store the server uses.
type Store interface {
	PutSieveScript(ctx context.Context, sc store.SieveScript) error
	GetSieveScript(ctx context.Context, accountID int64, name string) (store.SieveScript, error)
	ListSieveScripts(ctx context.Context, accountID int64) ([]store.SieveScript, error)
	ActivateSieveScript(ctx context.Context, accountID int64, name string) error
	DeleteSieveScript(ctx context.Context, accountID int64, name string) error
}

// Authenticator checks credentials; the same interface as
// imapserver.Authenticator (account.Authenticator implements it). On
// failure it has already applied the failed-authentication delay and
// returns an error wrapping account.ErrAuthFailed or
// account.ErrTooManyFailures, or store.ErrUnavailable.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote netip.Addr) (store.Account, error)
}

// Config configures a Server.
type Config struct {
	Hostname  string
	Store     Store
	Auth      Authenticator
	TLSConfig *tls.Config // nil: no STARTTLS
	// ImplicitTLS makes every connection start with a TLS handshake.
	ImplicitTLS bool
	// AllowInsecureAuth permits AUTHENTICATE without TLS.
	AllowInsecureAuth bool
	Logger            *slog.Logger

	IdleTimeout   time.Duration // default 10 minutes
	MaxLine       int           // request line without literals, default 8 KiB
	MaxScriptSize int64         // default sieve.MaxScriptSize
	MaxScripts    int           // scripts per account, default 32
	// MaxAuthFailures ends a session after that many failed
	// authentications (default 3).
	MaxAuthFailures int
}

// Server is a ManageSieve server.
type Server struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	conns  acceptloop.Group // listeners and sessions, for Shutdown
	nextID atomic.Uint64
	panics atomic.Int64
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Auth == nil {
		return nil, errors.New("managesieve: Store and Auth are required")
	}
	if cfg.ImplicitTLS && cfg.TLSConfig == nil {
		return nil, errors.New("managesieve: ImplicitTLS needs a TLSConfig")
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 8 << 10
	}
	if cfg.MaxScriptSize <= 0 || cfg.MaxScriptSize > sieve.MaxScriptSize {
		cfg.MaxScriptSize = sieve.MaxScriptSize
	}
	if cfg.MaxScripts <= 0 {
		cfg.MaxScripts = 32
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = 3
	}
	return &Server{
		cfg: cfg,
		log: cfg.Logger,
	}, nil
}

// ErrServerClosed is returned by Serve after Shutdown. It wraps
// net.ErrClosed.
var ErrServerClosed = fmt.Errorf("managesieve: server closed: %w", net.ErrClosed)

// Serve accepts connections on l until Shutdown. The listener may hand out
// PROXY-protocol wrapped connections: the remote address is read in the
// connection's own goroutine.
func (s *Server) Serve(l net.Listener) error {
	if err := s.conns.Serve(l, s.log, s.serveConn); err != nil {
		return fmt.Errorf("managesieve accept: %w", err)
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
	defer func() {
		s.conns.Remove(sess)
	}()
	sess.serve()
}

// Shutdown stops accepting connections, interrupts idle sessions (a
// session finishes the command it is executing and says BYE) and waits
// until all sessions ended or ctx is done; then the remaining connections
// are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.conns.Shutdown(ctx)
}
