package smtpserver

import (
	"fmt"
	"net/smtp"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// receivedRe matches our Received header at the start of the stored blob
// (after the per-recipient prefix).
func receivedRe(proto, tlsInfo, forClause string) *regexp.Regexp {
	return regexp.MustCompile(`^Received: from client\.example \(\[127\.0\.0\.1\]\)` + tlsInfo + `\r\n` +
		`\tby ` + regexp.QuoteMeta(testHostname) + ` \(mailstead\) with ` + proto + ` id [0-9A-Z]{13}` +
		forClause + `;\r\n` +
		`\t([^\r\n]+)\r\n`)
}

// checkStored checks a stored message: the prefix (Return-Path,
// Delivered-To), the Received header we added, and the original bytes.
func checkStored(t *testing.T, content, from, rcpt string, re *regexp.Regexp, original string) {
	t.Helper()
	prefix := "Return-Path: <" + from + ">\r\nDelivered-To: " + rcpt + "\r\n"
	if !strings.HasPrefix(content, prefix) {
		t.Fatalf("stored message does not start with %q:\n%.300q", prefix, content)
	}
	rest := content[len(prefix):]
	m := re.FindStringSubmatchIndex(rest)
	if m == nil {
		t.Fatalf("no Received header matching %s in:\n%.400q", re, rest)
	}
	date := rest[m[2]:m[3]]
	if ts, err := time.Parse(time.RFC1123Z, date); err != nil || time.Since(ts) > time.Minute || time.Until(ts) > time.Minute {
		t.Errorf("Received date %q: %v", date, err)
	}
	if got := rest[m[1]:]; got != original {
		t.Errorf("message after the Received header differs:\ngot  %.300q\nwant %.300q", got, original)
	}
}

func TestMXDelivery(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	c.ehlo()
	c.expect("250 2.0.0", "MAIL FROM:<sender@remote.example>")
	c.expect("250 2.0.0", "RCPT TO:<alice@example.org>")
	msg := testMessage("plain delivery", "line one\r\n.leading dot\r\n..two dots\r\n.\tdot tab\r\nlast line\r\n")
	if r := c.data(msg); r.code != 250 || !strings.HasPrefix(r.msg, "2.0.0") {
		t.Fatalf("DATA: %v", r)
	}
	// The 250 means committed: the message must be readable now, with no
	// waiting.
	contents, msgs := e.inbox("alice@example.org")
	if len(contents) != 1 {
		t.Fatalf("alice has %d messages right after 250, want 1", len(contents))
	}
	checkStored(t, contents[0], "sender@remote.example", "alice@example.org",
		receivedRe("ESMTP", "", `\r\n\tfor <alice@example\.org>`), msg)
	if msgs[0].Size != int64(len(contents[0])) {
		t.Errorf("RFC822.SIZE %d, content %d bytes", msgs[0].Size, len(contents[0]))
	}
	// A second transaction on the same connection gets its own id.
	c.expect("250", "MAIL FROM:<>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	if r := c.data(testMessage("second", "x\r\n")); r.code != 250 {
		t.Fatalf("second DATA: %v", r)
	}
	contents, _ = e.inbox("alice@example.org")
	if len(contents) != 2 {
		t.Fatalf("alice has %d messages, want 2", len(contents))
	}
	idRe := regexp.MustCompile(`\(mailstead\) with ESMTP id ([0-9A-Z]+)`)
	id1, id2 := idRe.FindStringSubmatch(contents[0]), idRe.FindStringSubmatch(contents[1])
	if id1 == nil || id2 == nil || id1[1] == id2[1] {
		t.Errorf("transaction ids %q and %q should differ", id1, id2)
	}
	if !strings.HasPrefix(contents[1], "Return-Path: <>\r\n") {
		t.Errorf("null sender stored as %.40q", contents[1])
	}
	c.expect("221", "QUIT")
}

func TestMXDeliveryTLSManyRecipients(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	c.ehlo()
	c.startTLS()
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	c.expect("250", "RCPT TO:<bob+tag@example.org>")
	c.expect("250", "RCPT TO:<Alice@Example.ORG>") // same account again
	msg := testMessage("tls", "hello over TLS\r\n")
	if r := c.data(msg); r.code != 250 {
		t.Fatalf("DATA: %v", r)
	}
	re := receivedRe("ESMTPS", ` \(using TLS 1\.[23] with cipher [A-Z0-9_]+\)`, "") // no "for" with several recipients
	ca, ma := e.inbox("alice@example.org")
	cb, mb := e.inbox("bob@example.org")
	if len(ca) != 1 || len(cb) != 1 {
		t.Fatalf("alice has %d, bob %d messages; want 1 each", len(ca), len(cb))
	}
	checkStored(t, ca[0], "sender@remote.example", "alice@example.org", re, msg)
	checkStored(t, cb[0], "sender@remote.example", "bob+tag@example.org", re, msg)
	if ma[0].BlobID != mb[0].BlobID {
		t.Errorf("recipients got blobs %d and %d, want one shared blob", ma[0].BlobID, mb[0].BlobID)
	}
}

func TestMXEHLO(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	check := func(caps map[string]string, tls bool) {
		t.Helper()
		for _, want := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "SIZE"} {
			if _, ok := caps[want]; !ok {
				t.Errorf("EHLO (tls %v) lacks %s: %v", tls, want, caps)
			}
		}
		if caps["SIZE"] != fmt.Sprint(testMaxBytes) {
			t.Errorf("SIZE %q, want %d", caps["SIZE"], testMaxBytes)
		}
		if _, ok := caps["AUTH"]; ok {
			t.Errorf("MX role advertises AUTH (tls %v): %v", tls, caps)
		}
		if _, ok := caps["DSN"]; ok {
			t.Errorf("DSN advertised without an outbound queue")
		}
		if _, ok := caps["STARTTLS"]; ok == tls {
			t.Errorf("STARTTLS advertised = %v after TLS = %v", ok, tls)
		}
	}
	check(c.ehlo(), false)
	c.expect("5", "AUTH PLAIN %s", plainIR("", "alice@example.org", testPassword))
	c.startTLS()
	check(c.ehlo(), true)
	// No AUTH on the MX role even over TLS.
	r := c.cmd("AUTH PLAIN %s", plainIR("", "alice@example.org", testPassword))
	if r.code/100 != 5 {
		t.Errorf("AUTH on MX after TLS: %v, want 5xx", r)
	}
	if e.authAttempts() != 0 {
		t.Errorf("credentials were checked on the MX role")
	}

	// Without a TLS config, no STARTTLS.
	e2 := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) { c.TLSConfig = nil }})
	c2 := dial(t, e2.addr)
	if _, ok := c2.ehlo()["STARTTLS"]; ok {
		t.Error("STARTTLS advertised without a TLS config")
	}
	c2.expect("502", "STARTTLS")
}

