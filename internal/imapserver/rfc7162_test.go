package imapserver

import (
	"bufio"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
)

// mustSet parses a sequence set.
func mustSet(t *testing.T, s string) imapwire.NumSet {
	t.Helper()
	r := imapwire.NewReader(bufio.NewReader(strings.NewReader("t UID EXPUNGE " + s + "\r\n")))
	cmd, err := r.ReadCommand()
	if err != nil {
		t.Fatalf("set %q: %v", s, err)
	}
	return cmd.Args.(*imapwire.ExpungeArgs).Set
}

// The examples of RFC 7162 (CONDSTORE and QRESYNC) as transcripts. The
// RFC's mailboxes are scaled down and its MODSEQ values become variables;
// the shapes of the exchanges are the RFC's.

// expungeUIDs removes messages directly in the store, as another client
// or an earlier session would have.
func (e *testEnv) expungeUIDs(mailbox string, uids ...uint32) {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.st.GetMailbox(ctx, e.acct.ID, mailbox)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Expunge(ctx, mb.ID, uids); err != nil {
		e.t.Fatal(err)
	}
}

func TestRFC7162CondStore(t *testing.T) {
	e := newTestEnv(t, nil)
	for i := 0; i < 8; i++ {
		e.deliver("INBOX", msgSimple)
	}
	// The RFC's examples use UIDs 4, 6, 7, 8 as messages 1 to 4.
	e.expungeUIDs("INBOX", 1, 2, 3, 5)
	// Another session claims \Recent, which would otherwise show up in
	// every FLAGS below.
	other := e.login()
	other.ok("SELECT INBOX")
	c := e.login()
	vars := map[string]string{}
	runTranscript(t, c, vars, `
		# 3.1.2.1 / 3.1.8: SELECT (CONDSTORE) reports HIGHESTMODSEQ.
		C: a1 SELECT INBOX (CONDSTORE)
		S: * FLAGS (\Seen \Answered \Flagged \Deleted \Draft)
		S: ...
		S: * OK [HIGHESTMODSEQ $h0] Highest
		S: a1 OK [READ-WRITE] SELECT completed

		# 3.1.3, example 10: every message passes UNCHANGEDSINCE; .SILENT
		# still reports the new MODSEQs.
		C: a103 UID STORE 6,4,8 (UNCHANGEDSINCE $h0) +FLAGS.SILENT (\Deleted)
		S: * 1 FETCH (UID 4 MODSEQ ($m1))
		S: * 2 FETCH (UID 6 MODSEQ ($m1))
		S: * 4 FETCH (UID 8 MODSEQ ($m1))
		S: a103 OK UID STORE completed

		# 3.1.3, example 12: messages changed since the given MODSEQ
		# fail and are listed in MODIFIED (sequence numbers for STORE).
		C: d105 STORE 2:4 (UNCHANGEDSINCE $h0) +FLAGS.SILENT ($Processed)
		S: * 3 FETCH (UID 7 MODSEQ ($m2))
		S: d105 OK [MODIFIED 2,4] STORE completed

		# 3.1.3: UNCHANGEDSINCE 0 always fails.
		C: a102 STORE 1 (UNCHANGEDSINCE 0) +FLAGS.SILENT ($MDNSent)
		S: a102 OK [MODIFIED 1] STORE completed

		# Without .SILENT the FETCH carries FLAGS, UID and MODSEQ.
		C: a104 UID STORE 7 (UNCHANGEDSINCE $m2) FLAGS ($Processed \Seen)
		S: * 3 FETCH (FLAGS (\Seen $Processed) UID 7 MODSEQ ($m3))
		S: a104 OK UID STORE completed

		# 3.1.4.1: FETCH (CHANGEDSINCE) returns only what changed, with
		# MODSEQ.
		C: s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE $m1)
		S: * 3 FETCH (UID 7 FLAGS (\Seen $Processed) MODSEQ ($m3))
		S: s100 OK UID FETCH completed
		C: s101 FETCH 1:* (UID) (CHANGEDSINCE $m3)
		S: s101 OK FETCH completed
		C: s102 FETCH 2 (MODSEQ)
		S: * 2 FETCH (MODSEQ ($m1))
		S: s102 OK FETCH completed

		# 3.1.5: SEARCH MODSEQ adds the highest MODSEQ of the matches;
		# with no match there is none.
		C: a SEARCH MODSEQ $m1
		S: * SEARCH 1 2 3 4 (MODSEQ $m3)
		S: a OK SEARCH completed
		C: t UID SEARCH OR NOT MODSEQ 1 LARGER 50000
		S: * SEARCH
		S: t OK UID SEARCH completed
		C: u SEARCH MODSEQ "/flags/\\draft" all $m2
		S: * SEARCH 3 (MODSEQ $m3)
		S: u OK SEARCH completed

		# 3.1.6: STATUS HIGHESTMODSEQ, also through LIST-STATUS.
		C: A042 STATUS INBOX (UIDNEXT MESSAGES HIGHESTMODSEQ)
		S: * STATUS INBOX (UIDNEXT 9 MESSAGES 4 HIGHESTMODSEQ $m3)
		S: A042 OK STATUS completed
		C: A043 LIST "" "INBOX" RETURN (STATUS (HIGHESTMODSEQ MESSAGES))
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * STATUS INBOX (HIGHESTMODSEQ $m3 MESSAGES 4)
		S: A043 OK LIST completed
	`)
	// Another session changes a flag: the unsolicited FETCH carries
	// MODSEQ.
	other.ok(`UID STORE 8 +FLAGS.SILENT (\Flagged)`)
	runTranscript(t, c, vars, `
		C: n2 NOOP
		S: * 4 FETCH (FLAGS (\Flagged \Deleted) UID 8 MODSEQ ($m4))
		S: n2 OK NOOP completed
		C: x1 EXPUNGE
		S: * 4 EXPUNGE
		S: * 2 EXPUNGE
		S: * 1 EXPUNGE
		S: x1 OK EXPUNGE completed
	`)
	// NOMODSEQ is never sent: every mailbox has persistent MODSEQs.
	u := c.ok("EXAMINE Archive (CONDSTORE)")
	has(t, u, "* OK [HIGHESTMODSEQ ")
	hasNot(t, u, "NOMODSEQ")
}

