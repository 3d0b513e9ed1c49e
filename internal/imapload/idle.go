package imapload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"
)

// IdleConfig describes an IDLE run.
type IdleConfig struct {
	Dialer   Dialer
	Accounts Accounts
	// NumAccounts and Sessions: Sessions are spread evenly over the
	// accounts (session s uses account s % NumAccounts), so the server's
	// per-user-per-IP limit must allow Sessions/NumAccounts (rounded up).
	NumAccounts int
	Sessions    int
	// Deliveries is the number of messages delivered (one at a time, to
	// the accounts in turn) to measure the latency from delivery to the
	// untagged EXISTS in every session of the recipient.
	Deliveries int
	Deliver    Deliverer
	// DialConcurrency bounds simultaneous logins (default 50).
	DialConcurrency int
	// Settle is the pause after the last session entered IDLE before the
	// memory is read (default 2 s).
	Settle time.Duration
	// Wait bounds how long one delivery may take to reach all sessions
	// (default 10 s).
	Wait   time.Duration
	PID    int
	Logger *slog.Logger
}

// IdleResult is the outcome of an IDLE run.
type IdleResult struct {
	Sessions, NumAccounts int
	SetupTime             time.Duration // to log in and enter IDLE on all sessions
	// MemBase is the server's memory before the sessions, MemIdle with
	// all of them in IDLE; PerSession is the difference divided by
	// Sessions, in bytes.
	MemBase, MemIdle      Memory
	PerSessionRSS         float64
	PerSessionPSS         float64
	MemError              string
	Deliveries            int
	Missed                int // deliveries not seen by every session in time
	First, All            OpStats
	DeliverErrors         int
	FirstError            string
	UnexpectedDisconnects int
}

type existsEvent struct {
	account int
	at      time.Time
}

type idleSession struct {
	c       *Conn
	tag     string
	account int
	done    chan struct{}
}

// RaiseFileLimit raises the soft open-file limit to the hard limit, for
// runs with thousands of connections; it returns the new soft limit.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return lim.Cur, nil
}

