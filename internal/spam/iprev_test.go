package spam

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

func TestIprev(t *testing.T) {
	tests := []struct {
		ip     string
		status IprevStatus
		name   string
	}{
		{"192.0.2.10", IprevPass, "mail.example.org"},
		{"2001:db8::10", IprevPass, "mail.example.org"},
		{"::ffff:192.0.2.10", IprevPass, "mail.example.org"},
		{"192.0.2.11", IprevFail, ""},      // PTR name points elsewhere
		{"192.0.2.12", IprevFail, ""},      // PTR name does not exist
		{"192.0.2.13", IprevTempError, ""}, // PTR lookup SERVFAIL
		{"192.0.2.14", IprevTempError, ""}, // forward lookup SERVFAIL
		{"192.0.2.15", IprevPass, "second.example.org"},
		{"192.0.2.16", IprevPermError, ""}, // only an invalid PTR name
		{"192.0.2.99", IprevPermError, ""}, // no PTR
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			c := newChecker(t, DefaultConfig(), newZone(t))
			r := c.checkIprev(bg, netip.MustParseAddr(tc.ip).Unmap())
			if r.Status != tc.status || r.Name != tc.name {
				t.Errorf("iprev = %+v, want %s %q", r, tc.status, tc.name)
			}
			ar := r.authResult(netip.MustParseAddr(tc.ip).Unmap())
			if ar.Method != "iprev" || ar.Result != string(tc.status) || len(ar.Props) != 1 || ar.Props[0][0] != "policy.iprev" {
				t.Errorf("auth result = %+v", ar)
			}
		})
	}
}

func TestIprevTimeout(t *testing.T) {
	zone := newZone(t)
	zone.AddPTR("192.0.2.20", "slow.example.org")
	zone.Fail("slow.example.org", dnsresolver.FailHang)
	c := newChecker(t, DefaultConfig(), zone)
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	if r := c.checkIprev(ctx, netip.MustParseAddr("192.0.2.20")); r.Status != IprevTempError {
		t.Errorf("hanging forward lookup: %+v, want temperror", r)
	}
	// A temperror is not cached: the next connection asks again.
	zone.Fail("slow.example.org", dnsresolver.FailNone)
	zone.AddIP("slow.example.org", "192.0.2.20")
	if r := c.checkIprev(bg, netip.MustParseAddr("192.0.2.20")); r.Status != IprevPass {
		t.Errorf("after recovery: %+v, want pass", r)
	}
}

func TestIprevBoundsNames(t *testing.T) {
	zone := newZone(t)
	var names []string
	for i := range 30 {
		names = append(names, "n"+string(rune('a'+i%26))+string(rune('a'+i/26))+".example.org")
	}
	zone.AddPTR("192.0.2.30", names...)
	c := newChecker(t, DefaultConfig(), zone)
	r := c.checkIprev(bg, netip.MustParseAddr("192.0.2.30"))
	if r.Status != IprevFail || len(r.Names) != maxPTRNames {
		t.Errorf("iprev = %s with %d names, want fail with %d", r.Status, len(r.Names), maxPTRNames)
	}
	n := 0
	for _, q := range zone.Queries() {
		if q[:2] == "A " {
			n++
		}
	}
	if n > maxPTRNames {
		t.Errorf("%d forward lookups, want at most %d", n, maxPTRNames)
	}
}

func TestConnectionAuthResults(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DNSBL = []List{{Zone: "bl1.example", Weight: 3}}
	cfg.DNSWL = []List{{Zone: "wl.example", Weight: -2}}
	c := newChecker(t, cfg, newZone(t))
	v := c.CheckConnection(bg, netip.MustParseAddr("192.0.2.10"), "mail.example.org")
	got := v.AuthResults()
	want := []AuthResult{
		{Method: "iprev", Result: "pass", Reason: "mail.example.org", Props: [][2]string{{"policy.iprev", "192.0.2.10"}}},
		{Method: "x-dnsbl", Result: "pass", Props: [][2]string{{"dns.zone", "bl1.example"}}},
		{Method: "dnswl", Result: "pass", Props: [][2]string{{"dns.zone", "wl.example"}, {"policy.ip", "127.0.10.3"}}},
	}
	if !slices.EqualFunc(got, want, authEqual) {
		t.Errorf("auth results\n got %+v\nwant %+v", got, want)
	}
	if !v.Allowlisted() {
		t.Error("DNSWL-listed client not allowlisted")
	}
	if v.Score != -2 || len(v.Symbols) != 1 || v.Symbols[0].Name != "DNSWL_WL_EXAMPLE" {
		t.Errorf("score %g symbols %+v", v.Score, v.Symbols)
	}

	v = c.CheckConnection(bg, netip.MustParseAddr("192.0.2.66"), "mail.example.org")
	got = v.AuthResults()
	want = []AuthResult{
		{Method: "iprev", Result: "permerror", Props: [][2]string{{"policy.iprev", "192.0.2.66"}}},
		{Method: "x-dnsbl", Result: "fail", Props: [][2]string{{"dns.zone", "bl1.example"}, {"policy.ip", "127.0.0.2"}}},
		{Method: "dnswl", Result: "pass", Props: [][2]string{{"dns.zone", "wl.example"}, {"policy.ip", "127.0.10.2"}}},
	}
	if !slices.EqualFunc(got, want, authEqual) {
		t.Errorf("auth results\n got %+v\nwant %+v", got, want)
	}
}

func authEqual(a, b AuthResult) bool {
	return a.Method == b.Method && a.Result == b.Result && a.Reason == b.Reason && slices.Equal(a.Props, b.Props)
}
