// Package spam decides what happens to mail from the internet before it
// reaches a mailbox: checks on the connecting client (DNS block- and
// allowlists, reverse DNS, the HELO name), optional greylisting, a score
// built from those checks and the SPF/DKIM/DMARC verdicts, and optionally
// the verdict of an Rspamd server. The outcome is an action (accept,
// deliver to Junk, defer with 451, reject with 550), the X-Spam-* header
// fields to add, and method results for Authentication-Results.
//
// The checks are split by SMTP stage so that a hopeless client is turned
// away before it sends a message: CheckConnection at the first MAIL FROM
// (client IP and HELO known), Greylist.Check at each RCPT TO, and
// CheckMessage after DATA.
//
// All DNS goes through the Resolver interface, so tests run against an
// in-process zone. Every lookup is bounded by a timeout, and a lookup
// that times out or fails is "unknown": it never lists a client nor
// passes one.
package spam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Resolver is the DNS this package needs. dnsresolver.Resolver (and
// *net.Resolver) satisfy it. Errors should be *net.DNSError values so
// that "does not exist" (IsNotFound) can be told apart from "could not
// find out" (IsTimeout, IsTemporary).
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	// LookupAddr is a reverse (PTR) lookup of an address in text form.
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Action is what to do with a message (or a connection).
type Action string

const (
	// Accept delivers to the INBOX.
	Accept Action = "accept"
	// Junk delivers to the recipient's Junk mailbox with X-Spam-Flag.
	Junk Action = "junk"
	// Defer refuses the message for now (451 4.7.1): the sender retries.
	Defer Action = "defer"
	// Reject refuses the message for good (550 5.7.1).
	Reject Action = "reject"
)

// Mailbox names a Verdict delivers to.
const (
	MailboxInbox = "INBOX"
	MailboxJunk  = "Junk"
)

// Reply is an SMTP reply for a deferred or rejected message.
type Reply struct {
	Code     int    // 451, 550, ...
	Enhanced [3]int // RFC 3463 status code, e.g. {5, 7, 1}
	Text     string // one line, printable ASCII
}

func (r Reply) String() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// Replies used by the checks.
var (
	replyGreylisted = Reply{451, [3]int{4, 7, 1}, "Greylisted, try again later"}
	replyDeferred   = Reply{451, [3]int{4, 7, 1}, "Message deferred by spam filter, try again later"}
	replyTempFail   = Reply{451, [3]int{4, 3, 0}, "Temporary spam filter problem, try again later"}
	replyRejected   = Reply{550, [3]int{5, 7, 1}, "Message rejected as spam"}
)

// Config configures a Checker. Start from DefaultConfig: New takes the
// scores and weights as given (0 is a real value there) and fills in only
// zero durations and sizes.
type Config struct {
	// Hostname is our host name: a client claiming it in HELO is lying.
	Hostname string
	// IsLocalDomain reports whether a domain is one of ours (a client
	// claiming one in HELO is lying too). Optional;
	// delivery.Deliverer.IsLocalDomain fits.
	IsLocalDomain func(ctx context.Context, domain string) (bool, error)
	// Trusted clients (e.g. in-cluster relays, the HAProxy health
	// checker) get no checks at all and are never junked by the built-in
	// score.
	Trusted []netip.Prefix

	// DNSBL and DNSWL are the block- and allowlists to query.
	DNSBL []List
	DNSWL []List
	// DNSTimeout bounds all DNS of one CheckConnection (default 5s).
	DNSTimeout time.Duration
	// CacheTTL is how long definite DNS answers are reused (default
	// 10m); CacheSize bounds the cache's entries (default 10000).
	CacheTTL  time.Duration
	CacheSize int

	// Weights are the built-in score's weights by symbol (see the Sym*
	// constants); lists have their own. Unknown symbols are an error.
	Weights map[string]float64
	// JunkScore and RejectScore are the built-in score's thresholds: a
	// message scoring at least JunkScore goes to Junk, at least
	// RejectScore is rejected. 0 disables a threshold.
	JunkScore   float64
	RejectScore float64
	// VerdictWeights adds the SPF/DKIM/DMARC verdicts to the score.
	VerdictWeights bool

	// Rspamd, when its URL is set, scores messages instead of the
	// built-in score.
	Rspamd RspamdConfig

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultDNSTimeout  = 5 * time.Second
	DefaultCacheTTL    = 10 * time.Minute
	DefaultCacheSize   = 10000
	DefaultJunkScore   = 5
	DefaultRejectScore = 12
)

// DefaultConfig returns a configuration with the default weights and
// thresholds and no lists.
func DefaultConfig() Config {
	return Config{
		Weights:        DefaultWeights(),
		JunkScore:      DefaultJunkScore,
		RejectScore:    DefaultRejectScore,
		VerdictWeights: true,
	}
}

// Checker runs the checks. It is safe for concurrent use.
type Checker struct {
	cfg     Config
	r       Resolver
	log     *slog.Logger
	now     func() time.Time
	dnsbl   []*list
	dnswl   []*list
	cache   *ttlCache[cached]
	rspamd  *rspamdClient
	metrics *metrics

	warnMu sync.Mutex
	warned map[string]time.Time // see warnOnce
}

// cached is a cached DNS-derived result.
type cached struct {
	list  ListResult
	iprev IprevResult
	helo  string // HELO DNS status
}

// New returns a Checker.
func New(cfg Config, r Resolver) (*Checker, error) {
	if r == nil {
		return nil, errors.New("spam: nil resolver")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DNSTimeout <= 0 {
		cfg.DNSTimeout = DefaultDNSTimeout
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	for name, w := range cfg.Weights {
		if !knownSymbol(name) {
			return nil, fmt.Errorf("spam: unknown weight %q (known: %s)", name, strings.Join(symbolNames(), ", "))
		}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("spam: weight %s: not a number", name)
		}
	}
	if cfg.JunkScore < 0 || cfg.RejectScore < 0 {
		return nil, errors.New("spam: thresholds must not be negative (0 disables)")
	}
	if cfg.JunkScore > 0 && cfg.RejectScore > 0 && cfg.RejectScore < cfg.JunkScore {
		return nil, fmt.Errorf("spam: reject score %g is below junk score %g", cfg.RejectScore, cfg.JunkScore)
	}
	c := &Checker{cfg: cfg, r: r, log: cfg.Logger, now: cfg.Now}
	var err error
	if c.dnsbl, err = compileLists(cfg.DNSBL, false); err != nil {
		return nil, err
	}
	if c.dnswl, err = compileLists(cfg.DNSWL, true); err != nil {
		return nil, err
	}
	c.cache = newTTLCache[cached](cfg.CacheSize, cfg.CacheTTL, cfg.Now)
	c.metrics = newMetrics(cfg.Registerer, cfg.Logger)
	if cfg.Rspamd.URL != "" {
		if cfg.Rspamd.MaxSize <= 0 {
			cfg.Rspamd.MaxSize = DefaultRspamdMaxSize
		}
		c.cfg.Rspamd = cfg.Rspamd
		if c.rspamd, err = newRspamdClient(cfg.Rspamd, cfg.Hostname); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ConnVerdict is the outcome of the checks on a client.
type ConnVerdict struct {
	IP   netip.Addr
	Helo string
	// Trusted: the client is in Config.Trusted and was not checked.
	Trusted bool
	Lists   []ListResult // DNSBL then DNSWL results, in configured order
	Iprev   IprevResult
	HELO    HeloResult
	// Symbols and Score are the connection's part of the built-in score.
	Symbols []Symbol
	Score   float64
	// Reject is set when a list with Reject listed the client: refuse
	// its recipients (except postmaster@) with this 550.
	Reject *Reply
}

// Allowlisted reports whether a DNSWL lists the client or it is trusted:
// such clients should not be greylisted.
func (v ConnVerdict) Allowlisted() bool {
	if v.Trusted {
		return true
	}
	for _, l := range v.Lists {
		if l.Allow && l.Status == Listed {
			return true
		}
	}
	return false
}

// AuthResults returns the method results of the connection checks for
// the Authentication-Results field: iprev, then one per list.
func (v ConnVerdict) AuthResults() []AuthResult {
	if v.Trusted || !v.IP.IsValid() {
		return nil
	}
	out := []AuthResult{v.Iprev.authResult(v.IP)}
	for _, l := range v.Lists {
		if ar, ok := l.authResult(); ok {
			out = append(out, ar)
		}
	}
	return out
}

// CheckConnection checks a client: DNS lists, iprev and HELO, in
// parallel, all within Config.DNSTimeout. Call it once per connection and
// HELO name, at the first MAIL FROM.
func (c *Checker) CheckConnection(ctx context.Context, ip netip.Addr, helo string) ConnVerdict {
	ip = ip.Unmap()
	v := ConnVerdict{IP: ip, Helo: helo}
	if !ip.IsValid() {
		return v
	}
	for _, p := range c.cfg.Trusted {
		if p.Contains(ip) {
			v.Trusted = true
			c.metrics.conn.WithLabelValues("trusted").Inc()
			return v
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DNSTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		v.Iprev = c.checkIprev(ctx, ip)
	}()
	go func() {
		defer wg.Done()
		v.HELO = c.checkHELO(ctx, helo, ip)
	}()
	v.Lists = c.checkLists(ctx, ip)
	wg.Wait()

	for _, l := range v.Lists {
		if l.Status == Listed {
			v.Symbols = append(v.Symbols, Symbol{Name: l.Symbol, Score: l.Weight, Detail: l.Zone})
			if l.Reject && v.Reject == nil {
				r := Reply{550, [3]int{5, 7, 1}, "Client address " + ip.String() + " is listed by " + l.Zone}
				if l.Reason != "" {
					r.Text += ": " + l.Reason
				}
				v.Reject = &r
			}
		}
	}
	switch v.Iprev.Status {
	case IprevFail:
		v.Symbols = c.addSym(v.Symbols, SymIprevFail, v.Iprev.Reason)
	case IprevPermError:
		v.Symbols = c.addSym(v.Symbols, SymIprevNoPTR, "")
	case IprevTempError:
		v.Symbols = c.addSym(v.Symbols, SymIprevTempError, "")
	}
	if v.HELO.Problem != "" {
		v.Symbols = c.addSym(v.Symbols, v.HELO.Problem, v.HELO.Helo)
	}
	v.Score = sumScore(v.Symbols)
	res := "ok"
	if v.Reject != nil {
		res = "reject"
	}
	c.metrics.conn.WithLabelValues(res).Inc()
	return v
}

// addSym appends symbol name with its configured weight; weights of 0
// are left out, so that turning a check off removes it from headers too.
func (c *Checker) addSym(syms []Symbol, name, detail string) []Symbol {
	w := c.cfg.Weights[name]
	if w == 0 {
		return syms
	}
	return append(syms, Symbol{Name: name, Score: w, Detail: detail})
}

// MessageInput is what CheckMessage scores.
type MessageInput struct {
	// Conn is the client's CheckConnection verdict.
	Conn ConnVerdict
	// MailFrom is the envelope sender ("" for <>), Rcpts the accepted
	// recipients.
	MailFrom string
	Rcpts    []string
	// User is the authenticated user (submission), "" from the internet.
	User string
	// QueueID is the session or queue id, for logs on both sides.
	QueueID string
	// Message is the message as it will be stored (with our Received
	// header), Size its length.
	Message io.ReaderAt
	Size    int64
	// SPF, DKIM and DMARC are the verdicts of the authentication checks
	// as RFC 8601 result words ("pass", "fail", "softfail", "none",
	// "temperror", ...; "" when not checked). DKIM is "pass" when a
	// signature passed, else "fail" when one failed.
	SPF, DKIM, DMARC string
}

// Verdict is what to do with a message.
type Verdict struct {
	Action Action
	// Mailbox is where to deliver (INBOX or Junk) for Accept and Junk.
	Mailbox string
	// Reply is the SMTP reply for Defer and Reject.
	Reply *Reply
	// Score is the message's score; Required the score at which it
	// counts as spam (the junk threshold, or Rspamd's required_score).
	Score, Required float64
	Symbols         []Symbol
	// Source is "builtin", "rspamd" or "trusted".
	Source string
	// RspamdErr is the Rspamd failure that made the built-in score
	// decide, if any.
	RspamdErr error
	// AuthResults are method results (iprev, DNS lists) for the
	// Authentication-Results field.
	AuthResults []AuthResult
}

// Headers returns the X-Spam-* header fields to add to each recipient's
// copy (CRLF line ends), or nil when the message was not scored.
func (v Verdict) Headers() []byte {
	if v.Source == "" || v.Source == "trusted" {
		return nil
	}
	return spamHeaders(v.Action == Junk, v.Score, v.Required, v.Symbols)
}

// CheckMessage decides what to do with a message after DATA. It never
// fails: when Rspamd cannot be asked it falls back as configured.
func (c *Checker) CheckMessage(ctx context.Context, in MessageInput) Verdict {
	v := c.checkMessage(ctx, in)
	v.AuthResults = in.Conn.AuthResults()
	c.metrics.verdicts.WithLabelValues(v.Source, string(v.Action)).Inc()
	return v
}

func (c *Checker) checkMessage(ctx context.Context, in MessageInput) Verdict {
	if in.Conn.Trusted {
		return Verdict{Action: Accept, Mailbox: MailboxInbox, Source: "trusted"}
	}
	if in.Conn.Reject != nil {
		r := *in.Conn.Reject
		return Verdict{Action: Reject, Reply: &r, Score: in.Conn.Score, Required: c.cfg.JunkScore, Symbols: in.Conn.Symbols, Source: "builtin"}
	}
	if c.rspamd == nil {
		return c.builtin(in)
	}
	if c.cfg.Rspamd.MaxSize > 0 && in.Size > c.cfg.Rspamd.MaxSize {
		c.log.Debug("message too large for rspamd, using built-in score", "size", in.Size, "queue_id", in.QueueID)
		return c.builtin(in)
	}
	start := time.Now()
	rep, err := c.rspamd.check(ctx, in)
	c.metrics.rspamdLatency.Observe(time.Since(start).Seconds())
	if err == nil {
		var v Verdict
		v, err = c.rspamdVerdict(rep)
		if err == nil {
			return v
		}
	}
	c.metrics.rspamdErrors.WithLabelValues(rspamdErrorKind(err)).Inc()
	c.log.Warn("rspamd check failed", "err", err, "fallback", c.cfg.Rspamd.failMode(), "queue_id", in.QueueID)
	switch c.cfg.Rspamd.failMode() {
	case FailAccept:
		return Verdict{Action: Accept, Mailbox: MailboxInbox, Source: "builtin", Required: c.cfg.JunkScore, RspamdErr: err}
	case FailDefer:
		r := replyTempFail
		return Verdict{Action: Defer, Reply: &r, Source: "builtin", RspamdErr: err}
	}
	v := c.builtin(in)
	v.RspamdErr = err
	return v
}

// builtin scores a message with the connection's symbols and the
// authentication verdicts.
func (c *Checker) builtin(in MessageInput) Verdict {
	syms := append([]Symbol(nil), in.Conn.Symbols...)
	if c.cfg.VerdictWeights {
		syms = c.verdictSymbols(syms, in)
	}
	v := Verdict{Score: sumScore(syms), Required: c.cfg.JunkScore, Symbols: syms, Source: "builtin"}
	switch {
	case c.cfg.RejectScore > 0 && v.Score >= c.cfg.RejectScore:
		v.Action = Reject
		r := replyRejected
		v.Reply = &r
	case c.cfg.JunkScore > 0 && v.Score >= c.cfg.JunkScore:
		v.Action, v.Mailbox = Junk, MailboxJunk
	default:
		v.Action, v.Mailbox = Accept, MailboxInbox
	}
	return v
}

func (c *Checker) verdictSymbols(syms []Symbol, in MessageInput) []Symbol {
	switch strings.ToLower(in.SPF) {
	case "pass":
		syms = c.addSym(syms, SymSPFPass, "")
	case "fail":
		syms = c.addSym(syms, SymSPFFail, "")
	case "softfail":
		syms = c.addSym(syms, SymSPFSoftFail, "")
	case "permerror":
		syms = c.addSym(syms, SymSPFPermError, "")
	}
	switch strings.ToLower(in.DKIM) {
	case "pass":
		syms = c.addSym(syms, SymDKIMPass, "")
	case "fail":
		syms = c.addSym(syms, SymDKIMFail, "")
	}
	switch strings.ToLower(in.DMARC) {
	case "pass":
		syms = c.addSym(syms, SymDMARCPass, "")
	case "fail":
		syms = c.addSym(syms, SymDMARCFail, "")
	}
	return syms
}
