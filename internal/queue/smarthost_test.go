package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
)

func smarthost(t *testing.T, r *queue.Relay, e *env) *queue.SMTP {
	tr := queue.NewSMTP(queue.SMTPOptions{Smarthost: r, EHLOName: "mail.example.org", Logger: e.log, CommandTimeout: 5 * time.Second, ConnectTimeout: 2 * time.Second})
	t.Cleanup(tr.Close)
	return tr
}

func TestSmarthostDelivers(t *testing.T) {
	ca := newCA(t)
	cert := ca.leaf(t, "127.0.0.1")
	s := newSink(t, "127.0.0.1:0", &cert, false)
	s.user, s.pass = "relayuser", "s3cret-pass"
	e := newEnv(t, "")
	r := relayTo(s, queue.TLSStartTLS, ca)
	r.Username = "relayuser"
	r.Password = func() (string, error) { return "s3cret-pass", nil }
	e.runner(smarthost(t, r, e), nil)
	// Bare LF in the submitted message must reach the relay as CRLF.
	ids := e.submitMsg("From: alice@example.org\nSubject: lf\n\nline1\nline2\n", delivery.DSNOptions{Ret: "HDRS", EnvID: "env-1"},
		delivery.RemoteRecipient{Address: "bob@example.net", Notify: []string{"FAILURE", "DELAY"}, ORCPT: "rfc822;bob@example.net"},
		delivery.RemoteRecipient{Address: "carol@example.com"})
	if len(ids) != 2 {
		t.Fatalf("queue ids %v: want one entry per domain", ids)
	}
	waitFor(t, "both delivered", func() bool { return len(s.received()) == 2 && e.queueLen() == 0 })
	for _, m := range s.received() {
		if !m.TLS {
			t.Error("message delivered without TLS")
		}
		if strings.Contains(strings.ReplaceAll(string(m.Data), "\r\n", ""), "\n") {
			t.Errorf("bare LF reached the relay: %q", m.Data)
		}
		if m.From != "alice@example.org" {
			t.Errorf("from %q", m.From)
		}
		if m.To[0] == "bob@example.net" {
			if m.Mail.Return != smtp.DSNReturnHeaders || m.Mail.EnvelopeID != "env-1" {
				t.Errorf("DSN MAIL parameters not passed on: %+v", m.Mail)
			}
			if len(m.Rcpts) != 1 || len(m.Rcpts[0].Notify) != 2 || m.Rcpts[0].OriginalRecipient != "bob@example.net" {
				t.Errorf("DSN RCPT parameters not passed on: %+v", m.Rcpts)
			}
		}
	}
	if strings.Contains(e.logs.String(), "s3cret-pass") {
		t.Fatal("password in logs")
	}
	if !strings.Contains(e.logs.String(), "status=sent") || !strings.Contains(e.logs.String(), "to=bob@example.net") {
		t.Fatalf("no per-attempt log line:\n%s", e.logs)
	}
}

func TestStartTLSRequiredNotOffered(t *testing.T) {
	s := newSink(t, "127.0.0.1:0", nil, false) // no STARTTLS
	e := newEnv(t, "")
	e.runner(smarthost(t, relayTo(s, queue.TLSStartTLS, nil), e), func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })
	ids := e.submit(rcpt("bob@example.net")...)
	waitFor(t, "attempt", func() bool { q, _ := e.entry(ids[0]); return q.Attempts == 1 })
	q, ok := e.entry(ids[0])
	if !ok || q.Recipients[0].Status != store.RcptPending || !strings.Contains(q.LastError, "STARTTLS") {
		t.Fatalf("entry %+v (present %v): want deferred for missing STARTTLS", q, ok)
	}
	if n := len(s.received()); n != 0 {
		t.Fatalf("%d messages sent in plain text", n)
	}
	if len(e.inbox()) != 0 {
		t.Fatal("a temporary failure produced a DSN")
	}
}

