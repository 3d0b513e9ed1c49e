package sieve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

// Envelope is what the SMTP transaction and the inbound checks know about
// the message being delivered. The envelope test reads From, To and Auth;
// the environment test reads the rest (see the package documentation for
// the item names).
type Envelope struct {
	From string // MAIL FROM address; "" for the null reverse-path <>
	To   string // the RCPT TO address of this delivery, as received (with +detail)
	Auth string // authenticated submitter, "" when none

	RemoteIP   string // the connecting client's IP address
	RemoteHost string // its verified reverse DNS name, "" if none

	// Authentication verdicts of the inbound checks, lower-case result
	// keywords; "" when not evaluated.
	SPF         string   // RFC 7208: pass, fail, softfail, neutral, none, temperror, permerror
	DKIM        string   // pass (at least one valid signature), fail, none, temperror, permerror
	DKIMDomains []string // d= domains of the valid DKIM signatures
	DMARC       string   // RFC 7489: pass, fail, none, temperror, permerror
	DMARCPolicy string   // the From domain's published policy: none, quarantine, reject

	// Spam and virus verdicts for spamtest and virustest (RFC 5235).
	// SpamScore is 0 when the message was not tested, else 1 (not spam)
	// to 10 (certainly spam); SpamPercent is 0..100 for spamtestplus.
	// VirusScore is 0 when not tested, else 1 (clean) to 5 (infected).
	SpamScore   int
	SpamPercent int
	VirusScore  int

	// Vendor holds further environment items by name (conventionally
	// "vnd.mailstead.…"); they take precedence over the built-in ones.
	Vendor map[string]string
}

// Options configure a run: the server's identity and the account's
// context.
type Options struct {
	Hostname string // environment "host"
	Domain   string // environment "domain"; default: the domain of Envelope.To
	Version  string // environment "version"
	Phase    string // environment "phase"; default "during"

	Now      func() time.Time // currentdate; default time.Now
	Location *time.Location   // the zone of date tests without :zone; default time.Local

	// MailboxExists answers mailboxexists; nil means only INBOX exists.
	MailboxExists func(name string) bool

	// SubaddressDelims are the characters that start a subaddress
	// (:user and :detail); default "+".
	SubaddressDelims string

	// MaxRedirects bounds redirect actions per message (default 4);
	// MaxActions bounds all actions (default 64).
	MaxRedirects int
	MaxActions   int
}

// Delivery is one copy of the message to store in a mailbox of the
// account: a fileinto, a keep, or the implicit keep.
type Delivery struct {
	Mailbox  string   // mailbox name as the script gave it; "INBOX" for keep
	Create   bool     // fileinto :create: create the mailbox if missing
	Flags    []string // IMAP flags and keywords to set (imap4flags)
	Keep     bool     // from keep or the implicit keep
	Implicit bool     // the implicit keep
}

// Recipient maps the delivery to a store recipient for Store.Deliver. A
// mailbox that does not exist (and is not created) makes the store
// deliver to INBOX, which is what RFC 5228 asks for a failing fileinto.
func (d Delivery) Recipient(accountID int64) store.Recipient {
	fl, kw := StoreFlags(d.Flags)
	return store.Recipient{
		AccountID:     accountID,
		MailboxName:   d.Mailbox,
		CreateMailbox: d.Create,
		Flags:         fl,
		Keywords:      kw,
	}
}

// Redirect is a redirect action: send the message unchanged to Address.
type Redirect struct {
	Address string
	Copy    bool // :copy: the message is also kept
}

// Reject is a reject or ereject action (RFC 5429).
type Reject struct {
	Reason string
	// Extended is ereject: refuse at the protocol level when possible
	// (550 during SMTP), else send a DSN; reject prefers an MDN-style
	// bounce that preserves the reason exactly.
	Extended bool
}

// Vacation is a vacation action (RFC 5230, RFC 6131). Whether a response
// is actually sent is for the caller to decide with Responder, which
// applies RFC 3834 and the rate limit.
type Vacation struct {
	Reason    string
	Subject   string // "" means "Auto: " and the original subject
	From      string // "" means the recipient address
	Addresses []string
	MIME      bool   // Reason is a MIME entity (headers and body)
	Handle    string // :handle, or derived from the other arguments
	// Period is the minimum time between two responses to the same
	// sender (":days", default 7 days, or ":seconds").
	Period time.Duration
}

