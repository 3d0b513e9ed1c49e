package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAliasForwarding: an alias of A forwards to a user of B. The copy at
// B has an SRS envelope sender in A's domain and an ARC set; a bounce for
// a forwarded message comes back to A's SRS address, verifies, and is
// routed on towards the original sender.
func TestAliasForwarding(t *testing.T) {
	b := New(t, "")
	b.AddAccount("bob@remote.example", "bob-pw")
	a := New(t, DefaultConfig+fmt.Sprintf(`
[outbound]
mode = "smarthost"
retry_schedule = ["1s"]
delay_warning = "0s"

[outbound.smarthost]
host = "127.0.0.1"
port = %s
tls = "starttls"
ca_file = %q
`, b.Port("smtp"), filepath.Join(b.DataDir, "tls", "selfsigned-cert.pem")))
	a.AddAccount("alice@example.test", "pw")
	a.MustCLI("", "dkim", "generate", "--domain", "example.test", "--selector", "fwd", "--algo", "rsa2048")
	a.MustCLI("", "alias", "add", "fwd@example.test", "alice@example.test", "bob@remote.example")
	a.MustCLI("", "alias", "add", "lost@example.test", "nobody@remote.example")

	if err := SendMail(a.Addr("smtp"), "x@sender.example", []string{"fwd@example.test"}, []byte("From: x@sender.example\r\nTo: fwd@example.test\r\nSubject: forwarded\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := SendMail(a.Addr("smtp"), "x@sender.example", []string{"lost@example.test"}, []byte("From: x@sender.example\r\nTo: lost@example.test\r\nSubject: lost\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(listMessages(t, b, "bob@remote.example", "INBOX")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("forwarded copy never arrived\nA:\n%s", tail(a.Log(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The local target of the same alias got its copy too.
	if ms := listMessages(t, a, "alice@example.test", "INBOX"); len(ms) != 1 || ms[0].Subject != "forwarded" {
		t.Fatalf("local copy: %+v", ms)
	}
	raw := b.MustCLI("", "message", "cat", "bob@remote.example", "INBOX", "1")
	for _, want := range []string{"Return-Path: <SRS0=", "=sender.example=x@example.test>", "ARC-Seal: i=1;", "cv=none", "ARC-Message-Signature: i=1;", "d=example.test", "ARC-Authentication-Results: i=1;", "Subject: forwarded"} {
		if !strings.Contains(raw, want) {
			t.Errorf("forwarded copy lacks %q:\n%s", want, raw)
		}
	}
	// The bounce for lost@ reaches A's SRS address, verifies, and is sent
	// on towards x@sender.example (B then refuses to relay it: a bounce of
	// a bounce is never sent, so the queue empties).
	deadline = time.Now().Add(40 * time.Second)
	for !strings.Contains(a.Log(), "mode=srs-reverse") {
		if time.Now().After(deadline) {
			t.Fatalf("bounce never routed back through SRS\nA:\n%s", tail(a.Log(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Rewrite mode: the copy at B comes from a reverse alias in A's domain,
	// signed by A, and bob's reply to it is sent on as if from the alias.
	a.MustCLI("", "alias", "add", "rw@example.test", "bob@remote.example", "--forward", "rewrite")
	if err := SendMail(a.Addr("smtp"), "x@sender.example", []string{"rw@example.test"}, []byte("From: Shop <x@sender.example>\r\nTo: rw@example.test\r\nSubject: rewritten\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for len(listMessages(t, b, "bob@remote.example", "INBOX")) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("rewritten copy never arrived\nA:\n%s", tail(a.Log(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	raw = b.MustCLI("", "message", "cat", "bob@remote.example", "INBOX", "2")
	for _, want := range []string{"Return-Path: <rw@example.test>", "X-Original-From: x@sender.example", "DKIM-Signature:", "d=example.test", "Subject: rewritten"} {
		if !strings.Contains(raw, want) {
			t.Errorf("rewritten copy lacks %q:\n%s", want, raw)
		}
	}
	if strings.Contains(raw, "<x@sender.example>") {
		t.Errorf("rewritten copy still shows the original From:\n%s", raw)
	}
	i := strings.Index(raw, "<ra-")
	if i < 0 {
		t.Fatalf("no reverse alias in:\n%s", raw)
	}
	ra := raw[i+1 : i+strings.IndexByte(raw[i:], '>')]
	if err := SendMail(a.Addr("smtp"), "bob@remote.example", []string{ra}, []byte("From: bob@remote.example\r\nTo: "+ra+"\r\nSubject: Re: rewritten\r\n\r\nthanks\r\n")); err != nil {
		t.Fatalf("reply to the reverse alias: %v", err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(a.Log(), "mode=reply") {
		if time.Now().After(deadline) {
			t.Fatalf("reply through the reverse alias not forwarded\nA:\n%s", tail(a.Log(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A forged SRS address is refused.
	err := SendMail(a.Addr("smtp"), "", []string{"SRS0=AAAA=ZZ=sender.example=x@example.test"}, []byte("Subject: forged\r\n\r\nx\r\n"))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("forged SRS bounce: %v", err)
	}
}
