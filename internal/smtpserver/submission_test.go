package smtpserver

import (
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/account"
)

func TestSubmissionNoAuthBeforeTLS(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission})
	c := dial(t, e.addr)
	caps := c.ehlo()
	if _, ok := caps["AUTH"]; ok {
		t.Errorf("AUTH advertised before STARTTLS: %v", caps)
	}
	if _, ok := caps["STARTTLS"]; !ok {
		t.Errorf("STARTTLS not advertised: %v", caps)
	}
	// Correct credentials, sent in the clear: refused without reading
	// them.
	c.expect("523 5.7.10", "AUTH PLAIN %s", plainIR("", "alice@example.org", testPassword))
	c.expect("523 5.7.10", "AUTH LOGIN")
	c.expect("530 5.7.0", "MAIL FROM:<alice@example.org>")
	c.expect("502", "RCPT TO:<bob@example.org>")
	c.expect("502", "DATA")
	if n := e.authAttempts(); n != 0 {
		t.Errorf("%v authentication attempts made before TLS", n)
	}
	if got, _ := e.inbox("bob@example.org"); len(got) != 0 {
		t.Fatal("message delivered without authentication")
	}
	// After STARTTLS but before AUTH, MAIL is still refused.
	c.startTLS()
	c.ehlo()
	c.expect("530 5.7.0", "MAIL FROM:<alice@example.org>")
}

func TestSubmissionAuth(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission})
	// steps alternate: a line to send and the reply it must get.
	tests := []struct {
		name  string
		steps []string
		ok    bool
	}{
		{"PLAIN with initial response", []string{"AUTH PLAIN " + plainIR("", "alice@example.org", testPassword), "235"}, true},
		{"PLAIN lower case", []string{"auth plain " + plainIR("", "alice@example.org", testPassword), "235"}, true},
		{"PLAIN without initial response", []string{"AUTH PLAIN", "334 ", plainIR("", "alice@example.org", testPassword), "235"}, true},
		{"PLAIN authzid equal to user", []string{"AUTH PLAIN " + plainIR("alice@example.org", "alice@example.org", testPassword), "235"}, true},
		{"PLAIN user in other case", []string{"AUTH PLAIN " + plainIR("", "ALICE@Example.org", testPassword), "235"}, true},
		{"LOGIN without initial response", []string{"AUTH LOGIN", "334 VXNlcm5hbWU6", b64("alice@example.org"), "334 UGFzc3dvcmQ6", b64(testPassword), "235"}, true},
		{"LOGIN with initial response", []string{"AUTH LOGIN " + b64("alice@example.org"), "334 UGFzc3dvcmQ6", b64(testPassword), "235"}, true},
		{"PLAIN wrong password", []string{"AUTH PLAIN " + plainIR("", "alice@example.org", "wrong"), "535 5.7.8"}, false},
		{"PLAIN unknown user", []string{"AUTH PLAIN " + plainIR("", "nobody@example.org", testPassword), "535 5.7.8"}, false},
		{"PLAIN authzid of someone else", []string{"AUTH PLAIN " + plainIR("bob@example.org", "alice@example.org", testPassword), "535 5.7.8"}, false},
		{"PLAIN empty password", []string{"AUTH PLAIN " + plainIR("", "alice@example.org", ""), "535 5.7.8"}, false},
		{"LOGIN wrong password", []string{"AUTH LOGIN", "334 ", b64("alice@example.org"), "334 ", b64("wrong"), "535 5.7.8"}, false},
		{"LOGIN cancelled", []string{"AUTH LOGIN", "334 ", "*", "501"}, false},
		{"bad base64", []string{"AUTH PLAIN !!!notbase64", "454"}, false},
		{"unknown mechanism", []string{"AUTH CRAM-MD5", "504 5.7.4"}, false},
	}
	// argon2id verification is slow under -race: run the cases in
	// parallel, inside a group so the check below runs after all of them.
	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				c := dial(t, e.addr)
				c.ehlo()
				c.startTLS()
				if got := c.ehlo()["AUTH"]; got != "PLAIN LOGIN" {
					t.Errorf("AUTH after STARTTLS = %q, want PLAIN LOGIN", got)
				}
				for i := 0; i < len(tt.steps); i += 2 {
					c.expect(tt.steps[i+1], "%s", tt.steps[i])
				}
				if !tt.ok {
					c.expect("530 5.7.0", "MAIL FROM:<alice@example.org>")
					return
				}
				c.expect("503", "AUTH PLAIN %s", plainIR("", "alice@example.org", testPassword))
				c.expect("250", "MAIL FROM:<alice@example.org>")
				c.expect("250", "RCPT TO:<bob@example.org>")
				msg := "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: " + tt.name + "\r\n\r\nhi\r\n"
				if r := c.data(msg); r.code != 250 {
					t.Fatalf("DATA: %v", r)
				}
				if !e.hasSubject("bob@example.org", tt.name) {
					t.Fatal("submitted message not in bob's INBOX")
				}
			})
		}
	})
	contents, _ := e.inbox("bob@example.org")
	okCases := 0
	for _, tt := range tests {
		if tt.ok {
			okCases++
		}
	}
	if len(contents) != okCases {
		t.Errorf("bob has %d messages, want one per successful case (%d)", len(contents), okCases)
	}
	for _, m := range contents {
		if !strings.Contains(m, "(mailstead) with ESMTPSA id ") {
			t.Errorf("submitted message lacks ESMTPSA Received:\n%.400q", m)
		}
	}
}

