package imapserver

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// Two sessions on one mailbox see each other's flag changes and expunges,
// at the moments RFC 9051 allows.
func TestConcurrentSessions(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)
	e.deliver("INBOX", msgMultipart)
	e.deliver("INBOX", msgSimple)
	a, b := e.login(), e.login()
	a.ok("ENABLE IMAP4rev2")
	has(t, a.ok("SELECT INBOX"), "* 3 EXISTS")
	has(t, b.ok("SELECT INBOX"), "* 3 EXISTS")

	// A flags message 1; B learns it on its next command.
	u := a.ok(`STORE 1 +FLAGS (\Flagged)`)
	has(t, u, `* 1 FETCH (FLAGS (\Flagged))`)
	u = a.ok("NOOP")
	hasNot(t, u, "FETCH") // our own change is not repeated
	u = b.ok("NOOP")
	// B is an IMAP4rev1 session and the only one to claim \Recent (A
	// enabled IMAP4rev2, which has no \Recent).
	has(t, u, `* 1 FETCH (FLAGS (\Flagged \Recent) UID 1)`)
	u = b.ok("NOOP")
	hasNot(t, u, "FETCH")

	// B changes keywords silently; A sees them.
	b.ok(`UID STORE 1 +FLAGS.SILENT ($Processed)`)
	u = a.ok("CHECK")
	has(t, u, `* 1 FETCH (FLAGS (\Flagged $Processed) UID 1)`)

	// A expunges message 2.
	a.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	u = a.ok("EXPUNGE")
	has(t, u, "* 2 EXPUNGE")

	// B is in the middle of FETCH: no EXPUNGE may be sent, and the
	// vanished message is reported as such.
	u, d := b.run("FETCH 1:3 (UID)")
	hasNot(t, u, "EXPUNGE")
	has(t, u, "* 1 FETCH (UID 1)")
	has(t, u, "* 3 FETCH (UID 3)")
	if !strings.HasPrefix(d, "NO [EXPUNGEISSUED]") {
		t.Fatalf("fetch of expunged message: %s", d)
	}
	u = b.ok("STORE 3 +FLAGS.SILENT (\\Seen)")
	hasNot(t, u, "EXPUNGE")
	u = b.ok("SEARCH ALL")
	hasNot(t, u, "EXPUNGE")
	has(t, u, "* SEARCH 1 3")
	// A UID command may report it.
	u = b.ok("UID SEARCH ALL")
	has(t, u, "* 2 EXPUNGE")
	has(t, u, "* SEARCH 1 3")
	// The flag change of message 3 by B itself is not echoed, and A
	// learns about it with the new sequence number.
	u = a.ok("NOOP")
	has(t, u, `* 2 FETCH (FLAGS (\Seen) UID 3)`)

	// A new delivery reaches both.
	e.deliver("INBOX", msgSimple)
	u = a.ok("NOOP")
	has(t, u, "* 3 EXISTS")
	u = b.ok("NOOP")
	has(t, u, "* 3 EXISTS")
	has(t, u, "* 3 RECENT") // B claimed all at SELECT and the new one now

	// MOVE by A: B sees the expunge after its next NOOP.
	has(t, a.ok("UID MOVE 1 Archive"), "* 1 EXPUNGE")
	has(t, b.ok("NOOP"), "* 1 EXPUNGE")
	has(t, b.ok("FETCH 1:* (UID)"), "* 2 FETCH (UID 4)")
}