func TestMXCommandReplies(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	c.ehlo()
	rcpts := []struct {
		rcpt, want string
	}{
		{"alice@example.org", "250 2.0.0"},
		{"ALICE@EXAMPLE.ORG", "250 2.0.0"},
		{"alice+anything@example.org", "250 2.0.0"},
		{"postmaster@example.org", "250 2.0.0"}, // the domain's oldest account
		{"abuse@example.org", "250 2.0.0"},
		{"jörg@example.org", "250 2.0.0"},
		{"nobody@example.org", "550 5.1.1"},
		{"someone@foreign.example", "554 5.7.1"},
		{"alice@sub.example.org", "554 5.7.1"},
		{"alice@example.org.evil.example", "554 5.7.1"},
		{"a..b@example.org", "501 5.1.3"},
		{"alice@bad!domain.example", "501 5.1.3"},
		{"full@example.org", "452 4.2.2"},
	}
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	for _, tt := range rcpts {
		c.expect(tt.want, "RCPT TO:<%s>", tt.rcpt)
	}
	c.expect("250", "RSET")

	for _, tt := range []struct {
		cmd, want string
	}{
		{"MAIL FROM:<sender@remote.example> SIZE=" + fmt.Sprint(testMaxBytes+1), "552 5.3.4"},
		{"MAIL FROM:<sender@remote.example> SIZE=999999999", "552 5.3.4"},
		{"MAIL FROM:<bad..sender@remote.example>", "553 5.1.7"},
		{"MAIL FROM:<sender@bad!domain>", "553 5.1.7"},
		{"MAIL FROM:<sender@remote.example> SIZE=" + fmt.Sprint(testMaxBytes), "250"},
	} {
		c.expect(tt.want, "%s", tt.cmd)
		c.expect("250", "RSET")
	}
	// Nothing reached a mailbox.
	for _, a := range []string{"alice@example.org", "bob@example.org"} {
		if got, _ := e.inbox(a); len(got) != 0 {
			t.Errorf("%s got %d messages", a, len(got))
		}
	}
}

