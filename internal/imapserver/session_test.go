package imapserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestScriptedSession(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)
	e.deliver("INBOX", msgMultipart)
	c := e.dial()

	u := c.ok("CAPABILITY")
	has(t, u, "AUTH=PLAIN")
	hasNot(t, u, "LOGINDISABLED")
	c.fail("SELECT INBOX", "BAD")
	c.fail("LOGIN joe@example.org wrong", "NO [AUTHENTICATIONFAILED]")
	_, d := c.run("LOGIN joe@example.org " + `"` + testPass + `"`)
	if !strings.HasPrefix(d, "OK [CAPABILITY IMAP4rev2") || !strings.Contains(d, "UIDPLUS") {
		t.Fatalf("login: %s", d)
	}
	u = c.ok("ID (\"name\" \"test\")")
	has(t, u, `* ID ("name" "mailstead"`)
	u = c.ok("NAMESPACE")
	has(t, u, `* NAMESPACE (("" "/")) NIL NIL`)

	// LIST with special-use, children and status.
	c.ok("CREATE Archive/2024")
	u = c.ok(`LIST "" *`)
	has(t, u, `* LIST (\HasNoChildren) "/" INBOX`)
	has(t, u, `* LIST (\HasChildren \Archive) "/" Archive`)
	has(t, u, `* LIST (\HasNoChildren \Sent) "/" Sent`)
	has(t, u, `* LIST (\HasNoChildren) "/" Archive/2024`)
	u = c.ok(`LIST "" %`)
	hasNot(t, u, "Archive/2024")
	u = c.ok(`LIST (SPECIAL-USE) "" *`)
	hasNot(t, u, "INBOX")
	has(t, u, `\Trash`)
	u = c.ok(`LIST "" "inbox" RETURN (STATUS (MESSAGES UNSEEN SIZE))`)
	has(t, u, `* LIST (\HasNoChildren) "/" INBOX`)
	has(t, u, `* STATUS INBOX (MESSAGES 2 UNSEEN 2 SIZE `)
	u = c.ok(`LIST "" ""`)
	has(t, u, `* LIST (\Noselect) "/" ""`)

	// Subscriptions.
	c.ok("CREATE Projects/Alpha")
	c.ok("SUBSCRIBE Projects/Alpha")
	u = c.ok(`LSUB "" %`)
	has(t, u, `* LSUB (\Noselect) "/" Projects`)
	has(t, u, `* LSUB () "/" INBOX`)
	u = c.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" %`)
	has(t, u, `* LIST (\HasChildren) "/" Projects ("CHILDINFO" ("SUBSCRIBED"))`)
	u = c.ok(`LIST "" * RETURN (SUBSCRIBED)`)
	has(t, u, `* LIST (\HasNoChildren \Subscribed) "/" Projects/Alpha`)
	c.ok("UNSUBSCRIBE Projects/Alpha")
	u = c.ok(`LSUB "" *`)
	hasNot(t, u, "Projects")
	c.fail("SUBSCRIBE Nope", "NO [NONEXISTENT]")

	// STATUS.
	u = c.ok("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE)")
	has(t, u, "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY ")
	c.fail("STATUS Nope (MESSAGES)", "NO [NONEXISTENT]")

	// SELECT (IMAP4rev1 responses).
	u = c.ok("SELECT INBOX")
	has(t, u, "* 2 EXISTS")
	has(t, u, "* 2 RECENT")
	has(t, u, "* OK [UNSEEN 1]")
	has(t, u, "* OK [UIDNEXT 3]")
	has(t, u, `* FLAGS (\Seen \Answered \Flagged \Deleted \Draft)`)
	has(t, u, `[PERMANENTFLAGS (`)

	// FETCH.
	u = c.ok("FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)")
	has(t, u, `* 1 FETCH (UID 1 FLAGS (\Recent) RFC822.SIZE `)
	has(t, u, `INTERNALDATE "05-Mar-2024 10:00:00 +0000")`)
	u = c.ok("FETCH 2 (ENVELOPE)")
	has(t, u, `* 2 FETCH (ENVELOPE ("Wed, 6 Mar 2024 12:00:00 +0000" "=?UTF-8?B?UmVjaG51bmcgw5xiZXJzaWNodA==?=" (("=?UTF-8?Q?J=C3=B6rg?=" NIL "joerg" "example.com"))`)
	has(t, u, `(NIL NIL "Team" NIL)("a" NIL NIL NIL)`[0:len(`(NIL NIL "Team" NIL)`)])
	u = c.ok("FETCH 2 (BODYSTRUCTURE)")
	has(t, u, `BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE" 29 1 NIL NIL NIL NIL)("application" "pdf" ("name" "scan.pdf") NIL NIL "BASE64" 28 NIL ("attachment" ("filename" "scan.pdf")) NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL)`)
	u = c.ok("FETCH 2 (BODY)")
	has(t, u, `BODY (("text" "plain" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE" 29 1)("application" "pdf" ("name" "scan.pdf") NIL NIL "BASE64" 28) "mixed")`)
	u = c.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject From)])")
	has(t, u, "BODY[HEADER.FIELDS (Subject From)] {")
	has(t, u, "From: Alice <alice@example.com>\r\nSubject: Hello invoice\r\n\r\n")
	u = c.ok("FETCH 1 (BODY.PEEK[HEADER])")
	has(t, u, "Return-Path: <sender@example.com>\r\nDelivered-To: joe@example.org\r\nFrom: Alice")
	u = c.ok("FETCH 1 (BODY.PEEK[TEXT]<6.3>)")
	has(t, u, "BODY[TEXT]<6> {3}\r\nJoe")
	u = c.ok("FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME] BINARY.PEEK[1] BINARY.SIZE[2])")
	has(t, u, "BODY[1] {29}\r\nGr=C3=BC=C3=9Fe aus K=C3=B6ln")
	has(t, u, "BODY[2.MIME] {")
	has(t, u, "BINARY[1] {17}\r\nGrüße aus Köln")
	has(t, u, "BINARY.SIZE[2] 19")
	u = c.ok("FETCH 2 (BODY.PEEK[3])")
	has(t, u, "BODY[3] NIL")
	u = c.ok("FETCH 1 FLAGS")
	hasNot(t, u, `\Seen`)
	// BODY[] without PEEK sets \Seen and reports the new flags.
	u = c.ok("FETCH 1 BODY[]")
	has(t, u, "BODY[] {")
	has(t, u, `FLAGS (\Seen \Recent)`)
	u = c.ok("UID FETCH 2 (RFC822.HEADER)")
	has(t, u, "* 2 FETCH (UID 2 RFC822.HEADER {")
	c.fail("FETCH 5 FLAGS", "BAD")
	c.ok("UID FETCH 5 FLAGS")

	// SEARCH.
	u = c.ok("SEARCH UNSEEN")
	has(t, u, "* SEARCH 2")
	u = c.ok("UID SEARCH CHARSET UTF-8 BODY köln")
	has(t, u, "* SEARCH 2")
	u = c.ok("SEARCH SUBJECT übersicht")
	has(t, u, "* SEARCH 2")
	u = c.ok("SEARCH FROM jörg")
	has(t, u, "* SEARCH 2")
	u = c.ok("SEARCH TEXT invoice")
	has(t, u, "* SEARCH 1")
	u = c.ok("SEARCH OR SEEN LARGER 100000")
	has(t, u, "* SEARCH 1")
	u = c.ok("SEARCH SENTSINCE 6-Mar-2024 NOT DELETED")
	has(t, u, "* SEARCH 2")
	u = c.ok(`SEARCH HEADER Message-ID "<m1@example.com>"`)
	has(t, u, "* SEARCH 1")
	if u = c.ok("SEARCH SINCE 1-Jan-2025"); len(u) != 1 || u[0] != "* SEARCH" {
		t.Fatalf("SEARCH SINCE: %q", u)
	}
	u = c.ok("UID SEARCH RETURN (MIN MAX COUNT ALL) ALL")
	has(t, u, `* ESEARCH (TAG "t`)
	has(t, u, `UID MIN 1 MAX 2 ALL 1:2 COUNT 2`)
	c.fail("SEARCH CHARSET KOI8-R ALL", "NO [BADCHARSET")
	u = c.ok("SEARCH RETURN (SAVE) UNSEEN")
	hasNot(t, u, "ESEARCH")
	u = c.ok("FETCH $ (UID)")
	has(t, u, "* 2 FETCH (UID 2)")
	u = c.ok("SEARCH RETURN () NEW")
	has(t, u, "ALL 2")

	// STORE.
	u = c.ok(`STORE 2 +FLAGS (\Flagged $Label1)`)
	has(t, u, `* 2 FETCH (FLAGS (\Flagged $Label1 \Recent))`)
	u = c.ok(`UID STORE 1:2 -FLAGS.SILENT (\Flagged)`)
	hasNot(t, u, "FETCH")
	u = c.ok(`STORE 1 FLAGS (\Seen \Answered)`)
	has(t, u, `* 1 FETCH (FLAGS (\Seen \Answered \Recent))`)
	u = c.ok("SEARCH KEYWORD $label1")
	has(t, u, "* SEARCH 2")
	u = c.ok("SEARCH ANSWERED")
	has(t, u, "* SEARCH 1")

	// APPEND with flags and date, literal and LITERAL+.
	msg := "From: me@example.org\r\nSubject: draft\r\n\r\nbody\r\n"
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.write(fmt.Sprintf("%s APPEND Drafts (\\Draft) \"01-Feb-2024 10:00:00 +0100\" {%d}\r\n", tag, len(msg)))
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("want continuation, got %q", l)
	}
	c.write(msg + "\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, tag+" OK [APPENDUID ") || !strings.HasSuffix(l, " 1] APPEND completed") {
		t.Fatalf("append: %q", l)
	}
	u, d = c.run(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	if !strings.HasPrefix(d, "OK [APPENDUID ") {
		t.Fatalf("append to selected: %s", d)
	}
	// The new message is announced before the tagged OK.
	has(t, u, "* 3 EXISTS")
	c.fail(fmt.Sprintf("APPEND Nope {%d+}\r\n%s", len(msg), msg), "NO [TRYCREATE]")
	u = c.ok("NOOP")
	hasNot(t, u, "EXISTS")
	u = c.ok("STATUS Drafts (MESSAGES)")
	has(t, u, "* STATUS Drafts (MESSAGES 1)")

	// COPY, MOVE with COPYUID.
	c.ok("CREATE Processed")
	_, d = c.run("COPY 1 Archive")
	if !strings.HasPrefix(d, "OK [COPYUID ") || !strings.Contains(d, " 1 1]") {
		t.Fatalf("copy: %s", d)
	}
	c.fail("COPY 1 Nope", "NO [TRYCREATE]")
	u = c.ok("UID MOVE 3 Processed")
	has(t, u, "* OK [COPYUID ")
	has(t, u, "* 3 EXPUNGE")
	u = c.ok("STATUS Processed (MESSAGES)")
	has(t, u, "(MESSAGES 1)")

	// EXPUNGE and UID EXPUNGE.
	c.ok(`STORE 1:2 +FLAGS.SILENT (\Deleted)`)
	u = c.ok("UID EXPUNGE 2")
	has(t, u, "* 2 EXPUNGE")
	hasNot(t, u, "* 1 EXPUNGE")
	u = c.ok("EXPUNGE")
	has(t, u, "* 1 EXPUNGE")
	u = c.ok("SELECT INBOX")
	has(t, u, "* 0 EXISTS")

	// EXAMINE is read-only.
	u = c.ok("EXAMINE Archive")
	has(t, u, "* OK [CLOSED]")
	_, d = c.run("NOOP")
	if !strings.HasPrefix(d, "OK") {
		t.Fatal(d)
	}
	c.fail(`STORE 1 +FLAGS (\Seen)`, "NO")
	u = c.ok("FETCH 1 BODY[]")
	hasNot(t, u, `\Seen`)
	c.ok("UNSELECT")
	c.fail("FETCH 1 FLAGS", "BAD")

	// RENAME and DELETE.
	c.ok("RENAME Archive Old")
	u = c.ok(`LIST "" Old*`)
	has(t, u, `"/" Old/2024`)
	c.fail("RENAME Nope X", "NO [NONEXISTENT]")
	c.fail("CREATE Old", "NO [ALREADYEXISTS]")
	c.ok("DELETE Old/2024")
	c.fail("DELETE INBOX", "NO")
	c.ok("CREATE Receipts (USE (\\Flagged))")
	u = c.ok(`LIST "" Receipts`)
	has(t, u, `\Flagged`)

	// QUOTA.
	u = c.ok("GETQUOTAROOT INBOX")
	has(t, u, "* QUOTAROOT INBOX")
	c.fail(`SETQUOTA "" (STORAGE 10)`, "NO")

	// ENABLE IMAP4rev2 switches to ESEARCH and drops \Recent.
	u = c.ok("ENABLE IMAP4rev2")
	has(t, u, "* ENABLED IMAP4rev2")
	u = c.ok("SELECT Processed")
	hasNot(t, u, "RECENT")
	has(t, u, `* LIST () "/" Processed`)
	u = c.ok("SEARCH ALL")
	has(t, u, "* ESEARCH (TAG")
	has(t, u, "ALL 1")
	c.ok("CLOSE")

	c.fail("FOO", "BAD")
	u, d = c.run("LOGOUT")
	has(t, u, "* BYE")
	if !strings.HasPrefix(d, "OK") {
		t.Fatal(d)
	}
}

