package delivery

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/mailauth"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

const authID = "mx.example.org"

// authZone is the senders' DNS: 127.0.0.10 is allowed to send for all of
// them, 127.0.0.66 for none.
const authZone = `
sender.test TXT "v=spf1 ip4:127.0.0.10 -all"
_dmarc.sender.test TXT "v=DMARC1; p=reject"
quar.test TXT "v=spf1 ip4:127.0.0.10 -all"
_dmarc.quar.test TXT "v=DMARC1; p=quarantine"
pct.test TXT "v=spf1 ip4:127.0.0.10 -all"
_dmarc.pct.test TXT "v=DMARC1; p=reject; pct=0"
_dmarc.slow.test TIMEOUT
`

func newAuthZone(t *testing.T) *dnsresolver.Fake {
	t.Helper()
	z := dnsresolver.NewFake()
	if err := z.LoadZone(strings.NewReader(authZone)); err != nil {
		t.Fatal(err)
	}
	return z
}

// forged is a message from sender.test carrying fields that claim our
// verdicts, one foreign Authentication-Results field, and the same names
// in its body.
func forged(from string) string {
	return "Received: from client.test ([127.0.0.10]) by mx.example.org\r\n" +
		"Authentication-Results: mx.example.org; dmarc=pass header.from=" + from + "\r\n" +
		"Authentication-Results: relay.elsewhere.test; spf=pass\r\n" +
		"From: Sender <someone@" + from + ">\r\n" +
		"X-Mailstead-Verdict: trusted\r\n" +
		"authentication-results:\r\n (forged) MX.EXAMPLE.ORG.; spf=pass\r\n" +
		"Subject: verdicts\r\n" +
		"\r\n" +
		"Authentication-Results: mx.example.org; body text stays\r\n" +
		"X-Mailstead-Verdict: body text stays\r\n"
}

// cleaned is forged(from) as it must be stored.
func cleaned(from string) string {
	return "Received: from client.test ([127.0.0.10]) by mx.example.org\r\n" +
		"Authentication-Results: relay.elsewhere.test; spf=pass\r\n" +
		"From: Sender <someone@" + from + ">\r\n" +
		"Subject: verdicts\r\n" +
		"\r\n" +
		"Authentication-Results: mx.example.org; body text stays\r\n" +
		"X-Mailstead-Verdict: body text stays\r\n"
}