func TestMXSizeLimits(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	c.ehlo()

	// Over the limit: refused, nothing stored, connection still usable.
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	huge := testMessage("huge", strings.Repeat(strings.Repeat("y", 998)+"\r\n", testMaxBytes/1000+10))
	if r := c.data(huge); !strings.HasPrefix(r.String(), "552 5.3.4") {
		t.Fatalf("oversize DATA: %v, want 552 5.3.4", r)
	}
	if got, _ := e.inbox("alice@example.org"); len(got) != 0 {
		t.Fatalf("oversize message stored")
	}
	c.expect("250", "NOOP")

	// A message that spills to the spool file (> 1 MiB) but fits.
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	big := testMessage("big", strings.Repeat(strings.Repeat("z", 998)+"\r\n", 1100))
	if r := c.data(big); r.code != 250 {
		t.Fatalf("1.1 MB DATA: %v", r)
	}
	contents, _ := e.inbox("alice@example.org")
	if len(contents) != 1 || !strings.HasSuffix(contents[0], big) {
		t.Fatalf("big message not stored intact")
	}

	// A 50,000-byte line inside DATA is fine with a 64 KiB line limit.
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<bob@example.org>")
	long := testMessage("long line", strings.Repeat("L", 50000)+"\r\nend\r\n")
	if r := c.data(long); r.code != 250 {
		t.Fatalf("50,000-byte line: %v", r)
	}
	contents, _ = e.inbox("bob@example.org")
	if len(contents) != 1 || !strings.HasSuffix(contents[0], long) {
		t.Fatalf("long-line message not stored intact")
	}

	// BDAT over the limit.
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<bob@example.org>")
	chunk := strings.Repeat(strings.Repeat("b", 98)+"\r\n", testMaxBytes/100+1)
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	if r := c.read(); !strings.HasPrefix(r.String(), "552 5.3.4") {
		t.Fatalf("oversize BDAT: %v", r)
	}
	c.expect("250", "NOOP")
	if got, _ := e.inbox("bob@example.org"); len(got) != 1 {
		t.Fatalf("bob has %d messages, want 1", len(got))
	}
}

// TestMXLineTooLong: a line over MaxLineLength inside DATA is refused
// permanently (not 451, which would make the sender retry for days).
func TestMXLineTooLong(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) { c.MaxLineLength = 1000 }})
	c := dial(t, e.addr)
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	c.expect("354", "DATA")
	c.write(testMessage("too long", strings.Repeat("x", 5000)+"\r\n") + ".\r\n")
	if r := c.read(); !strings.HasPrefix(r.String(), "552 5.3.4") {
		t.Fatalf("line over the limit: %v, want a permanent 552 5.3.4", r)
	}
	c.waitClosed(5 * time.Second)
	if got, _ := e.inbox("alice@example.org"); len(got) != 0 {
		t.Fatal("message with an over-long line stored")
	}
}

func TestMXSMTPUTF8And8Bit(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	c.ehlo()
	c.expect("250", "MAIL FROM:<rené@remote.example> SMTPUTF8 BODY=8BITMIME")
	c.expect("250", "RCPT TO:<jörg@example.org>")
	msg := "From: René <rené@remote.example>\r\nTo: jörg@example.org\r\nSubject: Grüße\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		"Grüße aus Köln — ✓\r\nraw latin-1: \xe9\xe8\r\n"
	if r := c.data(msg); r.code != 250 {
		t.Fatalf("DATA: %v", r)
	}
	contents, _ := e.inbox("jörg@example.org")
	if len(contents) != 1 {
		t.Fatalf("jörg has %d messages", len(contents))
	}
	checkStored(t, contents[0], "rené@remote.example", "jörg@example.org",
		receivedRe("UTF8SMTP", "", `\r\n\tfor <jörg@example\.org>`), msg)

	// 8BITMIME without SMTPUTF8 works too.
	c.expect("250", "MAIL FROM:<sender@remote.example> BODY=8BITMIME")
	c.expect("250", "RCPT TO:<alice@example.org>")
	if r := c.data(testMessage("8bit", "caf\xc3\xa9\r\n")); r.code != 250 {
		t.Fatalf("8BITMIME DATA: %v", r)
	}
}

