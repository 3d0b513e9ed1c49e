package e2e

import (
	"crypto/tls"
	"fmt"
	"net/smtp"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSubmissionThroughQueue runs two servers: A (example.test) relays
// everything through B (remote.example) as its smarthost. A user of A
// submits with AUTH after STARTTLS; the message is DKIM-signed by A,
// queued, delivered to B, and a message to an unknown user of B comes back
// to the sender as a DSN.
func TestSubmissionThroughQueue(t *testing.T) {
	b := New(t, "")
	b.AddAccount("bob@remote.example", "bob-pw")

	cfg := DefaultConfig + fmt.Sprintf(`
[outbound]
mode = "smarthost"
retry_schedule = ["1s"]
delay_warning = "0s"

[outbound.smarthost]
host = "127.0.0.1"
port = %s
tls = "starttls"
ca_file = %q
`, b.Port("smtp"), filepath.Join(b.DataDir, "tls", "selfsigned-cert.pem"))
	a := New(t, cfg)
	a.AddAccount("alice@example.test", "alice-pw")
	out := a.MustCLI("", "dkim", "generate", "--domain", "example.test", "--selector", "s1")
	if !strings.Contains(out, "v=DKIM1") {
		t.Fatalf("dkim generate printed no DNS record:\n%s", out)
	}

	send := func(to string, subject string) {
		t.Helper()
		c, err := smtp.Dial(a.Addr("submission"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
			t.Fatal(err)
		}
		if err := c.Auth(smtp.PlainAuth("", "alice@example.test", "alice-pw", "127.0.0.1")); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("alice@example.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(to); err != nil {
			t.Fatalf("RCPT %s: %v", to, err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "From: Alice <alice@example.test>\r\nTo: %s\r\nSubject: %s\r\n\r\nHello from A.\r\n", to, subject)
		if err := w.Close(); err != nil {
			t.Fatalf("DATA: %v", err)
		}
		c.Quit()
	}
	send("bob@remote.example", "across")
	send("nobody@remote.example", "to nowhere")

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\nA:\n%s\nB:\n%s", what, tail(a.Log(), 25), tail(b.Log(), 10))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("delivery to B", func() bool { return len(listMessages(t, b, "bob@remote.example", "INBOX")) == 1 })
	raw := b.MustCLI("", "message", "cat", "bob@remote.example", "INBOX", "1")
	for _, want := range []string{"DKIM-Signature:", "d=example.test", "s=s1", "Subject: across", "Message-ID: <", "Hello from A."} {
		if !strings.Contains(raw, want) {
			t.Errorf("message at B lacks %q:\n%s", want, raw)
		}
	}
	// The unknown recipient bounces to alice: one DSN in her INBOX.
	waitFor("the DSN at A", func() bool { return len(listMessages(t, a, "alice@example.test", "INBOX")) == 1 })
	dsn := a.MustCLI("", "message", "cat", "alice@example.test", "INBOX", "1")
	for _, want := range []string{"multipart/report", "report-type=delivery-status", "Final-Recipient: rfc822; nobody@remote.example", "Action: failed", "Status: 5.1.1", "Subject: to nowhere"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	// Nothing is left in A's queue.
	waitFor("an empty queue", func() bool {
		out, _ := a.CLI("", "queue", "list")
		return !strings.Contains(out, "remote.example")
	})
}