func TestAuthFailureDeferred(t *testing.T) {
	ca := newCA(t)
	cert := ca.leaf(t, "127.0.0.1")
	s := newSink(t, "127.0.0.1:0", &cert, false)
	s.user, s.pass = "relayuser", "right"
	e := newEnv(t, "")
	r := relayTo(s, queue.TLSStartTLS, ca)
	r.Username = "relayuser"
	r.Password = func() (string, error) { return "wrong-secret", nil }
	e.runner(smarthost(t, r, e), func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })
	ids := e.submit(rcpt("bob@example.net")...)
	waitFor(t, "attempt", func() bool { q, _ := e.entry(ids[0]); return q.Attempts == 1 })
	q, _ := e.entry(ids[0])
	if q.Recipients[0].Status != store.RcptPending || !strings.Contains(q.LastError, "535") {
		t.Fatalf("entry %+v: want deferred with the 535", q)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "smarthost authentication failed") || !strings.Contains(logs, "status=deferred") {
		t.Fatalf("auth failure not reported:\n%s", logs)
	}
	if strings.Contains(logs, "wrong-secret") {
		t.Fatal("password in logs")
	}
	if len(s.received()) != 0 || len(e.inbox()) != 0 {
		t.Fatal("delivered or bounced despite failed AUTH")
	}
}

func TestTempThenOK(t *testing.T) {
	s := newSink(t, "127.0.0.1:0", nil, false)
	s.data = func(n int) error {
		if n == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again"}
		}
		return nil
	}
	e := newEnv(t, "")
	e.runner(smarthost(t, relayTo(s, queue.TLSNone, nil), e), nil)
	ids := e.submit(rcpt("bob@example.net")...)
	waitFor(t, "delivery", func() bool { _, ok := e.entry(ids[0]); return !ok })
	time.Sleep(200 * time.Millisecond) // a second, wrong delivery would show up now
	if n := len(s.received()); n != 1 {
		t.Fatalf("delivered %d times, want exactly once", n)
	}
	if s.dataN != 2 {
		t.Fatalf("%d DATA transactions, want 2 (451 then 250)", s.dataN)
	}
	if len(e.inbox()) != 0 {
		t.Fatal("DSN after successful retry")
	}
	if !strings.Contains(e.logs.String(), "status=deferred") {
		t.Fatal("deferral not logged")
	}
}

