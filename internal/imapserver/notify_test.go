package imapserver

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// expect reads len(want) unsolicited responses (the client sends nothing)
// and matches them like runTranscript's "S:" lines.
func expect(t *testing.T, c *client, vars map[string]string, want ...string) {
	t.Helper()
	var got []string
	for range want {
		got = append(got, c.readLine())
	}
	if !matchLines(t, want, got, vars) {
		t.Fatalf("want:\n  %s\ngot:\n  %s", strings.Join(want, "\n  "), strings.Join(got, "\n  "))
	}
}

// quiet runs NOOP after a pause and fails if anything but its completion
// comes back: what NOTIFY must not send.
func quiet(t *testing.T, c *client) {
	t.Helper()
	time.Sleep(150 * time.Millisecond)
	if u := c.ok("NOOP"); len(u) > 0 {
		t.Fatalf("unexpected responses: %q", u)
	}
}

func (e *testEnv) mkdirs(names ...string) {
	e.t.Helper()
	for _, n := range names {
		if _, err := e.st.CreateMailbox(context.Background(), e.acct.ID, n, "", 0); err != nil {
			e.t.Fatal(err)
		}
	}
}

// The examples of RFC 5465 section 3.1 (with erratum 2318, which puts
// MessageNew and MessageExpunge together and the events in parentheses)
// and the responses of sections 5.2, 5.4 and 5.5.
func TestNotifyRFC5465Examples(t *testing.T) {
	e := newTestEnv(t, nil)
	e.mkdirs("Lists", "Lists/Lemonade", "Lists/Im2000", "misc")
	e.deliver("INBOX", msgSimple)
	e.deliver("Lists/Lemonade", msgSimple)
	e.deliver("Lists/Lemonade", msgSimple)
	e.deliver("misc", msgSimple)
	c := e.login()
	c.ok("ENABLE IMAP4rev2")
	c.ok("SELECT INBOX")
	vars := map[string]string{}
	runTranscript(t, c, vars, `
		C: b notify set status (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))
		S: * STATUS Lists (MESSAGES 0 UIDNEXT 1 UIDVALIDITY $_ UNSEEN 0)
		S: * STATUS Lists/Im2000 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY $_ UNSEEN 0)
		S: * STATUS Lists/Lemonade (MESSAGES 2 UIDNEXT 3 UIDVALIDITY $lem UNSEEN 2)
		S: b OK NOTIFY completed
	`)
	// "Time passes": new mail, no command in progress.
	e.deliver("INBOX", msgSimple)
	expect(t, c, vars, "* 2 EXISTS")
	if l := c.readLine(); !strings.HasPrefix(l, "* 2 FETCH (UID 2 BODY[HEADER.FIELDS (from to subject)] {80}\r\nFrom: Alice") ||
		!strings.HasSuffix(l, "Subject: Hello invoice\r\n\r\n)") {
		t.Fatalf("MessageNew FETCH: %q", l)
	}
	e.deliver("Lists/Lemonade", msgSimple)
	expect(t, c, vars, "* STATUS Lists/Lemonade (MESSAGES 3 UIDNEXT 4 UIDVALIDITY $lem UNSEEN 3)")
	e.deliver("misc", msgSimple) // not watched
	runTranscript(t, c, vars, `
		C: d STATUS misc (UIDVALIDITY UIDNEXT MESSAGES)
		S: * STATUS misc (UIDVALIDITY $misc UIDNEXT 3 MESSAGES 2)
		S: d OK STATUS completed
		C: e notify set (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge)) (mailboxes misc (MessageNew MessageExpunge))
		S: e OK NOTIFY completed
	`)
	e.deliver("misc", msgSimple)
	expect(t, c, vars, "* STATUS misc (MESSAGES 3 UIDNEXT 4 UIDVALIDITY $misc UNSEEN 3)")

	// Section 5.4 (MailboxName) and 5.5 (SubscriptionChange), changes
	// made by another session.
	runTranscript(t, c, vars, `
		C: f NOTIFY SET (personal (MailboxName SubscriptionChange))
		S: f OK NOTIFY completed
	`)
	o := e.login()
	o.ok("CREATE NewMailbox")
	expect(t, c, vars, `* LIST (\HasNoChildren) "/" NewMailbox`)
	o.ok("RENAME NewMailbox OldMailbox/New")
	expect(t, c, vars,
		`* LIST (\HasChildren) "/" OldMailbox`,
		`* LIST (\HasNoChildren) "/" OldMailbox/New ("OLDNAME" (NewMailbox))`)
	o.ok("SUBSCRIBE OldMailbox/New")
	expect(t, c, vars, `* LIST (\HasNoChildren \Subscribed) "/" OldMailbox/New`)
	o.ok("UNSUBSCRIBE OldMailbox/New")
	expect(t, c, vars, `* LIST (\HasNoChildren) "/" OldMailbox/New`)
	o.ok("DELETE OldMailbox/New")
	expect(t, c, vars, `* LIST (\NonExistent) "/" OldMailbox/New`)

	runTranscript(t, c, vars, `
		C: g NOTIFY NONE
		S: g OK NOTIFY completed
	`)
	o.ok("CREATE Quiet")
	e.deliver("misc", msgSimple)
	quiet(t, c)
}