func TestRFC7162QResync(t *testing.T) {
	e := newTestEnv(t, nil)
	for i := 0; i < 20; i++ {
		e.deliver("INBOX", msgSimple)
	}
	vars := map[string]string{}
	a := e.login()
	runTranscript(t, a, vars, `
		C: A01 ENABLE QRESYNC
		S: * ENABLED QRESYNC
		S: A01 OK ENABLE completed
		C: A02 SELECT INBOX
		S: ...
		S: * OK [UIDVALIDITY $v] UIDs valid
		S: ...
		S: * OK [HIGHESTMODSEQ $h0] Highest
		S: A02 OK [READ-WRITE] SELECT completed
		C: A03 LOGOUT
		S: * BYE Logging out
		S: A03 OK LOGOUT completed
	`)
	// While the client is away: expunges and flag changes.
	b := e.login()
	b.ok("SELECT INBOX")
	b.ok(`UID STORE 3,5:10,12,14:15,17:19 +FLAGS.SILENT (\Deleted)`)
	b.ok(`UID EXPUNGE 1:*`)
	b.ok(`UID STORE 11 FLAGS.SILENT (\Seen \Answered)`)
	b.ok(`UID STORE 13 FLAGS.SILENT (\Draft $MDNSent)`)
	b.ok(`UID STORE 20 FLAGS.SILENT (\Seen $Forwarded)`)

	c := e.login()
	runTranscript(t, c, vars, `
		# 3.2.5.2: SELECT with QRESYNC and the known UIDs (the client
		# never had 4 and 16). Left: UIDs 1 2 4 11 13 16 20.
		C: A01 ENABLE QRESYNC
		S: * ENABLED QRESYNC
		S: A01 OK ENABLE completed
		C: A02 SELECT INBOX (QRESYNC ($v $h0 3,5:15,17:20))
		S: * FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Forwarded $MDNSent)
		S: ...
		S: * OK [HIGHESTMODSEQ $h1] Highest
		S: * VANISHED (EARLIER) 3,5:10,12,14:15,17:19
		S: * 4 FETCH (UID 11 FLAGS (\Seen \Answered) MODSEQ ($_))
		S: * 5 FETCH (UID 13 FLAGS (\Draft $MDNSent) MODSEQ ($_))
		S: * 7 FETCH (UID 20 FLAGS (\Seen $Forwarded) MODSEQ ($h1))
		S: A02 OK [READ-WRITE] SELECT completed

		# 3.2.5: a UIDVALIDITY that does not match means a full resync:
		# no VANISHED, no FETCH (and 3.2.11: CLOSED first).
		C: A03 EXAMINE INBOX (QRESYNC (1 $h0))
		S: * OK [CLOSED] Previous mailbox closed
		S: ...
		S: A03 OK [READ-ONLY] EXAMINE completed
		C: A04 SELECT INBOX (QRESYNC ($v $h0))
		S: * OK [CLOSED] Previous mailbox closed
		S: ...
		S: * VANISHED (EARLIER) 3,5:10,12,14:15,17:19
		S: * 4 FETCH (UID 11 FLAGS (\Seen \Answered) MODSEQ ($_))
		S: * 5 FETCH (UID 13 FLAGS (\Draft $MDNSent) MODSEQ ($_))
		S: * 7 FETCH (UID 20 FLAGS (\Seen $Forwarded) MODSEQ ($h1))
		S: A04 OK [READ-WRITE] SELECT completed

		# 3.2.6: UID FETCH with the VANISHED modifier.
		C: A05 UID FETCH 1:13 (FLAGS) (CHANGEDSINCE $h0 VANISHED)
		S: * VANISHED (EARLIER) 3,5:10,12
		S: * 4 FETCH (UID 11 FLAGS (\Seen \Answered) MODSEQ ($_))
		S: * 5 FETCH (UID 13 FLAGS (\Draft $MDNSent) MODSEQ ($_))
		S: A05 OK UID FETCH completed
		C: A06 UID FETCH 15:* (FLAGS) (CHANGEDSINCE $h0 VANISHED)
		S: * VANISHED (EARLIER) 15,17:19
		S: * 7 FETCH (UID 20 FLAGS (\Seen $Forwarded) MODSEQ ($h1))
		S: A06 OK UID FETCH completed
	`)
	// 3.2.7: expunges by others arrive as VANISHED, flag changes as
	// FETCH with UID and MODSEQ; our own EXPUNGE ends with HIGHESTMODSEQ.
	b.ok(`UID STORE 16,20 +FLAGS.SILENT (\Deleted)`)
	b.ok(`UID EXPUNGE 20`)
	runTranscript(t, c, vars, `
		C: A07 NOOP
		S: * VANISHED 20
		S: * 6 FETCH (FLAGS (\Deleted) UID 16 MODSEQ ($m16))
		S: A07 OK NOOP completed
		C: A08 EXPUNGE
		S: * VANISHED 16
		S: A08 OK [HIGHESTMODSEQ $h2] EXPUNGE completed
		C: A09 STATUS INBOX (HIGHESTMODSEQ)
		S: * STATUS INBOX (HIGHESTMODSEQ $h2)
		S: A09 OK STATUS completed
	`)
}

