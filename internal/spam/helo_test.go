package spam

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestHELO(t *testing.T) {
	const client = "203.0.113.5"
	tests := []struct {
		helo    string
		ip      string // default client
		problem string
		dns     string
	}{
		{helo: "helo.example.org", dns: "pass"},
		{helo: "HELO.Example.ORG.", dns: "pass"},
		{helo: "nx.example.org", problem: SymHeloNoDNS, dns: "fail"},
		{helo: "servfail.example.org", dns: "temperror"},
		{helo: "[203.0.113.5]"},
		{helo: "[203.0.113.6]", problem: SymHeloLiteralMismatch},
		{helo: "[IPv6:2001:db8::5]", ip: "2001:db8::5"},
		{helo: "[ipv6:2001:DB8::5]", ip: "2001:db8::5"},
		{helo: "[IPv6:2001:db8::6]", ip: "2001:db8::5", problem: SymHeloLiteralMismatch},
		{helo: "[IPv6:203.0.113.5]", problem: SymHeloInvalid},
		{helo: "[2001:db8::5]", ip: "2001:db8::5", problem: SymHeloInvalid},
		{helo: "[300.1.1.1]", problem: SymHeloInvalid},
		{helo: "[203.0.113.5", problem: SymHeloInvalid},
		{helo: "203.0.113.5", problem: SymHeloBareIP},
		{helo: "2001:db8::5", ip: "2001:db8::5", problem: SymHeloBareIP},
		{helo: "localhost", problem: SymHeloNotFQDN},
		{helo: "WIN-7H2K3", problem: SymHeloNotFQDN},
		{helo: "host.localdomain", problem: SymHeloNotFQDN},
		{helo: "printer.local", problem: SymHeloNotFQDN},
		{helo: "mx.ours.example.net", problem: SymHeloOurs},
		{helo: "MX.OURS.example.NET.", problem: SymHeloOurs},
		{helo: "ours.example.net", problem: SymHeloOurs}, // a local domain
		{helo: "", problem: SymHeloInvalid},
		{helo: "bad!name.example.org", problem: SymHeloInvalid},
		{helo: "-x.example.org", problem: SymHeloInvalid},
		{helo: "a..example.org", problem: SymHeloInvalid},
		{helo: "1.2.3", problem: SymHeloInvalid},
		{helo: strings.Repeat("a", 64) + ".example.org", problem: SymHeloInvalid},
		{helo: strings.Repeat("a.", 300) + "org", problem: SymHeloInvalid},
		{helo: "under_score.example.org", problem: SymHeloNoDNS, dns: "fail"},
		{helo: "bücher.example.org", problem: SymHeloNoDNS, dns: "fail"},
		{helo: "\xff\xfe.example.org", problem: SymHeloInvalid},
	}
	zone := newZone(t)
	cfg := DefaultConfig()
	cfg.Hostname = "mx.ours.example.net"
	cfg.IsLocalDomain = func(ctx context.Context, d string) (bool, error) {
		if d == "broken.example.com" {
			return false, errors.New("store down")
		}
		return d == "ours.example.net", nil
	}
	c := newChecker(t, cfg, zone)
	for _, tc := range tests {
		ip := client
		if tc.ip != "" {
			ip = tc.ip
		}
		r := c.checkHELO(bg, tc.helo, netip.MustParseAddr(ip))
		if r.Problem != tc.problem || r.DNS != tc.dns {
			t.Errorf("HELO %q from %s: problem %q dns %q, want %q %q", tc.helo, ip, r.Problem, r.DNS, tc.problem, tc.dns)
		}
	}
	// The IDN was looked up as its A-label.
	found := false
	for _, q := range zone.Queries() {
		if q == "A xn--bcher-kva.example.org" {
			found = true
		}
	}
	if !found {
		t.Errorf("U-label HELO not looked up as A-label: %v", zone.Queries())
	}
	// A failing local-domain lookup is not a verdict.
	if r := c.checkHELO(bg, "broken.example.com", netip.MustParseAddr(client)); r.Problem != SymHeloNoDNS {
		t.Errorf("HELO with failing local domain lookup: %+v", r)
	}
}

func TestHELOScores(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Hostname = "mx.ours.example.net"
	c := newChecker(t, cfg, newZone(t))
	v := c.CheckConnection(bg, netip.MustParseAddr("192.0.2.10"), "192.0.2.10")
	if v.Score != cfg.Weights[SymHeloBareIP] || len(v.Symbols) != 1 || v.Symbols[0].Name != SymHeloBareIP {
		t.Errorf("bare IP HELO from an iprev-passing client: score %g symbols %+v", v.Score, v.Symbols)
	}
	v = c.CheckConnection(bg, netip.MustParseAddr("192.0.2.99"), "mx.ours.example.net")
	want := cfg.Weights[SymHeloOurs] + cfg.Weights[SymIprevNoPTR]
	if v.Score != want {
		t.Errorf("forged HELO without PTR: score %g, want %g (%+v)", v.Score, want, v.Symbols)
	}
}
