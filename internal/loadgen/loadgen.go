// Package loadgen delivers generated messages to an SMTP server as fast as
// it accepts them and measures throughput and per-message latency. It backs
// cmd/mailstead-bench and is meant to be called in-process by tests and
// benchmark scripts as well.
//
// It only ever connects to loopback addresses: the tool exists to measure
// our own server on the same machine, and load against anyone else's
// server is not acceptable.
package loadgen

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds on the configuration, so a typo cannot ask for something absurd.
const (
	MaxMessages    = 100_000_000
	MaxConcurrency = 4096
	MaxSize        = 256 << 20
)

// Defaults applied by Run for zero Config fields.
const (
	DefaultSize      = 4096
	DefaultIOTimeout = 30 * time.Second
	DefaultHelo      = "mailstead-bench.localhost"
)

// ErrNotLoopback is returned (wrapped) when Config.Addr is not, or does not
// resolve only to, a loopback address.
var ErrNotLoopback = errors.New("target is not a loopback address")

// Config describes one load run.
type Config struct {
	// Addr is the server's host:port. The host must be a loopback IP or a
	// name that resolves only to loopback IPs.
	Addr string
	// Messages is the number of messages to send (N).
	Messages int
	// Concurrency is the number of simultaneous SMTP connections (C). It
	// is capped at Messages.
	Concurrency int
	// Size is the size of each message in bytes, header included, as sent
	// in DATA with CRLF line endings. Default DefaultSize. Sizes below the
	// header length (about 300 bytes) give header-only messages.
	Size int
	// From is the envelope and header sender.
	From string
	// To lists the recipients. Each message has one recipient; message
	// number i goes to To[(i-1) % len(To)].
	To []string
	// PerConn is the number of transactions on one connection before QUIT
	// and reconnect. 0 means unlimited: each worker keeps its connection
	// for the whole run (unless an error breaks it).
	PerConn int
	// StartTLS makes every session upgrade with STARTTLS before sending.
	StartTLS bool
	// TLSConfig is used for STARTTLS. Default: certificate verification
	// off, since the server under test normally has a self-signed
	// certificate and the peer is on loopback anyway.
	TLSConfig *tls.Config
	// NoPipelining forces lock-step commands even if the server offers
	// PIPELINING.
	NoPipelining bool
	// Helo is the EHLO name. Default DefaultHelo.
	Helo string
	// RunID is put in every Subject and Message-ID so the messages of a
	// run can be found on the server. Default: 16 random hex digits.
	RunID string
	// PID, if nonzero, is the server's process id: its resident set size
	// is read from /proc before and after the run.
	PID int
	// IOTimeout bounds each network read, write, connect and TLS
	// handshake. Default DefaultIOTimeout.
	IOTimeout time.Duration
	// Timeout, if nonzero, bounds the whole run (in addition to ctx).
	Timeout time.Duration
	// Logger receives one debug record per failed message. Default: none.
	Logger *slog.Logger
}

// Result is the outcome of a run.
type Result struct {
	RunID       string
	Requested   int // Config.Messages
	Concurrency int // connections actually used in parallel
	Size        int // requested message size

	Attempted   int            // messages for which a transaction was tried
	Messages    int            // messages accepted with 250 after the final dot
	Bytes       int64          // total size of accepted messages
	Errors      map[string]int // failed messages by reply code ("451") or cause ("dial", "tls", "io", "timeout", "protocol", "canceled")
	FirstErrors map[string]string
	Connections int // sessions established (after EHLO, and STARTTLS if asked)

	Duration           time.Duration // wall time of the whole run
	Rate               float64       // Messages per second of Duration
	P50, P90, P99, Max time.Duration // latency of accepted messages, MAIL FROM to final 250

	RSSBefore, RSSAfter int64 // server RSS in bytes; 0 if Config.PID was 0
	RSSError            string
}

// ErrorCount is the total number of failed messages.
func (r Result) ErrorCount() int {
	n := 0
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// String is a one-line human summary.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent=%d/%d c=%d size=%d errors=%d", r.Messages, r.Requested, r.Concurrency, r.Size, r.ErrorCount())
	if len(r.Errors) > 0 {
		b.WriteString(" (" + r.errorList() + ")")
	}
	fmt.Fprintf(&b, " time=%s rate=%.1f/s p50=%s p90=%s p99=%s max=%s conns=%d",
		r.Duration.Round(time.Millisecond), r.Rate, fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.Max), r.Connections)
	if r.RSSBefore > 0 || r.RSSAfter > 0 {
		fmt.Fprintf(&b, " rss=%.1fMiB->%.1fMiB", float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20))
	}
	return b.String()
}

