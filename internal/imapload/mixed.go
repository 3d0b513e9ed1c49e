package imapload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailstead/mailstead/internal/loadgen"
)

// Bounds on the configuration, so a typo cannot ask for something absurd.
const (
	MaxClients  = 10_000
	MaxSessions = 100_000
	MaxMessages = 10_000_000
)

// checkAddr makes *addr a loopback ip:port or refuses it.
func checkAddr(ctx context.Context, addr *string) error {
	a, err := loadgen.ResolveLoopback(ctx, *addr)
	if err != nil {
		return err
	}
	*addr = a
	return nil
}

// Accounts names the benchmark accounts: Format with %d replaced by the
// account number (0-based), all with the same password.
type Accounts struct {
	Format string // e.g. "mixed%d@example.test"
	Pass   string
}

// User returns the login name of account i.
func (a Accounts) User(i int) string {
	return strings.Replace(a.Format, "%d", strconv.Itoa(i), 1)
}

// MixedConfig describes a mixed-traffic run.
type MixedConfig struct {
	Dialer   Dialer
	Accounts Accounts
	// Clients is the number of sessions, each logged in once to its own
	// account (account i for client i).
	Clients int
	// Messages is what each account's INBOX is filled to before the run
	// (default 1,000); flags are reset so every run starts alike.
	Messages int
	Duration time.Duration // default 30 s
	Seed     uint64
	PID      int
	Logger   *slog.Logger
}

// The commands of one loop, in order.
var mixedOps = []string{
	"SELECT", "FETCH 1:* (FLAGS)", "FETCH 10 BODY.PEEK[]", "STORE 10 +FLAGS (\\Seen)",
	"APPEND 4 KiB", "UID SEARCH UNSEEN", "STORE 1 +FLAGS (\\Deleted)", "EXPUNGE",
}

// OpStats summarises the latencies of one command of the loop.
type OpStats struct {
	Op            string
	Count         int
	Mean          time.Duration
	P50, P99, Max time.Duration
}

// MixedResult is the outcome of a mixed-traffic run.
type MixedResult struct {
	Clients    int
	Duration   time.Duration
	Loops      int
	Commands   int
	Rate       float64 // Commands per second of Duration
	Errors     int
	FirstError string
	Ops        []OpStats
	// MemIdle is the server's memory before the clients logged in,
	// MemLoaded at the end of the run with all of them logged in.
	MemIdle, MemLoaded Memory
	MemError           string
}

type mixedWorker struct {
	lat      [][]time.Duration // per op
	loops    int
	commands int
	errors   int
	firstErr string
}

func (w *mixedWorker) fail(err error) {
	w.errors++
	if w.firstErr == "" {
		w.firstErr = err.Error()
	}
}

// Mixed prepares the accounts and runs the loop on every client without
// think time for cfg.Duration.
func Mixed(ctx context.Context, cfg MixedConfig) (MixedResult, error) {
	if cfg.Clients <= 0 || cfg.Clients > MaxClients {
		return MixedResult{}, fmt.Errorf("clients must be 1..%d", MaxClients)
	}
	if cfg.Messages <= 0 {
		cfg.Messages = 1000
	}
	if cfg.Messages > MaxMessages {
		return MixedResult{}, fmt.Errorf("messages must be at most %d", MaxMessages)
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if !strings.Contains(cfg.Accounts.Format, "%d") {
		return MixedResult{}, errors.New("account format needs a %d for the account number")
	}
	if err := checkAddr(ctx, &cfg.Dialer.Addr); err != nil {
		return MixedResult{}, err
	}
	res := MixedResult{Clients: cfg.Clients}
	mem := memoryProbe{pid: cfg.PID}

	if err := prepareAccounts(ctx, cfg); err != nil {
		return res, err
	}
	res.MemIdle = mem.read()

	conns := make([]*Conn, cfg.Clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := parallel(ctx, cfg.Clients, 16, func(i int) error {
		c, err := cfg.Dialer.DialLogin(ctx, cfg.Accounts.User(i), cfg.Accounts.Pass)
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		conns[i] = c
		return nil
	}); err != nil {
		return res, err
	}

	workers := make([]mixedWorker, cfg.Clients)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runMixed(ctx, conns[i], &workers[i], cfg.Accounts.User(i), cfg.Seed+uint64(i), deadline)
		}()
	}
	// Measure while every session is still logged in.
	select {
	case <-time.After(time.Until(deadline)):
	case <-ctx.Done():
	}
	res.MemLoaded = mem.read()
	wg.Wait()
	res.Duration = time.Since(start)
	for i, c := range conns {
		c.Logout()
		conns[i] = nil
	}

	all := make([][]time.Duration, len(mixedOps))
	for _, w := range workers {
		res.Loops += w.loops
		res.Commands += w.commands
		res.Errors += w.errors
		if res.FirstError == "" {
			res.FirstError = w.firstErr
		}
		for op, l := range w.lat {
			all[op] = append(all[op], l...)
		}
	}
	res.Rate = float64(res.Commands) / res.Duration.Seconds()
	for op, l := range all {
		res.Ops = append(res.Ops, stats(mixedOps[op], l))
	}
	res.MemError = mem.err
	return res, ctx.Err()
}

