package spam

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

// testZone is the base zone of the tests. Addresses are documentation
// ranges used as data only: nothing is sent anywhere.
const testZone = `
; iprev
192.0.2.10 PTR mail.example.org
mail.example.org A 192.0.2.10
mail.example.org AAAA 2001:db8::10
2001:db8::10 PTR mail.example.org
192.0.2.11 PTR other.example.org
other.example.org A 198.51.100.7
192.0.2.12 PTR nx.example.org
192.0.2.13 SERVFAIL
192.0.2.14 PTR broken.example.org
broken.example.org SERVFAIL
192.0.2.15 PTR nx.example.org
192.0.2.15 PTR second.example.org
second.example.org A 192.0.2.15
192.0.2.16 PTR bad_name!.example.org
; HELO names
helo.example.org A 203.0.113.5
servfail.example.org SERVFAIL
; DNS lists: 192.0.2.66 is listed everywhere, 192.0.2.67 gives error codes
66.2.0.192.bl1.example A 127.0.0.2
66.2.0.192.bl1.example TXT "Listed, see https://bl1.example/q?ip=192.0.2.66"
66.2.0.192.bl2.example A 127.0.0.4
66.2.0.192.wl.example A 127.0.10.2
67.2.0.192.bl1.example A 127.255.255.254
67.2.0.192.bl2.example A 127.0.0.20
68.2.0.192.bl1.example A 198.51.100.1
10.2.0.192.wl.example A 127.0.10.3
66.2.0.192.hang.example HANG
66.2.0.192.servfail.example SERVFAIL
`

func newZone(t testing.TB) *dnsresolver.Fake {
	t.Helper()
	f := dnsresolver.NewFake()
	if err := f.LoadZone(strings.NewReader(testZone)); err != nil {
		t.Fatal(err)
	}
	// IPv6 listing of 2001:db8::66 on bl1.
	f.AddIP(QueryName(netip.MustParseAddr("2001:db8::66"), "bl1.example"), "127.0.0.3")
	return f
}

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// metricValue returns the value of a counter, gauge or histogram count
// with the given labels from reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func newChecker(t testing.TB, cfg Config, r Resolver) *Checker {
	t.Helper()
	c, err := New(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var bg = context.Background()

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// The resolvers the server uses satisfy Resolver.
var (
	_ Resolver = dnsresolver.System{}
	_ Resolver = (*dnsresolver.Fake)(nil)
	_ Resolver = (*net.Resolver)(nil)
)

// refusedAddr returns a loopback host:port that refuses connections: its
// port is bound by a socket that never listens, held until the test ends.
// (A port that was merely free a moment ago may meanwhile be taken by a
// listener of a test running in parallel.)
func refusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}