// pruneAll prunes every expunge record of the store, as the maintenance
// loop does once they are older than the QRESYNC window.
func (e *testEnv) pruneAll() {
	e.t.Helper()
	if _, err := e.st.PruneExpunged(context.Background(), time.Now().Add(time.Hour)); err != nil {
		e.t.Fatal(err)
	}
}

// With the expunge records gone, VANISHED (EARLIER) falls back to the
// known UIDs that are missing, narrowed by the sequence match data.
func TestQResyncPrunedSeqMatch(t *testing.T) {
	e := newTestEnv(t, nil)
	for i := 0; i < 20; i++ {
		e.deliver("INBOX", msgSimple)
	}
	// UIDs 1 and 2 went long ago; the client's cache starts at UID 3
	// (message 1).
	e.expungeUIDs("INBOX", 1, 2)
	vars := map[string]string{}
	a := e.login()
	runTranscript(t, a, vars, `
		C: A01 ENABLE QRESYNC
		S: * ENABLED QRESYNC
		S: A01 OK ENABLE completed
		C: A02 SELECT INBOX
		S: ...
		S: * OK [UIDVALIDITY $v] UIDs valid
		S: ...
		S: * OK [HIGHESTMODSEQ $h0] Highest
		S: A02 OK [READ-WRITE] SELECT completed
	`)
	a.conn.Close()
	e.expungeUIDs("INBOX", 5, 10)
	e.pruneAll()
	c := e.login()
	runTranscript(t, c, vars, `
		C: A01 ENABLE QRESYNC
		S: * ENABLED QRESYNC
		S: A01 OK ENABLE completed

		# Without known UIDs: every missing UID up to UIDNEXT-1.
		C: A02 EXAMINE INBOX (QRESYNC ($v $h0))
		S: ...
		S: * VANISHED (EARLIER) 1:2,5,10
		S: A02 OK [READ-ONLY] EXAMINE completed

		# With known UIDs: only those.
		C: A03 EXAMINE INBOX (QRESYNC ($v $h0 3:20))
		S: ...
		S: * VANISHED (EARLIER) 5,10
		S: A03 OK [READ-ONLY] EXAMINE completed

		# 3.2.5.2: sequence match data. Messages 1 and 2 still are UIDs 3
		# and 4, so nothing below UID 5 can have vanished.
		C: A04 EXAMINE INBOX (QRESYNC ($v $h0 (1:2 3:4)))
		S: ...
		S: * VANISHED (EARLIER) 5,10
		S: A04 OK [READ-ONLY] EXAMINE completed
		# A client that already knew UID 5 was gone.
		C: A05 EXAMINE INBOX (QRESYNC ($v $h0 1:20 (1:3 3:4,6)))
		S: ...
		S: * VANISHED (EARLIER) 10
		S: A05 OK [READ-ONLY] EXAMINE completed

		# A pair that no longer holds (message 5 was UID 7, now it is
		# UID 8) stops the walk: UIDs from 5 on are reported.
		C: A06 EXAMINE INBOX (QRESYNC ($v $h0 (1:2,5 3:4,7)))
		S: ...
		S: * VANISHED (EARLIER) 5,10
		S: A06 OK [READ-ONLY] EXAMINE completed

		# Nonsense pairs are harmless.
		C: A07 EXAMINE INBOX (QRESYNC ($v $h0 (4000000000:4294967295 1:9)))
		S: ...
		S: * VANISHED (EARLIER) 1:2,5,10
		S: A07 OK [READ-ONLY] EXAMINE completed

		# UID FETCH (VANISHED) falls back the same way; "*" reaches the
		# highest UID the mailbox had.
		C: A08 UID FETCH 4:* (FLAGS) (CHANGEDSINCE $h0 VANISHED)
		S: * VANISHED (EARLIER) 5,10
		S: A08 OK UID FETCH completed
	`)
}

