package mailauth

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

const ourID = "mx.mailstead.test"

var (
	baseZoneOnce sync.Once
	baseZone     *dnsresolver.Fake
	baseZoneErr  error
)

// zone returns a fresh copy of the testdata zone (SPF, DMARC and DKIM
// keys).
func zone(t testing.TB) *dnsresolver.Fake {
	t.Helper()
	baseZoneOnce.Do(func() {
		baseZone = dnsresolver.NewFake()
		for _, f := range []string{"zone.txt", "keys.zone"} {
			b, err := os.ReadFile(filepath.Join("testdata", f))
			if err != nil {
				baseZoneErr = err
				return
			}
			if err := baseZone.LoadZone(bytes.NewReader(b)); err != nil {
				baseZoneErr = err
				return
			}
		}
	})
	if baseZoneErr != nil {
		t.Fatal(baseZoneErr)
	}
	return baseZone.Clone()
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// plain is an unsigned message with the given From field value.
func plain(from string) []byte {
	return []byte("From: " + from + "\r\nTo: someone@example.org\r\nSubject: test\r\n\r\nHello.\r\n")
}

type check struct {
	ip       string
	helo     string
	mailFrom string
	msg      []byte
	rand     int // the value the pct= sampling draws
	zone     func(z *dnsresolver.Fake)
}

func run(t *testing.T, c check) Result {
	t.Helper()
	z := zone(t)
	if c.zone != nil {
		c.zone(z)
	}
	ip := c.ip
	if ip == "" {
		ip = "127.0.0.66"
	}
	helo := c.helo
	if helo == "" {
		helo = "client.test"
	}
	msg := c.msg
	if msg == nil {
		msg = plain("someone@nospf.test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Verify(ctx, z, Input{
		RemoteIP:   netip.MustParseAddr(ip),
		Helo:       helo,
		MailFrom:   c.mailFrom,
		Message:    bytes.NewReader(msg),
		Size:       int64(len(msg)),
		AuthServID: ourID,
		Rand:       func(int) int { return c.rand },
	})
}

func TestSPF(t *testing.T) {
	tests := []struct {
		name     string
		c        check
		status   Status
		identity string
		domain   string
	}{
		{"pass", check{ip: "127.0.0.10", mailFrom: "a@example.com"}, Pass, "mailfrom", "example.com"},
		{"pass IPv6", check{ip: "::1", mailFrom: "a@example.com"}, Pass, "mailfrom", "example.com"},
		{"pass IPv4-mapped", check{ip: "::ffff:127.0.0.10", mailFrom: "a@example.com"}, Pass, "mailfrom", "example.com"},
		{"pass upper-case domain", check{ip: "127.0.0.10", mailFrom: "a@EXAMPLE.Com"}, Pass, "mailfrom", "example.com"},
		{"pass quoted local part with @", check{ip: "127.0.0.10", mailFrom: `"a@b"@example.com`}, Pass, "mailfrom", "example.com"},
		{"pass via include", check{ip: "127.0.0.10", mailFrom: "a@include.test"}, Pass, "mailfrom", "include.test"},
		{"pass via mx", check{ip: "127.0.0.20", mailFrom: "a@mx.test"}, Pass, "mailfrom", "mx.test"},
		{"pass via a:", check{ip: "127.0.0.21", mailFrom: "a@mx.test"}, Pass, "mailfrom", "mx.test"},
		{"fail", check{mailFrom: "a@example.com"}, Fail, "mailfrom", "example.com"},
		{"softfail", check{mailFrom: "a@softfail.test"}, SoftFail, "mailfrom", "softfail.test"},
		{"neutral", check{mailFrom: "a@neutral.test"}, Neutral, "mailfrom", "neutral.test"},
		{"empty record is neutral", check{mailFrom: "a@empty.test"}, Neutral, "mailfrom", "empty.test"},
		{"none, no record", check{mailFrom: "a@nospf.test"}, None, "mailfrom", "nospf.test"},
		{"none, non-SPF TXT only", check{mailFrom: "a@example.org", zone: func(z *dnsresolver.Fake) {
			z.SetTXT("example.org", "google-site-verification=x")
		}}, None, "mailfrom", "example.org"},
		{"temperror, timeout", check{mailFrom: "a@spftimeout.test"}, TempError, "mailfrom", "spftimeout.test"},
		{"temperror, SERVFAIL", check{mailFrom: "a@spfservfail.test"}, TempError, "mailfrom", "spfservfail.test"},
		{"temperror in include", check{mailFrom: "a@brokeninclude.test"}, TempError, "mailfrom", "brokeninclude.test"},
		{"permerror, bad mechanism", check{mailFrom: "a@badspf.test"}, PermError, "mailfrom", "badspf.test"},
		{"permerror, two records", check{mailFrom: "a@twospf.test"}, PermError, "mailfrom", "twospf.test"},
		{"permerror, too many lookups", check{mailFrom: "a@limit.test"}, PermError, "mailfrom", "limit.test"},
		{"permerror, too many void lookups", check{mailFrom: "a@voidlimit.test"}, PermError, "mailfrom", "voidlimit.test"},
		{"null sender uses HELO, pass", check{ip: "127.0.0.30", helo: "helo.test"}, Pass, "helo", "helo.test"},
		{"null sender uses HELO, fail", check{helo: "helo.test"}, Fail, "helo", "helo.test"},
		{"null sender, address literal HELO", check{helo: "[127.0.0.66]"}, None, "helo", ""},
		{"null sender, bare HELO name", check{helo: "localhost"}, None, "helo", ""},
		{"sender without domain", check{mailFrom: "postmaster"}, None, "mailfrom", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.c)
			if r.SPF.Status != tc.status || r.SPF.Identity != tc.identity || r.SPF.Domain != tc.domain {
				t.Errorf("got %+v, want %s identity %q domain %q", r.SPF, tc.status, tc.identity, tc.domain)
			}
			if (tc.status == TempError || tc.status == PermError) && r.SPF.Reason == "" {
				t.Error("no reason for an error")
			}
		})
	}
}

