package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// fixture is a real SQLite store with the domains and accounts the tests
// below refer to by address.
type fixture struct {
	st  *sqlitestore.Store
	acc map[string]store.Account // by address as created
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, acc: map[string]store.Account{}}
	for _, d := range []store.Domain{
		{Name: "example.org"},
		{Name: "pm.example", Postmaster: "boss@pm.example"},
		{Name: "xn--bcher-kva.example"}, // bücher.example
		{Name: "nopm.example"},
		{Name: "gone.example", Postmaster: "ghost@gone.example"}, // names a missing account
		{Name: "empty.example"},
	} {
		if err := st.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// Creation order matters: "oldest account" is the lowest ID, which is
	// deliberately not the alphabetically first one in nopm.example.
	for _, a := range []store.Account{
		{Address: "Alice.Smith@example.org"},
		{Address: "bob@example.org"},
		{Address: "admin@example.org"},
		{Address: "full@example.org", QuotaBytes: 100},
		{Address: "boss@pm.example"},
		{Address: "abuse@pm.example"},
		{Address: "user@xn--bcher-kva.example"},
		{Address: "zed@nopm.example"},
		{Address: "aaa@nopm.example"},
		{Address: "only@gone.example"},
		{Address: "jörg@example.org"},
	} {
		got, err := st.CreateAccount(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		f.acc[a.Address] = got
	}
	// Fill full@ past its quota (IgnoreQuota, as an import would).
	_, err = st.Deliver(ctx, store.Delivery{
		Blob:       bytes.NewReader(bytes.Repeat([]byte("x"), 200)),
		Recipients: []store.Recipient{{AccountID: f.acc["full@example.org"].ID, IgnoreQuota: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestResolve(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	withGlobal := New(f.st, Options{SubaddressDelimiter: "+", Postmaster: "admin@example.org", TmpDir: t.TempDir()})
	noGlobal := New(f.st, Options{SubaddressDelimiter: "+", TmpDir: t.TempDir()})
	noSub := New(f.st, Options{TmpDir: t.TempDir()})
	missingGlobal := New(f.st, Options{SubaddressDelimiter: "+", Postmaster: "nobody@example.org", TmpDir: t.TempDir()})

	tests := []struct {
		name    string
		d       *Deliverer
		rcpt    string
		account string // expected account address, "" when an error is expected
		local   string // expected Target.Address.Local
		domain  string // expected Target.Address.Domain
		detail  string
		err     error
	}{
		{name: "local account", d: withGlobal, rcpt: "bob@example.org", account: "bob@example.org", local: "bob", domain: "example.org"},
		{name: "case-insensitive local part", d: withGlobal, rcpt: "ALICE.smith@Example.ORG", account: "Alice.Smith@example.org", local: "ALICE.smith", domain: "example.org"},
		{name: "subaddress", d: withGlobal, rcpt: "bob+lists@example.org", account: "bob@example.org", local: "bob+lists", domain: "example.org", detail: "lists"},
		{name: "subaddress of unknown base", d: withGlobal, rcpt: "nobody+tag@example.org", err: ErrUnknownRecipient},
		{name: "delimiter disabled", d: noSub, rcpt: "bob+lists@example.org", err: ErrUnknownRecipient},
		{name: "delimiter disabled, plain address", d: noSub, rcpt: "bob@example.org", account: "bob@example.org", local: "bob", domain: "example.org"},
		{name: "unknown local", d: withGlobal, rcpt: "nobody@example.org", err: ErrUnknownRecipient},
		{name: "foreign domain", d: withGlobal, rcpt: "bob@example.com", err: ErrNotLocal},
		{name: "subdomain is foreign", d: withGlobal, rcpt: "bob@sub.example.org", err: ErrNotLocal},
		{name: "IDN U-label", d: withGlobal, rcpt: "user@bücher.example", account: "user@xn--bcher-kva.example", local: "user", domain: "xn--bcher-kva.example"},
		{name: "IDN U-label upper case", d: withGlobal, rcpt: "USER@BÜCHER.example", account: "user@xn--bcher-kva.example", local: "USER", domain: "xn--bcher-kva.example"},
		{name: "IDN A-label", d: withGlobal, rcpt: "user@xn--bcher-kva.example", account: "user@xn--bcher-kva.example", local: "user", domain: "xn--bcher-kva.example"},
		{name: "non-ASCII local part", d: withGlobal, rcpt: "JÖRG@example.org", account: "jörg@example.org", local: "JÖRG", domain: "example.org"},
		{name: "trailing dot on domain", d: withGlobal, rcpt: "bob@example.org.", account: "bob@example.org", local: "bob", domain: "example.org"},

		{name: "postmaster, domain's own", d: withGlobal, rcpt: "postmaster@pm.example", account: "boss@pm.example", local: "postmaster", domain: "pm.example"},
		{name: "Postmaster mixed case", d: withGlobal, rcpt: "PostMaster@pm.example", account: "boss@pm.example", local: "PostMaster", domain: "pm.example"},
		{name: "abuse, real account wins", d: withGlobal, rcpt: "abuse@pm.example", account: "abuse@pm.example", local: "abuse", domain: "pm.example"},
		{name: "postmaster, global", d: withGlobal, rcpt: "postmaster@example.org", account: "admin@example.org", local: "postmaster", domain: "example.org"},
		{name: "abuse, global", d: withGlobal, rcpt: "abuse@nopm.example", account: "admin@example.org", local: "abuse", domain: "nopm.example"},
		{name: "postmaster, oldest account", d: noGlobal, rcpt: "postmaster@nopm.example", account: "zed@nopm.example", local: "postmaster", domain: "nopm.example"},
		{name: "abuse, oldest account", d: noGlobal, rcpt: "abuse@nopm.example", account: "zed@nopm.example", local: "abuse", domain: "nopm.example"},
		{name: "postmaster, global account missing", d: missingGlobal, rcpt: "postmaster@nopm.example", account: "zed@nopm.example", local: "postmaster", domain: "nopm.example"},
		{name: "postmaster, domain's account missing, global", d: withGlobal, rcpt: "postmaster@gone.example", account: "admin@example.org", local: "postmaster", domain: "gone.example"},
		{name: "postmaster, domain's account missing, oldest", d: noGlobal, rcpt: "postmaster@gone.example", account: "only@gone.example", local: "postmaster", domain: "gone.example"},
		{name: "postmaster, domain without accounts", d: noGlobal, rcpt: "postmaster@empty.example", err: ErrUnknownRecipient},
		{name: "bare postmaster", d: withGlobal, rcpt: "postmaster", account: "admin@example.org", local: "postmaster"},
		{name: "bare POSTMASTER", d: withGlobal, rcpt: "POSTMASTER", account: "admin@example.org", local: "postmaster"},
		{name: "bare postmaster, none configured", d: noGlobal, rcpt: "postmaster", err: ErrUnknownRecipient},

		{name: "at quota", d: withGlobal, rcpt: "full@example.org", err: ErrMailboxFull},
		{name: "at quota via subaddress", d: withGlobal, rcpt: "full+x@example.org", err: ErrMailboxFull},

		{name: "no at sign", d: withGlobal, rcpt: "bob", err: address.ErrInvalid},
		{name: "empty", d: withGlobal, rcpt: "", err: address.ErrInvalid},
		{name: "double dot", d: withGlobal, rcpt: "a..b@example.org", err: address.ErrInvalid},
		{name: "bad domain character", d: withGlobal, rcpt: "bob@exa!mple.org", err: address.ErrInvalid},
		{name: "local part too long", d: withGlobal, rcpt: strings.Repeat("a", 65) + "@example.org", err: address.ErrInvalid},
		{name: "not UTF-8", d: withGlobal, rcpt: "b\xffb@example.org", err: address.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.d.Resolve(ctx, tt.rcpt)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Resolve(%q) = %+v, %v; want error %v", tt.rcpt, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.rcpt, err)
			}
			want := f.acc[tt.account]
			if got.Account.ID != want.ID || got.Account.Address != want.Address {
				t.Errorf("account = %d %q, want %d %q", got.Account.ID, got.Account.Address, want.ID, want.Address)
			}
			if got.Address.Local != tt.local || got.Address.Domain != tt.domain {
				t.Errorf("address = %q @ %q, want %q @ %q", got.Address.Local, got.Address.Domain, tt.local, tt.domain)
			}
			if got.Detail != tt.detail {
				t.Errorf("detail = %q, want %q", got.Detail, tt.detail)
			}
		})
	}
}

func TestIsLocalDomain(t *testing.T) {
	f := newFixture(t)
	d := New(f.st, Options{})
	for _, tt := range []struct {
		domain string
		want   bool
	}{
		{"example.org", true},
		{"EXAMPLE.org.", true},
		{"bücher.example", true},
		{"xn--bcher-kva.example", true},
		{"example.com", false},
		{"", false},
		{"exa!mple.org", false},
	} {
		got, err := d.IsLocalDomain(context.Background(), tt.domain)
		if err != nil || got != tt.want {
			t.Errorf("IsLocalDomain(%q) = %v, %v; want %v", tt.domain, got, err, tt.want)
		}
	}
}

// stored returns the messages in an account's INBOX with their full
// content (prefix + blob).
func stored(t *testing.T, st *sqlitestore.Store, acc store.Account) ([]store.Message, []string) {
	t.Helper()
	ctx := context.Background()
	mb, err := st.GetMailbox(ctx, acc.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	metas, err := st.ListMessages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range metas {
		uids = append(uids, m.UID)
	}
	if len(uids) == 0 {
		return nil, nil
	}
	msgs, err := st.GetMessages(ctx, mb.ID, uids)
	if err != nil {
		t.Fatal(err)
	}
	var contents []string
	for _, m := range msgs {
		c, err := store.OpenContent(ctx, st, m)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c.Reader())
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		contents = append(contents, string(b))
	}
	return msgs, contents
}

func resolveAll(t *testing.T, d *Deliverer, rcpts ...string) []Target {
	t.Helper()
	var out []Target
	for _, r := range rcpts {
		tg, err := d.Resolve(context.Background(), r)
		if err != nil {
			t.Fatalf("resolve %s: %v", r, err)
		}
		out = append(out, tg)
	}
	return out
}

const sampleMessage = "From: Sender <sender@remote.example>\r\n" +
	"To: bob@example.org\r\n" +
	"Subject: Hello there\r\n" +
	"Message-ID: <1@remote.example>\r\n" +
	"\r\n" +
	"Body line 1\r\n" +
	"Received: this is body text, not a header\r\n"

func TestDeliverManyRecipientsOneBlob(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	d := New(f.st, Options{SubaddressDelimiter: "+", TmpDir: t.TempDir(), Registerer: reg})
	targets := resolveAll(t, d,
		"bob+news@example.org", "alice.smith@example.org", "BOB@example.org", "user@bücher.example", "bob@example.org")
	out, err := d.Deliver(context.Background(), Envelope{From: "sender@remote.example", Recipients: targets}, SpoolBytes([]byte(sampleMessage)))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("Deliver returned %d deliveries, want 3 (one per account): %+v", len(out), out)
	}
	blobIDs := map[int64]bool{}
	for _, tc := range []struct {
		account     string
		deliveredTo string
	}{
		// The first RCPT naming an account decides its Delivered-To.
		{"bob@example.org", "bob+news@example.org"},
		{"Alice.Smith@example.org", "alice.smith@example.org"},
		{"user@xn--bcher-kva.example", "user@xn--bcher-kva.example"},
	} {
		msgs, contents := stored(t, f.st, f.acc[tc.account])
		if len(msgs) != 1 {
			t.Fatalf("%s has %d messages, want exactly 1", tc.account, len(msgs))
		}
		m := msgs[0]
		blobIDs[m.BlobID] = true
		wantPrefix := "Return-Path: <sender@remote.example>\r\nDelivered-To: " + tc.deliveredTo + "\r\n"
		if string(m.Prefix) != wantPrefix {
			t.Errorf("%s prefix = %q, want %q", tc.account, m.Prefix, wantPrefix)
		}
		if m.Size != int64(len(wantPrefix)+len(sampleMessage)) {
			t.Errorf("%s RFC822.SIZE = %d, want %d", tc.account, m.Size, len(wantPrefix)+len(sampleMessage))
		}
		if contents[0] != wantPrefix+sampleMessage {
			t.Errorf("%s content = %q", tc.account, contents[0])
		}
		p, err := message.Decode(m.Summary)
		if err != nil {
			t.Fatalf("%s summary: %v", tc.account, err)
		}
		if p.Envelope == nil || p.Envelope.Subject != "Hello there" || p.Envelope.MessageID != "<1@remote.example>" {
			t.Errorf("%s summary envelope = %+v", tc.account, p.Envelope)
		}
		if p.BodyEnd != int64(len(sampleMessage)) {
			t.Errorf("summary BodyEnd = %d, want %d (offsets are relative to the blob)", p.BodyEnd, len(sampleMessage))
		}
	}
	if len(blobIDs) != 1 {
		t.Errorf("recipients got %d different blobs, want one shared blob", len(blobIDs))
	}
	if got := counterValue(t, reg, "mailstead_delivery_messages_total", "delivered"); got != 1 {
		t.Errorf("delivered counter = %v, want 1", got)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestDeliverNullSenderAndPostmaster(t *testing.T) {
	f := newFixture(t)
	d := New(f.st, Options{Postmaster: "admin@example.org", TmpDir: t.TempDir()})
	targets := resolveAll(t, d, "postmaster")
	if _, err := d.Deliver(context.Background(), Envelope{From: "", Recipients: targets}, SpoolBytes([]byte(sampleMessage))); err != nil {
		t.Fatal(err)
	}
	msgs, _ := stored(t, f.st, f.acc["admin@example.org"])
	if len(msgs) != 1 {
		t.Fatalf("admin has %d messages", len(msgs))
	}
	if want := "Return-Path: <>\r\nDelivered-To: postmaster\r\n"; string(msgs[0].Prefix) != want {
		t.Errorf("prefix = %q, want %q", msgs[0].Prefix, want)
	}
}

func TestDeliverOverQuota(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	acc := f.acc["bob@example.org"]
	acc.QuotaBytes = 300
	if err := f.st.UpdateAccount(ctx, acc); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d := New(f.st, Options{TmpDir: t.TempDir(), Registerer: reg})
	targets := resolveAll(t, d, "bob@example.org", "admin@example.org")
	big := sampleMessage + strings.Repeat("padding line\r\n", 30)
	_, err := d.Deliver(ctx, Envelope{From: "s@remote.example", Recipients: targets}, SpoolBytes([]byte(big)))
	if !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("Deliver over quota: %v, want ErrOverQuota", err)
	}
	// All or nothing: the other recipient got nothing either.
	if msgs, _ := stored(t, f.st, f.acc["admin@example.org"]); len(msgs) != 0 {
		t.Errorf("admin got %d messages from a failed delivery", len(msgs))
	}
	if got := counterValue(t, reg, "mailstead_delivery_messages_total", "failed"); got != 1 {
		t.Errorf("failed counter = %v, want 1", got)
	}
	// A message that fits still goes through.
	if _, err := d.Deliver(ctx, Envelope{From: "s@remote.example", Recipients: targets[:1]}, SpoolBytes([]byte(sampleMessage))); err != nil {
		t.Fatalf("small message: %v", err)
	}
}

// withReceived returns a message with n Received header fields.
func withReceived(n int, eol string) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "Received: from hop%d.example by hop%d.example;%s\tMon, 1 Jan 2024 00:00:00 +0000%s", i, i+1, eol, eol)
	}
	b.WriteString("Subject: loop" + eol + eol + "body" + eol)
	// Received lines in the body never count.
	for range 10 {
		b.WriteString("Received: in the body" + eol)
	}
	return b.Bytes()
}

func TestDeliverHopLimit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name        string
		maxReceived int // Options.MaxReceived; 0 = default 50
		hops        int
		eol         string
		loop        bool
	}{
		{"default, at limit", 0, 50, "\r\n", false},
		{"default, over limit", 0, 51, "\r\n", true},
		{"default, LF only, at limit", 0, 50, "\n", false},
		{"default, LF only, over limit", 0, 51, "\n", true},
		{"custom 3, at limit", 3, 3, "\r\n", false},
		{"custom 3, over limit", 3, 4, "\r\n", true},
		{"no Received", 3, 0, "\r\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			d := New(f.st, Options{MaxReceived: tt.maxReceived, TmpDir: t.TempDir(), Registerer: reg})
			targets := resolveAll(t, d, "bob@example.org")
			_, err := d.Deliver(ctx, Envelope{From: "s@remote.example", Recipients: targets}, SpoolBytes(withReceived(tt.hops, tt.eol)))
			if tt.loop {
				if !errors.Is(err, ErrLoop) {
					t.Fatalf("Deliver with %d hops: %v, want ErrLoop", tt.hops, err)
				}
				if got := counterValue(t, reg, "mailstead_delivery_messages_total", "loop"); got != 1 {
					t.Errorf("loop counter = %v", got)
				}
			} else if err != nil {
				t.Fatalf("Deliver with %d hops: %v", tt.hops, err)
			}
		})
	}
}