// storedIn is stored for any mailbox.
func storedIn(t *testing.T, st *sqlitestore.Store, acc store.Account, mailbox string) ([]store.Message, []string) {
	t.Helper()
	ctx := context.Background()
	mb, err := st.GetMailbox(ctx, acc.ID, mailbox)
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

func TestDeliverAuthentication(t *testing.T) {
	type placed struct {
		account string
		mailbox string // "" when the account must have got nothing
	}
	tests := []struct {
		name     string
		ip       string
		from     string // From domain and MAIL FROM domain
		rcpts    []string
		policy   func(domain string) DomainPolicy
		err      error
		counter  string
		want     []placed
		inHeader []string // substrings of the stored Authentication-Results field
	}{
		{name: "pass", ip: "127.0.0.10", from: "sender.test", rcpts: []string{"bob@example.org"}, counter: "delivered",
			want: []placed{{"bob@example.org", "INBOX"}}, inHeader: []string{"spf=pass smtp.mailfrom=someone@sender.test", "dkim=none", "dmarc=pass header.from=sender.test"}},
		{name: "p=reject fails: refused", ip: "127.0.0.66", from: "sender.test", rcpts: []string{"bob@example.org", "alice.smith@example.org"},
			err: ErrDMARCReject, counter: "dmarc_reject", want: []placed{{"bob@example.org", ""}, {"Alice.Smith@example.org", ""}}},
		{name: "p=reject fails, domain accepts", ip: "127.0.0.66", from: "sender.test", rcpts: []string{"bob@example.org"},
			policy:  func(string) DomainPolicy { return DomainPolicy{DMARCReject: ActionAccept} },
			counter: "delivered", want: []placed{{"bob@example.org", "INBOX"}}, inHeader: []string{"spf=fail", `dmarc=fail reason="p=reject"`}},
		{name: "p=reject fails, domain wants Junk", ip: "127.0.0.66", from: "sender.test", rcpts: []string{"bob@example.org"},
			policy:  func(string) DomainPolicy { return DomainPolicy{DMARCReject: ActionJunk} },
			counter: "junk", want: []placed{{"bob@example.org", "Junk"}}, inHeader: []string{"dmarc=fail"}},
		{name: "p=reject fails, recipients' domains differ", ip: "127.0.0.66", from: "sender.test", rcpts: []string{"bob@example.org", "user@bücher.example"},
			policy: func(d string) DomainPolicy {
				if d == "xn--bcher-kva.example" {
					return DomainPolicy{DMARCReject: ActionAccept}
				}
				return DomainPolicy{}
			},
			counter: "junk", want: []placed{{"bob@example.org", "Junk"}, {"user@xn--bcher-kva.example", "INBOX"}}},
		{name: "p=reject fails, postmaster still gets it", ip: "127.0.0.66", from: "sender.test", rcpts: []string{"postmaster@pm.example"},
			counter: "junk", want: []placed{{"boss@pm.example", "Junk"}}},
		{name: "p=quarantine fails: Junk", ip: "127.0.0.66", from: "quar.test", rcpts: []string{"bob@example.org"},
			counter: "junk", want: []placed{{"bob@example.org", "Junk"}}, inHeader: []string{`dmarc=fail reason="p=quarantine"`}},
		{name: "p=quarantine fails, domain accepts", ip: "127.0.0.66", from: "quar.test", rcpts: []string{"bob@example.org"},
			policy:  func(string) DomainPolicy { return DomainPolicy{DMARCQuarantine: ActionAccept} },
			counter: "delivered", want: []placed{{"bob@example.org", "INBOX"}}},
		{name: "p=reject with pct=0 is quarantined", ip: "127.0.0.66", from: "pct.test", rcpts: []string{"bob@example.org"},
			counter: "junk", want: []placed{{"bob@example.org", "Junk"}}, inHeader: []string{`reason="p=reject applied=quarantine"`}},
		{name: "DNS timeout: retry later", ip: "127.0.0.10", from: "slow.test", rcpts: []string{"bob@example.org"},
			err: ErrTemporary, counter: "auth_tempfail", want: []placed{{"bob@example.org", ""}}},
		{name: "DNS timeout, domain accepts", ip: "127.0.0.10", from: "slow.test", rcpts: []string{"bob@example.org"},
			policy:  func(string) DomainPolicy { return DomainPolicy{TempError: ActionAccept} },
			counter: "delivered", want: []placed{{"bob@example.org", "INBOX"}}, inHeader: []string{"dmarc=temperror"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			reg := prometheus.NewRegistry()
			d := New(f.st, Options{
				SubaddressDelimiter: "+", TmpDir: t.TempDir(), Registerer: reg,
				Resolver: newAuthZone(t), AuthServID: authID, Policy: tc.policy,
				rand: func(int) int { return 0 },
			})
			env := Envelope{
				From:       "someone@" + tc.from,
				Recipients: resolveAll(t, d, tc.rcpts...),
				RemoteIP:   netip.MustParseAddr(tc.ip),
				Helo:       "client.test",
			}
			msg := forged(tc.from)
			_, err := d.Deliver(context.Background(), env, SpoolBytes([]byte(msg)))
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Deliver: %v, want %v", err, tc.err)
			}
			if got := counterValue(t, reg, "mailstead_delivery_messages_total", tc.counter); got != 1 {
				t.Errorf("%s counter = %v", tc.counter, got)
			}
			for _, p := range tc.want {
				acc := f.acc[p.account]
				for _, mb := range []string{"INBOX", "Junk"} {
					msgs, contents := storedIn(t, f.st, acc, mb)
					if mb != p.mailbox {
						if len(msgs) != 0 {
							t.Errorf("%s has %d messages in %s", p.account, len(msgs), mb)
						}
						continue
					}
					if len(msgs) != 1 {
						t.Fatalf("%s has %d messages in %s, want 1", p.account, len(msgs), mb)
					}
					m := msgs[0]
					if mb == "Junk" && !slices.Contains(m.Keywords, "$Junk") {
						t.Errorf("%s: keywords %q", p.account, m.Keywords)
					}
					prefix := string(m.Prefix)
					if !strings.HasPrefix(prefix, "Return-Path: <someone@"+tc.from+">\r\nDelivered-To: ") {
						t.Errorf("prefix %q", prefix)
					}
					ar := prefix[strings.Index(prefix, "Authentication-Results:"):]
					if !strings.HasPrefix(ar, "Authentication-Results: "+authID+";\r\n\t") || strings.Count(prefix, "Authentication-Results:") != 1 {
						t.Errorf("prefix %q", prefix)
					}
					for _, s := range tc.inHeader {
						if !strings.Contains(strings.ReplaceAll(ar, "\r\n\t", " "), s) {
							t.Errorf("%q missing in %q", s, ar)
						}
					}
					if contents[0] != prefix+cleaned(tc.from) {
						t.Errorf("stored %q, want prefix + %q", contents[0], cleaned(tc.from))
					}
					if m.Size != int64(len(contents[0])) {
						t.Errorf("size %d, content %d", m.Size, len(contents[0]))
					}
					p, err := message.Decode(m.Summary)
					if err != nil {
						t.Fatal(err)
					}
					if p.Envelope == nil || p.Envelope.Subject != "verdicts" || p.BodyEnd != int64(len(cleaned(tc.from))) {
						t.Errorf("summary not of the stored blob: %+v, BodyEnd %d", p.Envelope, p.BodyEnd)
					}
				}
			}
		})
	}
}