func TestSPFNoDNSForLiteral(t *testing.T) {
	z := zone(t)
	msg := plain("x@nospf.test")
	Verify(context.Background(), z, Input{RemoteIP: netip.MustParseAddr("127.0.0.1"), Helo: "[127.0.0.1]", Message: bytes.NewReader(msg), Size: int64(len(msg))})
	for _, q := range z.Queries() {
		if strings.Contains(q, "127.0.0.1") {
			t.Errorf("looked up %q", q)
		}
	}
}

func TestDKIM(t *testing.T) {
	rsa := readFixture(t, "rsa.eml")
	ed := readFixture(t, "ed25519.eml")
	multi := readFixture(t, "multi.eml")
	tests := []struct {
		name   string
		c      check
		want   []DKIM // Status, Domain, Selector, Algorithm compared
		reason string // substring of the first result's reason
	}{
		{"RSA pass", check{msg: rsa}, []DKIM{{Status: Pass, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, ""},
		{"Ed25519 pass", check{msg: ed}, []DKIM{{Status: Pass, Domain: "example.com", Selector: "ed", Algorithm: "ed25519-sha256"}}, ""},
		{"two signatures", check{msg: multi}, []DKIM{
			{Status: Pass, Domain: "example.org", Selector: "ed", Algorithm: "ed25519-sha256"},
			{Status: Pass, Domain: "thirdparty.test", Selector: "rsa", Algorithm: "rsa-sha256"},
		}, ""},
		{"LF line endings", check{msg: bytes.ReplaceAll(rsa, []byte("\r\n"), []byte("\n"))}, []DKIM{{Status: Pass, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, ""},
		{"body modified", check{msg: bytes.Replace(rsa, []byte("Hello Bob"), []byte("Hello Eve"), 1)}, []DKIM{{Status: Fail, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, "body hash"},
		{"signed header modified", check{msg: bytes.Replace(rsa, []byte("Subject: RSA signed"), []byte("Subject: RSA signed!"), 1)}, []DKIM{{Status: Fail, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, "signature did not verify"},
		{"signed header added below", check{msg: bytes.Replace(rsa, []byte("Subject: RSA signed\r\n"), []byte("Subject: RSA signed\r\nSubject: injected\r\n"), 1)}, []DKIM{{Status: Fail, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, "signature did not verify"},
		// Signed fields are taken bottom-up (RFC 6376 5.4.2): one added
		// above the signed instance is not covered and does not break it.
		{"signed header added above", check{msg: bytes.Replace(rsa, []byte("\r\nSubject:"), []byte("\r\nSubject: injected\r\nSubject:"), 1)}, []DKIM{{Status: Pass, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, ""},
		{"unsigned header added", check{msg: append([]byte("Received: from x by y\r\n"), rsa...)}, []DKIM{{Status: Pass, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, ""},
		{"missing key", check{msg: rsa, zone: func(z *dnsresolver.Fake) { z.SetTXT("rsa._domainkey.example.com") }},
			[]DKIM{{Status: PermError, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, "no key"},
		{"key revoked", check{msg: rsa, zone: func(z *dnsresolver.Fake) { z.SetTXT("rsa._domainkey.example.com", "v=DKIM1; k=rsa; p=") }},
			[]DKIM{{Status: PermError, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, "revoked"},
		{"key of another algorithm", check{msg: rsa, zone: func(z *dnsresolver.Fake) {
			ed, _ := z.LookupTXT(context.Background(), "ed._domainkey.example.com")
			z.SetTXT("rsa._domainkey.example.com", ed...)
		}}, []DKIM{{Status: PermError, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, "key algorithm"},
		{"key lookup timeout", check{msg: rsa, zone: func(z *dnsresolver.Fake) { z.Fail("rsa._domainkey.example.com", dnsresolver.FailTimeout) }},
			[]DKIM{{Status: TempError, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, "DNS i/o timeout"},
		{"key lookup SERVFAIL", check{msg: rsa, zone: func(z *dnsresolver.Fake) { z.Fail("rsa._domainkey.example.com", dnsresolver.FailServFail) }},
			[]DKIM{{Status: TempError, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, ""},
		{"one of two fails", check{msg: multi, zone: func(z *dnsresolver.Fake) { z.SetTXT("ed._domainkey.example.org") }}, []DKIM{
			{Status: PermError, Domain: "example.org", Selector: "ed", Algorithm: "ed25519-sha256"},
			{Status: Pass, Domain: "thirdparty.test", Selector: "rsa", Algorithm: "rsa-sha256"},
		}, "no key"},
		{"no signature", check{msg: plain("a@example.com")}, nil, ""},
		{"malformed signature", check{msg: append([]byte("DKIM-Signature: v=1; a=rsa-sha256\r\n"), plain("a@example.com")...)},
			[]DKIM{{Status: PermError, Algorithm: "rsa-sha256"}}, "missing required tag"},
		{"header only, no body", check{msg: []byte("DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa\r\nFrom: a@example.com")},
			[]DKIM{{Status: PermError, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.c)
			if len(r.DKIM) != len(tc.want) {
				t.Fatalf("got %+v, want %d results", r.DKIM, len(tc.want))
			}
			for i, w := range tc.want {
				g := r.DKIM[i]
				if g.Status != w.Status || g.Domain != w.Domain || g.Selector != w.Selector || g.Algorithm != w.Algorithm {
					t.Errorf("result %d: got %+v, want %+v", i, g, w)
				}
				if g.Status == Pass && (g.Reason != "" || len(g.B) != 8) {
					t.Errorf("result %d: pass with reason %q, b %q", i, g.Reason, g.B)
				}
			}
			if tc.reason != "" && !strings.Contains(r.DKIM[0].Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", r.DKIM[0].Reason, tc.reason)
			}
		})
	}
}

func TestDKIMMaxSignatures(t *testing.T) {
	msg := readFixture(t, "multi.eml")
	r := Verify(context.Background(), zone(t), Input{
		RemoteIP: netip.MustParseAddr("127.0.0.66"), MailFrom: "x@nospf.test",
		Message: bytes.NewReader(msg), Size: int64(len(msg)), MaxSignatures: 1,
	})
	if len(r.DKIM) != 1 || r.DKIM[0].Domain != "example.org" || r.DKIM[0].Status != Pass {
		t.Errorf("got %+v", r.DKIM)
	}
}

func TestDKIMHeaderTooLarge(t *testing.T) {
	msg := append(bytes.Repeat([]byte("X-Filler: 0123456789012345678901234567890123456789\r\n"), maxHeader/50), readFixture(t, "rsa.eml")...)
	r := run(t, check{mailFrom: "x@nospf.test", msg: msg})
	if len(r.DKIM) != 0 {
		// The signature is beyond the header part that is read at all.
		t.Errorf("got %+v", r.DKIM)
	}
	msg = append(readFixture(t, "rsa.eml")[:0:0], readFixture(t, "rsa.eml")...)
	msg = bytes.Replace(msg, []byte("From:"), append(bytes.Repeat([]byte("X-Filler: 0123456789012345678901234567890123456789\r\n"), maxHeader/50), "From:"...), 1)
	r = run(t, check{mailFrom: "x@nospf.test", msg: msg})
	if len(r.DKIM) != 1 || r.DKIM[0].Status != PermError || r.DKIM[0].Reason != "header too large" {
		t.Errorf("got %+v", r.DKIM)
	}
}

func TestDMARC(t *testing.T) {
	rsa := readFixture(t, "rsa.eml")
	ed := readFixture(t, "ed25519.eml")
	strict := readFixture(t, "strict.eml")
	tests := []struct {
		name        string
		c           check
		status      Status
		policy      Action // Result.Policy
		published   Action
		recDomain   string
		from        string
		spfAligned  bool
		dkimAligned bool
		temporary   bool
	}{
		{name: "pass via SPF, same domain", c: check{ip: "127.0.0.10", mailFrom: "a@example.com", msg: plain("a@example.com")},
			status: Pass, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "example.com", spfAligned: true},
		{name: "pass via SPF, relaxed subdomain", c: check{ip: "127.0.0.11", mailFrom: "bounce@mail.example.com", msg: plain("Alice <alice@example.com>")},
			status: Pass, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "example.com", spfAligned: true},
		{name: "pass via HELO of null sender", c: check{ip: "127.0.0.11", helo: "mail.example.com", msg: plain("alice@example.com")},
			status: Pass, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "example.com", spfAligned: true},
		{name: "pass via DKIM", c: check{mailFrom: "x@nospf.test", msg: rsa},
			status: Pass, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "example.com", dkimAligned: true},
		{name: "pass via DKIM of parent domain, org fallback", c: check{mailFrom: "x@nospf.test", msg: ed},
			status: Pass, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "news.example.com", dkimAligned: true},
		{name: "pass via both", c: check{ip: "127.0.0.10", mailFrom: "alice@example.com", msg: rsa},
			status: Pass, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "example.com", spfAligned: true, dkimAligned: true},
		{name: "SPF pass but not aligned", c: check{ip: "127.0.0.10", mailFrom: "x@example.org", msg: plain("a@example.com")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.com", from: "example.com"},
		{name: "DKIM pass but not aligned", c: check{mailFrom: "x@nospf.test", msg: readFixture(t, "multi.eml"), zone: func(z *dnsresolver.Fake) {
			z.SetTXT("ed._domainkey.example.org") // only the third party's signature passes
		}}, status: Fail, policy: ActionNone, published: ActionNone, recDomain: "example.org", from: "example.org"},
		{name: "fail, p=reject", c: check{mailFrom: "a@example.com", msg: plain("a@example.com")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.com", from: "example.com"},
		{name: "fail, p=quarantine", c: check{mailFrom: "x@nospf.test", msg: plain("a@example.net")},
			status: Fail, policy: ActionQuarantine, published: ActionQuarantine, recDomain: "example.net", from: "example.net"},
		{name: "fail, p=none", c: check{mailFrom: "x@nospf.test", msg: plain("a@example.org")},
			status: Fail, policy: ActionNone, published: ActionNone, recDomain: "example.org", from: "example.org"},
		{name: "strict SPF, subdomain does not align", c: check{ip: "127.0.0.10", mailFrom: "b@bounce.example.net", msg: plain("a@example.net")},
			status: Fail, policy: ActionQuarantine, published: ActionQuarantine, recDomain: "example.net", from: "example.net"},
		{name: "strict SPF, exact domain aligns", c: check{ip: "127.0.0.10", mailFrom: "b@example.net", msg: plain("a@example.net")},
			status: Pass, policy: ActionNone, published: ActionQuarantine, recDomain: "example.net", from: "example.net", spfAligned: true},
		{name: "strict DKIM, parent signature does not align; sp= applies", c: check{mailFrom: "x@nospf.test", msg: strict},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.net", from: "sub.example.net"},
		{name: "subdomain policy sp=", c: check{mailFrom: "x@nospf.test", msg: plain("a@sub.example.net")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.net", from: "sub.example.net"},
		{name: "organisational domain fallback, p= without sp=", c: check{mailFrom: "x@nospf.test", msg: plain("a@news.example.com")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.com", from: "news.example.com"},
		{name: "non-DMARC records fall back too", c: check{mailFrom: "x@nospf.test", msg: plain("a@other.example.com")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.com", from: "other.example.com"},
		{name: "multiple records: no DMARC", c: check{mailFrom: "x@nospf.test", msg: plain("a@tworec.example.com")},
			status: None, policy: ActionNone, from: "tworec.example.com"},
		{name: "pct=0 lowers reject to quarantine", c: check{mailFrom: "x@nospf.test", msg: plain("a@pct0.example.com"), rand: 0},
			status: Fail, policy: ActionQuarantine, published: ActionReject, recDomain: "pct0.example.com", from: "pct0.example.com"},
		{name: "pct=100", c: check{mailFrom: "x@nospf.test", msg: plain("a@pct100.example.com"), rand: 99},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "pct100.example.com", from: "pct100.example.com"},
		{name: "pct=50 sampled in", c: check{mailFrom: "x@nospf.test", msg: plain("a@pct50.example.com"), rand: 49},
			status: Fail, policy: ActionQuarantine, published: ActionQuarantine, recDomain: "pct50.example.com", from: "pct50.example.com"},
		{name: "pct=50 sampled out", c: check{mailFrom: "x@nospf.test", msg: plain("a@pct50.example.com"), rand: 50},
			status: Fail, policy: ActionNone, published: ActionQuarantine, recDomain: "pct50.example.com", from: "pct50.example.com"},
		{name: "case-insensitive tags and values", c: check{ip: "127.0.0.10", mailFrom: "x@nospf.test", msg: plain("a@upper.test")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "upper.test", from: "upper.test"},
		{name: "no record", c: check{mailFrom: "x@nospf.test", msg: plain("a@nospf.test")},
			status: None, policy: ActionNone, from: "nospf.test"},
		{name: "record lookup timeout", c: check{mailFrom: "x@nospf.test", msg: plain("a@dnsfail.example.com")},
			status: TempError, policy: ActionNone, from: "dnsfail.example.com", temporary: true},
		{name: "record lookup SERVFAIL", c: check{mailFrom: "x@nospf.test", msg: plain("a@example.com"), zone: func(z *dnsresolver.Fake) {
			z.Fail("_dmarc.example.com", dnsresolver.FailServFail)
		}}, status: TempError, policy: ActionNone, from: "example.com", temporary: true},
		{name: "org record lookup timeout", c: check{mailFrom: "x@nospf.test", msg: plain("a@news.example.com"), zone: func(z *dnsresolver.Fake) {
			z.Fail("_dmarc.example.com", dnsresolver.FailTimeout)
		}}, status: TempError, policy: ActionNone, from: "news.example.com", temporary: true},
		{name: "aligned SPF temperror", c: check{mailFrom: "x@slow.example.com", msg: plain("a@example.com")},
			status: TempError, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "example.com", temporary: true},
		{name: "aligned DKIM temperror", c: check{mailFrom: "x@nospf.test", msg: rsa, zone: func(z *dnsresolver.Fake) {
			z.Fail("rsa._domainkey.example.com", dnsresolver.FailTimeout)
		}}, status: TempError, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "example.com", temporary: true},
		{name: "DKIM temperror but SPF passes aligned", c: check{ip: "127.0.0.10", mailFrom: "alice@example.com", msg: rsa, zone: func(z *dnsresolver.Fake) {
			z.Fail("rsa._domainkey.example.com", dnsresolver.FailTimeout)
		}}, status: Pass, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "example.com", spfAligned: true},
		{name: "unaligned SPF temperror does not save a fail", c: check{mailFrom: "x@spftimeout.test", msg: plain("a@example.com")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.com", from: "example.com"},
		{name: "SPF temperror without DMARC record is temporary", c: check{mailFrom: "x@spftimeout.test", msg: plain("a@spftimeout.test")},
			status: None, policy: ActionNone, from: "spftimeout.test", temporary: true},
		{name: "invalid record", c: check{mailFrom: "x@nospf.test", msg: plain("a@badrec.example.com")},
			status: PermError, policy: ActionNone, from: "badrec.example.com"},
		{name: "no From field", c: check{mailFrom: "x@nospf.test", msg: []byte("Subject: x\r\n\r\nbody\r\n")},
			status: PermError, policy: ActionNone},
		{name: "From without domain", c: check{mailFrom: "x@nospf.test", msg: plain("undisclosed")},
			status: PermError, policy: ActionNone},
		{name: "two From addresses, same domain", c: check{ip: "127.0.0.10", mailFrom: "a@example.com", msg: plain("a@example.com, b@EXAMPLE.COM")},
			status: Pass, policy: ActionNone, published: ActionReject, recDomain: "example.com", from: "example.com", spfAligned: true},
		{name: "two From domains, strictest wins", c: check{ip: "127.0.0.10", mailFrom: "a@example.org", msg: plain("a@example.org, b@example.com")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.com", from: "example.com"},
		{name: "two From fields", c: check{ip: "127.0.0.10", mailFrom: "a@example.org", msg: []byte("From: a@example.org\r\nFrom: b@example.com\r\n\r\nx\r\n")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.com", from: "example.com"},
		{name: "too many From domains", c: check{mailFrom: "x@nospf.test", msg: plain("a@a.test, b@b.test, c@c.test, d@d.test, e@e.test, f@f.test")},
			status: Fail, policy: ActionQuarantine, published: ActionQuarantine},
		{name: "IDN From domain", c: check{mailFrom: "x@nospf.test", msg: plain("a@bücher.example.com")},
			status: Fail, policy: ActionReject, published: ActionReject, recDomain: "example.com", from: "xn--bcher-kva.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.c)
			d := r.DMARC
			if d.Status != tc.status || r.Policy != tc.policy || d.Published != tc.published || d.RecordDomain != tc.recDomain ||
				d.FromDomain != tc.from || d.SPFAligned != tc.spfAligned || d.DKIMAligned != tc.dkimAligned || r.Temporary() != tc.temporary {
				t.Errorf("got %+v policy %s temporary %v\nSPF %+v\nDKIM %+v", d, r.Policy, r.Temporary(), r.SPF, r.DKIM)
			}
		})
	}
}

// TestVerifyTimeout: DNS that never answers costs one bounded wait and
// gives temperror, not a pass.
func TestVerifyTimeout(t *testing.T) {
	z := zone(t)
	z.Fail("example.com", dnsresolver.FailHang)
	z.Fail("_dmarc.example.com", dnsresolver.FailHang)
	z.Fail("rsa._domainkey.example.com", dnsresolver.FailHang)
	msg := readFixture(t, "rsa.eml")
	const timeout = 200 * time.Millisecond
	start := time.Now()
	r := Verify(context.Background(), z, Input{
		RemoteIP: netip.MustParseAddr("127.0.0.10"), MailFrom: "alice@example.com",
		Message: bytes.NewReader(msg), Size: int64(len(msg)), Timeout: timeout,
	})
	// The lookups hang until their context ends; a return much later than
	// the timeout would mean some other, longer limit ended them.
	if d := time.Since(start); d > 50*timeout {
		t.Errorf("took %v with a %v timeout", d, timeout)
	}
	if r.SPF.Status != TempError || len(r.DKIM) != 1 || r.DKIM[0].Status != TempError || r.DMARC.Status != TempError || !r.Temporary() {
		t.Errorf("got %+v", r)
	}
}

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, os.ErrClosed }

func TestUnreadableMessage(t *testing.T) {
	r := Verify(context.Background(), zone(t), Input{
		RemoteIP: netip.MustParseAddr("127.0.0.10"), MailFrom: "alice@example.com",
		Message: failingReader{}, Size: 100,
	})
	if r.DMARC.Status != TempError || !r.Temporary() || r.Policy != ActionNone {
		t.Errorf("got %+v", r)
	}
}

func TestParseRecord(t *testing.T) {
	tests := []struct {
		txt  string
		want record
		ok   bool
	}{
		{"v=DMARC1; p=reject", record{p: ActionReject, pct: 100}, true},
		{"v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20", record{p: ActionQuarantine, sp: ActionNone, strictDKIM: true, strictSPF: true, pct: 20}, true},
		{"v = DMARC1 ; p = none ; pct = 101 ; sp = bogus ; adkim = x", record{p: ActionNone, pct: 100}, true},
		{"v=DMARC1; p=none; unknown=tag; noequals; ", record{p: ActionNone, pct: 100}, true},
		{"v=DMARC1; p=bogus", record{}, false},
		{"v=DMARC1; rua=mailto:x@example.com", record{}, false},
		{"v=dmarc1; p=none", record{}, false},
		{"p=none; v=DMARC1", record{}, false},
		{"v=DMARC10; p=none", record{}, false},
		{"", record{}, false},
	}
	for _, tc := range tests {
		got, err := parseRecord(tc.txt)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("%q: got %+v, %v", tc.txt, got, err)
		}
	}
}

func TestOrgDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":           "example.com",
		"a.b.example.com":       "example.com",
		"example.co.uk":         "example.co.uk",
		"mail.example.co.uk":    "example.co.uk",
		"co.uk":                 "co.uk",
		"com":                   "com",
		"sub.example.test":      "example.test",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
	} {
		if got := orgDomain(in); got != want {
			t.Errorf("orgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFromDomains(t *testing.T) {
	tests := []struct {
		hdr  string
		want []string
		ok   bool
	}{
		{"From: a@example.com\r\n", []string{"example.com"}, true},
		{"From: \"Doe, John\" <j@Example.COM.>\r\n", []string{"example.com"}, true},
		{"From: a@example.com,\r\n b@example.com\r\n", []string{"example.com"}, true},
		{"From: group: a@x.test, b@y.test;\r\n", []string{"x.test", "y.test"}, true},
		{"From: =?utf-8?q?J=C3=B6rg?= <j@bücher.test>\r\n", []string{"xn--bcher-kva.test"}, true},
		{"From: (comment) a@example.com (c)\r\n", []string{"example.com"}, true},
		{"From: a@[127.0.0.1]\r\n", nil, false},
		{"From: nobody\r\n", nil, false},
		{"From:\r\n", nil, false},
		{"Subject: x\r\n", nil, false},
	}
	for _, tc := range tests {
		got, err := fromDomains([]byte(tc.hdr))
		if (err == nil) != tc.ok || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%q: got %q, %v", tc.hdr, got, err)
		}
	}
}