// TestDeliverUnparseableStillStored: the summary is best effort; junk is
// still delivered (and whatever summary the tolerant parser makes is
// decodable).
func TestDeliverJunk(t *testing.T) {
	f := newFixture(t)
	d := New(f.st, Options{TmpDir: t.TempDir()})
	junk := []byte("\x00\xff no header at all\r\n--boundary\r\n\r\n")
	if _, err := d.Deliver(context.Background(), Envelope{From: "s@remote.example", Recipients: resolveAll(t, d, "bob@example.org")}, SpoolBytes(junk)); err != nil {
		t.Fatal(err)
	}
	msgs, contents := stored(t, f.st, f.acc["bob@example.org"])
	if len(msgs) != 1 || !strings.HasSuffix(contents[0], string(junk)) {
		t.Fatalf("stored %d messages: %q", len(msgs), contents)
	}
	if msgs[0].Summary != nil {
		if _, err := message.Decode(msgs[0].Summary); err != nil {
			t.Errorf("summary of junk does not decode: %v", err)
		}
	}
}

func TestPrefix(t *testing.T) {
	for _, tt := range []struct {
		from, rcpt, want string
	}{
		{"a@b.example", "c@d.example", "Return-Path: <a@b.example>\r\nDelivered-To: c@d.example\r\n"},
		{"", "c@d.example", "Return-Path: <>\r\nDelivered-To: c@d.example\r\n"},
		{"a@b.example\r\nX-Evil: yes", "c@d\n.example\x00", "Return-Path: <a@b.exampleX-Evil: yes>\r\nDelivered-To: c@d.example\r\n"},
		{"jörg@example.org", "ö@example.org", "Return-Path: <jörg@example.org>\r\nDelivered-To: ö@example.org\r\n"},
	} {
		if got := string(Prefix(tt.from, tt.rcpt)); got != tt.want {
			t.Errorf("Prefix(%q, %q) = %q, want %q", tt.from, tt.rcpt, got, tt.want)
		}
	}
}