// TestDeliverAuthDKIM: a message signed by its From domain passes DMARC
// from an address SPF does not allow, and the verdicts reach the caller
// through Authenticate.
func TestDeliverAuthDKIM(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	z := newAuthZone(t)
	z.AddTXT("sel._domainkey.sender.test", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	var signed bytes.Buffer
	err = dkim.Sign(&signed, strings.NewReader("From: a@sender.test\r\nSubject: signed\r\n\r\nbody\r\n"), &dkim.SignOptions{
		Domain: "sender.test", Selector: "sel", Signer: priv,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	d := New(f.st, Options{TmpDir: t.TempDir(), Resolver: z, AuthServID: authID})
	env := Envelope{From: "bounce@elsewhere.test", Recipients: resolveAll(t, d, "bob@example.org"), RemoteIP: netip.MustParseAddr("127.0.0.66"), Helo: "client.test"}
	sp := SpoolBytes(signed.Bytes())
	res := d.Authenticate(context.Background(), env, sp)
	if res == nil || res.DMARC.Status != mailauth.Pass || !res.DMARC.DKIMAligned || len(res.DKIM) != 1 || res.DKIM[0].Selector != "sel" {
		t.Fatalf("Authenticate: %+v", res)
	}
	// With the result passed in, Deliver does not check again.
	before := len(z.Queries())
	env.Auth = res
	if _, err := d.Deliver(context.Background(), env, sp); err != nil {
		t.Fatal(err)
	}
	if n := len(z.Queries()); n != before {
		t.Errorf("Deliver made %d more DNS queries despite env.Auth", n-before)
	}
	msgs, _ := storedIn(t, f.st, f.acc["bob@example.org"], "INBOX")
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Prefix), "dkim=pass") {
		t.Fatalf("stored %+v", msgs)
	}
}

// TestDeliverNotFromInternet: authenticated senders, unknown client
// addresses and trusted networks are not checked, but forged fields are
// still removed.
func TestDeliverNotFromInternet(t *testing.T) {
	f := newFixture(t)
	z := newAuthZone(t)
	d := New(f.st, Options{TmpDir: t.TempDir(), Resolver: z, AuthServID: authID})
	d.opts.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")}
	acc := f.acc["admin@example.org"]
	for _, env := range []Envelope{
		{From: "someone@sender.test", RemoteIP: netip.MustParseAddr("127.0.0.66"), Account: &acc},
		{From: "someone@sender.test"},
		{From: "someone@sender.test", RemoteIP: netip.MustParseAddr("::ffff:127.0.1.5")},
	} {
		env.Recipients = resolveAll(t, d, "bob@example.org")
		if d.Authenticate(context.Background(), env, SpoolBytes([]byte(forged("sender.test")))) != nil {
			t.Error("Authenticate checked mail not from the internet")
		}
		if _, err := d.Deliver(context.Background(), env, SpoolBytes([]byte(forged("sender.test")))); err != nil {
			t.Fatal(err)
		}
	}
	if q := z.Queries(); len(q) != 0 {
		t.Errorf("DNS queries: %q", q)
	}
	msgs, contents := storedIn(t, f.st, f.acc["bob@example.org"], "INBOX")
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if strings.Contains(string(m.Prefix), "Authentication-Results") || contents[i] != string(m.Prefix)+cleaned("sender.test") {
			t.Errorf("message %d: %q", i, contents[i])
		}
	}
}

// TestDeliverStripConfig: the strip list is configurable (the spam
// checks' X-Spam-* fields), and without an authserv-id nothing is
// touched.
func TestDeliverStripConfig(t *testing.T) {
	f := newFixture(t)
	msg := "X-Spam-Status: No\r\nX-Mailstead-A: 1\r\nSubject: x\r\n\r\nbody\r\n"
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{AuthServID: authID, StripFields: []string{"X-Spam-*", "X-Mailstead-*"}}, "Subject: x\r\n\r\nbody\r\n"},
		{Options{AuthServID: authID}, "X-Spam-Status: No\r\nSubject: x\r\n\r\nbody\r\n"},
		{Options{}, msg},
	} {
		tc.opts.TmpDir = t.TempDir()
		d := New(f.st, tc.opts)
		if _, err := d.Deliver(context.Background(), Envelope{From: "a@b.test", Recipients: resolveAll(t, d, "bob@example.org")}, SpoolBytes([]byte(msg))); err != nil {
			t.Fatal(err)
		}
	}
	msgs, contents := storedIn(t, f.st, f.acc["bob@example.org"], "INBOX")
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, want := range []string{"Subject: x\r\n\r\nbody\r\n", "X-Spam-Status: No\r\nSubject: x\r\n\r\nbody\r\n", msg} {
		if got := strings.TrimPrefix(contents[i], string(msgs[i].Prefix)); got != want {
			t.Errorf("message %d: %q, want %q", i, got, want)
		}
	}
}