// TestSubmissionNetSMTP is the happy path with the standard library's
// client: STARTTLS, AUTH PLAIN, local delivery.
func TestSubmissionNetSMTP(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission})
	c, err := smtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH advertised before TLS")
	}
	if err := c.StartTLS(clientTLS()); err != nil {
		t.Fatal(err)
	}
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "LOGIN") {
		t.Fatalf("AUTH after TLS: %v %q", ok, mechs)
	}
	if err := c.Auth(smtp.PlainAuth("", "alice@example.org", testPassword, "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := sendOne(c, "alice+sent@example.org", "jörg@example.org", "Subject: via net/smtp\r\n\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	if !e.hasSubject("jörg@example.org", "via net/smtp") {
		t.Fatal("not delivered")
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func TestSubmissionFailureLimit(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission, auth: account.AuthOptions{MaxFailuresPerIP: 3}})
	c := dial(t, e.addr)
	c.ehlo()
	c.startTLS()
	c.ehlo()
	for range 3 {
		c.expect("535 5.7.8", "AUTH PLAIN %s", plainIR("", "alice@example.org", "guess"))
	}
	// The IP is now refused, even with the right password, on this
	// connection and on a new one.
	c.expect("454 4.7.0", "AUTH PLAIN %s", plainIR("", "alice@example.org", testPassword))
	c.expect("530", "MAIL FROM:<alice@example.org>")
	c2 := dial(t, e.addr)
	c2.ehlo()
	c2.startTLS()
	c2.ehlo()
	c2.expect("334 UGFzc3dvcmQ6", "AUTH LOGIN %s", b64("bob@example.org"))
	c2.expect("454 4.7.0", "%s", b64(testPassword))
}

func TestSubmissionSenderPolicy(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission})
	c := dial(t, e.addr)
	c.ehlo()
	c.startTLS()
	c.ehlo()
	c.expect("235", "AUTH PLAIN %s", plainIR("", "alice@example.org", testPassword))
	for _, tt := range []struct {
		from, want string
	}{
		{"bob@example.org", "553 5.7.1"},
		{"alice@other.example", "553 5.7.1"},
		{"alicex@example.org", "553 5.7.1"},
		{"bob+alice@example.org", "553 5.7.1"},
		{"", "553 5.7.1"}, // null sender
		{"bad..addr@example.org", "553 5.1.7"},
		{"alice@example.org", "250"},
		{"ALICE@Example.ORG", "250"},
		{"alice+lists@example.org", "250"},
	} {
		c.expect(tt.want, "MAIL FROM:<%s>", tt.from)
		c.expect("250", "RSET")
	}
	c.expect("250", "MAIL FROM:<alice@example.org>")
	c.expect("554 5.3.3", "RCPT TO:<friend@foreign.example>")
	c.expect("550 5.1.1", "RCPT TO:<nobody@example.org>")
	c.expect("250", "RCPT TO:<bob@example.org>")
	// A complete header is stored as sent (nothing added).
	policyMsg := "From: Alice <alice@example.org>\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <policy@example.org>\r\nSubject: policy\r\n\r\nok\r\n"
	if r := c.data(policyMsg); r.code != 250 {
		t.Fatalf("DATA: %v", r)
	}
	contents, _ := e.inbox("bob@example.org")
	if len(contents) != 1 {
		t.Fatalf("bob has %d messages", len(contents))
	}
	checkStored(t, contents[0], "alice@example.org", "bob@example.org",
		receivedRe("ESMTPSA", ` \(using TLS 1\.[23] with cipher [A-Z0-9_]+\)`, `\r\n\tfor <bob@example\.org>`), policyMsg)
}

func TestSubmissionImplicitTLS(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission, config: func(c *Config) { c.ImplicitTLS = true }})

	// A plaintext client gets no greeting and is dropped when its bytes
	// fail the handshake; the server keeps serving.
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := newClient(t, raw)
	rc.write("EHLO client.example\r\n")
	if got, err := rc.waitClosed(5 * time.Second); err != nil || strings.Contains(got, "220") {
		t.Fatalf("plaintext on implicit TLS: got %q, %v", got, err)
	}

	c := dialTLS(t, e.addr)
	caps := c.ehlo()
	if _, ok := caps["STARTTLS"]; ok {
		t.Error("STARTTLS advertised inside implicit TLS")
	}
	if caps["AUTH"] != "PLAIN LOGIN" {
		t.Errorf("AUTH = %q", caps["AUTH"])
	}
	c.expect("334 UGFzc3dvcmQ6", "AUTH LOGIN %s", b64("bob@example.org"))
	c.expect("235", "%s", b64(testPassword))
	c.expect("250", "MAIL FROM:<bob@example.org>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	msg := "From: bob@example.org\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <implicit@example.org>\r\nSubject: implicit\r\n\r\nhi\r\n"
	if r := c.data(msg); r.code != 250 {
		t.Fatalf("DATA: %v", r)
	}
	contents, _ := e.inbox("alice@example.org")
	if len(contents) != 1 {
		t.Fatalf("alice has %d messages", len(contents))
	}
	checkStored(t, contents[0], "bob@example.org", "alice@example.org",
		receivedRe("ESMTPSA", ` \(using TLS 1\.[23] with cipher [A-Z0-9_]+\)`, `\r\n\tfor <alice@example\.org>`), msg)
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	for name, cfg := range map[string]Config{
		"no deliverer":              {Role: RoleMX},
		"submission without auth":   {Role: RoleSubmission, Deliverer: e.deliv},
		"implicit TLS without cert": {Role: RoleMX, Deliverer: e.deliv, ImplicitTLS: true},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