func TestPermanentFailureOneDSN(t *testing.T) {
	s := newSink(t, "127.0.0.1:0", nil, false)
	s.rcpt = func(to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	e := newEnv(t, "")
	e.runner(smarthost(t, relayTo(s, queue.TLSNone, nil), e), nil)
	ids := e.submitMsg(testMsg, delivery.DSNOptions{EnvID: "xyz"}, rcpt("bob@example.net", "nobody@example.net")...)
	waitFor(t, "entry done", func() bool { _, ok := e.entry(ids[0]); return !ok })
	time.Sleep(200 * time.Millisecond)
	if n := len(s.received()); n != 1 || len(s.received()[0].To) != 1 || s.received()[0].To[0] != "bob@example.net" {
		t.Fatalf("received %+v: want one message to bob", s.received())
	}
	in := e.inbox()
	if len(in) != 1 {
		t.Fatalf("%d messages in the sender's INBOX, want exactly one DSN", len(in))
	}
	dsn := in[0]
	for _, want := range []string{"Return-Path: <>", "multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; nobody@example.net",
		"Action: failed", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 no such user", "Original-Envelope-Id: xyz", "Subject: hello", "Hello Bob."} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if strings.Contains(dsn, "Final-Recipient: rfc822; bob@example.net") {
		t.Error("DSN names the delivered recipient")
	}
}

func TestNotifyNeverNoDSN(t *testing.T) {
	s := newSink(t, "127.0.0.1:0", nil, false)
	s.rcpt = func(string) error { return &smtp.SMTPError{Code: 550, Message: "no"} }
	e := newEnv(t, "")
	e.runner(smarthost(t, relayTo(s, queue.TLSNone, nil), e), nil)
	ids := e.submit(delivery.RemoteRecipient{Address: "x@example.net", Notify: []string{"NEVER"}})
	waitFor(t, "entry done", func() bool { _, ok := e.entry(ids[0]); return !ok })
	if n := len(e.inbox()); n != 0 {
		t.Fatalf("%d DSNs despite NOTIFY=NEVER", n)
	}
}

func TestExpiryDSNAndDelayWarning(t *testing.T) {
	s := newSink(t, "127.0.0.1:0", nil, false)
	s.rcpt = func(string) error {
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
	}
	e := newEnv(t, "")
	var offset time.Duration
	clock := make(chan time.Duration, 1)
	clock <- 0
	now := func() time.Time {
		d := <-clock
		clock <- d
		return time.Now().Add(d)
	}
	tr := smarthost(t, relayTo(s, queue.TLSNone, nil), e)
	e.runner(tr, func(o *queue.Options) {
		o.Now = now
		o.MaxAge = 5 * time.Hour
		o.DelayWarning = 4 * time.Hour
		o.Retry = []time.Duration{10 * time.Millisecond}
	})
	ids := e.submit(rcpt("bob@example.net")...)
	waitFor(t, "first attempt", func() bool { q, _ := e.entry(ids[0]); return q.Attempts >= 1 })
	if len(e.inbox()) != 0 {
		t.Fatal("DSN before the delay warning time")
	}
	// 4h30 later: one delay warning, however many attempts follow.
	offset = 4*time.Hour + 30*time.Minute
	<-clock
	clock <- offset
	waitFor(t, "delay warning", func() bool { return len(e.inbox()) == 1 })
	q, _ := e.entry(ids[0])
	first := q.Attempts
	waitFor(t, "more attempts", func() bool { q, _ := e.entry(ids[0]); return q.Attempts >= first+3 })
	if n := len(e.inbox()); n != 1 {
		t.Fatalf("%d DSNs after several delayed attempts, want one warning", n)
	}
	if w := e.inbox()[0]; !strings.Contains(w, "Action: delayed") || !strings.Contains(w, "Will-Retry-Until:") || !strings.Contains(w, "Status: 4.2.1") {
		t.Fatalf("delay warning:\n%s", w)
	}
	// Past max age: the entry bounces.
	<-clock
	clock <- 6 * time.Hour
	waitFor(t, "expiry", func() bool { _, ok := e.entry(ids[0]); return !ok })
	in := e.inbox()
	if len(in) != 2 || !strings.Contains(in[1], "Action: failed") || !strings.Contains(in[1], "Status: 4.4.7") || !strings.Contains(in[1], "expired") {
		t.Fatalf("expiry DSN missing or wrong: %d messages\n%s", len(in), in[len(in)-1])
	}
	if len(s.received()) != 0 {
		t.Fatal("delivered despite 450")
	}
}

func TestNullSenderNeverBounced(t *testing.T) {
	s := newSink(t, "127.0.0.1:0", nil, false)
	s.rcpt = func(string) error { return &smtp.SMTPError{Code: 550, Message: "no"} }
	e := newEnv(t, "")
	e.runner(smarthost(t, relayTo(s, queue.TLSNone, nil), e), nil)
	// A DSN (from <>) to a remote address that fails.
	if err := e.sub.Inject(context.Background(), "", []string{"gone@example.net"}, []byte(testMsg)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "queue empty", func() bool { return e.queueLen() == 0 })
	if n := len(e.inbox()); n != 0 {
		t.Fatalf("%d messages: a bounce was bounced", n)
	}
	if !strings.Contains(e.logs.String(), "null sender") {
		t.Fatal("double bounce not logged")
	}
}

func TestHeldEntryNotDelivered(t *testing.T) {
	s := newSink(t, "127.0.0.1:0", nil, false)
	e := newEnv(t, "")
	ctx := context.Background()
	ids := e.submit(rcpt("bob@example.net")...)
	q, _ := e.entry(ids[0])
	q.State = store.QueueHeld
	if err := e.st.QueueUpdate(ctx, q); err != nil {
		t.Fatal(err)
	}
	e.runner(smarthost(t, relayTo(s, queue.TLSNone, nil), e), nil)
	time.Sleep(300 * time.Millisecond)
	if len(s.received()) != 0 {
		t.Fatal("held entry delivered")
	}
	q.State = store.QueueReady
	q.NextAttempt = time.Now()
	if err := e.st.QueueUpdate(ctx, q); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after release", func() bool { return len(s.received()) == 1 })
}

func TestAdminBounce(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	ids := e.submit(rcpt("erin@example.net", "frank@example.net")...)
	if err := queue.Bounce(ctx, e.st, e.sub, "mail.example.org", 100000, ids[0], "5.0.0 returned by the administrator"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.entry(ids[0]); ok {
		t.Fatal("bounced entry still queued")
	}
	in := e.inbox()
	if len(in) != 1 || strings.Count(in[0], "Action: failed") != 2 || !strings.Contains(in[0], "returned by the administrator") {
		t.Fatalf("admin bounce DSN: %d messages\n%v", len(in), in)
	}
	if err := queue.Bounce(ctx, e.st, e.sub, "mail.example.org", 100000, ids[0], "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second bounce: %v", err)
	}
}
