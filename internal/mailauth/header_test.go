package mailauth

import (
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

func TestHeader(t *testing.T) {
	tests := []struct {
		name string
		r    Result
		id   string
		want string
	}{
		{
			name: "all pass",
			r: Result{
				SPF:   SPF{Status: Pass, Identity: "mailfrom", Domain: "example.com", MailFrom: "alice@example.com", Helo: "mail.example.com"},
				DKIM:  []DKIM{{Status: Pass, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256", B: "abcdefgh"}},
				DMARC: DMARC{Status: Pass, FromDomain: "example.com", Published: ActionReject},
			},
			id: ourID,
			want: "Authentication-Results: mx.mailstead.test;\r\n" +
				"\tspf=pass smtp.mailfrom=alice@example.com;\r\n" +
				"\tdkim=pass header.a=rsa-sha256 header.b=abcdefgh header.d=example.com\r\n" +
				"\theader.s=rsa;\r\n" +
				"\tdmarc=pass header.from=example.com\r\n",
		},
		{
			name: "nothing to check",
			r:    Result{SPF: SPF{Status: None, Identity: "helo", Helo: "[127.0.0.1]"}, DMARC: DMARC{Status: PermError, Reason: "no From address"}},
			id:   ourID,
			want: "Authentication-Results: mx.mailstead.test;\r\n" +
				"\tspf=none smtp.helo=[127.0.0.1];\r\n" +
				"\tdkim=none;\r\n" +
				"\tdmarc=permerror reason=\"no From address\"\r\n",
		},
		{
			name: "failures with reasons",
			r: Result{
				SPF:    SPF{Status: TempError, Identity: "mailfrom", Domain: "example.com", MailFrom: "a@example.com", Reason: "DNS i/o timeout"},
				DKIM:   []DKIM{{Status: Fail, Domain: "example.com", Selector: "s1", Identifier: "@example.com", Algorithm: "rsa-sha256", B: "12345678", Reason: "body hash did not verify"}},
				DMARC:  DMARC{Status: Fail, FromDomain: "example.com", Published: ActionReject, Percent: 0},
				Policy: ActionQuarantine,
			},
			id: ourID,
			want: "Authentication-Results: mx.mailstead.test;\r\n" +
				"\tspf=temperror reason=\"DNS i/o timeout\" smtp.mailfrom=a@example.com;\r\n" +
				"\tdkim=fail reason=\"body hash did not verify\" header.a=rsa-sha256\r\n" +
				"\theader.b=12345678 header.d=example.com header.i=@example.com header.s=s1;\r\n" +
				"\tdmarc=fail reason=\"p=reject applied=quarantine\" header.from=example.com\r\n",
		},
		{
			name: "other methods, hostile values",
			r: Result{
				SPF:    SPF{Status: None, Identity: "mailfrom", MailFrom: "x\r\nX-Injected: 1@evil.test"},
				DMARC:  DMARC{Status: None},
				Others: []Method{{Name: "iprev", Status: Pass, Props: [][2]string{{"policy.iprev", "127.0.0.1"}}}, {Name: "bad name", Status: Pass}},
			},
			id: "bad id;\r\n",
			want: "Authentication-Results: badid;\r\n" +
				"\tspf=none smtp.mailfrom=\"xX-Injected: 1@evil.test\";\r\n" +
				"\tdkim=none;\r\n" +
				"\tdmarc=none;\r\n" +
				"\tiprev=pass policy.iprev=127.0.0.1\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.r.Header(tc.id)
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			checkHeader(t, got)
		})
	}
}

// checkHeader checks a generated field: folded lines of at most 78
// characters (for values that allow it), no bare CR or LF, parseable.
func checkHeader(t *testing.T, h string) {
	t.Helper()
	if !strings.HasSuffix(h, "\r\n") {
		t.Errorf("no final CRLF: %q", h)
	}
	lines := strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n")
	for i, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			t.Errorf("bare CR/LF in %q", l)
		}
		if i > 0 && !strings.HasPrefix(l, "\t") {
			t.Errorf("continuation line without white space: %q", l)
		}
	}
	name, val, ok := strings.Cut(strings.ReplaceAll(strings.TrimSuffix(h, "\r\n"), "\r\n", ""), ":")
	if !ok || name != "Authentication-Results" {
		t.Fatalf("not an Authentication-Results field: %q", h)
	}
	if _, _, err := authres.Parse(val); err != nil {
		t.Errorf("authres cannot parse %q: %v", val, err)
	}
}

func TestHeaderFolding(t *testing.T) {
	r := Result{
		SPF:  SPF{Status: Pass, Identity: "mailfrom", MailFrom: "very.long.local.part.of.an.address@a.very.long.subdomain.of.example.com"},
		DKIM: []DKIM{{Status: PermError, Domain: "example.com", Selector: "sel", Algorithm: "rsa-sha256", B: "x", Reason: "key syntax error: " + strings.Repeat("word ", 30)}},
	}
	h := r.Header(ourID)
	checkHeader(t, h)
	for _, l := range strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n") {
		// Only a single unbreakable word may exceed the limit.
		if len(l) > maxLine && len(words(strings.TrimSpace(l))) > 1 {
			t.Errorf("line of %d characters: %q", len(l), l)
		}
	}
	if !strings.Contains(h, "\r\n\tsmtp.mailfrom=") && !strings.Contains(h, "spf=pass smtp.mailfrom=") {
		t.Errorf("mailfrom lost: %q", h)
	}
}

func TestHeaderFromVerify(t *testing.T) {
	r := run(t, check{ip: "127.0.0.10", mailFrom: "alice@example.com", msg: readFixture(t, "multi.eml")})
	h := r.Header(ourID)
	checkHeader(t, h)
	for _, want := range []string{"spf=pass smtp.mailfrom=alice@example.com;", "header.d=example.org", "header.d=thirdparty.test", "dmarc=pass header.from=example.org"} {
		if !strings.Contains(strings.ReplaceAll(h, "\r\n\t", " "), want) {
			t.Errorf("%q missing in\n%s", want, h)
		}
	}
	// Our own field is what StripForeignResults removes.
	if out, n := StripForeignResults([]byte(h), ourID, nil); n != 1 || len(out) != 0 {
		t.Errorf("own header not stripped: %d %q", n, out)
	}
}
