package spam

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

func TestQueryName(t *testing.T) {
	tests := []struct{ ip, zone, want string }{
		{"192.0.2.99", "zen.example", "99.2.0.192.zen.example"},
		{"::ffff:192.0.2.99", "zen.example", "99.2.0.192.zen.example"},
		// RFC 5782 2.4's example.
		{"2001:db8:1:2:3:4:567:89ab", "ugly.example.com", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com"},
		{"2001:db8::1", "bl.example", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example"},
	}
	for _, tc := range tests {
		if got := QueryName(netip.MustParseAddr(tc.ip), tc.zone); got != tc.want {
			t.Errorf("QueryName(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}

func testLists() ([]List, []List) {
	return []List{
			{Zone: "bl1.example", Weight: 3},
			{Zone: "bl2.example", Weight: 2, Codes: []string{"127.0.0.2-127.0.0.11"}},
			{Zone: "hang.example", Weight: 1},
			{Zone: "servfail.example", Weight: 1},
		}, []List{
			{Zone: "wl.example", Weight: -2, Codes: []string{"127.0.10.0/24"}},
		}
}

func TestCheckLists(t *testing.T) {
	type want struct {
		zone   string
		status ListStatus
		reason string // substring
	}
	tests := []struct {
		name string
		ip   string
		want []want
	}{
		{"listed everywhere", "192.0.2.66", []want{
			{"bl1.example", Listed, "bl1.example/q?ip=192.0.2.66"},
			{"bl2.example", Listed, ""},
			{"hang.example", Unknown, "timeout"},
			{"servfail.example", Unknown, "lookup failed"},
			{"wl.example", Listed, ""},
		}},
		{"error code and code outside range", "192.0.2.67", []want{
			{"bl1.example", Unknown, "error code 127.255.255.254"},
			{"bl2.example", NotListed, ""},
			{"hang.example", NotListed, ""},
			{"servfail.example", NotListed, ""},
			{"wl.example", NotListed, ""},
		}},
		{"answer outside 127/8 is not a listing", "192.0.2.68", []want{
			{"bl1.example", NotListed, ""},
		}},
		{"not listed", "192.0.2.69", []want{
			{"bl1.example", NotListed, ""},
			{"bl2.example", NotListed, ""},
			{"wl.example", NotListed, ""},
		}},
		{"IPv6 reversed nibbles", "2001:db8::66", []want{
			{"bl1.example", Listed, ""},
			{"bl2.example", NotListed, ""},
		}},
		{"private address skipped", "10.1.2.3", []want{
			{"bl1.example", Skipped, ""},
			{"wl.example", Skipped, ""},
		}},
		{"loopback skipped", "127.0.0.2", []want{
			{"bl1.example", Skipped, ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every case waits out the hanging list: in parallel, they
			// wait at the same time.
			t.Parallel()
			zone := newZone(t)
			cfg := DefaultConfig()
			cfg.DNSBL, cfg.DNSWL = testLists()
			// The lists that answer must do so within the timeout even on
			// a loaded machine; hang.example never answers.
			cfg.DNSTimeout = time.Second
			c := newChecker(t, cfg, zone)
			start := time.Now()
			ctx, cancel := context.WithTimeout(bg, cfg.DNSTimeout)
			defer cancel()
			got := c.checkLists(ctx, netip.MustParseAddr(tc.ip))
			// hang.example would block forever: returning at all shows
			// the timeout bounds the lists.
			if el := time.Since(start); el > 20*cfg.DNSTimeout {
				t.Errorf("lists took %s despite the %s timeout", el, cfg.DNSTimeout)
			}
			if len(got) != 5 {
				t.Fatalf("got %d results, want 5", len(got))
			}
			for _, w := range tc.want {
				i := slices.IndexFunc(got, func(r ListResult) bool { return r.Zone == w.zone })
				if i < 0 {
					t.Fatalf("no result for %s", w.zone)
				}
				r := got[i]
				if r.Status != w.status {
					t.Errorf("%s: status %s, want %s (reason %q)", w.zone, r.Status, w.status, r.Reason)
				}
				if !strings.Contains(r.Reason, w.reason) {
					t.Errorf("%s: reason %q, want it to contain %q", w.zone, r.Reason, w.reason)
				}
				if r.Status == Listed && r.Weight == 0 || r.Status != Listed && r.Weight != 0 {
					t.Errorf("%s: weight %g with status %s", w.zone, r.Weight, r.Status)
				}
			}
			if tc.ip == "10.1.2.3" || tc.ip == "127.0.0.2" {
				if q := zone.Queries(); len(q) != 0 {
					t.Errorf("non-public address queried: %v", q)
				}
			}
		})
	}
}

func TestListsCache(t *testing.T) {
	zone := newZone(t)
	cfg := DefaultConfig()
	cfg.DNSBL, cfg.DNSWL = testLists()
	// Long enough for the lists that answer to do so on a loaded
	// machine; hang.example never answers.
	cfg.DNSTimeout = time.Second
	clk := newClock()
	cfg.Now = clk.Now
	c := newChecker(t, cfg, zone)
	ip := netip.MustParseAddr("192.0.2.66")
	check := func() []ListResult {
		ctx, cancel := context.WithTimeout(bg, cfg.DNSTimeout)
		defer cancel()
		return c.checkLists(ctx, ip)
	}
	check()
	n1 := len(zone.Queries())
	r := check()
	n2 := len(zone.Queries())
	// Only the lists that gave no definite answer are asked again.
	if n2-n1 != 2 {
		t.Errorf("second check made %d queries, want 2 (hang and servfail): %v", n2-n1, zone.Queries()[n1:])
	}
	if r[0].Status != Listed || !strings.Contains(r[0].Reason, "bl1.example") {
		t.Errorf("cached result lost data: %+v", r[0])
	}
	clk.Add(DefaultCacheTTL + time.Second)
	check()
	if n3 := len(zone.Queries()); n3-n2 < 5 {
		t.Errorf("after the TTL only %d queries, want all lists asked again", n3-n2)
	}
}

func TestCacheBounded(t *testing.T) {
	clk := newClock()
	c := newTTLCache[int](100, time.Minute, clk.Now)
	for i := range 10000 {
		c.put(strings.Repeat("k", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), i)
		if c.len() > 100 {
			t.Fatalf("cache grew to %d entries, bound 100", c.len())
		}
	}
	c.put("x", 1)
	if v, ok := c.get("x"); !ok || v != 1 {
		t.Errorf("get(x) = %d, %v", v, ok)
	}
	clk.Add(time.Minute)
	if _, ok := c.get("x"); ok {
		t.Error("expired entry returned")
	}
}

func TestListConfigErrors(t *testing.T) {
	tests := []struct {
		name       string
		dnsbl, wl  []List
		wantErrSub string
	}{
		{"bad zone", []List{{Zone: "bad zone"}}, nil, "invalid list zone"},
		{"empty zone", []List{{Zone: ""}}, nil, "invalid list zone"},
		{"twice", []List{{Zone: "a.example"}, {Zone: "A.example."}}, nil, "twice"},
		{"negative DNSBL", []List{{Zone: "a.example", Weight: -1}}, nil, "must not be negative"},
		{"positive DNSWL", nil, []List{{Zone: "a.example", Weight: 1}}, "must not be positive"},
		{"reject DNSWL", nil, []List{{Zone: "a.example", Reject: true}}, "reject"},
		{"bad code", []List{{Zone: "a.example", Codes: []string{"127.0.0.x"}}}, nil, "invalid return code"},
		{"bad range", []List{{Zone: "a.example", Codes: []string{"127.0.0.9-127.0.0.2"}}}, nil, "invalid return code range"},
		{"bad prefix", []List{{Zone: "a.example", Codes: []string{"127.0.0.0/99"}}}, nil, "invalid return code prefix"},
	}
	for _, tc := range tests {
		cfg := DefaultConfig()
		cfg.DNSBL, cfg.DNSWL = tc.dnsbl, tc.wl
		_, err := New(cfg, newZone(t))
		if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.wantErrSub)
		}
	}
}

func TestParseCode(t *testing.T) {
	r, err := parseCode("127.0.10.0/24")
	if err != nil || r.lo != netip.MustParseAddr("127.0.10.0") || r.hi != netip.MustParseAddr("127.0.10.255") {
		t.Errorf("prefix: %v %v", r, err)
	}
	r, err = parseCode(" 127.0.0.2 - 127.0.0.11 ")
	if err != nil || !r.contains(netip.MustParseAddr("127.0.0.11")) || r.contains(netip.MustParseAddr("127.0.0.12")) {
		t.Errorf("range: %v %v", r, err)
	}
}

func TestListMetricsAndReject(t *testing.T) {
	reg := prometheus.NewRegistry()
	zone := newZone(t)
	cfg := DefaultConfig()
	cfg.DNSBL = []List{{Zone: "bl1.example", Weight: 3, Reject: true}}
	cfg.Registerer = reg
	c := newChecker(t, cfg, zone)
	v := c.CheckConnection(bg, netip.MustParseAddr("192.0.2.66"), "helo.example.org")
	if v.Reject == nil || v.Reject.Code != 550 || v.Reject.Enhanced != [3]int{5, 7, 1} || !strings.Contains(v.Reject.Text, "bl1.example") {
		t.Fatalf("reject = %+v", v.Reject)
	}
	if strings.ContainsAny(v.Reject.Text, "\r\n") {
		t.Error("reply text has a line break")
	}
	if got := metricValue(t, reg, "mailstead_spam_checks_total", "check", "dnsbl", "result", "listed"); got != 1 {
		t.Errorf("dnsbl listed metric = %g", got)
	}
	if got := metricValue(t, reg, "mailstead_spam_connections_total", "result", "reject"); got != 1 {
		t.Errorf("connection reject metric = %g", got)
	}
	// A second Checker on the same registry reuses the metrics.
	c2 := newChecker(t, cfg, zone)
	c2.CheckConnection(bg, netip.MustParseAddr("192.0.2.66"), "helo.example.org")
	if got := metricValue(t, reg, "mailstead_spam_connections_total", "result", "reject"); got != 2 {
		t.Errorf("connection reject metric after second checker = %g", got)
	}
}

// TestConnectionBounded: however slow DNS is, CheckConnection returns
// within its timeout, with unknown results rather than verdicts.
func TestConnectionBounded(t *testing.T) {
	zone := newZone(t)
	zone.Fail("192.0.2.66", dnsresolver.FailHang) // PTR
	zone.Fail("slowhelo.example.org", dnsresolver.FailHang)
	cfg := DefaultConfig()
	cfg.DNSBL, cfg.DNSWL = testLists()
	// Long enough for bl1 and bl2 to answer on a loaded machine.
	cfg.DNSTimeout = time.Second
	c := newChecker(t, cfg, zone)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			v := c.CheckConnection(bg, netip.MustParseAddr("192.0.2.66"), "slowhelo.example.org")
			// The PTR, HELO and hang.example lookups would block forever.
			if el := time.Since(start); el > 20*cfg.DNSTimeout {
				t.Errorf("CheckConnection took %s with a %s timeout", el, cfg.DNSTimeout)
			}
			if v.Iprev.Status != IprevTempError || v.HELO.DNS != "temperror" || v.HELO.Problem != "" {
				t.Errorf("iprev %s, HELO %+v", v.Iprev.Status, v.HELO)
			}
			// bl1 and bl2 answered (or came from the cache), hang did not.
			if v.Lists[0].Status != Listed || v.Lists[2].Status != Unknown {
				t.Errorf("lists %+v", v.Lists)
			}
		}()
	}
	wg.Wait()
}