// Idle opens the sessions, selects INBOX and idles in all of them, reads
// the server's memory, then delivers messages and times the EXISTS.
func Idle(ctx context.Context, cfg IdleConfig) (IdleResult, error) {
	if cfg.Sessions <= 0 || cfg.Sessions > MaxSessions {
		return IdleResult{}, fmt.Errorf("sessions must be 1..%d", MaxSessions)
	}
	if cfg.NumAccounts <= 0 || cfg.NumAccounts > cfg.Sessions {
		return IdleResult{}, errors.New("accounts must be 1..sessions")
	}
	if !strings.Contains(cfg.Accounts.Format, "%d") {
		return IdleResult{}, errors.New("account format needs a %d for the account number")
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = 50
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Second
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := checkAddr(ctx, &cfg.Dialer.Addr); err != nil {
		return IdleResult{}, err
	}
	if cfg.Deliveries > 0 {
		if err := checkAddr(ctx, &cfg.Deliver.Addr); err != nil {
			return IdleResult{}, err
		}
	}
	res := IdleResult{NumAccounts: cfg.NumAccounts}
	mem := memoryProbe{pid: cfg.PID}
	res.MemBase = mem.read()

	events := make(chan existsEvent, cfg.Sessions*2)
	sessions := make([]*idleSession, cfg.Sessions)
	var mu sync.Mutex
	stopping := false
	defer func() {
		mu.Lock()
		stopping = true
		mu.Unlock()
		for _, s := range sessions {
			if s != nil {
				s.c.Close()
			}
		}
	}()

	start := time.Now()
	err := parallel(ctx, cfg.Sessions, cfg.DialConcurrency, func(i int) error {
		acct := i % cfg.NumAccounts
		c, err := cfg.Dialer.DialLogin(ctx, cfg.Accounts.User(acct), cfg.Accounts.Pass)
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		if _, err := c.Do("SELECT INBOX", nil); err != nil {
			c.Close()
			return fmt.Errorf("session %d: %w", i, err)
		}
		tag, err := c.StartIdle()
		if err != nil {
			c.Close()
			return fmt.Errorf("session %d: %w", i, err)
		}
		s := &idleSession{c: c, tag: tag, account: acct, done: make(chan struct{})}
		sessions[i] = s
		go func() {
			defer close(s.done)
			for {
				r, err := c.Next(0)
				if err != nil {
					mu.Lock()
					if !stopping {
						res.UnexpectedDisconnects++
					}
					mu.Unlock()
					return
				}
				if r.Tag == s.tag { // IDLE completed after DONE
					return
				}
				if k, _ := r.Kind(); k == "EXISTS" {
					select {
					case events <- existsEvent{acct, time.Now()}:
					default: // nobody is measuring: drop
					}
				}
			}
		}()
		return nil
	})
	if err != nil {
		return res, err
	}
	res.Sessions = cfg.Sessions
	res.SetupTime = time.Since(start)
	cfg.Logger.Info("all sessions idle", "sessions", cfg.Sessions, "setup", res.SetupTime)
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.MemIdle = mem.read()
	if res.MemIdle.Procs > 0 && res.MemBase.Procs > 0 {
		res.PerSessionRSS = float64(res.MemIdle.RSS-res.MemBase.RSS) / float64(cfg.Sessions)
		res.PerSessionPSS = float64(res.MemIdle.PSS-res.MemBase.PSS) / float64(cfg.Sessions)
	}

	perAccount := make([]int, cfg.NumAccounts)
	for i := range cfg.Sessions {
		perAccount[i%cfg.NumAccounts]++
	}
	var first, all []time.Duration
	for d := 0; d < cfg.Deliveries && ctx.Err() == nil; d++ {
		acct := d % cfg.NumAccounts
		// Drop stale events (late EXISTS of a missed delivery).
		for len(events) > 0 {
			<-events
		}
		user := cfg.Accounts.User(acct)
		msg := fmt.Appendf(nil, "From: load@example.net\r\nTo: %s\r\nSubject: idle latency %d\r\nMessage-ID: <imapload.idle.%d.%d@example.net>\r\n\r\nwake up\r\n", user, d, time.Now().UnixNano(), d)
		sent, err := cfg.Deliver.Deliver(ctx, user, msg)
		if err != nil {
			res.DeliverErrors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			continue
		}
		res.Deliveries++
		seen := 0
		timeout := time.After(cfg.Wait)
	wait:
		for seen < perAccount[acct] {
			select {
			case ev := <-events:
				if ev.account != acct {
					continue
				}
				seen++
				lat := max(ev.at.Sub(sent), 0)
				if seen == 1 {
					first = append(first, lat)
				}
				if seen == perAccount[acct] {
					all = append(all, lat)
				}
			case <-timeout:
				res.Missed++
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.First = stats("first session", first)
	res.All = stats("all sessions", all)

	// DONE and LOGOUT everywhere; the readers end on the IDLE completion.
	mu.Lock()
	stopping = true
	mu.Unlock()
	for _, s := range sessions {
		s.c.StopIdle()
	}
	for _, s := range sessions {
		select {
		case <-s.done:
			s.c.Logout()
		case <-time.After(5 * time.Second):
		}
		s.c.Close()
	}
	res.MemError = mem.err
	return res, ctx.Err()
}

// String formats the result for people.
func (r IdleResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "idle: %d sessions over %d accounts, set up in %s\n", r.Sessions, r.NumAccounts, r.SetupTime.Round(time.Millisecond))
	if r.MemIdle.Procs > 0 {
		fmt.Fprintf(&b, "  server memory before: %s; all idle: %s\n", r.MemBase, r.MemIdle)
		fmt.Fprintf(&b, "  per session: RSS %.1f KiB, PSS %.1f KiB\n", r.PerSessionRSS/1024, r.PerSessionPSS/1024)
	}
	if r.MemError != "" {
		fmt.Fprintf(&b, "  memory: %s\n", r.MemError)
	}
	fmt.Fprintf(&b, "  %d deliveries (%d errors, %d not seen by every session in time)\n", r.Deliveries, r.DeliverErrors, r.Missed)
	for _, o := range []OpStats{r.First, r.All} {
		if o.Count > 0 {
			fmt.Fprintf(&b, "  delivery -> EXISTS, %-14s mean %8s  p50 %8s  p99 %8s  max %8s\n", o.Op+":", fmtMS(o.Mean), fmtMS(o.P50), fmtMS(o.P99), fmtMS(o.Max))
		}
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "  first error: %s\n", r.FirstError)
	}
	if r.UnexpectedDisconnects > 0 {
		fmt.Fprintf(&b, "  %d sessions were disconnected by the server\n", r.UnexpectedDisconnects)
	}
	return b.String()
}