// TestQResyncPrunedRealStore: the store really pruned some expunge records
// (those older than the window) and kept newer ones. A client whose MODSEQ
// is below the floor gets every known UID that is gone, a client at the
// floor the exact list from the records, and a session that was selected
// all along learns of an expunge whose record was pruned before its next
// poll.
func TestQResyncPrunedRealStore(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		e.deliver("INBOX", msgSimple)
	}
	vars := map[string]string{}
	a := e.login()
	runTranscript(t, a, vars, `
		C: A01 ENABLE QRESYNC
		S: * ENABLED QRESYNC
		S: A01 OK ENABLE completed
		C: A02 SELECT INBOX
		S: ...
		S: * OK [UIDVALIDITY $v] UIDs valid
		S: ...
		S: * OK [HIGHESTMODSEQ $h0] Highest
		S: A02 OK [READ-WRITE] SELECT completed
	`)
	// Old history: 5 and 10 expunged, 7 flagged. The flag change stays
	// visible (it is on the message); the expunge records will be pruned.
	e.expungeUIDs("INBOX", 5, 10)
	u := a.ok(`UID STORE 7 +FLAGS.SILENT (\Flagged)`)
	has(t, u, "* VANISHED 5,10")
	st, err := e.st.MailboxStatus(ctx, mustMailbox(t, e, "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	vars["h1"] = strconv.FormatInt(st.HighestModSeq, 10)
	time.Sleep(20 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond)
	e.expungeUIDs("INBOX", 12)
	if n, err := e.st.PruneExpunged(ctx, cutoff); err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want 2", n, err)
	}
	// Session a was selected all along at MODSEQ h1, the floor: exact.
	has(t, a.ok("NOOP"), "* VANISHED 12")

	c := e.login()
	runTranscript(t, c, vars, `
		C: B01 ENABLE QRESYNC
		S: * ENABLED QRESYNC
		S: B01 OK ENABLE completed

		# Below the floor: every missing UID up to UIDNEXT-1, and the flag
		# change since h0.
		C: B02 EXAMINE INBOX (QRESYNC ($v $h0))
		S: ...
		S: * OK [HIGHESTMODSEQ $_] Highest
		S: ...
		S: * VANISHED (EARLIER) 5,10,12
		S: * 6 FETCH (UID 7 FLAGS (\Flagged) MODSEQ ($_))
		S: B02 OK [READ-ONLY] EXAMINE completed

		# Known UIDs narrow it.
		C: B03 EXAMINE INBOX (QRESYNC ($v $h0 8:20))
		S: ...
		S: * VANISHED (EARLIER) 10,12
		S: B03 OK [READ-ONLY] EXAMINE completed

		# At the floor the records are complete: only 12, no flag change.
		C: B04 EXAMINE INBOX (QRESYNC ($v $h1))
		S: ...
		S: * VANISHED (EARLIER) 12
		S: B04 OK [READ-ONLY] EXAMINE completed

		C: B05 UID FETCH 1:* (FLAGS) (CHANGEDSINCE $h0 VANISHED)
		S: * VANISHED (EARLIER) 5,10,12
		S: * 6 FETCH (UID 7 FLAGS (\Flagged) MODSEQ ($_))
		S: B05 OK UID FETCH completed
	`)

	// A session selected below the new floor: its next poll cannot use
	// the records and compares UIDs instead.
	b := e.login()
	b.ok("ENABLE QRESYNC")
	b.ok("SELECT INBOX")
	e.expungeUIDs("INBOX", 3)
	e.pruneAll()
	has(t, b.ok("NOOP"), "* VANISHED 3")
	d := e.login()
	d.ok("SELECT INBOX")
	e.expungeUIDs("INBOX", 4)
	e.pruneAll()
	has(t, d.ok("NOOP"), "* 3 EXPUNGE") // UIDs 1, 2, 4, ...: UID 4 is message 3
}

