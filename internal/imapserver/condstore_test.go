package imapserver

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
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
