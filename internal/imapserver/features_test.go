package imapserver

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// CREATE-SPECIAL-USE (RFC 6154), OBJECTID (RFC 8474), SAVEDATE (RFC 8514)
// and UTF8=ACCEPT (RFC 6855) beyond what the core tests cover.
func TestExtensionsMisc(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)
	c := e.login()
	caps := strings.Join(c.ok("CAPABILITY"), " ")
	for _, cp := range []string{"CREATE-SPECIAL-USE", "SPECIAL-USE", "OBJECTID", "SAVEDATE", "UTF8=ACCEPT", "LIST-STATUS", "SEARCHRES", "CONDSTORE", "QRESYNC"} {
		if !strings.Contains(caps, " "+cp+" ") {
			t.Errorf("capability %s missing: %s", cp, caps)
		}
	}

	// CREATE with USE (RFC 6154 section 3).
	_, d := c.run(`CREATE "Important" (USE (\Important))`)
	if !strings.HasPrefix(d, "NO [USEATTR]") {
		t.Errorf("unsupported attribute: %s", d)
	}
	c.fail(`CREATE Both (USE (\Sent \Drafts))`, "NO [USEATTR]")
	c.fail(`CREATE Sent2 (USE (\Sent))`, "NO [USEATTR]") // Sent exists with \Sent
	c.ok(`CREATE All (USE (\All))`)
	has(t, c.ok(`LIST (SPECIAL-USE) "" *`), `* LIST (\HasNoChildren \All) "/" All`)
	has(t, c.ok(`LIST "" All RETURN (SPECIAL-USE STATUS (MAILBOXID))`), `* STATUS All (MAILBOXID (`)

	// OBJECTID: a copy keeps its EMAILID, the mailbox ID is stable.
	c.ok("SELECT INBOX")
	id := regexp.MustCompile(`EMAILID \(([^)]+)\) THREADID \(([^)]+)\)`).FindStringSubmatch(strings.Join(c.ok("FETCH 1 (EMAILID THREADID)"), ""))
	if id == nil {
		t.Fatal("no EMAILID or THREADID")
	}
	c.ok("COPY 1 Archive")
	c.ok("EXAMINE Archive")
	u := c.ok("FETCH 1 (EMAILID THREADID SAVEDATE)")
	// The store stamps the save date with its own clock: now.
	m := regexp.MustCompile(`^\* 1 FETCH \(EMAILID \(` + id[1] + `\) THREADID \(` + id[2] + `\) SAVEDATE "(\d\d-\w\w\w-\d{4}) \d\d:\d\d:\d\d [-+]\d{4}"\)$`).FindStringSubmatch(strings.Join(u, ""))
	if m == nil {
		t.Fatalf("copy: %q", u)
	}
	if d, err := time.Parse("02-Jan-2006", m[1]); err != nil || time.Since(d) > 49*time.Hour || time.Until(d) > 25*time.Hour {
		t.Fatalf("save date %s is not today", m[1])
	}
	has(t, c.ok("SEARCH EMAILID "+id[1]), "* SEARCH 1")
	has(t, c.ok("SEARCH THREADID nosuchthread"), "* SEARCH")
	// SAVEDATE searches: the copy was saved today, the original arrived
	// on 5 March 2024 (INTERNALDATE), which SAVED* use when a message
	// has no save date.
	today := m[1]
	has(t, c.ok("SEARCH SAVEDON "+today), "* SEARCH 1")
	has(t, c.ok("SEARCH SAVEDSINCE "+today), "* SEARCH 1")
	if u := c.ok("SEARCH SAVEDBEFORE " + today); len(u) != 1 || u[0] != "* SEARCH" {
		t.Errorf("SAVEDBEFORE: %q", u)
	}
	has(t, c.ok("SEARCH SAVEDATESUPPORTED"), "* SEARCH 1")

	// STATUS (HIGHESTMODSEQ) enables CONDSTORE (RFC 7162 3.1).
	c.ok("SELECT INBOX")
	hasNot(t, c.ok("FETCH 1 (FLAGS)"), "MODSEQ")
	u = c.ok("STATUS Archive (HIGHESTMODSEQ)")
	has(t, u, "* OK [HIGHESTMODSEQ ")
	has(t, c.ok("FETCH 1 (FLAGS)"), "MODSEQ (")

	// UTF8=ACCEPT: quoted UTF-8 instead of literals, UTF-8 mailbox names.
	c.ok(`STORE 1 +FLAGS (\Seen)`)
	e.deliver("INBOX", msgMultipart)
	c.ok("NOOP")
	u = c.ok("FETCH 2 (ENVELOPE)")
	if !strings.Contains(u[0], "=?UTF-8?Q?J=C3=B6rg?=") {
		t.Fatalf("envelope keeps encoded words: %q", u)
	}
	u = c.ok("ENABLE UTF8=ACCEPT")
	has(t, u, "* ENABLED UTF8=ACCEPT")
	if u := c.ok("ENABLE UTF8=ACCEPT"); len(u) != 1 || u[0] != "* ENABLED" {
		t.Errorf("second ENABLE: %q", u)
	}
	c.ok(`CREATE "Entwürfe/Größe"`)
	has(t, c.ok(`LIST "" "Entwürfe/*"`), `"/" "Entwürfe/Größe"`)
	has(t, c.ok(`STATUS "Entwürfe/Größe" (MESSAGES)`), `* STATUS "Entwürfe/Größe" (MESSAGES 0)`)
}
