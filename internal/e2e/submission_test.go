package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestSubmissionWithSwaks drives the submission listeners with swaks, as
// an admin checking a new server would: AUTH is not offered before TLS,
// works after STARTTLS and on implicit TLS, wrong passwords fail, and a
// user cannot send as someone else.
func TestSubmissionWithSwaks(t *testing.T) {
	swaks := Need(t, "swaks")
	in := New(t, "")
	in.AddAccount("alice@example.test", "alice-pw")
	in.AddAccount("bob@example.test", "bob-pw")
	run := func(args ...string) string {
		t.Helper()
		out, _ := Run(t, time.Minute, "", swaks, args...)
		return out
	}
	base := []string{"--to", "bob@example.test", "--header", "Subject: via submission"}

	// No TLS: AUTH is not advertised, and forcing it is refused.
	out := run(append([]string{"--server", in.Addr("submission"), "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "alice-pw", "--from", "alice@example.test"}, base...)...)
	if !strings.Contains(out, "Host did not advertise authentication") && !strings.Contains(out, "523") {
		t.Fatalf("AUTH before TLS:\n%s", out)
	}
	// STARTTLS + AUTH LOGIN (what Outlook uses).
	out = run(append([]string{"--server", in.Addr("submission"), "-tls", "--auth", "LOGIN", "--auth-user", "alice@example.test", "--auth-password", "alice-pw", "--from", "alice@example.test"}, base...)...)
	if !strings.Contains(out, "235 2.0.0") || !strings.Contains(out, "250 2.0.0") {
		t.Fatalf("STARTTLS + AUTH LOGIN:\n%s", out)
	}
	// Implicit TLS + AUTH PLAIN.
	out = run(append([]string{"--server", in.Addr("submissions"), "-tlsc", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "alice-pw", "--from", "alice@example.test"}, base...)...)
	if !strings.Contains(out, "235 2.0.0") || !strings.Contains(out, "250 2.0.0") {
		t.Fatalf("implicit TLS + AUTH PLAIN:\n%s", out)
	}
	// Wrong password.
	out = run(append([]string{"--server", in.Addr("submission"), "-tls", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "wrong", "--from", "alice@example.test"}, base...)...)
	if !strings.Contains(out, "535 5.7.8") {
		t.Fatalf("wrong password:\n%s", out)
	}
	// Sending as bob while logged in as alice.
	out = run(append([]string{"--server", in.Addr("submission"), "-tls", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "alice-pw", "--from", "bob@example.test"}, base...)...)
	if !strings.Contains(out, "553 5.7.1") {
		t.Fatalf("sending as someone else:\n%s", out)
	}
	// Header From of someone else, envelope our own.
	out = run(append([]string{"--server", in.Addr("submission"), "-tls", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "alice-pw", "--from", "alice@example.test", "--h-From", "bob@example.test"}, base...)...)
	if !strings.Contains(out, "553 5.7.1") {
		t.Fatalf("header From of someone else:\n%s", out)
	}
	ms := listMessages(t, in, "bob@example.test", "INBOX")
	if len(ms) != 2 {
		t.Fatalf("bob has %d messages, want the 2 accepted ones", len(ms))
	}
	raw := in.MustCLI("", "message", "cat", "bob@example.test", "INBOX", "1")
	for _, want := range []string{"with esmtpsa", "message-id: <", "date: "} {
		if !strings.Contains(strings.ToLower(raw), want) {
			t.Errorf("submitted message lacks %q:\n%s", want, raw)
		}
	}
}
