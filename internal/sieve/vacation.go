package sieve

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailstead/mailstead/internal/message"
)

// parseMailbox parses an RFC 5322 mailbox: "addr" or "Name <addr>".
func parseMailbox(s string) (*mail.Address, error) {
	return mail.ParseAddress(strings.TrimSpace(s))
}

// ReplyKey identifies a vacation response for the rate limit: one
// response per sender and handle per period (RFC 5230 section 4.2).
type ReplyKey struct {
	AccountID int64
	Sender    string // envelope sender, lower case
	Handle    string
}

// ReplyLog persists which senders got which vacation response when. The
// server backs it with the store so the limit survives restarts;
// MemoryReplyLog serves tests and single-process use.
type ReplyLog interface {
	// Reserve records a response for key at now unless one was recorded
	// within period before now, and reports whether the response may be
	// sent. It must be atomic with respect to concurrent deliveries.
	Reserve(ctx context.Context, key ReplyKey, now time.Time, period time.Duration) (bool, error)
}

// MemoryReplyLog is a ReplyLog in memory, bounded to Max entries (default
// 100000); beyond that the oldest entries are forgotten, which at worst
// allows an early second response.
type MemoryReplyLog struct {
	Max int

	mu sync.Mutex
	m  map[ReplyKey]time.Time
}

// Reserve implements ReplyLog.
func (l *MemoryReplyLog) Reserve(_ context.Context, key ReplyKey, now time.Time, period time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[ReplyKey]time.Time{}
	}
	if last, ok := l.m[key]; ok && now.Sub(last) < period {
		return false, nil
	}
	max := l.Max
	if max <= 0 {
		max = 100000
	}
	if len(l.m) >= max {
		l.prune(now, max)
	}
	l.m[key] = now
	return true, nil
}