// Refusals: unknown or unsupported events get NO [BADEVENT] with the
// supported ones (RFC 5465 3.1), the event rules of section 5 and 6.1 BAD,
// and NOTIFY needs authentication.
func TestNotifyErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial()
	c.fail("NOTIFY NONE", "BAD")
	c.ok("LOGIN joe@example.org \"" + testPass + "\"")
	u := c.ok("CAPABILITY")
	has(t, u, " NOTIFY")
	const badEvent = "NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange ServerMetadataChange)]"
	c.fail("NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))", badEvent)
	c.fail("NOTIFY SET (inboxes (XSomethingElse))", badEvent)
	for _, cmd := range []string{
		"NOTIFY SET (personal (MessageNew))",
		"NOTIFY SET (personal (FlagChange MessageExpunge))",
		"NOTIFY SET (selected (MailboxName))",
		"NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))",
		"NOTIFY SET",
		"NOTIFY BOGUS",
	} {
		c.fail(cmd, "BAD")
	}
	c.ok("NOTIFY NONE") // without NOTIFY SET before: fine
}

// Two sessions: one with NOTIFY for PERSONAL, the other changes other
// mailboxes. The first learns of everything without polling, between
// commands and in IDLE.
func TestNotifyTwoSessions(t *testing.T) {
	e := newTestEnv(t, nil)
	e.mkdirs("Work")
	a := e.login()
	a.ok("ENABLE CONDSTORE")
	a.ok("NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))")
	vars := map[string]string{}
	b := e.login()

	b.ok(`APPEND Work (\Flagged) {5+}` + "\r\nhello")
	expect(t, a, vars, "* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY $uv UNSEEN 1 HIGHESTMODSEQ $m1)")
	b.ok("SELECT Work")
	b.ok(`STORE 1 +FLAGS (\Seen)`)
	expect(t, a, vars, "* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY $uv UNSEEN 0 HIGHESTMODSEQ $m2)")
	b.ok(`STORE 1 +FLAGS (\Deleted)`)
	expect(t, a, vars, "* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY $uv UNSEEN 0 HIGHESTMODSEQ $m3)")
	b.ok("EXPUNGE")
	expect(t, a, vars, "* STATUS Work (MESSAGES 0 UIDNEXT 2 UIDVALIDITY $uv UNSEEN 0 HIGHESTMODSEQ $m4)")
	b.ok("CLOSE")

	// While idle in IDLE.
	a.write("i1 IDLE\r\n")
	expect(t, a, vars, "+ idling")
	e.deliver("INBOX", msgSimple) // SMTP delivery
	expect(t, a, vars, "* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY $_ UNSEEN 1 HIGHESTMODSEQ $_)")
	b.ok("CREATE Work/2024")
	expect(t, a, vars, `* LIST (\HasNoChildren) "/" Work/2024`)
	b.ok("SUBSCRIBE Work")
	expect(t, a, vars, `* LIST (\HasChildren \Subscribed) "/" Work`)
	a.write("DONE\r\n")
	expect(t, a, vars, "i1 OK IDLE completed")

	// Not idle, just connected: a rename and a delete.
	b.ok("RENAME Work/2024 Old2024")
	expect(t, a, vars, `* LIST (\HasNoChildren) "/" Old2024 ("OLDNAME" (Work/2024))`)
	b.ok("DELETE Old2024")
	expect(t, a, vars, `* LIST (\NonExistent) "/" Old2024`)

	// The session's own changes to mailboxes without message events and
	// a command in between: events come before the tagged response.
	a.ok("NOTIFY SET (mailboxes Work (MessageNew MessageExpunge))")
	e.deliver("INBOX", msgSimple)
	quiet(t, a)
	e.deliver("Work", msgSimple)
	u := a.ok("NOOP")
	if len(u) == 0 {
		u = []string{a.readLine()} // pushed before the NOOP was read
	}
	has(t, u, "* STATUS Work (MESSAGES 1 UIDNEXT 3 ")
}

