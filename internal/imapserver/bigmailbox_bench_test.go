package imapserver

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

// BenchmarkBigMailbox times single commands on one big mailbox (100,000
// messages; IMAP_BENCH_MESSAGES sets another size), as the issue's
// benchmark against Dovecot does. Absolute times depend on the machine,
// so each result is also reported as a ratio to copying the mailbox's
// message list once (x-list-copy): what every SELECT, FETCH 1:* and
// SEARCH did before the list was shared. select-after-change has a flag
// change before each SELECT, so the store brings its list forward first.
func BenchmarkBigMailbox(b *testing.B) {
	total := 100000
	if v, err := strconv.Atoi(os.Getenv("IMAP_BENCH_MESSAGES")); err == nil && v >= 1000 {
		total = v
	}
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
			r := store.Recipient{AccountID: e.acct.ID, MailboxID: mb.ID, Flags: store.FlagSeen}
			switch n := done + i; {
			case n%10 < 3:
				r.Flags = 0 // 30% unseen
			case n%100 == 5:
				r.Keywords = []string{"$Label" + strconv.Itoa(n%7)}
			}
			rcpts[i] = r
		}
		if _, err := e.st.Deliver(ctx, store.Delivery{Blob: bytes.NewReader(data), Summary: p.Encode(), Recipients: rcpts}); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	b.Logf("delivered %d messages in %v", total, time.Since(start))

	// The baseline: one copy of the cached list, the best of a few.
	if _, err := e.st.ListMessages(ctx, mb.ID); err != nil {
		b.Fatal(err)
	}
	copyTime := time.Duration(1 << 62)
	for range 5 {
		t0 := time.Now()
		l, err := e.st.ListMessages(ctx, mb.ID)
		if err != nil || len(l) != total {
			b.Fatalf("list: %d messages, %v", len(l), err)
		}
		copyTime = min(copyTime, time.Since(t0))
	}
	b.Logf("list copy of %d messages: %v", total, copyTime)

	c := e.login()
	c.timeout = 2 * time.Minute
	c.ok("SELECT INBOX")
	other := e.login()
	other.timeout = 2 * time.Minute
	other.ok("SELECT INBOX")
	run := func(b *testing.B, before func(i int), cmd string) {
		var d time.Duration
		for i := 0; i < b.N; i++ {
			if before != nil {
				before(i)
			}
			t0 := time.Now()
			c.ok(cmd)
			d += time.Since(t0)
		}
		b.ReportMetric(float64(d)/float64(b.N)/float64(copyTime), "x-list-copy")
	}
	b.Run("select", func(b *testing.B) { run(b, nil, "SELECT INBOX") })
	b.Run("examine", func(b *testing.B) { run(b, nil, "EXAMINE INBOX") })
	b.Run("select-after-change", func(b *testing.B) {
		run(b, func(i int) { other.ok("STORE " + strconv.Itoa(i%total+1) + " +FLAGS (\\Flagged)") }, "SELECT INBOX")
	})
	b.Run("uid-fetch-flags", func(b *testing.B) { run(b, nil, "UID FETCH 1:* (FLAGS)") })
	b.Run("uid-search-unseen", func(b *testing.B) { run(b, nil, "UID SEARCH UNSEEN") })
	b.Run("list-copy", func(b *testing.B) {
		var d time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			l, err := e.st.ListMessages(ctx, mb.ID)
			d += time.Since(t0)
			if err != nil || slices.ContainsFunc(l[:1], func(m store.MessageMeta) bool { return m.UID == 0 }) {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(d)/float64(b.N)/float64(copyTime), "x-list-copy")
	})
}