// prune drops entries older than a year, then the oldest half if still
// full.
func (l *MemoryReplyLog) prune(now time.Time, max int) {
	for k, t := range l.m {
		if now.Sub(t) > 366*24*time.Hour {
			delete(l.m, k)
		}
	}
	if len(l.m) < max {
		return
	}
	var ts []time.Time
	for _, t := range l.m {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	cut := ts[len(ts)/2]
	for k, t := range l.m {
		if !t.After(cut) {
			delete(l.m, k)
		}
	}
}

// systemSender reports whether an envelope sender is a mailer or list
// robot that must never get an automatic response (RFC 3834 section 2,
// Pigeonhole's list plus common bounce and no-reply addresses).
func systemSender(addr string) bool {
	local := strings.ToLower(addr)
	if i := strings.LastIndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	switch local {
	case "mailer-daemon", "listserv", "majordomo", "noreply", "no-reply", "donotreply", "do-not-reply":
		return true
	}
	return strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request") ||
		strings.HasSuffix(local, "-owner") || strings.HasSuffix(local, "-bounces")
}

// addrKeys returns an address's comparison forms: lower-cased, and without
// its subaddress.
func addrKeys(addr, delims string) []string {
	a := strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
	out := []string{a}
	at := strings.LastIndexByte(a, '@')
	if at > 0 && delims != "" {
		if i := strings.IndexAny(a[:at], delims); i > 0 {
			out = append(out, a[:i]+a[at:])
		}
	}
	return out
}

// SuppressReason applies the rules of RFC 3834 and RFC 5230 section 4.5 to
// a vacation response: it returns why no response may be sent, or "" when
// one may. own are the recipient's addresses (the account's address and
// its aliases); Envelope.To and the :addresses of v count as well.
func SuppressReason(header []byte, env Envelope, v *Vacation, own []string) string {
	sender := strings.Trim(strings.TrimSpace(env.From), "<>")
	if sender == "" {
		return "null sender"
	}
	if systemSender(sender) {
		return "sender is a mailer or list address"
	}
	mine := map[string]bool{}
	for _, list := range [][]string{own, v.Addresses, {env.To}} {
		for _, a := range list {
			if m, err := parseMailbox(a); err == nil {
				a = m.Address
			}
			for _, k := range addrKeys(a, "+") {
				mine[k] = true
			}
		}
	}
	for _, k := range addrKeys(sender, "+") {
		if mine[k] {
			return "sender is the recipient"
		}
	}
	if as, ok := message.HeaderValue(header, "Auto-Submitted"); ok {
		kw, _, _ := strings.Cut(as, ";")
		if !strings.EqualFold(strings.TrimSpace(kw), "no") {
			return "message is Auto-Submitted"
		}
	}
	for _, h := range []string{"List-Id", "List-Help", "List-Subscribe", "List-Unsubscribe", "List-Post", "List-Owner", "List-Archive"} {
		if _, ok := message.HeaderValue(header, h); ok {
			return "message is from a mailing list (" + h + ")"
		}
	}
	if p, ok := message.HeaderValue(header, "Precedence"); ok {
		switch strings.ToLower(strings.TrimSpace(p)) {
		case "bulk", "list", "junk":
			return "message has Precedence: " + strings.ToLower(strings.TrimSpace(p))
		}
	}
	if x, ok := message.HeaderValue(header, "X-Auto-Response-Suppress"); ok {
		for _, f := range strings.FieldsFunc(strings.ToLower(x), func(r rune) bool { return r == ',' || r == ' ' }) {
			if f == "all" || f == "oof" || f == "autoreply" {
				return "message has X-Auto-Response-Suppress"
			}
		}
	}
	for _, h := range []string{"To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"} {
		for _, val := range message.HeaderValues(header, h) {
			for _, a := range message.ParseAddressList(val) {
				if a.GroupEnd || a.Host == "" {
					continue
				}
				for _, k := range addrKeys(a.Mailbox+"@"+a.Host, "+") {
					if mine[k] {
						return ""
					}
				}
			}
		}
	}
	return "recipient address not in To/Cc/Bcc"
}

// Reply is a vacation response ready for the outbound queue.
type Reply struct {
	MailFrom string // envelope sender: "" (the null reverse-path, RFC 3834 section 3.3)
	To       string // envelope recipient: the original envelope sender
	Data     []byte // the message, CRLF line breaks
}

// Responder turns vacation actions into responses: it applies
// SuppressReason and the per-sender rate limit, then composes the reply.
type Responder struct {
	Log      ReplyLog
	Hostname string // for Message-ID
	Now      func() time.Time
}

// Respond returns the response to send for v, or nil and the reason when
// none may be sent. header is the received message's header (Result.Header
// if the script edited it). own are the recipient's addresses; :from is
// used only if it is one of them (or Envelope.To), so a script cannot send
// as someone else.
func (r *Responder) Respond(ctx context.Context, accountID int64, v *Vacation, header []byte, env Envelope, own []string) (*Reply, string, error) {
	if v == nil {
		return nil, "no vacation action", nil
	}
	if why := SuppressReason(header, env, v, own); why != "" {
		return nil, why, nil
	}
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	sender := strings.ToLower(strings.Trim(strings.TrimSpace(env.From), "<>"))
	if v.Period > 0 && r.Log != nil {
		ok, err := r.Log.Reserve(ctx, ReplyKey{AccountID: accountID, Sender: sender, Handle: v.Handle}, now, v.Period)
		if err != nil {
			return nil, "", fmt.Errorf("sieve: vacation rate limit: %w", err)
		}
		if !ok {
			return nil, "already responded to this sender within the period", nil
		}
	}
	data := composeVacation(v, header, env, own, now, r.Hostname)
	return &Reply{MailFrom: "", To: strings.Trim(strings.TrimSpace(env.From), "<>"), Data: data}, "", nil
}

// composeVacation builds the response message (RFC 5230 section 5).
func composeVacation(v *Vacation, header []byte, env Envelope, own []string, now time.Time, hostname string) []byte {
	from := strings.Trim(strings.TrimSpace(env.To), "<>")
	if v.From != "" {
		if m, err := parseMailbox(v.From); err == nil {
			allowed := strings.EqualFold(m.Address, from)
			for _, o := range own {
				if om, err := parseMailbox(o); err == nil && strings.EqualFold(om.Address, m.Address) {
					allowed = true
				}
			}
			if allowed {
				from = m.String()
			}
		}
	}
	subject := v.Subject
	if subject == "" {
		orig, _ := message.HeaderValue(header, "Subject")
		subject = "Auto: " + message.DecodeHeaderValue(orig)
	}
	if hostname == "" {
		hostname = "localhost"
	}
	var id [12]byte
	rand.Read(id[:])
	var b bytes.Buffer
	hdr := func(name, value string) {
		b.Write(formatField(name, value, "\r\n"))
	}
	hdr("From", from)
	hdr("To", "<"+strings.Trim(strings.TrimSpace(env.From), "<>")+">")
	hdr("Subject", subject)
	hdr("Date", now.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+".vacation@"+hostname+">")
	if mid, ok := message.HeaderValue(header, "Message-ID"); ok && mid != "" && len(mid) < 1000 {
		hdr("In-Reply-To", mid)
		refs, _ := message.HeaderValue(header, "References")
		if len(refs) > 4000 {
			refs = ""
		}
		hdr("References", strings.TrimSpace(refs+" "+mid))
	}
	hdr("Auto-Submitted", "auto-replied (vacation)")
	hdr("MIME-Version", "1.0")
	reason := crlf(v.Reason)
	if v.MIME {
		// The reason is a MIME entity: its header fields follow ours.
		b.WriteString(reason)
		if !strings.HasSuffix(reason, "\r\n") {
			b.WriteString("\r\n")
		}
		return b.Bytes()
	}
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(reason))
	w.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// crlf normalises line breaks to CRLF.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}