// HeaderEdit records one editheader change, for logs.
type HeaderEdit struct {
	Delete bool
	Name   string
	Value  string
	Last   bool // addheader :last
}

// Result is what a script decided. The caller executes it:
//
//   - Deliveries: store a copy in each mailbox (Delivery.Recipient maps
//     one to store.Recipient). Duplicates are already merged. When
//     ImplicitKeep is true, the last entry is the implicit keep to INBOX.
//   - Redirects: queue the message to each address.
//   - Reject: refuse or bounce the message.
//   - Vacation: maybe send a response (see Responder).
//   - Header: when non-nil, the header block to store instead of the
//     message's own (editheader).
//
// An empty Deliveries with no Redirects means the message is discarded or
// rejected.
type Result struct {
	Deliveries   []Delivery
	ImplicitKeep bool
	Redirects    []Redirect
	Reject       *Reject
	Vacation     *Vacation
	Discarded    bool // discard was executed
	Header       []byte
	HeaderEdits  []HeaderEdit
}

// AddedPrefix returns the header fields the script added, when all its
// header edits were plain addheader actions (no :last, no deleteheader):
// they can then be stored as a per-recipient prefix
// (store.Recipient.Prefix, before any other prefix fields) instead of
// rewriting the message. ok is false when the header must be replaced as
// a whole (Message.WithHeader).
func (r Result) AddedPrefix() (prefix []byte, ok bool) {
	if r.Header == nil {
		return nil, true
	}
	var out []byte
	for i := len(r.HeaderEdits) - 1; i >= 0; i-- {
		e := r.HeaderEdits[i]
		if e.Delete || e.Last {
			return nil, false
		}
		out = append(out, formatField(e.Name, e.Value, "\r\n")...)
	}
	return out, true
}

// implicitKeepResult is the result after a runtime error: deliver to
// INBOX, nothing else, so no mail is lost.
func implicitKeepResult() Result {
	return Result{ImplicitKeep: true, Deliveries: []Delivery{{Mailbox: "INBOX", Keep: true, Implicit: true}}}
}

// String renders the result one action per line, for logs and tests.
func (r Result) String() string {
	var b strings.Builder
	for _, d := range r.Deliveries {
		switch {
		case d.Implicit:
			b.WriteString("implicit-keep")
		case d.Keep:
			b.WriteString("keep")
		default:
			fmt.Fprintf(&b, "fileinto %q", d.Mailbox)
		}
		if d.Create {
			b.WriteString(" :create")
		}
		if len(d.Flags) > 0 {
			fmt.Fprintf(&b, " :flags %q", strings.Join(d.Flags, " "))
		}
		b.WriteByte('\n')
	}
	for _, rd := range r.Redirects {
		if rd.Copy {
			fmt.Fprintf(&b, "redirect :copy %q\n", rd.Address)
		} else {
			fmt.Fprintf(&b, "redirect %q\n", rd.Address)
		}
	}
	if r.Reject != nil {
		if r.Reject.Extended {
			fmt.Fprintf(&b, "ereject %q\n", r.Reject.Reason)
		} else {
			fmt.Fprintf(&b, "reject %q\n", r.Reject.Reason)
		}
	}
	if v := r.Vacation; v != nil {
		fmt.Fprintf(&b, "vacation %q", v.Reason)
		if v.Subject != "" {
			fmt.Fprintf(&b, " :subject %q", v.Subject)
		}
		if v.From != "" {
			fmt.Fprintf(&b, " :from %q", v.From)
		}
		if len(v.Addresses) > 0 {
			fmt.Fprintf(&b, " :addresses %q", strings.Join(v.Addresses, " "))
		}
		if v.MIME {
			b.WriteString(" :mime")
		}
		fmt.Fprintf(&b, " :period %s\n", v.Period)
	}
	for _, e := range r.HeaderEdits {
		if e.Delete {
			fmt.Fprintf(&b, "deleteheader %q %q\n", e.Name, e.Value)
		} else if e.Last {
			fmt.Fprintf(&b, "addheader :last %q %q\n", e.Name, e.Value)
		} else {
			fmt.Fprintf(&b, "addheader %q %q\n", e.Name, e.Value)
		}
	}
	if r.Discarded && len(r.Deliveries) == 0 {
		b.WriteString("discard\n")
	}
	return b.String()
}

