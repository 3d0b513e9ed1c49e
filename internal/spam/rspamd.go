package spam

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// FailMode says what CheckMessage does when Rspamd cannot be asked.
type FailMode string

const (
	// FailBuiltin decides with the built-in score (the default).
	FailBuiltin FailMode = "builtin"
	// FailAccept delivers to the INBOX unscored.
	FailAccept FailMode = "accept"
	// FailDefer answers 451 so the sender retries later.
	FailDefer FailMode = "defer"
)

// RspamdConfig configures the Rspamd client.
type RspamdConfig struct {
	// URL is the base URL of an Rspamd normal worker or proxy, e.g.
	// "http://127.0.0.1:11333"; "/checkv2" is added unless present.
	URL string
	// Timeout bounds one check (default 20s).
	Timeout time.Duration
	// MaxSize: larger messages are not sent to Rspamd and get the
	// built-in score (default 20 MiB; Rspamd's own default limit is 50).
	MaxSize int64
	// FailMode is what to do when Rspamd fails (default FailBuiltin).
	FailMode FailMode
	// PassAll sends "Pass: all", so Rspamd runs every rule even when an
	// early one already decided (for complete symbol lists).
	PassAll bool
	// IgnoreGreylist treats Rspamd's "greylist" action as "no action":
	// set it when Rspamd's greylist module (which needs Redis) is not
	// running, since then a greylist action comes back on every retry
	// and would defer the message until the sender gives up.
	IgnoreGreylist bool
	// Client is the HTTP client (tests); nil means a private client that
	// ignores proxy settings from the environment.
	Client *http.Client
}

// Rspamd defaults.
const (
	DefaultRspamdTimeout = 20 * time.Second
	DefaultRspamdMaxSize = 20 << 20
)

func (c RspamdConfig) failMode() FailMode {
	if c.FailMode == "" {
		return FailBuiltin
	}
	return c.FailMode
}

// Bounds on Rspamd replies.
const (
	maxRspamdReply   = 1 << 20
	maxRspamdSymbols = 256
	maxSymbolOptions = 8
	maxOptionBytes   = 128
	maxRspamdRcpts   = 1000
	maxHeaderValue   = 998
)

type rspamdClient struct {
	url      string
	cfg      RspamdConfig
	hostname string
	hc       *http.Client
}

func newRspamdClient(cfg RspamdConfig, hostname string) (*rspamdClient, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("spam: rspamd url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("spam: rspamd url %q: want http://host:port", cfg.URL)
	}
	switch cfg.failMode() {
	case FailBuiltin, FailAccept, FailDefer:
	default:
		return nil, fmt.Errorf("spam: rspamd fail mode %q: want builtin, accept or defer", cfg.FailMode)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(u.Path, "/checkv2") {
		u.Path += "/checkv2"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRspamdTimeout
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: cfg.Timeout,
		}}
	}
	return &rspamdClient{url: u.String(), cfg: cfg, hostname: hostname, hc: hc}, nil
}

// RspamdReply is the part of Rspamd's /checkv2 reply we use.
type RspamdReply struct {
	Action        string
	Score         float64
	RequiredScore float64
	IsSkipped     bool
	// Subject is the rewritten subject for "rewrite subject".
	Subject string
	// Symbols by descending score, then name (bounded).
	Symbols []RspamdSymbol
	// SMTPMessage is the reply text Rspamd suggests (messages.smtp_message).
	SMTPMessage string
	MessageID   string
}

// RspamdSymbol is one rule that matched.
type RspamdSymbol struct {
	Name    string
	Score   float64
	Options []string
}

// Rspamd actions (its "metric" actions).
const (
	RspamdReject         = "reject"
	RspamdSoftReject     = "soft reject"
	RspamdRewriteSubject = "rewrite subject"
	RspamdAddHeader      = "add header"
	RspamdGreylist       = "greylist"
	RspamdNoAction       = "no action"
	// Custom actions some setups define.
	RspamdQuarantine = "quarantine"
	RspamdDiscard    = "discard"
)

type rawReply struct {
	Action        *string                    `json:"action"`
	Score         float64                    `json:"score"`
	RequiredScore float64                    `json:"required_score"`
	IsSkipped     bool                       `json:"is_skipped"`
	Subject       string                     `json:"subject"`
	Symbols       map[string]rawSymbol       `json:"symbols"`
	Messages      map[string]json.RawMessage `json:"messages"`
	MessageID     string                     `json:"message-id"`
	Error         string                     `json:"error"`
}

type rawSymbol struct {
	Name    string   `json:"name"`
	Score   float64  `json:"score"`
	Options []string `json:"options"`
}

