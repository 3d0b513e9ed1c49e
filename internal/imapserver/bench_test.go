package imapserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

// BenchmarkIdleSessionMemory reports the memory per logged-in session
// idling in IDLE on a selected mailbox, without and with COMPRESS=DEFLATE.
// The clients live in the same process: each keeps only its connection
// (its buffers and deflate state are dropped before measuring), so the
// figures are the server's cost plus two socket ends.
//
// bytes/session is the growth of Go heap and stacks after two GCs;
// rss-bytes/session the growth of the process's resident set, which also
// sees memory the runtime has not returned to the OS.
func BenchmarkIdleSessionMemory(b *testing.B) {
	for _, compress := range []bool{false, true} {
		name := "plain"
		if compress {
			name = "compress"
		}
		b.Run(name, func(b *testing.B) { benchIdleSessions(b, compress) })
	}
}

func benchIdleSessions(b *testing.B, compress bool) {
	const n = 300
	e := newTestEnv(b, func(c *Config) { c.MaxConnsPerUserIP = n + 10 })
	for i := 0; i < 20; i++ {
		e.deliver("INBOX", msgSimple)
	}
	measure := func() (heap, rss uint64) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse, residentBytes()
	}
	for i := 0; i < b.N; i++ {
		heap0, rss0 := measure()
		clients := make([]*client, 0, n)
		for j := 0; j < n; j++ {
			c := e.login()
			if compress {
				c.ok("COMPRESS DEFLATE")
				c.compress()
			}
			c.ok("SELECT INBOX")
			c.ok("FETCH 1:* (FLAGS ENVELOPE)") // some work through the compressor
			c.write("i IDLE\r\n")
			if l := c.readLine(); !strings.HasPrefix(l, "+") {
				b.Fatal(l)
			}
			c.br, c.zw = nil, nil
			clients = append(clients, c)
		}
		time.Sleep(100 * time.Millisecond)
		heap1, rss1 := measure()
		b.ReportMetric(float64(int64(heap1-heap0))/n, "bytes/session")
		b.ReportMetric(float64(int64(rss1-rss0))/n, "rss-bytes/session")
		for _, c := range clients {
			c.conn.Close()
		}
	}
}

// residentBytes reads the process's resident set size (Linux); 0
// elsewhere.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// countConn counts the bytes read from a connection.
type countConn struct {
	net.Conn
	n int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n += int64(n)
	return n, err
}

// BenchmarkResync measures what a client that was offline while 1,000 of
// 100,000 messages changed flags and 100 were expunged pays to catch up:
// with QRESYNC (SELECT with its cached UIDVALIDITY, MODSEQ and UIDs),
// against a plain resync (SELECT, then FETCH 1:* (FLAGS) or, as a client
// that must also find expunged messages does, UID FETCH 1:* (FLAGS)), also
// over COMPRESS=DEFLATE; select-only is the floor, a SELECT alone.
// bytes/op is what the server sends for the resync (login excluded), on
// the wire.
//
// Setting it up takes a while (100,000 deliveries straight into the
// store); IMAP_BENCH_MESSAGES sets another mailbox size.
func BenchmarkResync(b *testing.B) {
	total := 100000
	if v, err := strconv.Atoi(os.Getenv("IMAP_BENCH_MESSAGES")); err == nil && v >= 2000 {
		total = v
	}
	const changed, expunged = 1000, 100
	e := newTestEnv(b, nil)
	ctx := context.Background()
	mb, err := e.st.GetMailbox(ctx, e.acct.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(strings.ReplaceAll(msgSimple, "\n", "\r\n"))
	p, err := message.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for done := 0; done < total; {
		k := min(1000, total-done)
		rcpts := make([]store.Recipient, k)
		for i := range rcpts {
			rcpts[i] = store.Recipient{AccountID: e.acct.ID, MailboxID: mb.ID, Flags: store.FlagSeen}
		}
		if _, err := e.st.Deliver(ctx, store.Delivery{Blob: bytes.NewReader(data), Summary: p.Encode(), Recipients: rcpts}); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	b.Logf("delivered %d messages in %v", total, time.Since(start))

	// The client's cached state.
	c := e.login()
	c.ok("ENABLE QRESYNC")
	u := strings.Join(c.ok("SELECT INBOX"), "\n")
	validity := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(u)[1]
	modseq := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(u)[1]
	c.ok("LOGOUT")

	// While it is away.
	rng := rand.New(rand.NewPCG(5, 6))
	perm := rng.Perm(total)
	var flagUIDs, gone []uint32
	for _, i := range perm[:changed] {
		flagUIDs = append(flagUIDs, uint32(i+1))
	}
	for _, i := range perm[changed : changed+expunged] {
		gone = append(gone, uint32(i+1))
	}
	for i := 0; i < len(flagUIDs); i += 10 {
		if _, err := e.st.StoreFlags(ctx, mb.ID, flagUIDs[i:i+10], store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagFlagged}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.st.Expunge(ctx, mb.ID, gone); err != nil {
		b.Fatal(err)
	}

	run := func(b *testing.B, compress bool, enable string, cmds ...string) {
		var bytesIn, lines int64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			conn, err := net.Dial("tcp", e.addr)
			if err != nil {
				b.Fatal(err)
			}
			cc := &countConn{Conn: conn}
			c := &client{t: b, conn: cc, timeout: 2 * time.Minute}
			c.br = bufio.NewReader(cc)
			c.readLine()
			c.ok("LOGIN joe@example.org " + strconv.Quote(testPass))
			if compress {
				c.ok("COMPRESS DEFLATE")
				c.compress()
			}
			if enable != "" {
				c.ok(enable)
			}
			cc.n = 0
			b.StartTimer()
			for _, cmd := range cmds {
				lines += int64(len(c.ok(cmd))) + 1
			}
			b.StopTimer()
			bytesIn += cc.n
			conn.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(bytesIn)/float64(b.N), "bytes/op")
		b.ReportMetric(float64(lines)/float64(b.N), "lines/op")
	}
	qresync := fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s 1:%d))", validity, modseq, total)
	b.Run("select-only", func(b *testing.B) { run(b, false, "", "SELECT INBOX") })
	b.Run("qresync", func(b *testing.B) { run(b, false, "ENABLE QRESYNC", qresync) })
	b.Run("fetch-flags", func(b *testing.B) { run(b, false, "", "SELECT INBOX", "FETCH 1:* (FLAGS)") })
	b.Run("uid-fetch-flags", func(b *testing.B) { run(b, false, "", "SELECT INBOX", "UID FETCH 1:* (FLAGS)") })
	b.Run("qresync-compressed", func(b *testing.B) { run(b, true, "ENABLE QRESYNC", qresync) })
	b.Run("uid-fetch-flags-compressed", func(b *testing.B) { run(b, true, "", "SELECT INBOX", "UID FETCH 1:* (FLAGS)") })
}
