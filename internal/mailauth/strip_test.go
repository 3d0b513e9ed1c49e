package mailauth

import (
	"testing"
)

func TestStripForeignResults(t *testing.T) {
	strip := []string{"X-Mailstead-*", "X-Spam-*", "Received-SPF"}
	tests := []struct {
		name    string
		in      string
		want    string
		removed int
	}{
		{
			name: "forged result with our id removed, foreign kept",
			in: "Received: from a by b\r\n" +
				"Authentication-Results: mx.mailstead.test; spf=pass smtp.mailfrom=ceo@bank.test\r\n" +
				"Authentication-Results: mx.other.test; dkim=pass header.d=other.test\r\n" +
				"Subject: hi\r\n\r\nbody\r\nAuthentication-Results: mx.mailstead.test; in the body\r\n",
			want: "Received: from a by b\r\n" +
				"Authentication-Results: mx.other.test; dkim=pass header.d=other.test\r\n" +
				"Subject: hi\r\n\r\nbody\r\nAuthentication-Results: mx.mailstead.test; in the body\r\n",
			removed: 1,
		},
		{
			name: "case, folding, comments, version, quotes, trailing dot",
			in: "authentication-results: MX.Mailstead.TEST.; none\r\n" +
				"Authentication-Results:\r\n\t(forged) mx.mailstead.test 1;\r\n spf=pass\r\n" +
				"Authentication-Results: \"mx.mailstead.test\"; dmarc=pass\r\n" +
				"Authentication-Results :mx.mailstead.test;dkim=pass\r\n" +
				"Authentication-Results: mx.mailstead.test.evil; spf=pass\r\n" +
				"Authentication-Results: evil.mx.mailstead.test; spf=pass\r\n" +
				"From: a@b.test\r\n",
			want: "Authentication-Results: mx.mailstead.test.evil; spf=pass\r\n" +
				"Authentication-Results: evil.mx.mailstead.test; spf=pass\r\n" +
				"From: a@b.test\r\n",
			removed: 4,
		},
		{
			name: "our private fields and configured names",
			in: "X-Mailstead-Verdict: clean\r\n" +
				"x-mailstead-spam:\r\n yes\r\n" +
				"X-Spam-Status: No, score=-100\r\n" +
				"Received-SPF: pass\r\n" +
				"X-Spamassassin: kept, no prefix match\r\n" +
				"Received-SPF-Extra: kept, exact name only\r\n" +
				"X-Mailsteadx: kept\r\n" +
				"\r\n",
			want: "X-Spamassassin: kept, no prefix match\r\n" +
				"Received-SPF-Extra: kept, exact name only\r\n" +
				"X-Mailsteadx: kept\r\n" +
				"\r\n",
			removed: 4,
		},
		{
			name:    "LF only, no final newline",
			in:      "Subject: x\nAuthentication-Results: mx.mailstead.test; spf=pass",
			want:    "Subject: x\n",
			removed: 1,
		},
		{
			name:    "garbage lines kept",
			in:      " leading continuation\r\nnot a field\r\n: empty name\r\nAuthentication-Results: mx.mailstead.test; x\r\n\r\n",
			want:    " leading continuation\r\nnot a field\r\n: empty name\r\n\r\n",
			removed: 1,
		},
		{
			name:    "unterminated comment or quote claims nothing",
			in:      "Authentication-Results: (mx.mailstead.test; x\r\nAuthentication-Results: \"mx.mailstead.test; x\r\n",
			want:    "Authentication-Results: (mx.mailstead.test; x\r\nAuthentication-Results: \"mx.mailstead.test; x\r\n",
			removed: 0,
		},
		{
			name:    "nothing to strip",
			in:      "Subject: x\r\n\r\n",
			want:    "Subject: x\r\n\r\n",
			removed: 0,
		},
		{name: "empty", in: "", want: "", removed: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, n := StripForeignResults([]byte(tc.in), ourID, strip)
			if string(out) != tc.want || n != tc.removed {
				t.Errorf("got %d removed:\n%q\nwant %d:\n%q", n, out, tc.removed, tc.want)
			}
		})
	}
	// Without an authserv-id no Authentication-Results field is ours.
	in := []byte("Authentication-Results: ; spf=pass\r\n")
	if out, n := StripForeignResults(in, "", nil); n != 0 || string(out) != string(in) {
		t.Errorf("empty id: %d %q", n, out)
	}
}

func TestAuthServID(t *testing.T) {
	for in, want := range map[string]string{
		" mx.example.com; spf=pass":   "mx.example.com",
		"mx.example.com 1; none":      "mx.example.com",
		"\r\n\t(c (nested)) mx.test;": "mx.test",
		`"quoted \"id\"" ; none`:      `quoted "id"`,
		"mx.test(comment); none":      "mx.test",
		"":                            "",
		"; spf=pass":                  "",
		"(unterminated mx.test; none": "",
		`"unterminated; none`:         "",
		"((((((((((((((((((((((((((((((((((x)))))))))))))))))))))))))))))))))) mx.test;": "",
	} {
		if got := AuthServID(in); got != want {
			t.Errorf("AuthServID(%q) = %q, want %q", in, got, want)
		}
	}
}