func TestCountReceived(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header string
		want   int
	}{
		{"empty", "", 0},
		{"one CRLF", "Received: from a by b; date\r\n\r\n", 1},
		{"one LF", "Received: from a by b; date\n\n", 1},
		{"no trailing newline", "Received: x", 1},
		{"bare name", "Received:", 1},
		{"lower case", "received: x\r\n", 1},
		{"upper case", "RECEIVED: x\r\n", 1},
		{"folded continuation not counted", "Received: from a\r\n Received: by b\r\n\tReceived: c\r\n", 1},
		{"X-Received", "X-Received: x\r\n", 0},
		{"Received-SPF", "Received-SPF: pass\r\n", 0},
		{"too short", "Received\r\nReceive:\r\n", 0},
		{"mixed", "Received: 1\r\nSubject: s\r\nReceived: 2\nreceived:3\r\nFrom: f\r\n", 3},
		{"not at line start", "Subject: Received: x\r\n", 0},
		{"CR only is not a line break", "Received: 1\rReceived: 2\r", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := CountReceived([]byte(tt.header)); got != tt.want {
				t.Errorf("CountReceived(%q) = %d, want %d", tt.header, got, tt.want)
			}
		})
	}
}

func FuzzCountReceived(f *testing.F) {
	f.Add([]byte("Received: a\r\nReceived: b\r\n\r\nReceived: body\r\n"), []byte("Received: x\n"))
	f.Add([]byte("received:\n"), []byte("X: y\r\n\r\n"))
	f.Add([]byte(""), []byte("Received"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		na := CountReceived(a)
		if lines := bytes.Count(a, []byte("\n")) + 1; na < 0 || na > lines {
			t.Fatalf("CountReceived = %d for %d lines", na, lines)
		}
		// Counting is per line: two blocks each ending in a line break
		// count as the sum of their counts.
		a2 := append(append([]byte{}, a...), '\n')
		if got, want := CountReceived(append(a2, b...)), CountReceived(a2)+CountReceived(b); got != want {
			t.Fatalf("CountReceived(a+\\n+b) = %d, want %d", got, want)
		}
		// CRLF and LF line breaks count the same.
		lf := bytes.ReplaceAll(a, []byte("\r\n"), []byte("\n"))
		if CountReceived(lf) != na {
			t.Fatalf("CRLF→LF changed the count: %d vs %d", CountReceived(lf), na)
		}
		// What Deliver counts is the header of a spool.
		sp := SpoolBytes(a)
		h := sp.Header(len(a) + 1)
		if CountReceived(h) > na {
			t.Fatalf("header has more Received fields than the whole message")
		}
	})
}