func TestMailboxNamesUTF7(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.login()
	c.ok("CREATE Entw&APw-rfe")
	u := c.ok(`LIST "" Entw*`)
	has(t, u, `"/" Entw&APw-rfe`)
	c.ok("ENABLE UTF8=ACCEPT")
	u = c.ok(`LIST "" Entw*`)
	has(t, u, `"/" "Entwürfe"`)
	c.ok(`SELECT "Entwürfe"`)
}

func TestLoginDisabledWithoutTLS(t *testing.T) {
	tlsCfg := testTLSConfig(t)
	e := newTestEnv(t, func(c *Config) {
		c.AllowInsecureAuth = false
		c.TLSConfig = tlsCfg
	})
	c := e.dial()
	u := c.ok("CAPABILITY")
	has(t, u, "LOGINDISABLED")
	has(t, u, "STARTTLS")
	hasNot(t, u, "AUTH=PLAIN")
	c.fail("LOGIN joe@example.org x", "NO [PRIVACYREQUIRED]")
	c.fail("AUTHENTICATE PLAIN AGpvZQB4", "NO [PRIVACYREQUIRED]")
	c.ok("STARTTLS")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	c.br = bufio.NewReader(tc)
	u = c.ok("CAPABILITY")
	has(t, u, "AUTH=PLAIN")
	hasNot(t, u, "STARTTLS")
	// AUTHENTICATE PLAIN with SASL-IR.
	ir := base64.StdEncoding.EncodeToString([]byte("\x00joe@example.org\x00" + testPass))
	c.ok("AUTHENTICATE PLAIN " + ir)
}