func mustMailbox(t *testing.T, e *testEnv, name string) int64 {
	t.Helper()
	mb, err := e.st.GetMailbox(context.Background(), e.acct.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb.ID
}

func TestSeqMatchLow(t *testing.T) {
	uids := []uint32{3, 4, 6, 7, 8, 9, 11}
	tests := []struct {
		seqs, uids string
		want       uint32
	}{
		{"1:2", "3:4", 5},
		{"1,3,7", "3,6,11", 12},
		{"1,3,7", "3,7,11", 4},
		{"2,1", "4,3", 5}, // not ascending: stop
		{"1:3", "3:4", 5}, // uneven lengths
		{"8", "12", 1},    // beyond the mailbox
		{"1:*", "3:*", 1}, // "*" is not allowed
		{"4:1", "7:3", 5}, // ranges walk ascending: (1 3) (2 4) (3 5)
		{"1:7", "3:4,6:9,11", 12},
	}
	for _, tc := range tests {
		sm := [2]imapwire.NumSet{mustSet(t, tc.seqs), mustSet(t, tc.uids)}
		if got := seqMatchLow(&sm, uids); got != tc.want {
			t.Errorf("seqMatchLow(%s %s) = %d, want %d", tc.seqs, tc.uids, got, tc.want)
		}
	}
}

// Two QRESYNC sessions, one of them in IDLE, exchange changes.
func TestQResyncTwoSessions(t *testing.T) {
	e := newTestEnv(t, nil)
	for i := 0; i < 5; i++ {
		e.deliver("INBOX", msgSimple)
	}
	a, b := e.login(), e.login()
	for _, c := range []*client{a, b} {
		c.ok("ENABLE QRESYNC")
		c.ok("SELECT INBOX")
	}
	b.write("i IDLE\r\n")
	if l := b.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatal(l)
	}
	a.ok(`UID STORE 2 +FLAGS.SILENT (\Flagged)`)
	vars := map[string]string{}
	if l := b.readLine(); !matchLines(t, []string{`* 2 FETCH (FLAGS (\Flagged) UID 2 MODSEQ ($m))`}, []string{l}, vars) {
		t.Fatalf("IDLE got %q", l)
	}
	a.ok(`UID STORE 3 +FLAGS.SILENT (\Deleted)`)
	a.ok(`UID EXPUNGE 3`)
	// The flag change and the expunge may come in one poll or two.
	for i := 0; ; i++ {
		l := b.readLine()
		if l == "* VANISHED 3" {
			break
		}
		if i == 2 || !strings.HasPrefix(l, "* 3 FETCH (FLAGS (\\Deleted) UID 3 MODSEQ (") {
			t.Fatalf("IDLE got %q", l)
		}
	}
	b.write("DONE\r\n")
	for l := b.readLine(); !strings.HasPrefix(l, "i "); l = b.readLine() {
	}
	// B answers; A learns it and a new delivery with one NOOP.
	b.ok(`UID STORE 4 +FLAGS.SILENT ($Done)`)
	e.deliver("INBOX", msgSimple)
	u := a.ok("NOOP")
	has(t, u, `* 3 FETCH (FLAGS ($Done \Recent) UID 4 MODSEQ (`)
	has(t, u, "* 5 EXISTS")
	hasNot(t, u, "VANISHED") // A expunged 3 itself and was told then
}