func TestIdleSeesDelivery(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.login()
	other := e.login()
	c.ok("SELECT INBOX")
	other.ok("SELECT INBOX")
	c.write("i1 IDLE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	e.deliver("INBOX", msgSimple)
	// IDLE has no polling: an EXISTS that arrives at all (readLine waits
	// up to 10s) was pushed by the delivery. Its latency depends on the
	// machine and is not asserted.
	if l := c.readLine(); l != "* 1 EXISTS" {
		t.Fatalf("got %q", l)
	}
	if l := c.readLine(); l != "* 1 RECENT" {
		t.Fatalf("got %q", l)
	}
	// A flag change by another session is pushed too.
	other.ok("NOOP")
	other.ok(`STORE 1 +FLAGS.SILENT (\Answered)`)
	if l := c.readLine(); l != `* 1 FETCH (FLAGS (\Answered \Recent) UID 1)` {
		t.Fatalf("got %q", l)
	}
	// And an expunge.
	other.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	other.ok("EXPUNGE")
	for {
		l := c.readLine()
		if l == "* 1 EXPUNGE" {
			break
		}
		if !strings.Contains(l, "FETCH") {
			t.Fatalf("got %q", l)
		}
	}
	c.write("DONE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "i1 OK") {
		t.Fatalf("got %q", l)
	}
	// IDLE without a selected mailbox works too.
	c.ok("UNSELECT")
	c.write("i2 IDLE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	c.write("done\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "i2 OK") {
		t.Fatalf("got %q", l)
	}
}

// Shutdown says BYE to idle sessions and sessions waiting for a command.
func TestShutdownBye(t *testing.T) {
	e := newTestEnv(t, nil)
	idle := e.login()
	idle.ok("SELECT INBOX")
	idle.write("i IDLE\r\n")
	idle.readLine()
	waiting := e.login()
	done := make(chan error, 1)
	go func() {
		done <- e.srv.Shutdown(t.Context())
	}()
	if l := idle.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Errorf("idle session got %q", l)
	}
	if l := waiting.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Errorf("waiting session got %q", l)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The command sequence of paperless-ngx's mail consumer (imap_tools),
// moving processed mail from INBOX to Processed.
func TestPaperlessSequence(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)
	e.deliver("INBOX", msgMultipart)
	e.deliver("INBOX", msgSimple)
	c := e.login()
	c.ok("CREATE Processed")
	c.ok("CAPABILITY")
	// The MOVE target is selected first to prove it exists.
	c.ok("SELECT Processed")
	u := c.ok("STATUS INBOX (UIDVALIDITY)")
	m := regexp.MustCompile(`\* STATUS INBOX \(UIDVALIDITY (\d+)\)`).FindStringSubmatch(strings.Join(u, "\n"))
	if m == nil {
		t.Fatalf("STATUS: %q", u)
	}
	c.ok("SELECT INBOX")
	u = c.ok(`UID SEARCH CHARSET UTF-8 SUBJECT "invoice" SINCE 1-Jan-2024`)
	has(t, u, "* SEARCH 1 3")
	u = c.ok(`UID SEARCH CHARSET UTF-8 UNKEYWORD $Paperless UNFLAGGED`)
	has(t, u, "* SEARCH 1 2 3")
	u = c.ok("UID FETCH 1,3 (BODY.PEEK[] UID FLAGS RFC822.SIZE)")
	re := regexp.MustCompile(`^\* (\d) FETCH \(BODY\[\] \{(\d+)\}\r\n(?s:.*) UID (\d) FLAGS \(\\Recent\) RFC822.SIZE (\d+)\)$`)
	for i, l := range u {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("fetch response %d: %q", i, l)
		}
		if m[2] != m[4] {
			t.Errorf("literal size %s != RFC822.SIZE %s", m[2], m[4])
		}
		if !strings.Contains(l, "Return-Path: <sender@example.com>\r\n") || !strings.Contains(l, "Hello Joe") {
			t.Errorf("body missing: %q", l)
		}
	}
	// PEEK left them unseen.
	has(t, c.ok("UID SEARCH UNSEEN"), "* SEARCH 1 2 3")
	u = c.ok(`UID STORE 1 +FLAGS (\Seen $Paperless)`)
	has(t, u, `* 1 FETCH (FLAGS (\Seen $Paperless \Recent) UID 1)`)
	u = c.ok("UID MOVE 3 Processed")
	has(t, u, " 3 1] Moved")
	has(t, u, "* 3 EXPUNGE")
	mv := regexp.MustCompile(`COPYUID (\d+) `).FindStringSubmatch(u[0])
	u = c.ok("STATUS Processed (MESSAGES UIDVALIDITY UIDNEXT)")
	has(t, u, "(MESSAGES 1 UIDVALIDITY "+mv[1]+" UIDNEXT 2)")
	has(t, c.ok("UID SEARCH ALL"), "* SEARCH 1 2")
	c.ok("LOGOUT")
}