// Run executes script on msg.
//
// A runtime error (a limit reached, an invalid mailbox or address computed
// from variables, conflicting actions, a failure reading the message, ctx
// done) returns the error together with a result that only keeps the
// message in INBOX: mail is never lost because of a script. The caller
// logs and counts the error and delivers the result as usual.
func Run(ctx context.Context, script *Script, msg *Message, env Envelope, opts Options) (Result, error) {
	r, _, err := run(ctx, script, msg, msg.header, env, opts)
	return r, err
}

// RunSequence runs scripts in order — the global "before" script, the
// user's active script, the global "after" script; nil entries are
// skipped — as Pigeonhole runs sieve_before/sieve_after: each script sees
// the header as edited by the previous ones, and the next script runs only
// if the message is still kept (the implicit keep was not cancelled, or
// keep was executed). So a global script that files spam into Junk ends
// processing, while one that only adds a header or flags lets the user's
// script decide. The implicit keep of a script that is not the last to run
// is not a delivery of its own. Any runtime error returns the
// INBOX-only result and the error, as Run does.
func RunSequence(ctx context.Context, scripts []*Script, msg *Message, env Envelope, opts Options) (Result, error) {
	var acc Result
	hdr := msg.header
	edited := false
	var last Result
	ran := false
	for i, s := range scripts {
		if s == nil {
			continue
		}
		r, h, err := run(ctx, s, msg, hdr, env, opts)
		if err != nil {
			return r, fmt.Errorf("sieve script %d: %w", i+1, err)
		}
		ran = true
		if r.Header != nil {
			hdr, edited = h, true
		}
		kept := r.ImplicitKeep
		for _, d := range r.Deliveries {
			if d.Implicit {
				continue
			}
			if d.Keep {
				kept = true
			}
			acc.Deliveries = append(acc.Deliveries, d)
		}
		for _, rd := range r.Redirects {
			acc.Redirects = appendRedirect(acc.Redirects, rd)
		}
		if acc.Vacation == nil {
			acc.Vacation = r.Vacation
		}
		if r.Reject != nil && acc.Reject == nil {
			acc.Reject = r.Reject
		}
		acc.Discarded = acc.Discarded || r.Discarded
		acc.HeaderEdits = append(acc.HeaderEdits, r.HeaderEdits...)
		last = r
		if !kept {
			break
		}
	}
	if !ran {
		return implicitKeepResult(), nil
	}
	if edited {
		acc.Header = hdr
	}
	if last.ImplicitKeep {
		acc.ImplicitKeep = true
		for _, d := range last.Deliveries {
			if d.Implicit {
				acc.Deliveries = append(acc.Deliveries, d)
			}
		}
	}
	acc.Deliveries = mergeDeliveries(acc.Deliveries)
	return acc, nil
}

// errMsg returns the message of an *Error without its (empty) position.
func errMsg(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return err.Error()
}

func appendRedirect(list []Redirect, rd Redirect) []Redirect {
	for i, o := range list {
		if strings.EqualFold(o.Address, rd.Address) {
			list[i].Copy = list[i].Copy && rd.Copy
			return list
		}
	}
	return append(list, rd)
}

// mergeDeliveries merges deliveries to the same mailbox (RFC 5228 section
// 4: a message is not stored twice in one mailbox), keeping the first's
// place, the union of flags, and :create if any asked for it.
func mergeDeliveries(ds []Delivery) []Delivery {
	var out []Delivery
	for _, d := range ds {
		merged := false
		for i := range out {
			if sameMailbox(out[i].Mailbox, d.Mailbox) {
				o := &out[i]
				o.Create = o.Create || d.Create
				o.Keep = o.Keep || d.Keep
				o.Implicit = o.Implicit && d.Implicit
				o.Flags = unionFlags(o.Flags, d.Flags)
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, d)
		}
	}
	return out
}

func sameMailbox(a, b string) bool {
	if strings.EqualFold(a, "INBOX") && strings.EqualFold(b, "INBOX") {
		return true
	}
	return a == b
}

