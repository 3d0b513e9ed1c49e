package config

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSpamDefaults(t *testing.T) {
	c, err := Parse(filepath.Join(t.TempDir(), "m.toml"), []byte(outboundListener))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Spam, defaultSpam()) || Default().Spam.JunkScore != 5 {
		t.Fatalf("defaults %+v", c.Spam)
	}
	s := c.Spam
	if s.JunkScore != 5 || s.RejectScore != 12 || !s.VerdictWeights || s.DNSTimeout.D() != 5*time.Second || s.RspamdURL != "" ||
		s.RspamdFailMode != "builtin" || s.RspamdMaxSize != 20<<20 || s.Greylist.Enabled || s.Greylist.Delay.D() != 5*time.Minute ||
		s.Greylist.PassTTL.D() != 864*time.Hour || s.Greylist.AutoAllow != 5 || len(s.DNSBL) != 0 {
		t.Fatalf("defaults %+v", s)
	}
}

func TestSpamTable(t *testing.T) {
	doc := outboundListener + `
[spam]
junk_score = 4          # an integer is a score too
reject_score = 10.5
verdict_weights = false
dns_timeout = "2s"
rspamd_url = "http://127.0.0.1:11333"
rspamd_timeout = "30s"
rspamd_max_size = "10MiB"
rspamd_fail_mode = "defer"
rspamd_pass_all = true
rspamd_ignore_greylist = true

[spam.weights]
HELO_BARE_IP = 2.5
IPREV_NOPTR = 0

[[spam.dnsbl]]
zone = "ZEN.spamhaus.org."
weight = 6.0
codes = ["127.0.0.2-127.0.0.11", "127.0.0.20/30"]
reject = true
[[spam.dnsbl]]
zone = "bl.spamcop.net"
name = "SPAMCOP"
weight = 3

[[spam.dnswl]]
zone = "list.dnswl.org"
weight = -2.0
codes = ["127.0.1.0-127.0.255.255"]

[spam.greylist]
enabled = true
delay = "1m"
window = "12h"
pass_ttl = "720h"
auto_allow = -1
max_entries = 1000
`
	c, err := Parse(filepath.Join(t.TempDir(), "m.toml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Spam
	if s.JunkScore != 4 || s.RejectScore != 10.5 || s.VerdictWeights || s.DNSTimeout.D() != 2*time.Second || s.RspamdURL != "http://127.0.0.1:11333" ||
		s.RspamdTimeout.D() != 30*time.Second || s.RspamdMaxSize != 10<<20 || s.RspamdFailMode != "defer" || !s.RspamdPassAll || !s.RspamdIgnoreGreylist {
		t.Errorf("spam %+v", s)
	}
	if !reflect.DeepEqual(s.Weights, map[string]float64{"HELO_BARE_IP": 2.5, "IPREV_NOPTR": 0}) {
		t.Errorf("weights %v", s.Weights)
	}
	want := []SpamList{
		{Zone: "zen.spamhaus.org", Weight: 6, Codes: []string{"127.0.0.2-127.0.0.11", "127.0.0.20/30"}, Reject: true},
		{Zone: "bl.spamcop.net", Name: "SPAMCOP", Weight: 3},
	}
	if !reflect.DeepEqual(s.DNSBL, want) || len(s.DNSWL) != 1 || s.DNSWL[0].Weight != -2 {
		t.Errorf("lists %+v %+v", s.DNSBL, s.DNSWL)
	}
	g := s.Greylist
	if !g.Enabled || g.Delay.D() != time.Minute || g.Window.D() != 12*time.Hour || g.PassTTL.D() != 720*time.Hour || g.AutoAllow != -1 || g.MaxEntries != 1000 {
		t.Errorf("greylist %+v", g)
	}
	roundTrip(t, c)
}

// TestSpamErrors: each mistake is reported at its line with a hint.
func TestSpamErrors(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		line int // of the error, counted in doc
		want string
		hint string
	}{
		{"[spam]\njunk_score = -1", 2, "spam.junk_score = -1 is out of range", "0 disables"},
		{"[spam]\njunk_score = 8\nreject_score = 6", 3, "below junk_score = 8 at line 2", ""},
		{"[spam]\ndns_timeout = \"1h\"", 2, "spam.dns_timeout", ""},
		{"[spam]\nrspamd_url = \"127.0.0.1:11333\"", 2, "not an http(s) URL", "http://127.0.0.1:11333"},
		{"[spam]\nrspamd_fail_mode = \"acept\"", 2, `unknown rspamd_fail_mode "acept"`, "did you mean 'accept'?"},
		{"[spam]\nrspamd_max_size = \"2GiB\"", 2, "rspamd_max_size", ""},
		{"[spam.weights]\nHELO_BARE_IPP = 1", 2, `unknown symbol "HELO_BARE_IPP"`, "did you mean 'HELO_BARE_IP'?"},
		{"[spam.weights]\nSPF_FAIL = 1000", 2, "spam.weights.SPF_FAIL = 1000 is out of range", ""},
		{"[[spam.dnsbl]]\nzone = \"bl.example\"\nweight = -1", 3, "must not be negative", "raises the score"},
		{"[[spam.dnswl]]\nzone = \"wl.example\"\nweight = 2", 3, "must not be positive", "lowers the score"},
		{"[[spam.dnswl]]\nzone = \"wl.example\"\nreject = true", 3, "reject on an allowlist", ""},
		{"[[spam.dnsbl]]\nzone = \"bl example\"", 2, `zone "bl example"`, ""},
		{"[[spam.dnsbl]]\nzone = \"bl.example\"\n[[spam.dnsbl]]\nzone = \"BL.example\"", 4, "zone bl.example is already list 1 at line 2", ""},
		{"[[spam.dnsbl]]\nzone = \"bl.example\"\ncodes = [\"127.0.0.2\", \"127.0.0.9-127.0.0.3\"]", 3, `invalid code "127.0.0.9-127.0.0.3"`, ""},
		{"[[spam.dnsbl]]\nzone = \"bl.example\"\nname = \"my list\"", 3, "not a valid symbol name", ""},
		{"[spam.greylist]\ndelay = \"10m\"\nwindow = \"5m\"", 3, "spam.greylist.window = 5m must be from delay (10m) to 720h", ""},
		{"[spam.greylist]\nauto_allow = 0", 2, "auto_allow = 0 is out of range", "-1 to greylist every new triplet"},
		{"[spam.greylist]\nmax_entries = 10", 2, "max_entries", ""},
		{"[spam.greylist]\npass_ttl = \"1m\"", 2, "pass_ttl", ""},
	} {
		doc := tc.doc + "\n" + outboundListener
		_, err := Parse("m.toml", []byte(doc))
		var l ErrorList
		if !errors.As(err, &l) || len(l) == 0 {
			t.Errorf("%s\n  no error list: %v", tc.doc, err)
			continue
		}
		e := l[0]
		if !strings.Contains(e.Msg, tc.want) || e.Line != tc.line || !strings.Contains(e.Hint, tc.hint) {
			t.Errorf("%s\n  got line %d %q (hint %q), want line %d %q (hint %q)", tc.doc, e.Line, e.Msg, e.Hint, tc.line, tc.want, tc.hint)
		}
	}
}

// TestSpamExampleDocumented: the example file shows every [spam] key.
func TestSpamExampleDocumented(t *testing.T) {
	c, err := Parse("mailstead.example.toml", exampleDoc(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Spam.DNSBL) == 0 || c.Spam.Greylist.Enabled {
		t.Errorf("example [spam]: %+v", c.Spam)
	}
	doc := string(exampleDoc(t))
	for _, path := range []string{"spam", "spam.dnsbl", "spam.greylist"} {
		for _, k := range keysAtPath(path) {
			if !strings.Contains(doc, k) {
				t.Errorf("key %s.%s is not documented in the example", path, k)
			}
		}
	}
	roundTrip(t, c)
}