func TestAuthFailures(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial()
	c.fail("LOGIN blocked@example.org x", "NO [AUTHENTICATIONFAILED] Too many failed authentications")
	for i := 1; i < maxAuthFailures-1; i++ {
		c.fail("LOGIN joe@example.org wrong", "NO [AUTHENTICATIONFAILED]")
	}
	// The last allowed failure ends the connection after the NO.
	c.fail("AUTHENTICATE PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00joe@example.org\x00wrong")), "NO [AUTHENTICATIONFAILED]")
	if l := c.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("got %q", l)
	}
	// Authorization identity must match.
	d := e.dial()
	d.fail("AUTHENTICATE PLAIN "+base64.StdEncoding.EncodeToString([]byte("other@example.org\x00joe@example.org\x00"+testPass)), "NO [AUTHORIZATIONFAILED]")
	d.fail("AUTHENTICATE CRAM-MD5", "NO")
}

func TestAuthenticateContinuation(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial()
	c.write("a AUTHENTICATE PLAIN\r\n")
	if l := c.readLine(); l != "+ " {
		t.Fatalf("got %q", l)
	}
	c.write(base64.StdEncoding.EncodeToString([]byte("joe@example.org\x00joe@example.org\x00"+testPass)) + "\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("got %q", l)
	}
}

