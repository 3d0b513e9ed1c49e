package address

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want, key string
		bad           bool
	}{
		{in: "User@Example.ORG", want: "User@example.org", key: "user@example.org"},
		{in: "jörg@bücher.example", want: "jörg@xn--bcher-kva.example", key: "jörg@xn--bcher-kva.example"},
		{in: "a+tag@example.org.", want: "a+tag@example.org", key: "a+tag@example.org"},
		{in: `"john doe"@example.org`, want: `"john doe"@example.org`, key: `"john doe"@example.org`},
		{in: "user@[127.0.0.1]", want: "user@[127.0.0.1]", key: "user@[127.0.0.1]"},
		{in: "noat", bad: true},
		{in: "@example.org", bad: true},
		{in: "a@", bad: true},
		{in: "a b@example.org", bad: true},
		{in: "a..b@example.org", bad: true},
		{in: ".a@example.org", bad: true},
		{in: "a@exa mple.org", bad: true},
		{in: "a@-.org..", bad: true},
		{in: "\xff@example.org", bad: true},
		{in: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.org", bad: true},
	}
	for _, tt := range tests {
		a, err := Parse(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) = %v, %v; want ErrInvalid", tt.in, a, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if a.String() != tt.want || a.Key() != tt.key {
			t.Errorf("Parse(%q) = %q key %q; want %q key %q", tt.in, a, a.Key(), tt.want, tt.key)
		}
	}
}

func TestBase(t *testing.T) {
	tests := []struct{ in, delim, base, tag string }{
		{"user+tag@example.org", "+", "user@example.org", "tag"},
		{"user+a+b@example.org", "+", "user@example.org", "a+b"},
		{"user@example.org", "+", "user@example.org", ""},
		{"+tag@example.org", "+", "+tag@example.org", ""},
		{"user-tag@example.org", "-", "user@example.org", "tag"},
		{"user+tag@example.org", "", "user+tag@example.org", ""},
		{"user-tag@example.org", "+-", "user@example.org", "tag"},
		{"user+a-b@example.org", "+-", "user@example.org", "a-b"},
	}
	for _, tt := range tests {
		a, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		b, tag := a.Base(tt.delim)
		if b.String() != tt.base || tag != tt.tag {
			t.Errorf("Base(%q, %q) = %q, %q", tt.in, tt.delim, b, tag)
		}
	}
}

func TestDisplayDomain(t *testing.T) {
	if got := DisplayDomain("xn--bcher-kva.example"); got != "bücher.example" {
		t.Fatal(got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"a@b.c", `"x y"@z`, "jörg@bücher.example", "a@[1.2.3.4]", "@", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		// A parsed address parses again to itself.
		b, err := Parse(a.String())
		if err != nil || b != a {
			t.Fatalf("%q → %q → %q, %v", s, a, b, err)
		}
	})
}

func TestParseAlias(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Info@Example.ORG", "Info@example.org"},
		{" @Example.org ", "@example.org"},
		{"@bücher.example", "@xn--bcher-kva.example"},
		{"@", ""},
		{"no-at-sign", ""},
		{"a@b@c", ""},
	} {
		got, err := ParseAlias(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseAlias(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseAlias(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
}