func TestMXChunking(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	// BDAT content is not dot-stuffed: a leading dot is stored as sent.
	msg := testMessage("chunked", ".not stuffed\r\nsecond chunk follows\r\n") + "tail line\r\n"
	part1, part2 := msg[:50], msg[50:]
	c.write(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1))
	if r := c.read(); r.code != 250 {
		t.Fatalf("BDAT chunk: %v", r)
	}
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	if r := c.read(); r.code != 250 || !strings.HasPrefix(r.msg, "2.0.0") {
		t.Fatalf("BDAT LAST: %v", r)
	}
	contents, _ := e.inbox("alice@example.org")
	if len(contents) != 1 {
		t.Fatalf("alice has %d messages right after BDAT LAST", len(contents))
	}
	checkStored(t, contents[0], "sender@remote.example", "alice@example.org",
		receivedRe("ESMTP", "", `\r\n\tfor <alice@example\.org>`), msg)

	// An empty LAST chunk ends the message too; pipelined in one write.
	c.write("MAIL FROM:<sender@remote.example>\r\nRCPT TO:<bob@example.org>\r\n" +
		fmt.Sprintf("BDAT %d\r\n%s", len(msg), msg) + "BDAT 0 LAST\r\n")
	for i, want := range []int{250, 250, 250, 250} {
		if r := c.read(); r.code != want {
			t.Fatalf("pipelined BDAT reply %d: %v", i, r)
		}
	}
	if got, _ := e.inbox("bob@example.org"); len(got) != 1 || !strings.HasSuffix(got[0], msg) {
		t.Fatalf("bob: %d messages", len(got))
	}
}

func TestMXPipelining(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	if _, ok := c.ehlo()["PIPELINING"]; !ok {
		t.Fatal("PIPELINING not advertised")
	}
	// One write: the whole transaction up to DATA, with a bad recipient
	// in the middle.
	c.write("MAIL FROM:<sender@remote.example>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	for _, want := range []string{"250", "550 5.1.1", "250", "354"} {
		if r := c.read(); !strings.HasPrefix(r.String(), want) {
			t.Fatalf("pipelined reply %v, want %s", r, want)
		}
	}
	msg := testMessage("pipelined", "body\r\n")
	c.write(dotStuff(msg) + ".\r\nQUIT\r\n")
	if r := c.read(); r.code != 250 {
		t.Fatalf("DATA: %v", r)
	}
	if r := c.read(); r.code != 221 {
		t.Fatalf("QUIT: %v", r)
	}
	if got, _ := e.inbox("bob@example.org"); len(got) != 1 {
		t.Fatalf("bob has %d messages", len(got))
	}
}

func TestMXHopLimit(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	c.ehlo()
	// Our own Received header counts: 49 in the message + ours = 50, the
	// default limit.
	for _, tt := range []struct {
		hops int
		want string
	}{
		{49, "250 2.0.0"},
		{50, "554 5.4.6"},
		{51, "554 5.4.6"},
	} {
		var b strings.Builder
		for i := range tt.hops {
			fmt.Fprintf(&b, "Received: from h%d.example by h%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n", i, i+1)
		}
		msg := b.String() + testMessage(fmt.Sprintf("hops %d", tt.hops), "loop?\r\n")
		c.expect("250", "MAIL FROM:<sender@remote.example>")
		c.expect("250", "RCPT TO:<alice@example.org>")
		if r := c.data(msg); !strings.HasPrefix(r.String(), tt.want) {
			t.Errorf("%d hops: %v, want %s", tt.hops, r, tt.want)
		}
	}
	if got, _ := e.inbox("alice@example.org"); len(got) != 1 {
		t.Errorf("alice has %d messages, want 1", len(got))
	}
}

func TestMXQuota(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("452 4.2.2", "RCPT TO:<full@example.org>")
	// small@ has room for a small message but not for a 3 KB one.
	c.expect("250", "RCPT TO:<small@example.org>")
	if r := c.data(testMessage("too big for quota", strings.Repeat("q", 3000)+"\r\n")); !strings.HasPrefix(r.String(), "552 5.2.2") {
		t.Fatalf("over quota at DATA: %v, want 552 5.2.2", r)
	}
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<small@example.org>")
	if r := c.data(testMessage("fits", "tiny\r\n")); r.code != 250 {
		t.Fatalf("small message: %v", r)
	}
	if got, _ := e.inbox("small@example.org"); len(got) != 1 {
		t.Fatalf("small has %d messages, want 1", len(got))
	}
}

