package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

type dsnKind int

const (
	dsnFailure dsnKind = iota
	dsnDelay
)

// DSNRecipient is one recipient's part of a delivery status notification.
type DSNRecipient struct {
	Address string
	ORCPT   string // "rfc822;addr" as given in RCPT ORCPT=
	// Action is "failed" or "delayed" (RFC 3464 2.3.3).
	Action string
	// Status is the enhanced status code, e.g. "5.1.1".
	Status string
	// Remote is the host that gave Diagnostic, if any.
	Remote     string
	Diagnostic string
}

// DSN describes a delivery status notification to build.
type DSN struct {
	Hostname string
	QueueID  int64
	// To is the original envelope sender, who receives the DSN.
	To         string
	EnvID      string
	Arrival    time.Time
	Now        time.Time
	RetryUntil time.Time // delay DSNs
	Recipients []DSNRecipient
	// Ret is the original's RET= ("FULL", "HDRS" or ""); Original its
	// content, returned whole when Ret is not HDRS and it fits MaxSize,
	// else headers only.
	Ret      string
	Original Message
	MaxSize  int64
}

var enhancedRe = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}\b`)

// statusOf derives an enhanced status code for a result without one.
func statusOf(res Result) string {
	s := res.Reply
	if len(s) > 4 && s[3] == ' ' {
		s = s[4:]
	}
	if m := enhancedRe.FindString(s); m != "" {
		return m
	}
	switch res.Outcome {
	case Delivered:
		return "2.0.0"
	case Permanent:
		return "5.0.0"
	}
	return "4.0.0"
}

// notifies reports whether a recipient's NOTIFY asks for this kind of
// DSN. Without NOTIFY, failures and delays are reported (RFC 3461 4.1
// leaves the default to the MTA; this is what Postfix does).
func notifies(notify []string, kind dsnKind) bool {
	if len(notify) == 0 {
		return true
	}
	want := "FAILURE"
	if kind == dsnDelay {
		want = "DELAY"
	}
	for _, n := range notify {
		if strings.EqualFold(n, want) {
			return true
		}
	}
	return false
}

// bounce sends a DSN of kind for recipients idx of e to e's sender.
func (r *Runner) bounce(ctx context.Context, e *store.QueueEntry, idx []int, kind dsnKind) error {
	if e.From == "" {
		// RFC 5321 6.1 / RFC 3464: never a DSN about a DSN.
		r.log.Info("queue: not reporting failure of a message from the null sender", "queue_id", e.ID)
		return nil
	}
	d := DSN{Hostname: r.opts.Hostname, QueueID: e.ID, To: e.From, EnvID: e.DSNEnvID, Arrival: e.CreatedAt, Now: r.opts.Now(),
		Ret: e.DSNRet, MaxSize: r.opts.BounceMaxSize}
	action := "failed"
	if kind == dsnDelay {
		action = "delayed"
		d.RetryUntil = e.CreatedAt.Add(r.opts.MaxAge)
	}
	for _, i := range idx {
		rc := e.Recipients[i]
		if !notifies(rc.Notify, kind) {
			continue
		}
		remote, text := splitDiag(rc.LastError)
		st := statusOf(Result{Reply: text, Outcome: map[dsnKind]Outcome{dsnFailure: Permanent, dsnDelay: Temporary}[kind]})
		if kind == dsnFailure && !strings.HasPrefix(st, "5.") {
			// A temporary reason that became final (expiry).
			st = "4.4.7"
			if enhancedRe.MatchString(text) && strings.HasPrefix(text, "5.") {
				st = enhancedRe.FindString(text)
			}
		}
		d.Recipients = append(d.Recipients, DSNRecipient{Address: rc.Address, ORCPT: rc.ORCPT, Action: action, Status: st, Remote: remote, Diagnostic: text})
	}
	if len(d.Recipients) == 0 {
		return nil
	}
	if r.opts.Injector == nil {
		r.log.Warn("queue: no DSN injector configured; DSN not sent", "queue_id", e.ID, "to", e.From)
		return nil
	}
	msg, err := r.open(ctx, e)
	if err == nil {
		d.Original = msg
		defer msg.Close()
	} else {
		r.log.Warn("queue: original message unreadable; DSN without it", "queue_id", e.ID, "err", err)
	}
	body, err := BuildDSN(d)
	if err != nil {
		return err
	}
	if err := r.opts.Injector.Inject(ctx, "", []string{e.From}, body); err != nil {
		return fmt.Errorf("deliver DSN to %s: %w", e.From, err)
	}
	kindName := map[dsnKind]string{dsnFailure: "failure", dsnDelay: "delay"}[kind]
	r.m.dsns.WithLabelValues(kindName).Inc()
	r.log.Info("queue: DSN sent", "queue_id", e.ID, "to", e.From, "kind", kindName, "recipients", len(d.Recipients))
	return nil
}

// splitDiag separates "remote: reply" as written by diag.
func splitDiag(s string) (remote, text string) {
	if i := strings.Index(s, ": "); i > 0 && !strings.Contains(s[:i], " ") && (strings.Contains(s[:i], "[") || strings.Contains(s[:i], ".")) {
		return s[:i], s[i+2:]
	}
	return "", s
}

// ascii keeps s to printable ASCII on one line: DSN fields are
// structured header fields.
func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return ' '
		}
		return r
	}, s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// addrType is the RFC 3464/6533 address type of a.
func addrType(a string) string {
	if isASCII(a) {
		return "rfc822; " + a
	}
	return "utf-8; " + a
}

// BuildDSN builds a multipart/report DSN (RFC 3464, RFC 6522) from
// MAILER-DAEMON@Hostname.
func BuildDSN(d DSN) ([]byte, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	boundary := "dsn-" + hex.EncodeToString(rnd[:])
	msgID := fmt.Sprintf("<dsn.%d.%s@%s>", d.QueueID, hex.EncodeToString(rnd[:6]), d.Hostname)
	now := d.Now
	if now.IsZero() {
		now = time.Now()
	}
	failed := d.Recipients[0].Action == "failed"
	subject := "Undelivered Mail Returned to Sender"
	if !failed {
		subject = "Delayed Mail (still being retried)"
	}
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", d.Hostname)
	w("To: <%s>\r\n", strings.NewReplacer("\r", "", "\n", "", ">", "").Replace(d.To))
	w("Subject: %s\r\n", subject)
	w("Date: %s\r\n", now.Format(time.RFC1123Z))
	w("Message-ID: %s\r\n", msgID)
	w("Auto-Submitted: auto-replied\r\n")
	w("MIME-Version: 1.0\r\n")
	w("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary)
	w("\r\nThis is a MIME-encapsulated message.\r\n\r\n")

	// Part 1: for people.
	w("--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	w("This is the mail system at %s.\r\n\r\n", d.Hostname)
	if failed {
		w("Your message could not be delivered to one or more recipients.\r\nIt has been removed from the queue. The errors are below.\r\n\r\n")
	} else {
		w("Your message could not be delivered yet to one or more recipients.\r\nDelivery will be retried until %s; you do not need to resend it.\r\n\r\n", d.RetryUntil.UTC().Format(time.RFC1123Z))
	}
	for _, rc := range d.Recipients {
		w("<%s>: ", lineSafe(rc.Address))
		if rc.Remote != "" {
			w("host %s said: ", lineSafe(rc.Remote))
		}
		w("%s\r\n", lineSafe(rc.Diagnostic))
	}
	w("\r\n")

	// Part 2: for machines.
	w("--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	w("Reporting-MTA: dns; %s\r\n", ascii(d.Hostname))
	w("X-Mailstead-Queue-ID: %d\r\n", d.QueueID)
	if d.EnvID != "" {
		w("Original-Envelope-Id: %s\r\n", ascii(d.EnvID))
	}
	if !d.Arrival.IsZero() {
		w("Arrival-Date: %s\r\n", d.Arrival.Format(time.RFC1123Z))
	}
	for _, rc := range d.Recipients {
		w("\r\n")
		if rc.ORCPT != "" {
			w("Original-Recipient: %s\r\n", ascii(orcptField(rc.ORCPT)))
		}
		w("Final-Recipient: %s\r\n", lineSafe(addrType(rc.Address)))
		w("Action: %s\r\n", rc.Action)
		w("Status: %s\r\n", ascii(rc.Status))
		if rc.Remote != "" {
			host := rc.Remote
			if i := strings.IndexAny(host, "[:"); i > 0 {
				host = host[:i]
			}
			w("Remote-MTA: dns; %s\r\n", ascii(host))
		}
		if rc.Diagnostic != "" {
			if len(rc.Diagnostic) > 3 && rc.Diagnostic[0] >= '2' && rc.Diagnostic[0] <= '5' && rc.Diagnostic[3] == ' ' {
				w("Diagnostic-Code: smtp; %s\r\n", ascii(rc.Diagnostic))
			} else {
				w("Diagnostic-Code: X-Mailstead; %s\r\n", ascii(rc.Diagnostic))
			}
		}
		w("Last-Attempt-Date: %s\r\n", now.Format(time.RFC1123Z))
		if !d.RetryUntil.IsZero() && rc.Action == "delayed" {
			w("Will-Retry-Until: %s\r\n", d.RetryUntil.Format(time.RFC1123Z))
		}
	}
	w("\r\n")

	// Part 3: the original, or its header.
	if d.Original != nil {
		full := !strings.EqualFold(d.Ret, "HDRS") && d.Original.Size() <= d.MaxSize
		if full {
			w("--%s\r\nContent-Type: message/rfc822\r\nContent-Description: Undelivered message\r\n\r\n", boundary)
			if err := copyCRLF(&b, io.NewSectionReader(d.Original, 0, d.Original.Size()), d.MaxSize); err != nil {
				return nil, err
			}
		} else {
			w("--%s\r\nContent-Type: text/rfc822-headers\r\nContent-Description: Undelivered message headers\r\n\r\n", boundary)
			hdr, err := headerOf(d.Original, d.MaxSize)
			if err != nil {
				return nil, err
			}
			b.Write(hdr)
		}
		if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
			w("\r\n")
		}
	}
	w("--%s--\r\n", boundary)
	return b.Bytes(), nil
}

func lineSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, s)
}

// orcptField renders a stored ORCPT ("rfc822;a@b") as a field value.
func orcptField(s string) string {
	t, a, ok := strings.Cut(s, ";")
	if !ok {
		return "rfc822; " + s
	}
	return strings.ToLower(strings.TrimSpace(t)) + "; " + strings.TrimSpace(a)
}

// copyCRLF copies at most max bytes of r to w with bare LF turned into
// CRLF.
func copyCRLF(w io.Writer, r io.Reader, max int64) error {
	_, err := io.Copy(w, io.LimitReader(NewCRLFReader(r), max+max/10+2))
	return err
}

// headerOf returns the header block of m (CRLF line endings), at most max
// bytes, cut at a line boundary.
func headerOf(m Message, max int64) ([]byte, error) {
	br := bufio.NewReader(NewCRLFReader(io.NewSectionReader(m, 0, m.Size())))
	var out []byte
	for {
		line, err := br.ReadSlice('\n')
		if string(line) == "\r\n" || string(line) == "\n" {
			break
		}
		if int64(len(out)+len(line)) > max {
			break
		}
		out = append(out, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			break
		}
	}
	return out, nil
}
