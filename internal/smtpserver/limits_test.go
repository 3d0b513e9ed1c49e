package smtpserver

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestConnLimiterConcurrency(t *testing.T) {
	l := newConnLimiter(2, 3, 0)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	c := netip.MustParseAddr("192.0.2.3")
	other := netip.MustParseAddr("198.51.100.1")
	steps := []struct {
		ip   netip.Addr
		want limitResult
	}{
		{a, limitOK}, {a, limitOK}, {a, limitIP}, // 2 per IP
		{b, limitOK}, {c, limitNetwork}, // 3 per /24
		{other, limitOK},
	}
	for i, s := range steps {
		if got := l.acquire(s.ip, true); got != s.want {
			t.Fatalf("step %d (%s): %v, want %v", i, s.ip, got, s.want)
		}
	}
	// A refused network acquire gave its IP slot back: c has none.
	l.release(a, true)
	if got := l.acquire(c, true); got != limitOK {
		t.Fatalf("after a release: %v", got)
	}
	// The submission role has no network limit.
	if got := l.acquire(netip.MustParseAddr("192.0.2.9"), false); got != limitOK {
		t.Fatalf("non-MX: %v", got)
	}
	l.release(netip.MustParseAddr("192.0.2.9"), false)
	for _, ip := range []netip.Addr{a, b, c, other} {
		l.release(ip, true)
	}
	for i := range l.shards {
		if n := len(l.shards[i].conns); n != 0 {
			t.Fatalf("shard %d keeps %d entries after all releases", i, n)
		}
	}
	// IPv6: one /64 is one client.
	v6 := newConnLimiter(1, 0, 0)
	if v6.acquire(netip.MustParseAddr("2001:db8:1:2::1"), true) != limitOK || v6.acquire(netip.MustParseAddr("2001:db8:1:2::ffff"), true) != limitIP {
		t.Fatal("IPv6 addresses of one /64 are not one client")
	}
	if v6.acquire(netip.MustParseAddr("2001:db8:1:3::1"), true) != limitOK {
		t.Fatal("another /64 refused")
	}
	// Invalid addresses (no IP known) are not limited.
	if l.acquire(netip.Addr{}, true) != limitOK {
		t.Fatal("invalid address refused")
	}
}

func TestConnLimiterRate(t *testing.T) {
	l := newConnLimiter(0, 0, 3)
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	ip := netip.MustParseAddr("192.0.2.1")
	for i := range 3 {
		if got := l.acquire(ip, true); got != limitOK {
			t.Fatalf("connection %d: %v", i+1, got)
		}
	}
	if got := l.acquire(ip, true); got != limitRate {
		t.Fatalf("4th connection in a minute: %v", got)
	}
	if got := l.acquire(netip.MustParseAddr("192.0.2.2"), true); got != limitOK {
		t.Fatalf("another client: %v", got)
	}
	if got := l.acquire(ip, false); got != limitOK {
		t.Fatalf("rate applied to non-MX: %v", got)
	}
	// The previous minute still weighs: 30s into the next window, 4
	// attempts * 0.5 = 2 < 3 allows one more.
	now = now.Add(90 * time.Second)
	if got := l.acquire(ip, true); got != limitOK {
		t.Fatalf("after 90s: %v", got)
	}
	if got := l.acquire(ip, true); got != limitRate {
		t.Fatalf("second after 90s: %v", got)
	}
	now = now.Add(3 * time.Minute)
	if got := l.acquire(ip, true); got != limitOK {
		t.Fatalf("after a quiet period: %v", got)
	}
}

// TestConnLimiterBounded: a flood of distinct addresses never grows the
// rate table beyond its bound.
func TestConnLimiterBounded(t *testing.T) {
	l := newConnLimiter(0, 0, 10)
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	for i := range limiterShards*maxRateEntries + 5000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.acquire(ip, true)
	}
	total := 0
	for i := range l.shards {
		if n := len(l.shards[i].rate); n > maxRateEntries {
			t.Fatalf("shard %d has %d entries", i, n)
		}
		total += len(l.shards[i].rate)
	}
	// Old entries are swept once they are two windows old.
	now = now.Add(3 * time.Minute)
	l.acquire(netip.MustParseAddr("192.0.2.1"), true)
	t.Logf("%d entries after the flood", total)
}