type interp struct {
	ctx   context.Context
	s     *Script
	msg   *Message
	env   Envelope
	opts  Options
	hdr   []byte
	edits []HeaderEdit

	vars      map[string]string
	matchVars []string
	flags     []string // the internal flags variable (RFC 5232)

	res          Result
	implicitKeep bool
	stopped      bool
	actions      int
	delivering   bool // keep, fileinto or redirect executed
	work         int64
	dynRegex     map[string]*regexp.Regexp
}

const maxDynRegex = 32

func run(ctx context.Context, s *Script, msg *Message, hdr []byte, env Envelope, opts Options) (Result, []byte, error) {
	if s == nil || msg == nil {
		return implicitKeepResult(), hdr, errors.New("sieve: no script or message")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.SubaddressDelims == "" {
		opts.SubaddressDelims = "+"
	}
	if opts.MaxRedirects <= 0 {
		opts.MaxRedirects = 4
	}
	if opts.MaxActions <= 0 {
		opts.MaxActions = 64
	}
	in := &interp{ctx: ctx, s: s, msg: msg, env: env, opts: opts, hdr: hdr, vars: map[string]string{}, implicitKeep: true}
	if err := in.block(s.cmds); err != nil {
		return implicitKeepResult(), hdr, err
	}
	r := in.res
	r.ImplicitKeep = in.implicitKeep
	if in.implicitKeep {
		r.Deliveries = append(r.Deliveries, Delivery{Mailbox: "INBOX", Keep: true, Implicit: true, Flags: in.flags})
	}
	r.Deliveries = mergeDeliveries(r.Deliveries)
	if len(in.edits) > 0 {
		r.Header = in.hdr
		r.HeaderEdits = in.edits
	}
	return r, in.hdr, nil
}

func (in *interp) block(nodes []*node) error {
	for _, n := range nodes {
		if in.stopped {
			return nil
		}
		if err := in.ctx.Err(); err != nil {
			return fmt.Errorf("sieve: %w", err)
		}
		if err := in.exec(n); err != nil {
			return err
		}
	}
	return nil
}

// str expands a string argument.
func (in *interp) str(a *arg) string {
	if a == nil || len(a.strs) == 0 {
		return ""
	}
	return in.expand(a.strs[0])
}

// list expands a string list argument.
func (in *interp) list(a *arg) []string {
	if a == nil {
		return nil
	}
	out := make([]string, len(a.strs))
	for i, s := range a.strs {
		out[i] = in.expand(s)
	}
	return out
}

func (in *interp) action(n *node) error {
	in.actions++
	if in.actions > in.opts.MaxActions {
		return errorf(n.pos, "more than %d actions", in.opts.MaxActions)
	}
	return nil
}

func (in *interp) exec(n *node) error {
	switch n.name {
	case "if":
		for _, b := range n.branches {
			if b.test != nil {
				ok, err := in.test(b.test)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
			}
			return in.block(b.block)
		}
		return nil
	case "stop":
		in.stopped = true
		return nil
	case "keep":
		if err := in.deliverAction(n); err != nil {
			return err
		}
		in.res.Deliveries = append(in.res.Deliveries, Delivery{Mailbox: "INBOX", Keep: true, Flags: in.actionFlags(n)})
		in.implicitKeep = false
		return nil
	case "discard":
		in.res.Discarded = true
		in.implicitKeep = false
		return nil
	case "fileinto":
		if err := in.deliverAction(n); err != nil {
			return err
		}
		mb := in.str(&n.args[0])
		if err := checkMailbox(mb); err != nil {
			return errorf(n.pos, "%s", errMsg(err))
		}
		if strings.EqualFold(mb, "INBOX") {
			mb = "INBOX"
		}
		in.res.Deliveries = append(in.res.Deliveries, Delivery{Mailbox: mb, Create: n.has("create"), Flags: in.actionFlags(n)})
		if !n.has("copy") {
			in.implicitKeep = false
		}
		return nil
	case "redirect":
		if err := in.deliverAction(n); err != nil {
			return err
		}
		addr := in.str(&n.args[0])
		a, err := address.Parse(strings.TrimSpace(addr))
		if err != nil {
			return errorf(n.pos, "redirect: invalid address %q", addr)
		}
		rd := Redirect{Address: a.String(), Copy: n.has("copy")}
		in.res.Redirects = appendRedirect(in.res.Redirects, rd)
		if len(in.res.Redirects) > in.opts.MaxRedirects {
			return errorf(n.pos, "more than %d redirects", in.opts.MaxRedirects)
		}
		if !rd.Copy {
			in.implicitKeep = false
		}
		return nil
	case "reject", "ereject":
		if err := in.action(n); err != nil {
			return err
		}
		if in.res.Reject != nil {
			return errorf(n.pos, "more than one reject")
		}
		if in.res.Vacation != nil {
			return errorf(n.pos, "reject cannot be combined with vacation")
		}
		if in.delivering {
			return errorf(n.pos, "reject cannot be combined with keep, fileinto or redirect")
		}
		in.res.Reject = &Reject{Reason: in.str(&n.args[0]), Extended: n.name == "ereject"}
		in.implicitKeep = false
		return nil
	case "setflag", "addflag", "removeflag":
		return in.flagAction(n)
	case "set":
		v := applyModifiers(n, in.str(&n.args[1]))
		return in.setVar(n.pos, n.args[0].strs[0], v)
	case "vacation":
		return in.vacation(n)
	case "addheader":
		return in.addHeader(n)
	case "deleteheader":
		return in.deleteHeader(n)
	}
	return errorf(n.pos, "unknown command %q", n.name)
}

// deliverAction counts a keep, fileinto or redirect and checks it against
// a reject.
func (in *interp) deliverAction(n *node) error {
	if err := in.action(n); err != nil {
		return err
	}
	if in.res.Reject != nil {
		return errorf(n.pos, "%s cannot be combined with reject", n.name)
	}
	in.delivering = true
	return nil
}

func (in *interp) vacation(n *node) error {
	if err := in.action(n); err != nil {
		return err
	}
	if in.res.Vacation != nil {
		return errorf(n.pos, "more than one vacation")
	}
	if in.res.Reject != nil {
		return errorf(n.pos, "vacation cannot be combined with reject")
	}
	v := &Vacation{Reason: in.str(&n.args[0]), MIME: n.has("mime"), Period: 7 * 24 * time.Hour}
	if a := n.tags["days"]; a != nil {
		v.Period = time.Duration(min(max(a.num, 1), 365)) * 24 * time.Hour
	}
	if a := n.tags["seconds"]; a != nil {
		v.Period = time.Duration(min(a.num, 365*24*3600)) * time.Second
	}
	v.Subject = in.str(n.tags["subject"])
	if a := n.tags["from"]; a != nil {
		v.From = in.str(a)
		if _, err := parseMailbox(v.From); err != nil {
			return errorf(a.pos, "vacation :from: invalid address %q", v.From)
		}
	}
	for _, s := range in.list(n.tags["addresses"]) {
		if _, err := parseMailbox(s); err != nil {
			return errorf(n.tags["addresses"].pos, "vacation :addresses: invalid address %q", s)
		}
		v.Addresses = append(v.Addresses, s)
	}
	if a := n.tags["handle"]; a != nil {
		v.Handle = in.str(a)
	} else {
		// RFC 5230 section 4.2: without :handle, responses with other
		// arguments count as other responses.
		h := sha256.New()
		for _, s := range []string{v.Reason, v.Subject, v.From, strconv.FormatBool(v.MIME)} {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		v.Handle = hex.EncodeToString(h.Sum(nil)[:16])
	}
	in.res.Vacation = v
	return nil
}

// test evaluates a test.
func (in *interp) test(n *node) (bool, error) {
	switch n.name {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "not":
		ok, err := in.test(n.tests[0])
		return !ok, err
	case "allof":
		for _, t := range n.tests {
			ok, err := in.test(t)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case "anyof":
		for _, t := range n.tests {
			ok, err := in.test(t)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case "exists":
		for _, name := range in.list(&n.args[0]) {
			if _, ok := message.HeaderValue(in.hdr, name); !ok {
				return false, nil
			}
		}
		return true, nil
	case "size":
		if a := n.tags["over"]; a != nil {
			return in.msg.Size() > a.num, nil
		}
		return in.msg.Size() < n.tags["under"].num, nil
	case "header":
		var values []string
		for _, name := range in.list(&n.args[0]) {
			for _, v := range in.indexed(n, message.HeaderValues(in.hdr, name)) {
				values = append(values, message.DecodeHeaderValue(v))
			}
		}
		return in.match(n, values, &n.args[1])
	case "address":
		var values []string
		for _, name := range in.list(&n.args[0]) {
			for _, v := range in.indexed(n, message.HeaderValues(in.hdr, name)) {
				for _, a := range message.ParseAddressList(v) {
					if a.GroupEnd || a.Host == "" {
						continue // group markers
					}
					local, dom := a.Mailbox, a.Host
					if local == message.MissingMailbox {
						local = ""
					}
					if dom == message.MissingHost {
						dom = ""
					}
					if p, ok := in.addressPart(n, local, dom); ok {
						values = append(values, p)
					}
				}
			}
		}
		return in.match(n, values, &n.args[1])
	case "envelope":
		var values []string
		for _, part := range in.list(&n.args[0]) {
			var addr string
			switch strings.ToLower(part) {
			case "from":
				addr = in.env.From
			case "to":
				addr = in.env.To
			case "auth":
				if in.env.Auth == "" {
					continue
				}
				addr = in.env.Auth
			default:
				return false, errorf(n.pos, "unsupported envelope part %q", part)
			}
			addr = strings.Trim(strings.TrimSpace(addr), "<>")
			if addr == "" {
				// The null reverse-path compares as "" whatever the
				// address part (RFC 5228 section 5.4).
				if !n.has("detail") {
					values = append(values, "")
				}
				continue
			}
			local, dom := addr, ""
			if i := strings.LastIndexByte(addr, '@'); i >= 0 {
				local, dom = addr[:i], addr[i+1:]
			}
			if p, ok := in.addressPart(n, local, dom); ok {
				values = append(values, p)
			}
		}
		return in.match(n, values, &n.args[1])
	case "body":
		transform := "text"
		var types []string
		switch {
		case n.has("raw"):
			transform = "raw"
		case n.has("content"):
			transform = "content"
			types = in.list(n.tags["content"])
		}
		values, err := in.msg.bodyTexts(transform, types)
		if err != nil {
			return false, errorf(n.pos, "body: %v", err)
		}
		// RFC 5173 section 5: body does not set match variables.
		saved := in.matchVars
		ok, err := in.match(n, values, &n.args[0])
		in.matchVars = saved
		return ok, err
	case "string":
		values := in.list(&n.args[0])
		if n.match.typ == mCount {
			// Empty strings are not counted (RFC 5229 section 5).
			var ne []string
			for _, v := range values {
				if v != "" {
					ne = append(ne, v)
				}
			}
			values = ne
		}
		return in.match(n, values, &n.args[1])
	case "hasflag":
		var flags []string
		if n.args[0].kind != argNone {
			for _, name := range n.args[0].strs {
				flags = append(flags, parseFlags([]string{in.vars[strings.ToLower(name)]})...)
			}
		} else {
			flags = in.flags
		}
		return in.matchFlags(n, flags)
	case "date", "currentdate":
		return in.dateTest(n)
	case "mailboxexists":
		for _, name := range in.list(&n.args[0]) {
			exists := strings.EqualFold(name, "INBOX")
			if in.opts.MailboxExists != nil {
				exists = in.opts.MailboxExists(name)
			}
			if !exists {
				return false, nil
			}
		}
		return true, nil
	case "environment":
		v, ok := in.environment(strings.ToLower(in.str(&n.args[0])))
		var values []string
		if ok {
			values = []string{v}
		}
		return in.match(n, values, &n.args[1])
	case "spamtest":
		v := strconv.Itoa(min(max(in.env.SpamScore, 0), 10))
		if n.has("percent") {
			v = "0"
			if in.env.SpamScore > 0 {
				v = strconv.Itoa(min(max(in.env.SpamPercent, 0), 100))
			}
		}
		return in.match(n, []string{v}, &n.args[0])
	case "virustest":
		return in.match(n, []string{strconv.Itoa(min(max(in.env.VirusScore, 0), 5))}, &n.args[0])
	}
	return false, errorf(n.pos, "unknown test %q", n.name)
}

// indexed applies :index and :last (RFC 5260 section 6) to the values of
// one header field name.
func (in *interp) indexed(n *node, values []string) []string {
	a := n.tags["index"]
	if a == nil {
		return values
	}
	i := int(min(a.num, int64(len(values))+1)) - 1
	if n.has("last") {
		i = len(values) - 1 - i
	}
	if i < 0 || i >= len(values) {
		return nil
	}
	return values[i : i+1]
}

// addressPart returns the address part an address test compares. ok is
// false for :detail of an address without a subaddress, which matches
// nothing (RFC 5233 section 4).
func (in *interp) addressPart(n *node, local, dom string) (string, bool) {
	switch {
	case n.has("localpart"):
		return local, true
	case n.has("domain"):
		return dom, true
	case n.has("user"), n.has("detail"):
		i := strings.IndexAny(local, in.opts.SubaddressDelims)
		if n.has("user") {
			if i < 0 {
				return local, true
			}
			return local[:i], true
		}
		if i < 0 {
			return "", false
		}
		return local[i+1:], true
	}
	if dom == "" {
		return local, true
	}
	return local + "@" + dom, true
}

// match compares values with the keys of keyArg using n's comparator and
// match type, setting the match variables on a :matches or :regex match.
func (in *interp) match(n *node, values []string, keyArg *arg) (bool, error) {
	return in.matchExpanded(n, values, in.list(keyArg), keyArg.pos)
}

// matchExpanded is match with the keys already expanded; pos is their
// place in the script, for errors.
func (in *interp) matchExpanded(n *node, values, keys []string, pos Pos) (bool, error) {
	m := n.match
	if m.typ == mCount {
		cnt := strconv.Itoa(len(values))
		for _, k := range keys {
			if relHolds(m.rel, compare(m.cmp, cnt, k)) {
				return true, nil
			}
		}
		return false, nil
	}
	var res []*regexp.Regexp
	if m.typ == mRegex {
		res = make([]*regexp.Regexp, len(keys))
		for i, k := range keys {
			if i < len(m.regex) && m.regex[i] != nil && m.regexSrc[i] == k {
				res[i] = m.regex[i]
				continue
			}
			re, err := in.dynamicRegex(k, m.cmp)
			if err != nil {
				return false, errorf(pos, "%s", errMsg(err))
			}
			res[i] = re
		}
	}
	for _, v := range values {
		for i, k := range keys {
			var re *regexp.Regexp
			if res != nil {
				re = res[i]
			}
			if err := in.spend(n, m.typ, v, k); err != nil {
				return false, err
			}
			if ok, caps := m.matchOne(v, k, re); ok {
				if caps != nil {
					in.setMatch(caps)
				}
				return true, nil
			}
		}
	}
	return false, nil
}

// MaxWork bounds the comparison work of one run, in units of roughly one
// byte compared: far above what real scripts need (a hundred tests on a
// large message use a few million), low enough that a script of many
// tests over a large body cannot occupy a CPU for long.
const MaxWork = 1 << 29

// spend charges the cost of comparing value with key.
func (in *interp) spend(n *node, typ matchType, v, k string) error {
	cost := int64(len(v) + len(k))
	switch typ {
	case mMatches:
		// Placing each segment is a naive search: value × pattern.
		cost = int64(len(v))*int64(max(len(k)/8, 1)) + int64(len(k))
	case mRegex:
		cost = int64(len(v))*int64(len(k)/64+1) + int64(len(k))
	}
	in.work += cost
	if in.work > MaxWork {
		return errorf(n.pos, "script exceeded its work limit")
	}
	return nil
}

func (in *interp) dynamicRegex(k string, cmp comparator) (*regexp.Regexp, error) {
	key := strconv.Itoa(int(cmp)) + k
	if re, ok := in.dynRegex[key]; ok {
		return re, nil
	}
	if len(in.dynRegex) >= maxDynRegex {
		return nil, errorf(Pos{}, "more than %d regular expressions built from variables", maxDynRegex)
	}
	re, err := compileRegex(k, cmp)
	if err != nil {
		return nil, err
	}
	if in.dynRegex == nil {
		in.dynRegex = map[string]*regexp.Regexp{}
	}
	in.dynRegex[key] = re
	return re, nil
}

// environment returns an environment item (RFC 5183 and our vendor
// items).
func (in *interp) environment(name string) (string, bool) {
	if v, ok := in.env.Vendor[name]; ok {
		return v, true
	}
	opt := func(v string) (string, bool) { return v, v != "" }
	switch name {
	case "domain":
		if in.opts.Domain != "" {
			return in.opts.Domain, true
		}
		if i := strings.LastIndexByte(in.env.To, '@'); i >= 0 {
			return strings.ToLower(in.env.To[i+1:]), true
		}
		return "", false
	case "host":
		return opt(in.opts.Hostname)
	case "location":
		return "MDA", true
	case "name":
		return "mailstead", true
	case "phase":
		if in.opts.Phase != "" {
			return in.opts.Phase, true
		}
		return "during", true
	case "remote-host":
		return opt(in.env.RemoteHost)
	case "remote-ip":
		return opt(in.env.RemoteIP)
	case "version":
		return opt(in.opts.Version)
	case EnvSPF:
		return opt(in.env.SPF)
	case EnvDKIM:
		return opt(in.env.DKIM)
	case EnvDKIMDomains:
		if len(in.env.DKIMDomains) == 0 {
			return "", false
		}
		return " " + strings.ToLower(strings.Join(in.env.DKIMDomains, " ")) + " ", true
	case EnvDMARC:
		return opt(in.env.DMARC)
	case EnvDMARCPolicy:
		return opt(in.env.DMARCPolicy)
	case EnvAuth:
		return opt(in.env.Auth)
	}
	return "", false
}

// maxHeaderValue bounds an addheader value.
const maxHeaderValue = 8 << 10

// Vendor environment items carrying the inbound authentication verdicts.
const (
	EnvSPF         = "vnd.mailstead.spf"
	EnvDKIM        = "vnd.mailstead.dkim"
	EnvDKIMDomains = "vnd.mailstead.dkim-domains"
	EnvDMARC       = "vnd.mailstead.dmarc"
	EnvDMARCPolicy = "vnd.mailstead.dmarc-policy"
	EnvAuth        = "vnd.mailstead.auth"
)

func (in *interp) addHeader(n *node) error {
	if err := in.action(n); err != nil {
		return err
	}
	name := in.str(&n.args[0])
	value := in.str(&n.args[1])
	if !validFieldName(name) {
		return errorf(n.pos, "addheader: invalid header field name %q", name)
	}
	if len(value) > maxHeaderValue {
		return errorf(n.pos, "addheader: value longer than %d bytes", maxHeaderValue)
	}
	if protectedField(name) {
		return nil
	}
	f := formatField(name, value, eol(in.hdr))
	fields, tail := splitHeader(in.hdr)
	if n.has("last") {
		fields = append(fields, field{name: name, raw: f})
	} else {
		fields = append([]field{{name: name, raw: f}}, fields...)
	}
	if tail == nil {
		tail = []byte(eol(in.hdr))
	}
	in.hdr = joinHeader(fields, tail)
	in.edits = append(in.edits, HeaderEdit{Name: name, Value: value, Last: n.has("last")})
	return nil
}

func (in *interp) deleteHeader(n *node) error {
	if err := in.action(n); err != nil {
		return err
	}
	name := in.str(&n.args[0])
	if !validFieldName(name) {
		return errorf(n.pos, "deleteheader: invalid header field name %q", name)
	}
	if protectedField(name) {
		return nil
	}
	fields, tail := splitHeader(in.hdr)
	var idx []int // indexes of the fields named name
	for i, f := range fields {
		if strings.EqualFold(f.name, name) {
			idx = append(idx, i)
		}
	}
	if a := n.tags["index"]; a != nil {
		k := int(min(a.num, int64(len(idx))+1)) - 1
		if n.has("last") {
			k = len(idx) - 1 - k
		}
		if k < 0 || k >= len(idx) {
			return nil
		}
		idx = idx[k : k+1]
	}
	del := map[int]bool{}
	for _, i := range idx {
		if n.args[1].kind == argNone {
			del[i] = true
			continue
		}
		ok, err := in.match(n, []string{fieldValue(fields[i])}, &n.args[1])
		if err != nil {
			return err
		}
		if ok {
			del[i] = true
		}
	}
	if len(del) == 0 {
		return nil
	}
	var keep []field
	for i, f := range fields {
		if del[i] {
			in.edits = append(in.edits, HeaderEdit{Delete: true, Name: f.name, Value: fieldValue(f)})
			continue
		}
		keep = append(keep, f)
	}
	in.hdr = joinHeader(keep, tail)
	return nil
}