// TestDeliverStripLargeSpool: a message spilled to a file keeps its body
// byte for byte when its header is rewritten.
func TestDeliverStripLargeSpool(t *testing.T) {
	f := newFixture(t)
	tmp := t.TempDir()
	d := New(f.st, Options{TmpDir: tmp, AuthServID: authID})
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\r\n"), 60000) // > 2 MiB
	head := []byte("Received: by us\r\n")
	msg := append([]byte("Authentication-Results: mx.example.org; spf=pass\r\nSubject: big\r\n\r\n"), body...)
	sp, err := NewSpool(head, bytes.NewReader(msg), 0, tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.file == nil {
		t.Fatal("spool did not spill to a file")
	}
	if _, err := d.Deliver(context.Background(), Envelope{From: "a@b.test", Recipients: resolveAll(t, d, "bob@example.org")}, sp); err != nil {
		t.Fatal(err)
	}
	msgs, contents := storedIn(t, f.st, f.acc["bob@example.org"], "INBOX")
	want := "Received: by us\r\nSubject: big\r\n\r\n" + string(body)
	if len(msgs) != 1 || strings.TrimPrefix(contents[0], string(msgs[0].Prefix)) != want {
		t.Fatalf("stored %d messages, content differs", len(msgs))
	}
}

func TestDeliverHeaderTooLarge(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	d := New(f.st, Options{TmpDir: t.TempDir(), AuthServID: authID, Registerer: reg})
	var b bytes.Buffer
	for b.Len() <= MaxHeaderBytes {
		b.WriteString("X-Filler: " + strings.Repeat("x", 70) + "\r\n")
	}
	b.WriteString("\r\nbody\r\n")
	_, err := d.Deliver(context.Background(), Envelope{From: "a@b.test", Recipients: resolveAll(t, d, "bob@example.org")}, SpoolBytes(b.Bytes()))
	if !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("got %v", err)
	}
	if got := counterValue(t, reg, "mailstead_delivery_messages_total", "header_too_large"); got != 1 {
		t.Errorf("counter %v", got)
	}
	// A message that is all header (no blank line) is fine.
	if _, err := d.Deliver(context.Background(), Envelope{From: "a@b.test", Recipients: resolveAll(t, d, "bob@example.org")}, SpoolBytes([]byte("Subject: x\r\nAuthentication-Results: mx.example.org; x"))); err != nil {
		t.Fatal(err)
	}
	_, contents := storedIn(t, f.st, f.acc["bob@example.org"], "INBOX")
	if len(contents) != 1 || !strings.HasSuffix(contents[0], "Delivered-To: bob@example.org\r\nSubject: x\r\n") {
		t.Errorf("stored %q", contents)
	}
}

func TestSplice(t *testing.T) {
	orig := []byte("Old-Header: 1\r\nSubject: s\r\n\r\nthe body, which stays\r\n")
	end := bytes.Index(orig, []byte("\r\n\r\n")) + 4
	head := []byte("Subject: s\r\n\r\n")
	want := append(append([]byte{}, head...), orig[end:]...)
	s := &splice{head: head, rest: bytes.NewReader(orig), off: int64(end), size: int64(len(want))}
	if s.Size() != int64(len(want)) {
		t.Fatalf("size %d", s.Size())
	}
	for off := 0; off <= len(want)+1; off++ {
		for n := 0; n <= len(want)+2; n++ {
			p := make([]byte, n)
			k, err := s.ReadAt(p, int64(off))
			exp := 0
			if off < len(want) {
				exp = min(n, len(want)-off)
			}
			if k != exp || !bytes.Equal(p[:k], want[min(off, len(want)):min(off, len(want))+exp]) {
				t.Fatalf("ReadAt(%d bytes, %d) = %d %q", n, off, k, p[:k])
			}
			// EOF exactly when short, or (like bytes.Reader) at the end.
			if k < n && err != io.EOF || k == n && off < len(want) && err != nil {
				t.Fatalf("ReadAt(%d bytes, %d): %d, %v", n, off, k, err)
			}
		}
	}
	if _, err := s.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("negative offset accepted")
	}
}