func (r Result) errorList() string {
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + ":" + strconv.Itoa(r.Errors[k])
	}
	return strings.Join(keys, ",")
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// MarshalJSON gives a flat object with durations in milliseconds (seconds
// for the total), for scripts.
func (r Result) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	errs := r.Errors
	if errs == nil {
		errs = map[string]int{}
	}
	return json.Marshal(struct {
		RunID       string            `json:"run_id"`
		Requested   int               `json:"requested"`
		Concurrency int               `json:"concurrency"`
		Size        int               `json:"size"`
		Attempted   int               `json:"attempted"`
		Messages    int               `json:"messages"`
		Bytes       int64             `json:"bytes"`
		Errors      map[string]int    `json:"errors"`
		FirstErrors map[string]string `json:"first_errors,omitempty"`
		Connections int               `json:"connections"`
		DurationS   float64           `json:"duration_s"`
		Rate        float64           `json:"rate"`
		P50         float64           `json:"p50_ms"`
		P90         float64           `json:"p90_ms"`
		P99         float64           `json:"p99_ms"`
		Max         float64           `json:"max_ms"`
		RSSBefore   int64             `json:"rss_before_bytes,omitempty"`
		RSSAfter    int64             `json:"rss_after_bytes,omitempty"`
		RSSError    string            `json:"rss_error,omitempty"`
	}{
		r.RunID, r.Requested, r.Concurrency, r.Size, r.Attempted, r.Messages, r.Bytes, errs, r.FirstErrors,
		r.Connections, r.Duration.Seconds(), math.Round(r.Rate*10) / 10,
		ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.RSSBefore, r.RSSAfter, r.RSSError,
	})
}

// ResolveLoopback checks that addr (host:port) names a loopback address and
// returns it as ip:port. A host name is resolved once here and the address
// returned is what Run connects to, so a name cannot resolve to loopback
// for the check and to something else for the connections.
func ResolveLoopback(ctx context.Context, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("address %q: port must be a number from 1 to 65535", addr)
	}
	if host == "" {
		return "", fmt.Errorf("address %q has no host; give a loopback address such as 127.0.0.1:%s: %w", addr, port, ErrNotLoopback)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return "", fmt.Errorf("resolving %q: %w", host, err)
		}
		if len(ips) == 0 {
			return "", fmt.Errorf("resolving %q: no addresses", host)
		}
	}
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			what := host
			if ip.String() != host {
				what = fmt.Sprintf("%s (%s)", host, ip)
			}
			return "", fmt.Errorf("%s: %w; this tool sends load only to the local machine", what, ErrNotLoopback)
		}
	}
	return net.JoinHostPort(ips[0].Unmap().String(), port), nil
}

// validAddress is a loose check that an address is safe to put in a
// command line: no spaces, controls or angle brackets.
func validAddress(s string) bool {
	if s == "" || len(s) > 254 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == '<' || r == '>' || r == 0x7f
	})
}

