package imapserver

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

func TestBaseSubject(t *testing.T) {
	tests := []struct {
		in    string
		want  string
		reply bool
	}{
		{"", "", false},
		{"Hello World", "Hello World", false},
		{"  Hello \t  World  ", "Hello World", false},
		{"Re: Hello", "Hello", true},
		{"RE:Hello", "Hello", true},
		{"re : Hello", "Hello", true},
		{"Re: Re: Fwd: Hello", "Hello", true},
		{"Fw: Hello", "Hello", true},
		{"Re[2]: Hello", "Hello", true},
		{"Re [2] : Hello", "Hello", true},
		{"[PATCH] Re: Hello", "Hello", true},
		{"[list] [PATCH v2] Hello", "Hello", false},
		{"[PATCH]", "[PATCH]", false},
		{"[PATCH]  ", "[PATCH]", false},
		{"Re: [list]", "[list]", true},
		{"Hello (fwd)", "Hello", true},
		{"Hello (FWD) (fwd)  ", "Hello", true},
		{"[Fwd: Hello]", "Hello", true},
		{"[fwd: Re: Hello (fwd)]", "Hello", true},
		{"Re: [fwd: [list] Hello]", "Hello", true},
		{"[fwd: ]", "", true},
		{"Ref: Hello", "Ref: Hello", false},
		{"Reply: Hello", "Reply: Hello", false},
		{"Re:", "", true},
		{"Re: Re:   ", "", true},
		{"[a][b] Re: [c] : x", ": x", true},
		{"[a][b] Re [c] : x", "x", true},
		{"[unterminated Re: x", "[unterminated Re: x", false},
		{"=?UTF-8?Q?Re=3A_Gr=C3=BC=C3=9Fe?=", "Grüße", true},
		{"=?ISO-8859-1?Q?AW=3A?= =?ISO-8859-1?Q?_Caf=E9?=", "AW: Café", false},
		{"Re: =?UTF-8?B?W2xpc3RdIFLDqXN1bcOp?=", "Résumé", true},
		{"Line\r\n folded\ttext", "Line folded text", false},
	}
	for _, tc := range tests {
		got, reply := baseSubject(tc.in)
		if got != tc.want || reply != tc.reply {
			t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", tc.in, got, reply, tc.want, tc.reply)
		}
	}
}

// sortMessage builds a message for SORT and THREAD tests.
func sortMessage(from, to, cc, subject, date, id, refs, inReplyTo, body string) string {
	var b strings.Builder
	if from != "" {
		b.WriteString("From: " + from + "\n")
	}
	if to != "" {
		b.WriteString("To: " + to + "\n")
	}
	if cc != "" {
		b.WriteString("Cc: " + cc + "\n")
	}
	b.WriteString("Subject: " + subject + "\n")
	if date != "" {
		b.WriteString("Date: " + date + "\n")
	}
	if id != "" {
		b.WriteString("Message-ID: <" + id + ">\n")
	}
	if refs != "" {
		b.WriteString("References: " + refs + "\n")
	}
	if inReplyTo != "" {
		b.WriteString("In-Reply-To: " + inReplyTo + "\n")
	}
	b.WriteString("\n" + body + "\n")
	return b.String()
}