func TestImplicitTLS(t *testing.T) {
	tlsCfg := testTLSConfig(t)
	e := newTestEnv(t, func(c *Config) {
		c.AllowInsecureAuth = false
		c.TLSConfig = tlsCfg
		c.ImplicitTLS = true
	})
	conn, err := tls.Dial("tcp", e.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn, br: bufio.NewReader(conn)}
	if g := c.readLine(); !strings.Contains(g, "AUTH=PLAIN") || strings.Contains(g, "STARTTLS") {
		t.Fatalf("greeting %q", g)
	}
	c.ok("LOGIN joe@example.org " + `"` + testPass + `"`)
}

func TestLimits(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.MaxConnsPerUserIP = 2
		c.MaxLine = 1000
		c.AppendLimit = 100
	})
	a, b := e.login(), e.login()
	c := e.dial()
	c.fail("LOGIN joe@example.org "+`"`+testPass+`"`, "NO [LIMIT]")
	a.ok("LOGOUT")
	// The slot is free once the server has processed the logout (which
	// on a loaded machine may take a while).
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, d := c.run("LOGIN joe@example.org " + `"` + testPass + `"`)
		if strings.HasPrefix(d, "OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login after logout: %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// APPENDLIMIT: a synchronizing literal too large is refused before
	// the data is sent.
	b.fail("APPEND INBOX {1000}", "NO [TOOBIG]")
	b.ok("NOOP")
	// Too many bad commands end the session.
	for i := 0; i < maxBadCommands-1; i++ {
		b.fail("BOGUS", "BAD")
	}
	b.write("x BOGUS\r\n")
	if l := b.readLine(); !strings.HasPrefix(l, "x BAD") {
		t.Fatal(l)
	}
	if l := b.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Fatal(l)
	}
	// A line too long ends the session.
	d := e.dial()
	d.write("a NOOP " + strings.Repeat("x", 2000) + "\r\n")
	if l := d.readLine(); !strings.HasPrefix(l, "* BYE") {
		t.Fatal(l)
	}
}

