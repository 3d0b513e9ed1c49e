package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestOpenRelay checks every combination of (authenticated or not, local
// or foreign sender, local or foreign recipient, through PROXY or not)
// against the real binary: nobody may relay to a foreign domain without
// logging in, and a logged-in user may only use their own address.
func TestOpenRelay(t *testing.T) {
	in := New(t, proxyConfig)
	in.AddAccount("alice@example.test", "pw")
	in.AddAccount("bob@example.test", "pw")

	type row struct {
		auth           bool
		sender, rcpt   string
		mail, rcptWant string // expected reply prefixes; rcptWant "" if MAIL fails
	}
	const (
		local    = "bob@example.test"
		foreign  = "someone@foreign.example"
		own      = "alice@example.test"
		ownAlias = "alice+lists@example.test"
	)
	rows := []row{
		// Not logged in (the MX listener): local recipients only.
		{false, own, local, "250", "250"},
		{false, foreign, local, "250", "250"},
		{false, own, foreign, "250", "554 5.7.1"},
		{false, foreign, foreign, "250", "554 5.7.1"},
		{false, "", foreign, "250", "554 5.7.1"}, // bounce to a foreign domain
		{false, foreign, "someone@EXAMPLE.test.foreign.example", "250", "554 5.7.1"},
		{false, foreign, "bob%foreign.example@example.test", "250", "550 5.1.1"}, // no % hack
		// Logged in as alice on submission: own addresses only; foreign
		// recipients go to the outbound queue.
		{true, own, local, "250", "250"},
		{true, ownAlias, local, "250", "250"},
		{true, own, foreign, "250", "250"},
		{true, local, local, "553 5.7.1", ""}, // bob's address
		{true, foreign, local, "553 5.7.1", ""},
		{true, foreign, foreign, "553 5.7.1", ""},
	}
	for _, proxied := range []bool{false, true} {
		for i, r := range rows {
			name := fmt.Sprintf("auth=%v/from=%s/to=%s/proxy=%v", r.auth, r.sender, r.rcpt, proxied)
			t.Run(name, func(t *testing.T) {
				listener := "mx"
				if r.auth {
					listener = "sub"
				}
				var header []byte
				if proxied {
					listener += "-proxy"
					header = v2Header(t, fmt.Sprintf("203.0.113.%d:%d", i+1, 1000+i))
				}
				c, err := dialSMTP(t, in.Addr(listener), "", header)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if g, err := c.read(); err != nil || !strings.HasPrefix(g, "220 ") {
					t.Fatalf("greeting %q: %v", g, err)
				}
				steps := []func() error{func() error { return c.expect("250", "EHLO client.example.net") }}
				if r.auth {
					steps = append(steps, c.startTLS,
						func() error { return c.expect("250", "EHLO client.example.net") },
						func() error { return c.expect("235", "AUTH PLAIN %s", plain("alice@example.test", "pw")) })
				}
				steps = append(steps, func() error { return c.expect(r.mail, "MAIL FROM:<%s>", r.sender) })
				if r.rcptWant != "" {
					steps = append(steps, func() error { return c.expect(r.rcptWant, "RCPT TO:<%s>", r.rcpt) })
				}
				for _, s := range steps {
					if err := s(); err != nil {
						t.Fatal(err)
					}
				}
				if r.rcptWant == "250" {
					from := "From: " + r.sender + "\r\n"
					if r.sender == "" {
						from = ""
					}
					if err := c.expect("354", "DATA"); err != nil {
						t.Fatal(err)
					}
					if err := c.expect("250", "%sSubject: relay test\r\n\r\nx\r\n.", from); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
	// Submission without logging in refuses the transaction, over PROXY
	// or not.
	for _, l := range []string{"sub", "sub-proxy"} {
		var header []byte
		if l == "sub-proxy" {
			header = v2Header(t, "203.0.113.200:1000")
		}
		c, err := dialSMTP(t, in.Addr(l), "", header)
		if err != nil {
			t.Fatal(err)
		}
		c.read()
		for _, s := range []func() error{
			func() error { return c.expect("250", "EHLO x") },
			c.startTLS,
			func() error { return c.expect("250", "EHLO x") },
			func() error { return c.expect("530 5.7.0", "MAIL FROM:<alice@example.test>") },
			func() error { return c.expect("5", "RCPT TO:<someone@foreign.example>") },
		} {
			if err := s(); err != nil {
				t.Errorf("%s unauthenticated: %v", l, err)
				break
			}
		}
		c.Close()
	}
	// Nothing went anywhere but bob's INBOX.
	if got := len(listMessages(t, in, "bob@example.test", "INBOX")); got != 8 {
		t.Errorf("bob has %d messages, want 8 (4 accepted rows, plain and proxied)", got)
	}
}
