package spam

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func openGrey(t *testing.T, cfg GreylistConfig) *Greylist {
	t.Helper()
	g, err := OpenGreylist(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

type greyStep struct {
	after      time.Duration // clock advance before the check
	ip         string
	from, to   string
	ok         bool
	retryAfter time.Duration
}

func runGrey(t *testing.T, g *Greylist, clk *clock, steps []greyStep) {
	t.Helper()
	for i, s := range steps {
		clk.Add(s.after)
		ok, ra := g.Check(netip.MustParseAddr(s.ip), s.from, s.to)
		if ok != s.ok || ra != s.retryAfter {
			t.Errorf("step %d (%s %s -> %s): ok=%v retry=%s, want ok=%v retry=%s", i, s.ip, s.from, s.to, ok, ra, s.ok, s.retryAfter)
		}
	}
}

func TestGreylistLifecycle(t *testing.T) {
	clk := newClock()
	reg := prometheus.NewRegistry()
	g := openGrey(t, GreylistConfig{Now: clk.Now, Registerer: reg, AutoAllow: -1})
	const a, b = "a@example.org", "b@example.com"
	min := time.Minute
	runGrey(t, g, clk, []greyStep{
		{0, "192.0.2.1", a, b, false, 5 * min},                      // first attempt
		{2 * min, "192.0.2.1", a, b, false, 3 * min},                // early retry: still deferred, clock not reset
		{2 * min, "192.0.2.200", a, b, false, 1 * min},              // same /24
		{1 * min, "192.0.2.1", a, b, true, 0},                       // retry after the delay passes
		{time.Hour, "192.0.2.77", a, b, true, 0},                    // known triplet, same /24
		{0, "198.51.100.1", a, b, false, 5 * min},                   // other network
		{0, "192.0.2.1", a, "c@example.com", false, 5 * min},        // other recipient
		{0, "192.0.2.1", "A@Example.ORG", "B@example.com", true, 0}, // case-insensitive
		{0, "192.0.2.1", "", b, false, 5 * min},                     // null sender is its own triplet
		{0, "2001:db8:1:2::1", a, b, false, 5 * min},                // IPv6 /64
		{6 * min, "2001:db8:1:2:ffff::9", a, b, true, 0},
		{0, "2001:db8:1:3::1", a, b, false, 5 * min}, // other /64
	})
	if got := metricValue(t, reg, "mailstead_greylist_decisions_total", "result", "new"); got != 6 {
		t.Errorf("new decisions = %g", got)
	}
	if got := metricValue(t, reg, "mailstead_greylist_decisions_total", "result", "early"); got != 2 {
		t.Errorf("early decisions = %g", got)
	}
	if got := metricValue(t, reg, "mailstead_greylist_entries"); got != float64(g.Len()) || got == 0 {
		t.Errorf("entries gauge = %g, Len %d", got, g.Len())
	}
}

func TestGreylistExpiry(t *testing.T) {
	clk := newClock()
	g := openGrey(t, GreylistConfig{Now: clk.Now, AutoAllow: -1, Delay: time.Minute, Window: time.Hour, PassTTL: 24 * time.Hour})
	const ip, a, b = "192.0.2.1", "a@example.org", "b@example.com"
	runGrey(t, g, clk, []greyStep{
		{0, ip, a, b, false, time.Minute},
		{time.Hour + time.Second, ip, a, b, false, time.Minute}, // retry outside the window: starts over
		{time.Minute, ip, a, b, true, 0},
		{23 * time.Hour, ip, a, b, true, 0},                        // renews the pass
		{23 * time.Hour, ip, a, b, true, 0},                        // still within PassTTL of the last pass
		{24*time.Hour + time.Second, ip, a, b, false, time.Minute}, // forgotten
	})
}

func TestGreylistAutoAllow(t *testing.T) {
	clk := newClock()
	g := openGrey(t, GreylistConfig{Now: clk.Now, AutoAllow: 2})
	for i := range 2 {
		to := fmt.Sprintf("u%d@example.com", i)
		if ok, _ := g.Check(netip.MustParseAddr("192.0.2.1"), "a@example.org", to); ok {
			t.Fatal("first attempt passed")
		}
		clk.Add(6 * time.Minute)
		if ok, _ := g.Check(netip.MustParseAddr("192.0.2.1"), "a@example.org", to); !ok {
			t.Fatal("retry deferred")
		}
	}
	if ok, _ := g.Check(netip.MustParseAddr("192.0.2.9"), "new@example.net", "new@example.com"); !ok {
		t.Error("client network that passed twice still greylisted")
	}
	if ok, _ := g.Check(netip.MustParseAddr("192.0.3.9"), "new@example.net", "new@example.com"); ok {
		t.Error("other network allowlisted")
	}
}

func TestGreylistPersistence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "greylist.db")
	clk := newClock()
	cfg := GreylistConfig{Path: path, Now: clk.Now, AutoAllow: -1}
	g, err := OpenGreylist(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	g.Check(ip, "passed@example.org", "b@example.com")
	clk.Add(6 * time.Minute)
	if ok, _ := g.Check(ip, "passed@example.org", "b@example.com"); !ok {
		t.Fatal("retry deferred")
	}
	g.Check(ip, "pending@example.org", "b@example.com")
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "greylist.db" {
		t.Errorf("directory after save: %v", ents)
	}

	// Restart.
	g = openGrey(t, cfg)
	if ok, _ := g.Check(ip, "passed@example.org", "b@example.com"); !ok {
		t.Error("passed triplet forgotten across restart")
	}
	if ok, ra := g.Check(ip, "pending@example.org", "b@example.com"); ok || ra != 5*time.Minute {
		t.Errorf("pending triplet right after restart: ok=%v retry=%s", ok, ra)
	}
	clk.Add(5 * time.Minute)
	if ok, _ := g.Check(ip, "pending@example.org", "b@example.com"); !ok {
		t.Error("pending triplet not passed after the delay across restart")
	}
	// Entries that expired while the server was down are not loaded.
	g.Close()
	clk.Add(DefaultGreylistPassTTL + time.Hour)
	g = openGrey(t, cfg)
	if g.Len() != 0 {
		t.Errorf("%d expired entries loaded", g.Len())
	}
}

func TestGreylistDamagedFile(t *testing.T) {
	for name, data := range map[string][]byte{
		"garbage":   []byte("not a greylist"),
		"empty":     nil,
		"truncated": []byte(greyMagic + "12345678"),
		"bad crc":   append([]byte(greyMagic), make([]byte, greyEntrySize+4)...),
	} {
		path := filepath.Join(t.TempDir(), "greylist.db")
		os.WriteFile(path, data, 0o600)
		g, err := OpenGreylist(GreylistConfig{Path: path})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if g.Len() != 0 {
			t.Errorf("%s: %d entries", name, g.Len())
		}
		if ok, _ := g.Check(netip.MustParseAddr("192.0.2.1"), "a@example.org", "b@example.com"); ok {
			t.Errorf("%s: first attempt passed", name)
		}
		if err := g.Close(); err != nil {
			t.Errorf("%s: close: %v", name, err)
		}
	}
}

func TestGreylistMemoryBound(t *testing.T) {
	clk := newClock()
	g := openGrey(t, GreylistConfig{Now: clk.Now, MaxEntries: 640})
	for i := range 20000 {
		ip := netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)})
		g.Check(ip, fmt.Sprintf("s%d@example.org", i%97), "b@example.com")
		if i%1000 == 0 && g.Len() > 640 {
			t.Fatalf("greylist grew to %d entries, bound 640", g.Len())
		}
	}
	if g.Len() > 640 {
		t.Fatalf("greylist grew to %d entries, bound 640", g.Len())
	}
	// Recent triplets survive eviction better than old ones: the last
	// one inserted is still there.
	clk.Add(6 * time.Minute)
	ip := netip.AddrFrom4([4]byte{192, 0, byte(19999 >> 8), byte(19999 & 0xff)})
	if ok, _ := g.Check(ip, fmt.Sprintf("s%d@example.org", 19999%97), "b@example.com"); !ok {
		t.Error("most recent triplet evicted")
	}
}

func TestGreylistConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "greylist.db")
	g := openGrey(t, GreylistConfig{Path: path, MaxEntries: 1000})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				g.Check(netip.AddrFrom4([4]byte{198, 51, byte(w), byte(i)}), "a@example.org", fmt.Sprintf("r%d@example.com", i%50))
			}
		}()
	}
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.Save(); err != nil {
				t.Error(err)
			}
			g.sweep()
		}()
	}
	wg.Wait()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g2 := openGrey(t, GreylistConfig{Path: path, MaxEntries: 1000})
	if g2.Len() != g.Len() {
		t.Errorf("reloaded %d entries, saved %d", g2.Len(), g.Len())
	}
}

func TestGreylistPeriodicSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "greylist.db")
	g := openGrey(t, GreylistConfig{Path: path, SaveInterval: 20 * time.Millisecond})
	g.Check(netip.MustParseAddr("192.0.2.1"), "a@example.org", "b@example.com")
	deadline := time.Now().Add(30 * time.Second) // generous: the machine may be busy
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(path); err == nil && fi.Size() == int64(len(greyMagic)+greyEntrySize+4) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("state not saved periodically")
}

func TestNormSender(t *testing.T) {
	for in, want := range map[string]string{
		"":                               "<>",
		"User@Example.ORG":               "user@example.org",
		"prvs=1234abcd=user@example.org": "user@example.org",
		"bounce-12345-67@lists.example":  "bounce-#-#@lists.example",
		"0100018c2f3a-4b5c@ses.example":  "#c#f#a-#b#c@ses.example",
		"noatsign":                       "noatsign",
	} {
		if got := normSender(in); got != want {
			t.Errorf("normSender(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGreylistConfig(t *testing.T) {
	if _, err := OpenGreylist(GreylistConfig{Delay: time.Hour, Window: time.Minute}); err == nil {
		t.Error("window shorter than delay accepted")
	}
	g := openGrey(t, GreylistConfig{})
	if ok, _ := g.Check(netip.Addr{}, "a@example.org", "b@example.com"); !ok {
		t.Error("invalid address greylisted")
	}
	if r := GreylistReply(); r.String() != "451 4.7.1 Greylisted, try again later" {
		t.Errorf("reply %q", r)
	}
}
