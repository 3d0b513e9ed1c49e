package imapserver

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
)

func TestCondStore(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)
	e.deliver("INBOX", msgSimple)
	a, b := e.login(), e.login()
	has(t, a.ok("CAPABILITY"), " CONDSTORE")

	u := a.ok("SELECT INBOX (CONDSTORE)")
	m := regexp.MustCompile(`^\* OK \[HIGHESTMODSEQ (\d+)\]`).FindStringSubmatch(strings.Join(grep(u, "HIGHESTMODSEQ"), ""))
	if m == nil {
		t.Fatalf("no HIGHESTMODSEQ in %q", u)
	}
	h0, _ := strconv.ParseInt(m[1], 10, 64)

	// FLAGS come with MODSEQ now.
	u = a.ok("FETCH 1:* (FLAGS)")
	if !regexp.MustCompile(`^\* 1 FETCH \(FLAGS \(\\Recent\) MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Fatalf("got %q", u)
	}
	u = a.ok("UID FETCH 1:* (UID) (CHANGEDSINCE " + m[1] + ")")
	if len(u) != 0 {
		t.Fatalf("nothing changed since HIGHESTMODSEQ, got %q", u)
	}

	// B (not using CONDSTORE) changes message 2.
	b.ok("SELECT INBOX")
	b.ok(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	u = a.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE " + m[1] + ")")
	if len(u) != 2 || !strings.HasPrefix(u[0], `* 2 FETCH (UID 2 FLAGS (\Flagged \Recent) MODSEQ (`) ||
		!strings.HasPrefix(u[1], `* 2 FETCH (FLAGS (\Flagged \Recent) UID 2 MODSEQ (`) {
		// The answer to the UID FETCH, then the change report that
		// every command ends with.
		t.Fatalf("got %q", u)
	}

	// Conditional store: message 2 changed after h0, message 1 did not.
	u, d := a.run("UID STORE 1:2 (UNCHANGEDSINCE " + strconv.FormatInt(h0, 10) + ") +FLAGS.SILENT (\\Seen)")
	if d != "OK [MODIFIED 2] UID STORE completed" {
		t.Fatalf("got %q %q", u, d)
	}
	if len(u) != 1 || !regexp.MustCompile(`^\* 1 FETCH \(UID 1 MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Fatalf("got %q", u)
	}
	_, d = a.run(`STORE 1 (UNCHANGEDSINCE 0) -FLAGS (\Seen)`)
	if d != "OK [MODIFIED 1] STORE completed" {
		t.Fatalf("got %q", d)
	}
	has(t, a.ok("SEARCH SEEN"), "* SEARCH 1")

	// SEARCH MODSEQ reports the highest MODSEQ of the matches.
	u = a.ok("SEARCH MODSEQ " + strconv.FormatInt(h0+1, 10))
	if len(u) != 1 || !regexp.MustCompile(`^\* SEARCH 1 2 \(MODSEQ \d+\)$`).MatchString(u[0]) {
		t.Fatalf("got %q", u)
	}
	u = a.ok("SEARCH RETURN (COUNT) MODSEQ 1")
	if len(u) != 1 || !regexp.MustCompile(`COUNT 2 MODSEQ \d+$`).MatchString(u[0]) {
		t.Fatalf("got %q", u)
	}
	has(t, a.ok("STATUS INBOX (HIGHESTMODSEQ)"), "HIGHESTMODSEQ ")

	// ENABLE CONDSTORE while selected reports HIGHESTMODSEQ, and
	// unsolicited FETCHes carry MODSEQ from then on.
	u = b.ok("ENABLE CONDSTORE")
	has(t, u, "* ENABLED CONDSTORE")
	has(t, u, "* OK [HIGHESTMODSEQ ")
	a.ok(`STORE 1 +FLAGS.SILENT (\Answered)`)
	u = b.ok("NOOP")
	if len(u) != 1 || !regexp.MustCompile(`^\* 1 FETCH \(FLAGS \(\\Seen \\Answered\) UID 1 MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Fatalf("got %q", u)
	}
	a.fail("SELECT INBOX (QRESYNC (1 1))", "BAD")
	a.fail("UID FETCH 1 FLAGS (VANISHED)", "BAD")
}

func grep(lines []string, s string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func TestQResync(t *testing.T) {
	e := newTestEnv(t, nil)
	for i := 0; i < 4; i++ {
		e.deliver("INBOX", msgSimple)
	}
	a, b, c := e.login(), e.login(), e.login()
	c.fail("SELECT INBOX (QRESYNC (1 1))", "BAD")
	u := a.ok("ENABLE QRESYNC")
	has(t, u, "* ENABLED QRESYNC")
	u = a.ok("SELECT INBOX")
	hm := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(strings.Join(u, "\n"))
	vm := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(strings.Join(u, "\n"))
	if hm == nil || vm == nil {
		t.Fatalf("SELECT: %q", u)
	}

	b.ok("SELECT INBOX")
	b.ok(`UID STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.ok("UID EXPUNGE 2")
	b.ok(`UID STORE 3 +FLAGS.SILENT (\Flagged)`)

	// Expunges arrive as VANISHED.
	u = a.ok("NOOP")
	has(t, u, "* VANISHED 2")
	hasNot(t, u, "EXPUNGE")
	has(t, u, `* 2 FETCH (FLAGS (\Flagged \Recent) UID 3 MODSEQ (`)

	// A client resynchronising from its cached state.
	c.ok("ENABLE QRESYNC")
	u = c.ok("SELECT INBOX (QRESYNC (" + vm[1] + " " + hm[1] + " 1:4))")
	has(t, u, "* VANISHED (EARLIER) 2")
	has(t, u, `* 2 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (`)
	hasNot(t, u, "UID 1 ")
	// A wrong UIDVALIDITY means a full resync: no VANISHED.
	u = c.ok("SELECT INBOX (QRESYNC (1 " + hm[1] + "))")
	hasNot(t, u, "VANISHED")
	u = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE " + hm[1] + " VANISHED)")
	if len(u) != 2 || u[0] != "* VANISHED (EARLIER) 2" || !strings.HasPrefix(u[1], `* 2 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (`) {
		t.Fatalf("got %q", u)
	}
	c.fail("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "BAD")

	// MOVE under QRESYNC: VANISHED, not EXPUNGE.
	u = a.ok("UID MOVE 4 Archive")
	has(t, u, "* VANISHED 4")
	hasNot(t, u, "EXPUNGE")
}

func TestMissingRanges(t *testing.T) {
	tests := []struct {
		ranges  []imapwire.NumRange
		present []uint32
		want    string
	}{
		{[]imapwire.NumRange{{Start: 1, Stop: 10}}, []uint32{2, 3, 7}, "1,4:6,8:10"},
		{[]imapwire.NumRange{{Start: 1, Stop: 3}}, []uint32{1, 2, 3}, ""},
		{[]imapwire.NumRange{{Start: 5, Stop: 5}, {Start: 8, Stop: 9}}, nil, "5,8:9"},
		{[]imapwire.NumRange{{Start: 1, Stop: 4294967295}}, []uint32{4294967295}, "1:4294967294"},
	}
	for _, tc := range tests {
		if got := missingRanges(tc.ranges, tc.present); got != tc.want {
			t.Errorf("missingRanges(%v, %v) = %q, want %q", tc.ranges, tc.present, got, tc.want)
		}
	}
}

func TestObjectIDAndSaveDate(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)
	c := e.login()
	_, d := c.run("CREATE Receipts")
	mm := regexp.MustCompile(`^OK \[MAILBOXID \(([A-Za-z0-9_-]+)\)\]`).FindStringSubmatch(d)
	if mm == nil {
		t.Fatalf("CREATE: %s", d)
	}
	has(t, c.ok("STATUS Receipts (MAILBOXID)"), "(MAILBOXID ("+mm[1]+"))")
	has(t, c.ok("SELECT Receipts"), "* OK [MAILBOXID ("+mm[1]+")]")
	c.ok("RENAME Receipts Bills")
	has(t, c.ok("STATUS Bills (MAILBOXID)"), "(MAILBOXID ("+mm[1]+"))")

	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1 (EMAILID THREADID SAVEDATE)")
	m := regexp.MustCompile(`^\* 1 FETCH \(EMAILID \(([A-Za-z0-9_-]+)\) THREADID (NIL|\([A-Za-z0-9_-]+\)) SAVEDATE "\d\d-\w\w\w-\d{4} \d\d:\d\d:\d\d [-+]\d{4}"\)$`).FindStringSubmatch(u[0])
	if m == nil {
		t.Fatalf("got %q", u)
	}
	has(t, c.ok("SEARCH EMAILID "+m[1]), "* SEARCH 1")
	has(t, c.ok("SEARCH SAVEDATESUPPORTED SAVEDSINCE 1-Jan-2020"), "* SEARCH 1")
	if u := c.ok("SEARCH YOUNGER 60"); len(u) != 1 || u[0] != "* SEARCH" {
		t.Fatalf("YOUNGER: %q", u) // internal date is in 2024
	}
}