func TestSort(t *testing.T) {
	e := newTestEnv(t, nil)
	day := func(d int) time.Time { return time.Date(2024, 3, d, 10, 0, 0, 0, time.UTC) }
	// The RFC 5256 section 3 example: SORT (SUBJECT REVERSE DATE) gives
	// 5 3 4 1 2.
	msgs := []struct {
		from, to, cc, subj, date string
		arrival                  time.Time
		size                     int // body size: far apart, so headers do not matter
	}{
		{`"Zed" <zed@b.example>`, `carol@x.example`, ``, `Cherry`, `Mon, 4 Mar 2024 12:00:00 +0000`, day(1), 5000},
		{`bob@a.example`, `"Anna" <dave@x.example>`, `x@y`, `[list] Fwd: cherry (fwd)`, `Sun, 3 Mar 2024 12:00:00 +0000`, day(2), 1000},
		{`=?UTF-8?Q?=C3=84rger?= <aerger@c.example>`, `bob@x.example`, `a@y`, `Re: banana`, `Tue, 5 Mar 2024 13:00:00 +0100`, day(3), 3000},
		{`Alice <alice@d.example>`, ``, ``, `BANANA`, `Tue, 5 Mar 2024 11:30:00 +0000`, day(4), 4000},
		{``, `Zoe <zoe@x.example>`, `b@y`, `=?UTF-8?Q?Re=3A_apple?=`, `not a date`, day(5), 2000},
	}
	for _, m := range msgs {
		e.deliverWith("INBOX", sortMessage(m.from, m.to, m.cc, m.subj, m.date, "", "", "", strings.Repeat("x", m.size)), 0, nil, m.arrival)
	}
	c := e.login()
	has(t, c.ok("CAPABILITY"), " SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES")
	c.ok("SELECT INBOX")
	tests := []struct{ cmd, want string }{
		{"SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "* SORT 5 3 4 1 2"},
		{"SORT (SUBJECT) UTF-8 SINCE 2-Mar-2024 NOT ON 4-Mar-2024", "* SORT 5 3 2"},
		{`SORT (SUBJECT) US-ASCII TEXT "not in mailbox"`, "* SORT"},
		{"SORT (ARRIVAL) UTF-8 ALL", "* SORT 1 2 3 4 5"},
		{"SORT (REVERSE ARRIVAL) UTF-8 ALL", "* SORT 5 4 3 2 1"},
		// Message 5 has no usable Date: its INTERNALDATE (5 March 10:00)
		// stands in; message 3's date is 12:00 UTC.
		{"SORT (DATE) UTF-8 ALL", "* SORT 2 1 5 4 3"},
		{"SORT (SIZE) UTF-8 ALL", "* SORT 2 5 3 4 1"},
		// FROM sorts by the address's local part; no From sorts first.
		{"SORT (FROM) UTF-8 ALL", "* SORT 5 3 4 2 1"},
		{"SORT (TO) UTF-8 ALL", "* SORT 4 3 1 2 5"},
		{"SORT (CC) UTF-8 ALL", "* SORT 1 4 3 5 2"},
		// DISPLAYFROM: decoded display name, else the address.
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 5 4 2 1 3"},
		{"SORT (DISPLAYTO) UTF-8 ALL", "* SORT 4 2 3 1 5"},
		{"SORT (SUBJECT SIZE) UTF-8 1:4", "* SORT 3 4 2 1"},
		{"UID SORT (REVERSE SUBJECT) UTF-8 ALL", "* SORT 1 2 3 4 5"},
		// ESORT: MIN and MAX in sort order, ALL in sort order.
		{"SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL", `* ESEARCH (TAG "@tag") MIN 2 MAX 3 COUNT 5`},
		{"UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 2:4", `* ESEARCH (TAG "@tag") UID ALL 4,3,2`},
		{"SORT RETURN (ALL) (ARRIVAL) UTF-8 2:4", `* ESEARCH (TAG "@tag") ALL 2:4`},
	}
	for _, tc := range tests {
		want := strings.ReplaceAll(tc.want, "@tag", fmt.Sprintf("t%d", c.n+1))
		u := c.ok(tc.cmd)
		if len(u) != 1 || u[0] != want {
			t.Errorf("%s: got %q, want %q", tc.cmd, u, want)
		}
	}
	c.fail("SORT (SUBJECT) KOI8-R ALL", "NO [BADCHARSET (UTF-8 US-ASCII)]")
	c.fail("SORT (SUBJECTS) UTF-8 ALL", "BAD")
	c.fail("SORT (REVERSE) UTF-8 ALL", "BAD")
	c.fail("SORT SUBJECT UTF-8 ALL", "BAD")
	c.fail("SORT RETURN (PARTIAL 1:5) (SUBJECT) UTF-8 ALL", "BAD")

	// SEARCHRES with ESORT: SAVE keeps the matches for "$".
	u := c.ok("SORT RETURN (SAVE) (SUBJECT) UTF-8 FROM banana")
	if len(u) != 0 {
		t.Fatalf("SAVE alone: %q", u)
	}
	c.ok("SORT RETURN (SAVE) (SUBJECT) UTF-8 SUBJECT banana")
	if u := c.ok("UID FETCH $ (UID)"); len(u) != 2 || u[0] != "* 3 FETCH (UID 3)" || u[1] != "* 4 FETCH (UID 4)" {
		t.Fatalf("FETCH $: %q", u)
	}
	// A MODSEQ criterion turns CONDSTORE on and adds the highest MODSEQ.
	u = c.ok("SORT (SUBJECT) UTF-8 MODSEQ 1")
	if len(u) != 2 || !strings.HasPrefix(u[0], "* OK [HIGHESTMODSEQ ") || !strings.HasPrefix(u[1], "* SORT 5 3 4 1 2 (MODSEQ ") {
		t.Fatalf("got %q", u)
	}
	// After ENABLE UTF8=ACCEPT only UTF-8 is accepted, and SEARCH takes
	// no CHARSET (RFC 6855).
	c.ok("ENABLE UTF8=ACCEPT")
	c.fail("SORT (SUBJECT) US-ASCII ALL", "BAD")
	c.fail("SEARCH CHARSET UTF-8 ALL", "BAD")
	has(t, c.ok("SORT (SUBJECT) UTF-8 ALL"), "* SORT 5 3 4 1 2")
}

func TestThreadOrderedSubject(t *testing.T) {
	e := newTestEnv(t, nil)
	msgs := []struct{ subj, date string }{
		{"Alpha", "Fri, 1 Mar 2024 10:00:00 +0000"},
		{"Beta", "Sat, 2 Mar 2024 10:00:00 +0000"},
		{"Re: alpha", "Thu, 7 Mar 2024 10:00:00 +0000"},
		{"Re: Alpha", "Mon, 4 Mar 2024 10:00:00 +0000"},
		{"Gamma", "Sun, 3 Mar 2024 10:00:00 +0000"},
		{"[list] Re: Beta", "Tue, 5 Mar 2024 10:00:00 +0000"},
		{"Fwd: Alpha", "Wed, 6 Mar 2024 10:00:00 +0000"},
	}
	for _, m := range msgs {
		e.deliver("INBOX", sortMessage("a@b", "c@d", "", m.subj, m.date, "", "", "", "x"))
	}
	c := e.login()
	c.ok("SELECT INBOX")
	// As in RFC 5256's example "(174 (175)(176)(178)(181)(180))": the
	// children of a thread are in date order, not message order.
	tests := []struct{ cmd, want string }{
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (1 (4)(7)(3))(2 6)(5)"},
		{"UID THREAD ORDEREDSUBJECT UTF-8 2:*", "* THREAD (2 6)(5)(4 (7)(3))"},
		{`THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"`, "* THREAD"},
	}
	for _, tc := range tests {
		u := c.ok(tc.cmd)
		if len(u) != 1 || u[0] != tc.want {
			t.Errorf("%s: got %q, want %q", tc.cmd, u, tc.want)
		}
	}
	c.fail("THREAD XYZZY UTF-8 ALL", "BAD")
	c.fail("THREAD REFERENCES BIG5 ALL", "NO [BADCHARSET")
}

// The RFC 5256 REFERENCES example "(2)(3 6 (4 23)(44 7 96))", with the
// same message numbers: only the messages with $T take part.
func TestThreadReferencesRFCExample(t *testing.T) {
	e := newTestEnv(t, nil)
	type m struct {
		refs string
		day  int
	}
	thread := map[int]m{
		2:  {"", 1},
		3:  {"", 2},
		6:  {"<3@x>", 3},
		4:  {"<3@x> <6@x>", 4},
		23: {"<3@x> <6@x> <4@x>", 5},
		44: {"<3@x>\n <6@x>", 6},
		7:  {"<3@x> <6@x> <44@x>", 7},
		96: {"<3@x> <6@x> <44@x> <7@x>", 8},
	}
	for i := 1; i <= 96; i++ {
		tm, ok := thread[i]
		var kws []string
		subj := fmt.Sprintf("filler %d", i)
		date := "Fri, 1 Mar 2024 09:00:00 +0000"
		if ok {
			kws = []string{"$T"}
			subj = fmt.Sprintf("Re: topic %d", i) // subjects differ: no merging
			date = fmt.Sprintf("%d Mar 2024 10:00:00 +0000", tm.day)
		}
		e.deliverWith("INBOX", sortMessage("a@b", "c@d", "", subj, date, fmt.Sprintf("%d@x", i), tm.refs, "", "x"), 0, kws, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))
	}
	c := e.login()
	c.ok("SELECT INBOX")
	u := c.ok("THREAD REFERENCES UTF-8 KEYWORD $T")
	if len(u) != 1 || u[0] != "* THREAD (2)(3 6 (4 23)(44 7 96))" {
		t.Fatalf("got %q", u)
	}
}

