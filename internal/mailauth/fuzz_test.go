package mailauth

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-msgauth/authres"
)

func addHeaderSeeds(f *testing.F) {
	for _, s := range []string{
		"",
		"\r\n",
		"Authentication-Results: mx.mailstead.test; spf=pass\r\n\r\n",
		"Authentication-Results:\r\n (c) \"mx.mailstead.test\" 1; none\r\nFrom: a@b.test\r\n",
		"From: a@example.com, b@example.org\r\nX-Mailstead-X: 1\r\n",
		"From: group: a@x.test;, <@route:b@y.test>\r\n",
		"From: =?utf-8?q?x?= <a@bücher.test>\nSubject: x\n\nbody",
		" cont\r\n: x\r\nFrom\r\n",
		"Authentication-Results: ((((\r\n",
	} {
		f.Add([]byte(s), "mx.mailstead.test")
	}
}

// FuzzStripForeignResults: stripping never panics, only removes whole
// fields, leaves nothing it would remove again, and keeps the rest.
func FuzzStripForeignResults(f *testing.F) {
	addHeaderSeeds(f)
	f.Fuzz(func(t *testing.T, hdr []byte, id string) {
		strip := []string{"X-Mailstead-*", "Received-SPF"}
		out, n := StripForeignResults(hdr, id, strip)
		if n == 0 {
			if !bytes.Equal(out, hdr) {
				t.Fatal("changed without removing")
			}
			return
		}
		if len(out) >= len(hdr) {
			t.Fatalf("removed %d fields but did not shrink", n)
		}
		if again, m := StripForeignResults(out, id, strip); m != 0 || !bytes.Equal(again, out) {
			t.Fatalf("second pass removed %d more from %q", m, out)
		}
		// What is kept is the input with whole field extents cut out: a
		// subsequence of the input.
		i := 0
		for _, c := range out {
			for i < len(hdr) && hdr[i] != c {
				i++
			}
			if i == len(hdr) {
				t.Fatalf("output %q is not a subsequence of the input", out)
			}
			i++
		}
	})
}

// FuzzFromDomains: From parsing never panics and returns only usable,
// distinct, bounded domains.
func FuzzFromDomains(f *testing.F) {
	addHeaderSeeds(f)
	f.Fuzz(func(t *testing.T, hdr []byte, _ string) {
		ds, err := fromDomains(hdr)
		if err == nil && len(ds) == 0 {
			t.Fatal("no domains and no error")
		}
		if len(ds) > maxFromDomains {
			t.Fatalf("%d domains", len(ds))
		}
		seen := map[string]bool{}
		for _, d := range ds {
			if d == "" || seen[d] || d != strings.ToLower(d) || !utf8.ValidString(d) {
				t.Fatalf("bad domain %q in %q", d, ds)
			}
			seen[d] = true
		}
	})
}

// FuzzParseRecord: DMARC records from DNS never panic the parser and
// give only valid values.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"v=DMARC1; p=reject", "v=DMARC1;p=none;sp=quarantine;pct=5;adkim=s", "v=DMARC1", "v=DMARC1; p", "v=DMARC1;;;=;p=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := parseRecord(s)
		if err != nil {
			return
		}
		if rec.pct < 0 || rec.pct > 100 {
			t.Fatalf("pct %d", rec.pct)
		}
		for _, a := range []Action{rec.p, rec.sp} {
			switch a {
			case ActionNone, ActionQuarantine, ActionReject:
			case "":
				if a == rec.p {
					t.Fatal("record without p")
				}
			default:
				t.Fatalf("action %q", a)
			}
		}
	})
}

// FuzzVerify runs whole messages (hostile headers, signatures, From
// fields) through Verify against the test zone: no panics, and the
// Authentication-Results field stays one well-formed field.
func FuzzVerify(f *testing.F) {
	for _, name := range []string{"rsa.eml", "multi.eml"} {
		f.Add(readFixture(f, name), "a@example.com")
	}
	f.Add([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=; b=\r\nFrom: a@example.com\r\n\r\n"), "")
	f.Add([]byte("From: \"x\r\n\" <a@\x00>\r\n"), "a\"b@x;y")
	z := zone(f)
	f.Fuzz(func(t *testing.T, msg []byte, mailFrom string) {
		r := Verify(context.Background(), z, Input{
			RemoteIP: netip.MustParseAddr("127.0.0.10"), Helo: "client.test", MailFrom: mailFrom,
			Message: bytes.NewReader(msg), Size: int64(len(msg)),
			Rand: func(int) int { return 0 },
		})
		h := r.Header(ourID)
		body := strings.TrimSuffix(h, "\r\n")
		if strings.Contains(strings.ReplaceAll(body, "\r\n\t", ""), "\n") || strings.Contains(strings.ReplaceAll(body, "\r\n\t", ""), "\r") {
			t.Fatalf("field breaks lines: %q", h)
		}
		if _, _, err := authres.Parse(strings.TrimPrefix(strings.ReplaceAll(body, "\r\n\t", " "), "Authentication-Results:")); err != nil {
			t.Fatalf("unparseable %q: %v", h, err)
		}
	})
}