// NOTIFY for the selected mailbox: SELECTED reports at once, including
// expunges and (with FlagChange) flag changes; SELECTED-DELAYED holds
// expunges until a command or IDLE.
func TestNotifySelected(t *testing.T) {
	e := newTestEnv(t, nil)
	d1 := e.deliver("INBOX", msgSimple)
	a := e.login()
	a.ok("ENABLE IMAP4rev2")
	a.ok("SELECT INBOX")
	vars := map[string]string{}
	a.ok("NOTIFY SET (selected (MessageNew (FLAGS) MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge))")
	b := e.login()
	b.ok("SELECT INBOX")

	e.deliver("INBOX", msgSimple)
	expect(t, a, vars, "* 2 EXISTS", "* 2 FETCH (UID 2 FLAGS ())")
	b.ok("NOOP") // b learns of UID 2
	b.ok(`UID STORE 2 +FLAGS.SILENT (\Flagged)`)
	expect(t, a, vars, `* 2 FETCH (FLAGS (\Flagged) UID 2)`)
	b.ok(`UID STORE 1 +FLAGS.SILENT (\Deleted)`)
	expect(t, a, vars, `* 1 FETCH (FLAGS (\Deleted) UID 1)`)
	b.ok("EXPUNGE")
	expect(t, a, vars, "* 1 EXPUNGE")
	// No STATUS for the selected mailbox, though PERSONAL covers it.
	quiet(t, a)
	_ = d1

	// Without FlagChange, flag changes wait for a command.
	a.ok("NOTIFY SET (selected (MessageNew MessageExpunge))")
	b.ok(`UID STORE 2 -FLAGS.SILENT (\Flagged)`)
	time.Sleep(150 * time.Millisecond)
	u := a.ok("NOOP")
	if len(u) != 1 || u[0] != "* 1 FETCH (FLAGS () UID 2)" {
		t.Fatalf("NOOP: %q", u)
	}

	// SELECTED-DELAYED: new messages at once, expunges at the next
	// command.
	a.ok("NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
	e.deliver("INBOX", msgSimple)
	expect(t, a, vars, "* 2 EXISTS")
	b.ok("NOOP")
	b.ok(`UID STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	time.Sleep(150 * time.Millisecond)
	// Message 2 still has its number: nothing was pushed, and FETCH may
	// not report expunges (RFC 9051 7.5.1).
	u = a.ok("FETCH 2 (UID)")
	if len(u) != 1 || u[0] != "* 2 FETCH (UID 3)" {
		t.Fatalf("FETCH: %q", u)
	}
	u = a.ok("NOOP")
	if len(u) != 1 || u[0] != "* 1 EXPUNGE" {
		t.Fatalf("NOOP: %q", u)
	}
	// In IDLE, expunges are allowed: SELECTED-DELAYED sends them.
	a.write("i1 IDLE\r\n")
	expect(t, a, vars, "+ idling")
	b.ok("NOOP")
	b.ok(`UID STORE 3 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	expect(t, a, vars, "* 1 EXPUNGE")
	a.write("DONE\r\n")
	expect(t, a, vars, "i1 OK IDLE completed")

	// Without a SELECTED group, IDLE reports nothing of the selected
	// mailbox (RFC 5465 section 4); the next command does.
	a.ok("NOTIFY SET (personal (MailboxName))")
	a.write("i2 IDLE\r\n")
	expect(t, a, vars, "+ idling")
	e.deliver("INBOX", msgSimple)
	b.ok("CREATE Other")
	expect(t, a, vars, `* LIST (\HasNoChildren) "/" Other`)
	a.write("DONE\r\n")
	expect(t, a, vars, "* 1 EXISTS", "i2 OK IDLE completed")
}

// A scan with more events than the queue holds ends NOTIFY with an
// untagged OK [NOTIFICATIONOVERFLOW] (RFC 5465 5.8).
func TestNotifyOverflowBurst(t *testing.T) {
	notifyQueueLimit.Store(2)
	t.Cleanup(func() { notifyQueueLimit.Store(notifyQueueMax) })
	e := newTestEnv(t, nil)
	e.mkdirs("P", "P/a", "P/b", "P/c")
	a := e.login()
	a.ok("NOTIFY SET (personal (MailboxName))")
	b := e.login()
	b.ok("CREATE Q")
	expect(t, a, nil, `* LIST (\HasNoChildren) "/" Q`)
	b.ok("RENAME P R") // four renames at once
	expect(t, a, nil, "* OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off")
	b.ok("CREATE S")
	quiet(t, a)
	// NOTIFY works again once set again.
	a.ok("NOTIFY SET (personal (MailboxName))")
	b.ok("DELETE S")
	expect(t, a, nil, `* LIST (\NonExistent) "/" S`)
}

// pipeConn is one end of a net.Pipe that says it comes from loopback,
// which testAuth wants.
type pipeConn struct{ net.Conn }

func (pipeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// A client that does not read while events keep coming falls behind: the
// bounded queue overflows and NOTIFY ends. net.Pipe has no buffer, so the
// server's first report blocks until the client reads.
func TestNotifyOverflowSlowClient(t *testing.T) {
	notifyQueueLimit.Store(3)
	over := make(chan struct{}, 1)
	f := func(overflow bool) {
		if overflow {
			select {
			case over <- struct{}{}:
			default:
			}
		}
	}
	notifyQueued.Store(&f)
	t.Cleanup(func() {
		notifyQueueLimit.Store(notifyQueueMax)
		notifyQueued.Store(nil)
	})
	e := newTestEnv(t, nil)
	cs, ss := net.Pipe()
	t.Cleanup(func() { cs.Close() })
	go e.srv.ServeConn(pipeConn{ss})
	a := &client{t: t, conn: cs, br: bufio.NewReader(cs)}
	if g := a.readLine(); !strings.HasPrefix(g, "* OK ") {
		t.Fatalf("greeting %q", g)
	}
	a.ok("LOGIN joe@example.org \"" + testPass + "\"")
	a.ok("NOTIFY SET (personal (MailboxName))")
	b := e.login()
	for i := range 10 {
		b.ok("CREATE m" + string(rune('0'+i)))
	}
	select {
	case <-over:
	case <-time.After(10 * time.Second):
		t.Fatal("no overflow")
	}
	var lists int
	for {
		l := a.readLine()
		if l == "* OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off" {
			break
		}
		if !strings.HasPrefix(l, `* LIST (\HasNoChildren) "/" m`) {
			t.Fatalf("unexpected %q", l)
		}
		lists++
	}
	if lists > 6 {
		t.Fatalf("%d LIST responses before the overflow", lists)
	}
	b.ok("CREATE later")
	quiet(t, a)
}

// The selected mailbox deleted by another session: with SELECTED the
// session learns at once, with BYE, as after a command.
func TestNotifySelectedDeleted(t *testing.T) {
	e := newTestEnv(t, nil)
	e.mkdirs("Doomed")
	a := e.login()
	a.ok("SELECT Doomed")
	a.ok("NOTIFY SET (selected (MessageNew MessageExpunge))")
	e.login().ok("DELETE Doomed")
	expect(t, a, nil, "* BYE Selected mailbox was deleted")
}

// TestNotifyPythonImaplib: NOTIFY through Python's imaplib, reading the
// pushed responses without sending commands.
func TestNotifyPythonImaplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required in CI")
		}
		t.Skip("python3 not installed")
	}
	e := newTestEnv(t, nil)
	host, port, _ := net.SplitHostPort(e.addr)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/notify_session.py", host, port, "joe@example.org", testPass).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("imaplib session: %v\n%s", err, out)
	}
}

