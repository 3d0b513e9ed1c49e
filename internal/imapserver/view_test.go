package imapserver

import (
	"context"
	"strings"
	"testing"
)

// TestSharedViewCopyOnWrite: sessions that select the same mailbox share
// one array of UIDs (listInfo). One session taking in expunges and new
// messages must not change what another, which has not been told yet,
// sees by sequence number.
func TestSharedViewCopyOnWrite(t *testing.T) {
	e := newTestEnv(t, nil)
	for range 5 {
		e.deliver("INBOX", msgSimple)
	}
	a, b := e.login(), e.login()
	for _, c := range []*client{a, b} {
		c.ok("ENABLE IMAP4rev2") // no \Recent: both sessions alike
		has(t, c.ok("SELECT INBOX"), "* 5 EXISTS")
	}
	ctx := context.Background()
	mb, err := e.st.GetMailbox(ctx, e.acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Expunge(ctx, mb.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	has(t, a.ok("NOOP"), "* 2 EXPUNGE")
	e.deliver("INBOX", msgSimple)
	has(t, a.ok("NOOP"), "* 5 EXISTS")
	has(t, a.ok("FETCH 1:* (UID)"), "* 5 FETCH (UID 6)")

	// b has been told nothing: FETCH may not report the expunge, so it
	// still sees five messages with their old numbers (the expunged one
	// cannot be fetched) and not the new one.
	got, done := b.run("FETCH 1:* (UID)")
	want := []string{"* 1 FETCH (UID 1)", "* 3 FETCH (UID 3)", "* 4 FETCH (UID 4)", "* 5 FETCH (UID 5)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || !strings.Contains(done, "EXPUNGEISSUED") {
		t.Fatalf("b's FETCH 1:* after a's changes:\n%s\n%s\nwant:\n%s", strings.Join(got, "\n"), done, strings.Join(want, "\n"))
	}
	u := b.ok("NOOP")
	has(t, u, "* 2 EXPUNGE")
	has(t, u, "* 5 EXISTS")

	// A third session selecting now gets the new list; the first two
	// are unaffected by its SELECT.
	c := e.login()
	c.ok("ENABLE IMAP4rev2")
	has(t, c.ok("SELECT INBOX"), "* 5 EXISTS")
	for _, s := range []*client{a, b, c} {
		has(t, s.ok("FETCH 2 (UID)"), "* 2 FETCH (UID 3)")
		has(t, s.ok("UID SEARCH ALL"), "UID ALL 1,3:6")
	}
}
