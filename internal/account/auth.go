package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/store"
)

// Errors of Authenticate. Protocol layers answer both with the same reply
// (no hint which part was wrong), except that ErrTooManyFailures may say
// "try later".
var (
	ErrAuthFailed      = errors.New("authentication failed")
	ErrTooManyFailures = errors.New("too many failed authentications from this address, try later")
)

// Lookup is what the Authenticator needs from the store.
type Lookup interface {
	GetAccount(ctx context.Context, address string) (store.Account, error)
}

// AuthOptions tune the Authenticator; zero values take the defaults.
type AuthOptions struct {
	// FailureDelay is slept after each failed attempt (default 2s).
	FailureDelay time.Duration
	// MaxFailuresPerIP within Window refuses the IP (or its /64) until the
	// window passes (default 10 in 10 minutes).
	MaxFailuresPerIP int
	// MaxFailuresPerAccount within Window doubles the delay for attempts
	// on that account (no lockout: that would let anyone lock a user out).
	MaxFailuresPerAccount int
	Window                time.Duration
	Logger                *slog.Logger
	Registerer            prometheus.Registerer
	// Now and Sleep are replaceable in tests.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration)
}

// Authenticator verifies credentials for every protocol (one component, so
// SMTP and IMAP share failure counts).
type Authenticator struct {
	st   Lookup
	opts AuthOptions

	mu       sync.Mutex
	byIP     map[netip.Prefix]*failures
	byAcct   map[string]*failures
	lastGC   time.Time
	attempts *prometheus.CounterVec
}

type failures struct {
	n     int
	first time.Time
}

// maxTracked bounds the failure maps' memory: a flood of distinct
// addresses evicts the oldest windows early rather than growing without
// bound.
const maxTracked = 100000

// NewAuthenticator returns an Authenticator over st.
func NewAuthenticator(st Lookup, opts AuthOptions) *Authenticator {
	if opts.FailureDelay == 0 {
		opts.FailureDelay = 2 * time.Second
	}
	if opts.MaxFailuresPerIP == 0 {
		opts.MaxFailuresPerIP = 10
	}
	if opts.MaxFailuresPerAccount == 0 {
		opts.MaxFailuresPerAccount = 5
	}
	if opts.Window == 0 {
		opts.Window = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}
	a := &Authenticator{st: st, opts: opts, byIP: map[netip.Prefix]*failures{}, byAcct: map[string]*failures{}}
	a.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailstead_auth_attempts_total",
		Help: "Authentication attempts by result (ok, failed, refused).",
	}, []string{"result"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(a.attempts); err != nil {
			opts.Logger.Warn("register auth metric", "err", err)
		}
	}
	return a
}

// ipKey groups IPv6 clients by /64: one host usually owns a whole /64.
func ipKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

func (a *Authenticator) count(m map[string]*failures, k string, now time.Time) int {
	f := m[k]
	if f == nil || now.Sub(f.first) > a.opts.Window {
		return 0
	}
	return f.n
}

// Refused reports whether remote is currently refused (protocols may check
// it before reading credentials).
func (a *Authenticator) Refused(remote netip.Addr) bool {
	if !remote.IsValid() {
		return false
	}
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.byIP[ipKey(remote)]
	return f != nil && now.Sub(f.first) <= a.opts.Window && f.n >= a.opts.MaxFailuresPerIP
}

// Authenticate checks username/password. On failure it sleeps the failure
// delay in the caller's goroutine (other clients are unaffected) and
// returns an error wrapping ErrAuthFailed or ErrTooManyFailures. The
// password is never logged.
func (a *Authenticator) Authenticate(ctx context.Context, username, password string, remote netip.Addr) (store.Account, error) {
	if a.Refused(remote) {
		a.attempts.WithLabelValues("refused").Inc()
		a.opts.Logger.Info("authentication refused: too many failures", "remote", remote, "user", username)
		a.opts.Sleep(ctx, a.opts.FailureDelay)
		return store.Account{}, ErrTooManyFailures
	}
	acc, ok := a.check(ctx, username, password)
	if ok {
		a.attempts.WithLabelValues("ok").Inc()
		return acc, nil
	}
	a.attempts.WithLabelValues("failed").Inc()
	delay := a.recordFailure(username, remote)
	a.opts.Logger.Info("authentication failed", "remote", remote, "user", username)
	a.opts.Sleep(ctx, delay)
	return store.Account{}, fmt.Errorf("user %q: %w", username, ErrAuthFailed)
}

func (a *Authenticator) check(ctx context.Context, username, password string) (store.Account, bool) {
	addr, err := address.Parse(strings.TrimSpace(username))
	if err != nil || password == "" {
		VerifyPassword(dummyHash(), password)
		return store.Account{}, false
	}
	acc, err := a.st.GetAccount(ctx, addr.String())
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.opts.Logger.Warn("authentication lookup", "user", username, "err", err)
		}
		VerifyPassword(dummyHash(), password)
		return store.Account{}, false
	}
	ok, err := VerifyPassword(acc.PasswordHash, password)
	if err != nil {
		a.opts.Logger.Warn("stored password hash unusable", "user", acc.Address, "err", err)
		return store.Account{}, false
	}
	if !ok || acc.Disabled {
		return store.Account{}, false
	}
	return acc, true
}

// recordFailure counts a failure and returns the delay to apply.
func (a *Authenticator) recordFailure(username string, remote netip.Addr) time.Duration {
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gc(now)
	bump := func(f *failures) *failures {
		if f == nil || now.Sub(f.first) > a.opts.Window {
			return &failures{n: 1, first: now}
		}
		f.n++
		return f
	}
	if remote.IsValid() {
		k := ipKey(remote)
		a.byIP[k] = bump(a.byIP[k])
	}
	uk := strings.ToLower(username)
	a.byAcct[uk] = bump(a.byAcct[uk])
	if a.byAcct[uk].n > a.opts.MaxFailuresPerAccount {
		return 2 * a.opts.FailureDelay
	}
	return a.opts.FailureDelay
}

func (a *Authenticator) gc(now time.Time) {
	if now.Sub(a.lastGC) < time.Minute && len(a.byIP)+len(a.byAcct) < maxTracked {
		return
	}
	a.lastGC = now
	for k, f := range a.byIP {
		if now.Sub(f.first) > a.opts.Window {
			delete(a.byIP, k)
		}
	}
	for k, f := range a.byAcct {
		if now.Sub(f.first) > a.opts.Window {
			delete(a.byAcct, k)
		}
	}
	// Still too many within the window: drop arbitrary entries. Losing a
	// count is better than unbounded memory.
	for k := range a.byIP {
		if len(a.byIP) < maxTracked/2 {
			break
		}
		delete(a.byIP, k)
	}
	for k := range a.byAcct {
		if len(a.byAcct) < maxTracked/2 {
			break
		}
		delete(a.byAcct, k)
	}
}