func TestMXPerIPLimit(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) { c.MaxConnsPerIP = 2 }})
	c1 := dial(t, e.addr)
	c2 := dial(t, e.addr)
	_ = c2
	c3, err := netDial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	cl3 := newClient(t, c3)
	if r := cl3.read(); !strings.HasPrefix(r.String(), "421 4.7.0") {
		t.Fatalf("connection over the limit: %v, want 421 4.7.0", r)
	}
	if _, err := cl3.waitClosed(5 * time.Second); err != nil {
		t.Fatalf("refused connection not closed: %v", err)
	}
	c1.expect("221", "QUIT")
	if _, err := c1.waitClosed(5 * time.Second); err != nil {
		t.Fatalf("QUIT did not close: %v", err)
	}
	// The slot is free as soon as the server has closed the connection.
	c4 := dial(t, e.addr)
	c4.ehlo()
}

// TestMXConcurrentDurable: several clients at once; every 250 is checked
// against the store immediately.
func TestMXConcurrentDurable(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	const clients, perClient = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, clients*perClient)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(e.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Hello("client.example"); err != nil {
				errs <- err
				return
			}
			for j := range perClient {
				subject := fmt.Sprintf("c%d-m%d", i, j)
				if err := sendOne(c, "sender@remote.example", "bob@example.org", testMessage(subject, "hi\r\n")); err != nil {
					errs <- fmt.Errorf("%s: %w", subject, err)
					return
				}
				// Checked from this goroutine without t.Fatal.
				if !e.hasSubject("bob@example.org", subject) {
					errs <- fmt.Errorf("%s: not in the store right after 250", subject)
				}
			}
			c.Quit()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, _ := e.inbox("bob@example.org"); len(got) != clients*perClient {
		t.Errorf("bob has %d messages, want %d", len(got), clients*perClient)
	}
}

func TestMXMaxRecipients(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) { c.MaxRecipients = 2 }})
	c := dial(t, e.addr)
	if got := c.ehlo()["LIMITS"]; got != "RCPTMAX=2" {
		t.Errorf("LIMITS = %q, want RCPTMAX=2", got)
	}
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	c.expect("250", "RCPT TO:<bob@example.org>")
	c.expect("452 4.5.3", "RCPT TO:<jörg@example.org>")
	if r := c.data(testMessage("two recipients", "x\r\n")); r.code != 250 {
		t.Fatalf("DATA: %v", r)
	}
	for _, a := range []string{"alice@example.org", "bob@example.org"} {
		if got, _ := e.inbox(a); len(got) != 1 {
			t.Errorf("%s has %d messages", a, len(got))
		}
	}
	if got, _ := e.inbox("jörg@example.org"); len(got) != 0 {
		t.Errorf("recipient over the limit got the message")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) {
		c.Metrics = NewMetrics(reg)
		c.MaxConnsPerIP = 1
	}})
	c := dial(t, e.addr)
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	c.expect("550", "RCPT TO:<nobody@example.org>")
	c.expect("554", "RCPT TO:<x@foreign.example>")
	if r := c.data(testMessage("counted", "x\r\n")); r.code != 250 {
		t.Fatal(r)
	}
	refused, err := netDial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	newClient(t, refused).waitClosed(5 * time.Second)
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mailstead_smtp_connections_total", map[string]string{"listener": "test", "outcome": "served"}, 1},
		{"mailstead_smtp_connections_total", map[string]string{"listener": "test", "outcome": "refused_ip_limit"}, 1},
		{"mailstead_smtp_connections_active", map[string]string{"listener": "test"}, 1},
		{"mailstead_smtp_recipients_total", map[string]string{"listener": "test", "result": "accepted"}, 1},
		{"mailstead_smtp_recipients_total", map[string]string{"listener": "test", "result": "unknown"}, 1},
		{"mailstead_smtp_recipients_total", map[string]string{"listener": "test", "result": "relay_denied"}, 1},
		{"mailstead_smtp_messages_total", map[string]string{"listener": "test", "result": "accepted"}, 1},
	} {
		if got := metricValue(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	c.expect("221", "QUIT")
	c.waitClosed(5 * time.Second)
	if got := metricValue(t, reg, "mailstead_smtp_connections_active", map[string]string{"listener": "test"}); got != 0 {
		t.Errorf("active connections after QUIT = %v", got)
	}
}

// metricValue returns the value of the counter or gauge with exactly
// these labels, or -1.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