// MailboxMetadataChange and ServerMetadataChange (RFC 5465 5.6, 5.7):
// unsolicited METADATA with the names of the changed entries, not for the
// session's own SETMETADATA.
func TestNotifyMetadata(t *testing.T) {
	e := newTestEnv(t, nil)
	e.mkdirs("Work")
	a := e.login()
	a.ok("NOTIFY SET (mailboxes Work NONE) (personal (MailboxMetadataChange ServerMetadataChange))")
	b := e.login()
	b.ok(`SETMETADATA INBOX (/private/comment "x" /shared/comment "y")`)
	expect(t, a, nil, "* METADATA INBOX /private/comment /shared/comment")
	b.ok(`SETMETADATA "" (/private/vendor/x/theme "dark")`)
	expect(t, a, nil, `* METADATA "" /private/vendor/x/theme`)
	b.ok(`SETMETADATA INBOX (/private/comment NIL)`)
	expect(t, a, nil, "* METADATA INBOX /private/comment")
	b.ok(`SETMETADATA Work (/private/comment "z")`) // excluded by the first group
	a.ok(`SETMETADATA INBOX (/private/comment "own")`)
	quiet(t, a)
	a.ok("NOTIFY NONE")
	b.ok(`SETMETADATA INBOX (/private/comment "later")`)
	quiet(t, a)
}