func TestRecentAndMailboxLifecycle(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)
	e.deliver("INBOX", msgSimple)
	a, b := e.login(), e.login()
	// The first read-write session claims \Recent, the next one gets none.
	has(t, a.ok("SELECT INBOX"), "* 2 RECENT")
	has(t, b.ok("SELECT INBOX"), "* 0 RECENT")
	has(t, a.ok("SEARCH RECENT"), "* SEARCH 1 2")
	if u := b.ok("SEARCH RECENT"); len(u) != 1 || u[0] != "* SEARCH" {
		t.Fatalf("SEARCH RECENT in second session: %q", u)
	}
	// EXAMINE does not claim.
	e.deliver("INBOX", msgSimple)
	c := e.login()
	has(t, c.ok("EXAMINE INBOX"), "* 0 RECENT")
	has(t, b.ok("NOOP"), "* 1 RECENT")
	has(t, a.ok("NOOP"), "* 2 RECENT")

	// RENAME INBOX moves its messages and leaves INBOX empty; the
	// selected session is told about the expunges.
	u := a.ok("RENAME INBOX Old")
	has(t, u, "* 3 EXPUNGE")
	has(t, a.ok("STATUS Old (MESSAGES)"), "(MESSAGES 3)")
	has(t, a.ok("STATUS INBOX (MESSAGES)"), "(MESSAGES 0)")
	has(t, b.ok("NOOP"), "* 1 EXPUNGE")

	// Deleting the mailbox another session has selected ends that
	// session; deleting one's own selected mailbox just closes it.
	b.ok("SELECT Old")
	a.ok("DELETE Old")
	b.write("x NOOP\r\n")
	if l := b.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("got %q", l)
	}
	a.ok("CREATE Tmp")
	a.ok("SELECT Tmp")
	a.ok("DELETE Tmp")
	a.fail("FETCH 1 FLAGS", "BAD")
}

func TestStartTLSPipelining(t *testing.T) {
	tlsCfg := testTLSConfig(t)
	e := newTestEnv(t, func(c *Config) { c.TLSConfig = tlsCfg })
	c := e.dial()
	// A command pipelined after STARTTLS would be injected into the TLS
	// session by a man in the middle: refused.
	c.write("a STARTTLS\r\nb LOGIN joe@example.org x\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "a BAD") {
		t.Fatalf("got %q", l)
	}
	if l := c.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("got %q", l)
	}
}

func TestIdleTimeout(t *testing.T) {
	// The timeout also runs between the greeting and LOGIN and between
	// LOGIN and IDLE: long enough that a busy machine cannot make the
	// client miss those. The BYEs can only come from the timeout (the
	// clients send nothing more, and readLine waits up to 10s).
	const timeout = 2 * time.Second
	e := newTestEnv(t, func(c *Config) { c.IdleTimeout = timeout })
	// Each clock starts before the client's last command is sent, so
	// before the server's timer for the wait that follows.
	start := time.Now()
	c := e.login()
	if l := c.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("got %q", l)
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("autologout after %v, before the %v timeout", d, timeout)
	}
	c2 := e.login()
	start = time.Now()
	c2.write("i IDLE\r\n")
	c2.readLine()
	if l := c2.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("got %q", l)
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("autologout in IDLE after %v, before the %v timeout", d, timeout)
	}
}