func (cfg *Config) normalize() error {
	if cfg.Messages < 1 || cfg.Messages > MaxMessages {
		return fmt.Errorf("messages must be 1 to %d, not %d", MaxMessages, cfg.Messages)
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency {
		return fmt.Errorf("concurrency must be 1 to %d, not %d", MaxConcurrency, cfg.Concurrency)
	}
	cfg.Concurrency = min(cfg.Concurrency, cfg.Messages)
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Size < 0 || cfg.Size > MaxSize {
		return fmt.Errorf("size must be 0 to %d bytes, not %d", MaxSize, cfg.Size)
	}
	if cfg.PerConn < 0 {
		return fmt.Errorf("per-connection count must not be negative")
	}
	if !validAddress(cfg.From) {
		return fmt.Errorf("invalid sender address %q", cfg.From)
	}
	if len(cfg.To) == 0 {
		return errors.New("no recipients")
	}
	for _, to := range cfg.To {
		if !validAddress(to) {
			return fmt.Errorf("invalid recipient address %q", to)
		}
	}
	if cfg.Helo == "" {
		cfg.Helo = DefaultHelo
	}
	if !validAddress(cfg.Helo) {
		return fmt.Errorf("invalid EHLO name %q", cfg.Helo)
	}
	if cfg.RunID == "" {
		var b [8]byte
		rand.Read(b[:])
		cfg.RunID = hex.EncodeToString(b[:])
	}
	if len(cfg.RunID) > 64 || strings.ContainsFunc(cfg.RunID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	}) {
		return fmt.Errorf("run id %q: use up to 64 letters, digits and '-'", cfg.RunID)
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = DefaultIOTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// workerResult is what one connection worker collected; merged at the end
// so the hot path takes no locks.
type workerResult struct {
	attempted, ok, conns int
	bytes                int64
	lat                  []time.Duration
	errs                 map[string]int
	first                map[string]string
}

func (w *workerResult) fail(log *slog.Logger, seq int, te *txError) {
	w.errs[te.key]++
	if _, ok := w.first[te.key]; !ok {
		w.first[te.key] = te.Error()
	}
	log.Debug("message failed", "seq", seq, "key", te.key, "err", te.err)
}

// Run sends cfg.Messages messages over cfg.Concurrency connections and
// reports what happened. Failed messages are counted in Result.Errors and
// not retried. The error is non-nil if the configuration is invalid or the
// target is not loopback (then nothing was sent), or if ctx or cfg.Timeout
// ended the run before every message was tried (then Result holds what was
// measured up to that point).
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.normalize(); err != nil {
		return Result{}, fmt.Errorf("loadgen: %w", err)
	}
	target, err := ResolveLoopback(ctx, cfg.Addr)
	if err != nil {
		return Result{}, fmt.Errorf("loadgen: %w", err)
	}
	tlsConfig := cfg.TLSConfig
	if tlsConfig == nil {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		tlsConfig = &tls.Config{
			ServerName:         host,
			InsecureSkipVerify: true, // loopback only; the server under test self-signs
			MinVersion:         tls.VersionTLS12,
		}
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}

	res := Result{
		RunID:       cfg.RunID,
		Requested:   cfg.Messages,
		Concurrency: cfg.Concurrency,
		Size:        cfg.Size,
		Errors:      map[string]int{},
		FirstErrors: map[string]string{},
	}
	var rssErr error
	if cfg.PID != 0 {
		res.RSSBefore, rssErr = ReadRSS(cfg.PID)
	}

	sc := sessionConfig{
		addr:      target,
		helo:      cfg.Helo,
		startTLS:  cfg.StartTLS,
		tlsConfig: tlsConfig,
		ioTimeout: cfg.IOTimeout,
		noPipe:    cfg.NoPipelining,
	}
	var next atomic.Int64
	results := make([]workerResult, cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range results {
		w := &results[i]
		w.errs = map[string]int{}
		w.first = map[string]string{}
		w.lat = make([]time.Duration, 0, cfg.Messages/cfg.Concurrency+1)
		wg.Go(func() { worker(ctx, &cfg, sc, &next, w) })
	}
	wg.Wait()
	res.Duration = time.Since(start)

	var lat []time.Duration
	for i := range results {
		w := &results[i]
		res.Attempted += w.attempted
		res.Messages += w.ok
		res.Bytes += w.bytes
		res.Connections += w.conns
		lat = append(lat, w.lat...)
		for k, v := range w.errs {
			res.Errors[k] += v
		}
		for k, v := range w.first {
			if _, ok := res.FirstErrors[k]; !ok {
				res.FirstErrors[k] = v
			}
		}
	}
	slices.Sort(lat)
	res.P50, res.P90, res.P99, res.Max = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99), percentile(lat, 100)
	if res.Duration > 0 {
		res.Rate = float64(res.Messages) / res.Duration.Seconds()
	}
	if cfg.PID != 0 {
		var err error
		res.RSSAfter, err = ReadRSS(cfg.PID)
		rssErr = errors.Join(rssErr, err)
	}
	if rssErr != nil {
		res.RSSError = rssErr.Error()
	}
	if res.Attempted < cfg.Messages || ctx.Err() != nil {
		if err := context.Cause(ctx); err != nil {
			return res, fmt.Errorf("loadgen: run stopped after %d of %d messages: %w", res.Attempted, cfg.Messages, err)
		}
	}
	return res, nil
}

// worker takes message numbers from next until all are taken or ctx is
// done, each on its (re)used connection.
func worker(ctx context.Context, cfg *Config, sc sessionConfig, next *atomic.Int64, w *workerResult) {
	b := newBuilder(cfg.RunID, cfg.From, cfg.To, cfg.Size, cfg.Messages)
	var c *client
	sent := 0 // transactions on c
	defer func() {
		if c != nil {
			c.quit(ctx)
		}
	}()
	// Bounded: every iteration consumes a message number, of which there
	// are cfg.Messages. A worker connects before it takes its first number
	// so that C workers hold C connections (a fast worker must not take all
	// the numbers while the others are still dialing); it reconnects only
	// while numbers remain.
	for ctx.Err() == nil {
		if c == nil {
			if w.conns > 0 && next.Load() >= int64(cfg.Messages) {
				return
			}
			var te *txError
			if c, te = dial(ctx, sc); te != nil {
				seq := int(next.Add(1))
				if seq > cfg.Messages {
					return
				}
				w.attempted++
				w.fail(cfg.Logger, seq, te)
				continue
			}
			w.conns++
			sent = 0
		}
		seq := int(next.Add(1))
		if seq > cfg.Messages {
			return
		}
		w.attempted++
		m := b.build(seq, time.Now())
		t0 := time.Now()
		te := c.send(ctx, cfg.From, m)
		d := time.Since(t0)
		sent++
		if te == nil {
			w.ok++
			w.bytes += int64(len(m.data))
			w.lat = append(w.lat, d)
		} else {
			w.fail(cfg.Logger, seq, te)
			switch te.fate {
			case dropConn:
				c.shutdown()
				c = nil
			case resetConn:
				if c.reset(ctx) != nil {
					c.shutdown()
					c = nil
				}
			}
		}
		if c != nil && cfg.PerConn > 0 && sent >= cfg.PerConn {
			c.quit(ctx)
			c = nil
		}
	}
}

// percentile returns the nearest-rank p-th percentile of sorted values.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