// threadOf runs THREAD=REFERENCES on messages given as
// "id refs... | subject | day" and formats the result.
func threadOf(t *testing.T, specs ...string) string {
	t.Helper()
	var msgs []*sortMsg
	for i, sp := range specs {
		parts := strings.Split(sp, "|")
		if len(parts) != 3 {
			t.Fatalf("bad spec %q", sp)
		}
		ids := strings.Fields(parts[0])
		m := &sortMsg{seq: uint32(i + 1), meta: store.MessageMeta{UID: uint32(i + 1)}}
		if len(ids) > 0 && ids[0] != "-" {
			m.msgID = ids[0]
		}
		if len(ids) > 1 {
			m.refs = ids[1:]
		}
		base, reply := baseSubject(strings.TrimSpace(parts[1]))
		m.subject, m.reply = casemap(base), reply
		var d int
		fmt.Sscan(parts[2], &d)
		m.sent = time.Date(2024, 3, d, 0, 0, 0, 0, time.UTC)
		msgs = append(msgs, m)
	}
	var b strings.Builder
	for _, r := range threadReferences(msgs) {
		b.WriteByte('(')
		writeThreadMembers(&b, r, false)
		b.WriteByte(')')
	}
	return b.String()
}

func TestThreadReferences(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  string
	}{
		{"single", []string{"a | x | 1"}, "(1)"},
		{"chain", []string{"a | x | 1", "b a | Re: x | 2", "c a b | Re: x | 3"}, "(1 2 3)"},
		{"siblings by date", []string{"a | x | 1", "b a | Re: x | 5", "c a | Re: x | 3"}, "(1 (3)(2))"},
		{"roots by date", []string{"a | x | 5", "b | y | 1"}, "(2)(1)"},
		// A missing parent with one child is dropped; with several, it
		// stays as a dummy holding them (step 3).
		{"dummy promoted", []string{"b gone | Re: x | 1"}, "(1)"},
		{"dummy kept at root", []string{"b gone | Re: x | 2", "c gone | Re: y | 1"}, "((2)(1))"},
		{"dummy inside", []string{"a | x | 1", "c a gone | Re: x | 2", "d a gone | Re: x | 3"}, "(1 (2)(3))"},
		// The message's own last reference wins over a link guessed
		// from other messages' References.
		{"own parent", []string{"c a b | z | 3", "b | y | 2", "a | x | 1"}, "(3)(2 1)"},
		{"own parent linked", []string{"a | x | 1", "b | y | 2", "c a b | Re: y | 3"}, "(1 2 3)"},
		// In-Reply-To is used only without References (sortLoad puts
		// its first ID into refs): same shape as References here.
		{"loop", []string{"a b | x | 1", "b a | y | 2"}, "(2 1)"},
		{"self reference", []string{"a a | x | 1"}, "(1)"},
		// Duplicate Message-IDs: the later message is on its own.
		{"duplicate id", []string{"a | x | 1", "a | y | 2", "b a | Re: x | 3"}, "(1 3)(2)"},
		{"no id", []string{"- | x | 1", "- | y | 2"}, "(1)(2)"},
		// Step 5: threads with the same base subject are gathered.
		{"subject: both originals", []string{"a | Hello | 1", "b | Hello | 2"}, "((1)(2))"},
		{"subject: reply joins original", []string{"a | Hello | 1", "b | Re: Hello | 2"}, "(1 2)"},
		{"subject: original is preferred", []string{"b | Re: Hello | 1", "a | Hello | 2"}, "(2 1)"},
		{"subject: both replies", []string{"a | Re: Hello | 1", "b | Fwd: Hello | 2"}, "((1)(2))"},
		{"subject: joins dummy", []string{"b gone | Re: Hi | 1", "c gone | Re: Hi | 2", "d | Hi | 3"}, "((1)(2)(3))"},
		{"subject: empty not merged", []string{"a | | 1", "b | Re: | 2"}, "(1)(2)"},
	}
	for _, tc := range tests {
		if got := threadOf(t, tc.specs...); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A long reply chain is threaded without deep recursion.
func TestThreadLongChain(t *testing.T) {
	const n = 20000
	msgs := make([]*sortMsg, n)
	for i := range msgs {
		m := &sortMsg{seq: uint32(i + 1), msgID: fmt.Sprint(i), subject: "X", sent: time.Unix(int64(i), 0)}
		if i > 0 {
			m.refs = []string{fmt.Sprint(i - 1)}
		}
		msgs[i] = m
	}
	roots := threadReferences(msgs)
	var b strings.Builder
	for _, r := range roots {
		writeThreadMembers(&b, r, false)
	}
	if len(roots) != 1 || !strings.HasPrefix(b.String(), "1 2 3 ") || !strings.HasSuffix(b.String(), " 20000") {
		t.Fatalf("got %d roots, %.40s...", len(roots), b.String())
	}
}