// TestPythonImaplib drives a session with Python's standard imaplib.
func TestPythonImaplib(t *testing.T) {
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
	out, err := exec.CommandContext(ctx, py, "testdata/imaplib_session.py", host, port, "joe@example.org", testPass).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("imaplib session: %v\n%s", err, out)
	}
}

// A message above the spool threshold goes through a temporary file and
// comes back byte for byte.
func TestAppendLarge(t *testing.T) {
	spool := t.TempDir()
	e := newTestEnv(t, func(c *Config) { c.SpoolDir = spool })
	c := e.login()
	var b strings.Builder
	b.WriteString("From: big@example.com\r\nSubject: large\r\n\r\n")
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "line %d of a large message\r\n", i)
	}
	msg := b.String()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.write(fmt.Sprintf("%s APPEND INBOX {%d}\r\n", tag, len(msg)))
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("got %q", l)
	}
	c.write(msg + "\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, tag+" OK [APPENDUID") {
		t.Fatalf("got %q", l)
	}
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Errorf("spool files left behind: %v", ents)
	}
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[])")
	want := fmt.Sprintf("* 1 FETCH (RFC822.SIZE %d BODY[] {%d}\r\n%s)", len(msg), len(msg), msg)
	if len(u) != 1 || u[0] != want {
		t.Fatalf("fetched message differs (len %d, want %d)", len(u[0]), len(want))
	}
	has(t, c.ok("SEARCH BODY \"line 70000 of\""), "* SEARCH 1")
}