// ParseRspamdReply parses a /checkv2 JSON reply.
func ParseRspamdReply(b []byte) (RspamdReply, error) {
	if len(b) > maxRspamdReply {
		return RspamdReply{}, fmt.Errorf("rspamd reply larger than %d bytes", maxRspamdReply)
	}
	var raw rawReply
	if err := json.Unmarshal(b, &raw); err != nil {
		return RspamdReply{}, fmt.Errorf("parse rspamd reply: %w", err)
	}
	if raw.Error != "" {
		return RspamdReply{}, fmt.Errorf("rspamd: %s", sanitizeText(raw.Error, maxReasonBytes))
	}
	if raw.Action == nil {
		return RspamdReply{}, errors.New("rspamd reply has no action")
	}
	r := RspamdReply{
		Action:        strings.ToLower(strings.TrimSpace(*raw.Action)),
		Score:         raw.Score,
		RequiredScore: raw.RequiredScore,
		IsSkipped:     raw.IsSkipped,
		Subject:       sanitizeText(raw.Subject, maxHeaderValue),
		MessageID:     sanitizeText(raw.MessageID, maxHeaderValue),
	}
	if m, ok := raw.Messages["smtp_message"]; ok {
		var s string
		if json.Unmarshal(m, &s) == nil {
			r.SMTPMessage = sanitizeText(s, maxReasonBytes)
		}
	}
	for key, s := range raw.Symbols {
		name := s.Name
		if name == "" {
			name = key
		}
		sym := RspamdSymbol{Name: sanitizeText(name, maxSymbolName), Score: s.Score}
		for i, o := range s.Options {
			if i == maxSymbolOptions {
				break
			}
			sym.Options = append(sym.Options, sanitizeText(o, maxOptionBytes))
		}
		r.Symbols = append(r.Symbols, sym)
	}
	slices.SortFunc(r.Symbols, func(a, b RspamdSymbol) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(r.Symbols) > maxRspamdSymbols {
		r.Symbols = r.Symbols[:maxRspamdSymbols]
	}
	return r, nil
}

// rspamdError classifies a failure for the error metric.
type rspamdError struct {
	kind string // timeout, connect, http, parse, action
	err  error
}

func (e *rspamdError) Error() string { return "rspamd " + e.kind + ": " + e.err.Error() }
func (e *rspamdError) Unwrap() error { return e.err }

func rspamdErrorKind(err error) string {
	var re *rspamdError
	if errors.As(err, &re) {
		return re.kind
	}
	return "other"
}

// headerValue makes s safe as an HTTP header value.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, s)
	if len(s) > maxHeaderValue {
		s = s[:maxHeaderValue]
	}
	return s
}

// check sends the message to Rspamd with the envelope as request
// headers (Rspamd's HTTP protocol).
func (c *rspamdClient) check(ctx context.Context, in MessageInput) (RspamdReply, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var body io.Reader = http.NoBody
	if in.Message != nil && in.Size > 0 {
		body = io.NewSectionReader(in.Message, 0, in.Size)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, body)
	if err != nil {
		return RspamdReply{}, &rspamdError{"connect", err}
	}
	if in.Message != nil && in.Size > 0 {
		req.ContentLength = in.Size
	}
	h := req.Header
	if in.Conn.IP.IsValid() {
		h.Set("IP", in.Conn.IP.String())
	}
	if in.Conn.Helo != "" {
		h.Set("Helo", headerValue(in.Conn.Helo))
	}
	hostname := "unknown"
	if in.Conn.Iprev.Status == IprevPass && in.Conn.Iprev.Name != "" {
		hostname = in.Conn.Iprev.Name
	}
	h.Set("Hostname", hostname)
	from := in.MailFrom
	if from == "" {
		from = "<>"
	}
	h.Set("From", headerValue(from))
	for i, r := range in.Rcpts {
		if i == maxRspamdRcpts {
			break
		}
		h.Add("Rcpt", headerValue(r))
	}
	if in.User != "" {
		h.Set("User", headerValue(in.User))
	}
	if in.QueueID != "" {
		h.Set("Queue-Id", headerValue(in.QueueID))
		h.Set("Log-Tag", headerValue(in.QueueID))
	}
	if c.hostname != "" {
		h.Set("MTA-Name", headerValue(c.hostname))
	}
	if c.cfg.PassAll {
		h.Set("Pass", "all")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		kind := "connect"
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			kind = "timeout"
		}
		return RspamdReply{}, &rspamdError{kind, err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRspamdReply+1))
	if err != nil {
		kind := "connect"
		if errors.Is(err, context.DeadlineExceeded) {
			kind = "timeout"
		}
		return RspamdReply{}, &rspamdError{kind, fmt.Errorf("read reply: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		msg := sanitizeText(string(b), maxReasonBytes)
		return RspamdReply{}, &rspamdError{"http", fmt.Errorf("status %s: %s", resp.Status, msg)}
	}
	rep, err := ParseRspamdReply(b)
	if err != nil {
		return RspamdReply{}, &rspamdError{"parse", err}
	}
	return rep, nil
}

// rspamdVerdict maps Rspamd's action to ours.
func (c *Checker) rspamdVerdict(rep RspamdReply) (Verdict, error) {
	v := Verdict{Score: round2(rep.Score), Required: round2(rep.RequiredScore), Source: "rspamd"}
	for _, s := range rep.Symbols {
		v.Symbols = append(v.Symbols, Symbol{Name: s.Name, Score: s.Score, Detail: strings.Join(s.Options, ", ")})
	}
	text := func(def Reply) *Reply {
		if rep.SMTPMessage != "" {
			def.Text = rep.SMTPMessage
		}
		return &def
	}
	switch rep.Action {
	case RspamdReject:
		v.Action, v.Reply = Reject, text(replyRejected)
	case RspamdSoftReject:
		v.Action, v.Reply = Defer, text(replyDeferred)
	case RspamdGreylist:
		if c.cfg.Rspamd.IgnoreGreylist {
			v.Action, v.Mailbox = Accept, MailboxInbox
		} else {
			v.Action, v.Reply = Defer, text(replyGreylisted)
		}
	case RspamdAddHeader, RspamdRewriteSubject, RspamdQuarantine, RspamdDiscard:
		// Discard would drop the message silently; we never lose mail
		// without a trace, so it goes to Junk like the others.
		v.Action, v.Mailbox = Junk, MailboxJunk
	case RspamdNoAction:
		v.Action, v.Mailbox = Accept, MailboxInbox
	default:
		return Verdict{}, &rspamdError{"action", fmt.Errorf("unknown action %q", sanitizeText(rep.Action, 64))}
	}
	return v, nil
}

func round2(f float64) float64 { return sumScore([]Symbol{{Score: f}}) }