func TestConnLimiterConcurrent(t *testing.T) {
	l := newConnLimiter(5, 0, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := map[netip.Addr]int{}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				ip := netip.AddrFrom4([4]byte{192, 0, 2, byte((g + i) % 4)})
				if l.acquire(ip, true) == limitOK {
					mu.Lock()
					held[ip]++
					if held[ip] > 5 {
						t.Errorf("%s holds %d slots", ip, held[ip])
					}
					mu.Unlock()
					mu.Lock()
					held[ip]--
					mu.Unlock()
					l.release(ip, true)
				}
			}
		}()
	}
	wg.Wait()
	for i := range l.shards {
		if len(l.shards[i].conns) != 0 {
			t.Fatal("slots leaked")
		}
	}
}

func TestSendLimiter(t *testing.T) {
	l := NewSendLimiter(SendLimits{MessagesPerHour: 3, RecipientsPerDay: 5})
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if !l.reserveMessage("a@example.org") {
			t.Fatalf("message %d refused", i+1)
		}
		now = now.Add(time.Minute)
	}
	if l.reserveMessage("a@example.org") {
		t.Fatal("4th message in an hour allowed")
	}
	if !l.reserveMessage("b@example.org") {
		t.Fatal("another user refused")
	}
	// A refund makes room again.
	l.refund("a@example.org", 1, 0)
	if !l.reserveMessage("a@example.org") {
		t.Fatal("refused after a refund")
	}
	// An hour after the first, it has left the window.
	now = now.Add(58 * time.Minute)
	if !l.reserveMessage("a@example.org") {
		t.Fatal("refused an hour later")
	}

	for i := range 5 {
		if !l.reserveRecipient("a@example.org") {
			t.Fatalf("recipient %d refused", i+1)
		}
	}
	if l.reserveRecipient("a@example.org") {
		t.Fatal("6th recipient in a day allowed")
	}
	now = now.Add(23 * time.Hour)
	if l.reserveRecipient("a@example.org") {
		t.Fatal("allowed within 24 hours")
	}
	now = now.Add(90 * time.Minute)
	if !l.reserveRecipient("a@example.org") {
		t.Fatal("refused after 24 hours")
	}
	// Refunds never go negative.
	l.refund("c@example.org", 10, 10)
	for range 3 {
		if !l.reserveMessage("c@example.org") {
			t.Fatal("refund made the count negative the wrong way")
		}
	}
	if l.reserveMessage("c@example.org") {
		t.Fatal("a refund of nothing gave credit")
	}
	// Unlimited and nil limiters allow everything.
	var nilLim *SendLimiter
	if !nilLim.reserveMessage("x") || !nilLim.reserveRecipient("x") || !NewSendLimiter(SendLimits{}).reserveMessage("x") {
		t.Fatal("no limits refused")
	}
	nilLim.refund("x", 1, 1)
}

func TestSendLimiterSweep(t *testing.T) {
	l := NewSendLimiter(SendLimits{MessagesPerHour: 3, RecipientsPerDay: 5})
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	for i := range 1000 {
		l.reserveMessage(fmt.Sprintf("u%d@example.org", i))
	}
	now = now.Add(25 * time.Hour)
	for i := range 1000 {
		l.reserveMessage(fmt.Sprintf("v%d@example.org", i))
	}
	n := 0
	for i := range l.shards {
		n += len(l.shards[i].users)
	}
	if n > 1000+limiterShards {
		t.Fatalf("%d users kept; idle ones are not swept", n)
	}
}

func TestRing(t *testing.T) {
	var r ring
	r.advance(100)
	r.add(2)
	r.advance(110)
	r.add(3)
	if r.sum() != 5 {
		t.Fatalf("sum %d", r.sum())
	}
	r.add(-4) // takes from the older bucket too
	if r.sum() != 1 {
		t.Fatalf("after refund: %d", r.sum())
	}
	r.advance(100 + 60) // bucket 100, which kept the remaining 1, leaves
	if r.sum() != 0 {
		t.Fatalf("after advancing: %d", r.sum())
	}
	r.advance(500)
	if r.sum() != 0 {
		t.Fatalf("after a long gap: %d", r.sum())
	}
	r.advance(400) // time going backwards changes nothing
	r.add(-3)
	if r.sum() != 0 {
		t.Fatal("negative window")
	}
}

func TestLogThrottle(t *testing.T) {
	var lt logThrottle
	now := time.Unix(1_000_000, 0)
	if ok, _ := lt.allow(now, time.Second); !ok {
		t.Fatal("first line suppressed")
	}
	for range 5 {
		if ok, _ := lt.allow(now.Add(100*time.Millisecond), time.Second); ok {
			t.Fatal("line within the interval allowed")
		}
	}
	ok, n := lt.allow(now.Add(2*time.Second), time.Second)
	if !ok || n != 5 {
		t.Fatalf("after the interval: %v, %d suppressed", ok, n)
	}
}