// runMixed is one client's loop.
func runMixed(ctx context.Context, c *Conn, w *mixedWorker, user string, seed uint64, deadline time.Time) {
	rng := rand.New(rand.NewPCG(seed, 0x6d69786564))
	w.lat = make([][]time.Duration, len(mixedOps))
	timed := func(op int, f func() error) error {
		t0 := time.Now()
		err := f()
		if err != nil {
			w.fail(fmt.Errorf("%s: %w", mixedOps[op], err))
			return err
		}
		w.lat[op] = append(w.lat[op], time.Since(t0))
		w.commands++
		return nil
	}
	do := func(op int, cmd string, fn func(*Response) error) error {
		return timed(op, func() error { _, err := c.Do(cmd, fn); return err })
	}
	for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
		exists := 0
		if do(0, "SELECT INBOX", func(r *Response) error {
			if k, v := r.Kind(); k == "EXISTS" {
				exists = int(v)
			}
			return nil
		}) != nil {
			return // the connection state is unknown now
		}
		if exists == 0 {
			w.fail(errors.New("INBOX is empty"))
			return
		}
		if do(1, "FETCH 1:* (FLAGS)", nil) != nil ||
			do(2, "FETCH "+randomSet(rng, exists, 10)+" BODY.PEEK[]", nil) != nil ||
			do(3, "STORE "+randomSet(rng, exists, 10)+" +FLAGS (\\Seen)", nil) != nil {
			return
		}
		msg := FixedSize(int(seed)*1_000_000+n, 4096, user)
		if timed(4, func() error { _, err := c.Append("INBOX", Message{Data: msg}); return err }) != nil ||
			do(5, "UID SEARCH UNSEEN", nil) != nil ||
			do(6, "STORE "+strconv.Itoa(1+rng.IntN(exists))+" +FLAGS (\\Deleted)", nil) != nil ||
			do(7, "EXPUNGE", nil) != nil {
			return
		}
		w.loops++
	}
}

// randomSet returns k distinct random sequence numbers of 1..n, joined by
// commas (all of 1..n when n <= k).
func randomSet(rng *rand.Rand, n, k int) string {
	if n <= k {
		return "1:" + strconv.Itoa(n)
	}
	seen := make(map[int]bool, k)
	parts := make([]string, 0, k)
	for len(parts) < k {
		v := 1 + rng.IntN(n)
		if !seen[v] {
			seen[v] = true
			parts = append(parts, strconv.Itoa(v))
		}
	}
	return strings.Join(parts, ",")
}

// prepareAccounts fills each client's INBOX to cfg.Messages and clears
// \Seen and \Deleted, four accounts at a time.
func prepareAccounts(ctx context.Context, cfg MixedConfig) error {
	return parallel(ctx, cfg.Clients, 4, func(i int) error {
		user := cfg.Accounts.User(i)
		c, err := cfg.Dialer.DialLogin(ctx, user, cfg.Accounts.Pass)
		if err != nil {
			return fmt.Errorf("preparing %s: %w", user, err)
		}
		defer c.Close()
		have, err := mailboxSize(c, "INBOX")
		if err != nil {
			return fmt.Errorf("preparing %s: %w", user, err)
		}
		if have < cfg.Messages {
			cfg.Logger.Info("filling mailbox", "user", user, "have", have, "want", cfg.Messages)
			corpus := Corpus{Seed: cfg.Seed + uint64(i), To: user}
			if _, err := fill(ctx, c, "INBOX", &corpus, have, cfg.Messages, 100, cfg.Logger); err != nil {
				return fmt.Errorf("filling %s: %w", user, err)
			}
		}
		if _, err := c.Do("SELECT INBOX", nil); err != nil {
			return fmt.Errorf("preparing %s: %w", user, err)
		}
		if _, err := c.Do(`STORE 1:* -FLAGS.SILENT (\Seen \Deleted)`, nil); err != nil {
			return fmt.Errorf("preparing %s: %w", user, err)
		}
		return c.Logout()
	})
}

// parallel runs f(0..n-1) on up to width goroutines and returns the first
// error (the remaining calls are skipped after one).
func parallel(ctx context.Context, n, width int, f func(i int) error) error {
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range min(width, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || i >= n || ctx.Err() != nil
				mu.Unlock()
				if stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func stats(op string, l []time.Duration) OpStats {
	s := OpStats{Op: op, Count: len(l)}
	if len(l) == 0 {
		return s
	}
	slices.Sort(l)
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	s.Mean = sum / time.Duration(len(l))
	s.P50 = percentile(l, 50)
	s.P99 = percentile(l, 99)
	s.Max = l[len(l)-1]
	return s
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// String formats the result for people.
func (r MixedResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mixed: %d clients, %s: %d loops, %d commands, %.0f commands/s, %d errors\n",
		r.Clients, r.Duration.Round(time.Millisecond), r.Loops, r.Commands, r.Rate, r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(&b, "  first error: %s\n", r.FirstError)
	}
	for _, o := range r.Ops {
		fmt.Fprintf(&b, "  %-28s n=%-7d mean %8s  p50 %8s  p99 %8s  max %8s\n", o.Op, o.Count, fmtMS(o.Mean), fmtMS(o.P50), fmtMS(o.P99), fmtMS(o.Max))
	}
	if r.MemLoaded.Procs > 0 {
		fmt.Fprintf(&b, "  server memory before login: %s; with %d sessions under load: %s\n", r.MemIdle, r.Clients, r.MemLoaded)
	}
	if r.MemError != "" {
		fmt.Fprintf(&b, "  memory: %s\n", r.MemError)
	}
	return b.String()
}
