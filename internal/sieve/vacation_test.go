package sieve

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

func TestSuppressReason(t *testing.T) {
	v := &Vacation{Addresses: []string{"alias@example.com"}}
	own := []string{"alice@example.com"}
	base := "From: bob@example.org\nTo: Alice <alice@example.com>\nSubject: hi\n\n"
	for _, c := range []struct {
		name, hdr, from, to string
		want                string // "" or a substring of the reason
	}{
		{"ok", base, "bob@example.org", "alice@example.com", ""},
		{"cc", "From: b@example.org\nCc: x@y.example, ALICE@example.com\n\n", "b@example.org", "alice@example.com", ""},
		{"subaddress in to", "To: alice+work@example.com\n\n", "b@example.org", "alice@example.com", ""},
		{"alias address", "To: alias@example.com\n\n", "b@example.org", "alice@example.com", ""},
		{"envelope to", "To: team@example.com, fred@example.com\n\n", "b@example.org", "fred@example.com", ""},
		{"bcc only", "To: team@example.com\n\n", "b@example.org", "alice@example.com", "not in To"},
		{"null sender", base, "", "alice@example.com", "null sender"},
		{"mailer-daemon", base, "MAILER-DAEMON@example.org", "alice@example.com", "mailer"},
		{"owner-", base, "owner-list@example.org", "alice@example.com", "mailer"},
		{"-request", base, "list-request@example.org", "alice@example.com", "mailer"},
		{"noreply", base, "noreply@example.org", "alice@example.com", "mailer"},
		{"self", base, "alice@example.com", "alice@example.com", "recipient"},
		{"auto-submitted", "Auto-Submitted: auto-replied\n" + base, "bob@example.org", "alice@example.com", "Auto-Submitted"},
		{"auto-submitted no", "Auto-Submitted: no\n" + base, "bob@example.org", "alice@example.com", ""},
		{"auto-submitted params", "Auto-Submitted: auto-generated; owner-email=x\n" + base, "bob@example.org", "alice@example.com", "Auto-Submitted"},
		{"list-id", "List-Id: <l.example.org>\n" + base, "bob@example.org", "alice@example.com", "mailing list"},
		{"list-unsubscribe", "List-Unsubscribe: <mailto:u@example.org>\n" + base, "bob@example.org", "alice@example.com", "mailing list"},
		{"precedence bulk", "Precedence: Bulk\n" + base, "bob@example.org", "alice@example.com", "Precedence"},
		{"precedence junk", "Precedence: junk\n" + base, "bob@example.org", "alice@example.com", "Precedence"},
		{"precedence first-class", "Precedence: first-class\n" + base, "bob@example.org", "alice@example.com", ""},
		{"x-auto-response-suppress", "X-Auto-Response-Suppress: DR, OOF\n" + base, "bob@example.org", "alice@example.com", "Suppress"},
	} {
		got := SuppressReason(crlfMsg(c.hdr), Envelope{From: c.from, To: c.to}, v, own)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestResponder(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	log := &MemoryReplyLog{}
	r := &Responder{Log: log, Hostname: "mx.example.com", Now: func() time.Time { return now }}
	hdr := crlfMsg("From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\nMessage-ID: <m1@example.org>\nReferences: <m0@example.org>\n\n")
	env := Envelope{From: "bob@example.org", To: "alice@example.com"}
	v := &Vacation{Reason: "I am away.\nBack soon — Alice", Handle: "h1", Period: 7 * 24 * time.Hour, From: "Alice <alice@example.com>"}
	ctx := context.Background()
	rep, why, err := r.Respond(ctx, 7, v, hdr, env, []string{"alice@example.com"})
	if err != nil || rep == nil {
		t.Fatalf("respond: %v %q", err, why)
	}
	if rep.MailFrom != "" || rep.To != "bob@example.org" {
		t.Errorf("envelope %q -> %q", rep.MailFrom, rep.To)
	}
	data := string(rep.Data)
	for _, want := range []string{
		"From: \"Alice\" <alice@example.com>\r\n",
		"To: <bob@example.org>\r\n",
		"Subject: =?utf-8?q?Auto:_Gr=C3=BC=C3=9Fe?=\r\n",
		"In-Reply-To: <m1@example.org>\r\n",
		"References: <m0@example.org> <m1@example.org>\r\n",
		"Auto-Submitted: auto-replied (vacation)\r\n",
		"Content-Transfer-Encoding: quoted-printable\r\n",
		"Date: Wed, 01 May 2024 12:00:00 +0000\r\n",
		"Back soon =E2=80=94 Alice",
	} {
		if !strings.Contains(data, want) {
			t.Errorf("response lacks %q:\n%s", want, data)
		}
	}
	// The response parses, and the body decodes back.
	m := MessageFromBytes(rep.Data)
	texts, err := m.bodyTexts("text", nil)
	if err != nil || len(texts) != 1 || !strings.Contains(texts[0], "Back soon — Alice") {
		t.Errorf("body %q %v", texts, err)
	}
	if bytes.Contains(rep.Data, []byte("\n\n")) || bytes.Contains(bytes.ReplaceAll(rep.Data, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("bare LF in response")
	}

	// Rate limit: same sender and handle within the period.
	if rep, why, _ := r.Respond(ctx, 7, v, hdr, env, nil); rep != nil || !strings.Contains(why, "already") {
		t.Errorf("second response: %v %q", rep, why)
	}
	// Another account, another handle: allowed.
	if rep, _, _ := r.Respond(ctx, 8, v, hdr, env, nil); rep == nil {
		t.Error("other account suppressed")
	}
	v2 := *v
	v2.Handle = "h2"
	if rep, _, _ := r.Respond(ctx, 7, &v2, hdr, env, nil); rep == nil {
		t.Error("other handle suppressed")
	}
	// After the period: allowed again.
	now = now.Add(7*24*time.Hour + time.Second)
	if rep, _, _ := r.Respond(ctx, 7, v, hdr, env, nil); rep == nil {
		t.Error("suppressed after the period")
	}
	// :from not one of the user's addresses falls back to the recipient.
	v3 := *v
	v3.From, v3.Handle = "ceo@example.com", "h3"
	rep, _, _ = r.Respond(ctx, 7, &v3, hdr, env, []string{"alice@example.com"})
	if rep == nil || !strings.Contains(string(rep.Data), "From: alice@example.com\r\n") {
		t.Errorf("spoofed :from used:\n%s", rep.Data)
	}
	// Rules apply before the rate limit is consumed.
	if rep, why, _ := r.Respond(ctx, 9, v, crlfMsg("Precedence: list\nTo: alice@example.com\n\n"), env, nil); rep != nil || why == "" {
		t.Error("list mail answered")
	}
	if ok, _ := log.Reserve(ctx, ReplyKey{AccountID: 9, Sender: "bob@example.org", Handle: "h1"}, now, time.Hour); !ok {
		t.Error("suppressed message consumed the rate limit")
	}
	// :mime.
	vm := &Vacation{Reason: "Content-Type: text/html\r\n\r\n<p>away</p>\r\n", MIME: true, Handle: "m"}
	rep, _, _ = r.Respond(ctx, 1, vm, hdr, env, nil)
	if rep == nil || !strings.Contains(string(rep.Data), "MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<p>away</p>\r\n") {
		t.Errorf("mime response:\n%s", rep.Data)
	}
}

func TestMemoryReplyLogBounded(t *testing.T) {
	l := &MemoryReplyLog{Max: 100}
	now := time.Now()
	for i := 0; i < 1000; i++ {
		l.Reserve(context.Background(), ReplyKey{AccountID: int64(i)}, now.Add(time.Duration(i)*time.Second), time.Hour)
	}
	if len(l.m) > 100 {
		t.Fatalf("%d entries", len(l.m))
	}
	// Concurrent reservations of one key: exactly one wins.
	l2 := &MemoryReplyLog{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l2.Reserve(context.Background(), ReplyKey{Sender: "x"}, now, time.Hour); ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d wins", wins)
	}
}

func TestRunSequence(t *testing.T) {
	before, _ := Parse(`require ["fileinto", "imap4flags", "editheader"];
addheader "X-Checked" "yes";
if header :contains "X-Spam" "Yes" { fileinto "Junk"; }`)
	user, _ := Parse(`require ["fileinto", "imap4flags"];
if header :is "X-Checked" "yes" { addflag "checked"; }
if header :contains "Subject" "report" { fileinto "Reports"; }`)
	after, _ := Parse(`require ["fileinto"]; if true { fileinto "After"; keep; }`)
	bad, _ := Parse(`require ["variables", "fileinto"]; set "x" ""; fileinto "${x}";`)
	ctx := context.Background()
	run := func(msg string, scripts ...*Script) (string, error) {
		r, err := RunSequence(ctx, scripts, MessageFromBytes(crlfMsg(msg)), testEnv, testOpts())
		return r.String(), err
	}
	for _, c := range []struct {
		name    string
		msg     string
		scripts []*Script
		want    string
	}{
		{"spam stops chain", "X-Spam: Yes\nSubject: report\n\nx\n", []*Script{before, user, after}, "fileinto \"Junk\"\naddheader \"X-Checked\" \"yes\"\n"},
		{"user sees edit and files", "Subject: report\n\nx\n", []*Script{before, user, after}, "fileinto \"Reports\" :flags \"checked\"\naddheader \"X-Checked\" \"yes\"\n"},
		{"after runs when kept", "Subject: hi\n\nx\n", []*Script{before, user, after}, "fileinto \"After\"\nkeep\naddheader \"X-Checked\" \"yes\"\n"},
		{"implicit keep of last", "Subject: hi\n\nx\n", []*Script{nil, user, nil}, "implicit-keep\n"},
		{"none", "Subject: hi\n\nx\n", nil, "implicit-keep\n"},
	} {
		got, err := run(c.msg, c.scripts...)
		if err != nil || got != c.want {
			t.Errorf("%s: got %v\n%s\nwant\n%s", c.name, err, got, c.want)
		}
	}
	got, err := run("Subject: hi\n\nx\n", before, bad, after)
	if err == nil || got != "implicit-keep\n" {
		t.Errorf("error in chain: %v %q", err, got)
	}
	r, _ := RunSequence(ctx, []*Script{before}, MessageFromBytes(crlfMsg("Subject: hi\n\nx\n")), testEnv, testOpts())
	if !bytes.HasPrefix(r.Header, []byte("X-Checked: yes\r\nSubject: hi\r\n\r\n")) {
		t.Errorf("header %q", r.Header)
	}
}

func TestDeliveryRecipient(t *testing.T) {
	d := Delivery{Mailbox: "Lists/go", Create: true, Flags: []string{`\Seen`, `\flagged`, "$Label1", `\Recent`}}
	r := d.Recipient(42)
	if r.AccountID != 42 || r.MailboxName != "Lists/go" || !r.CreateMailbox ||
		r.Flags != store.FlagSeen|store.FlagFlagged || len(r.Keywords) != 1 || r.Keywords[0] != "$Label1" {
		t.Fatalf("%+v", r)
	}
}

func TestNewMessage(t *testing.T) {
	raw := crlfMsg("Subject: a\nX: b\n\nbody\n\nmore\n")
	p, err := message.Parse(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []*message.Part{nil, p} {
		m, err := NewMessage(bytes.NewReader(raw), int64(len(raw)), part)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Header()) != "Subject: a\r\nX: b\r\n\r\n" || m.Size() != int64(len(raw)) {
			t.Errorf("header %q", m.Header())
		}
		texts, _ := m.bodyTexts("raw", nil)
		if len(texts) != 1 || texts[0] != "body\r\n\r\nmore\r\n" {
			t.Errorf("raw %q", texts)
		}
	}
	pm, err := NewMessagePrefixed([]byte("Delivered-To: joe@example.org\r\n"), bytes.NewReader(raw), int64(len(raw)), p)
	if err != nil || string(pm.Header()) != "Delivered-To: joe@example.org\r\nSubject: a\r\nX: b\r\n\r\n" || pm.Size() != int64(len(raw))+31 {
		t.Errorf("prefixed: %q %d %v", pm.Header(), pm.Size(), err)
	}
	if texts, _ := pm.bodyTexts("text", nil); len(texts) != 1 || texts[0] != "body\r\n\r\nmore\r\n" {
		t.Errorf("prefixed body %q", texts)
	}
	for _, c := range []struct{ in, hdr string }{
		{"", ""},
		{"\r\nbody", "\r\n"},
		{"A: b", "A: b"},
		{"A: b\n", "A: b\n"},
		{"A: b\n\nc", "A: b\n\n"},
		{"A: b\n c\r\n\r\nbody", "A: b\n c\r\n\r\n"},
	} {
		if got := string(MessageFromBytes([]byte(c.in)).Header()); got != c.hdr {
			t.Errorf("%q: header %q, want %q", c.in, got, c.hdr)
		}
	}
}
