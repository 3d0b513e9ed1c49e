package imapserver

import (
	"fmt"
	"strings"
	"testing"
)

// RFC 5464 (METADATA): the examples of sections 4.2 to 4.3 as transcripts
// (with erratum 2785: GETMETADATA options come before the mailbox), plus
// the limits and the life of annotations with their mailbox.
func TestMetadata(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.MetadataComment = "Shared comment"
		c.MetadataAdmin = "mailto:postmaster@example.org"
	})
	c := e.login()
	caps := strings.Join(c.ok("CAPABILITY"), " ")
	if !strings.Contains(caps, " METADATA") || strings.Contains(caps, "METADATA-SERVER") {
		t.Fatalf("capabilities: %s", caps)
	}
	vars := map[string]string{}
	runTranscript(t, c, vars, `
		# 4.2: server annotations.
		C: a GETMETADATA "" /shared/comment
		S: * METADATA "" (/shared/comment "Shared comment")
		S: a OK GETMETADATA completed
		C: b GETMETADATA "" (/shared/comment /shared/admin)
		S: * METADATA "" (/shared/admin "mailto:postmaster@example.org" /shared/comment "Shared comment")
		S: b OK GETMETADATA completed
		C: c SETMETADATA "" (/shared/comment "mine now")
		S: c NO [NOPERM] Shared server annotations are set by the administrator
		C: d SETMETADATA "" (/private/vendor/example/theme "dark")
		S: d OK SETMETADATA completed
		C: e GETMETADATA (DEPTH infinity) "" /private
		S: * METADATA "" (/private/vendor/example/theme "dark")
		S: e OK GETMETADATA completed

		# 4.3: set, replace (entry names are case-insensitive), get.
		C: f SETMETADATA INBOX (/private/comment "My comment" /Shared/Comment "Its sunny outside!")
		S: f OK SETMETADATA completed
		C: g GETMETADATA "INBOX" (/private/comment /shared/comment)
		S: * METADATA INBOX (/private/comment "My comment" /shared/comment "Its sunny outside!")
		S: g OK GETMETADATA completed

		# 4.2.2: DEPTH.
		C: h SETMETADATA INBOX (/private/filters/values/small "SMALLER THAN 10KB" /private/filters/values/big "BIGGER THAN 10MB" /private/filters/values/big/note "deeper")
		S: h OK SETMETADATA completed
		C: i GETMETADATA (DEPTH 1) "INBOX" (/private/filters/values)
		S: * METADATA INBOX (/private/filters/values/big "BIGGER THAN 10MB" /private/filters/values/small "SMALLER THAN 10KB")
		S: i OK GETMETADATA completed
		C: j GETMETADATA (DEPTH infinity) INBOX /private/filters
		S: * METADATA INBOX (/private/filters/values/big "BIGGER THAN 10MB" /private/filters/values/big/note "deeper" /private/filters/values/small "SMALLER THAN 10KB")
		S: j OK GETMETADATA completed
		C: k GETMETADATA INBOX /private/filters/values
		S: k OK GETMETADATA completed

		# 4.3: NIL removes.
		C: l SETMETADATA INBOX (/private/filters/values/big/note NIL /private/nonexistent NIL)
		S: l OK SETMETADATA completed
		C: m GETMETADATA (DEPTH infinity) INBOX (/private/filters)
		S: * METADATA INBOX (/private/filters/values/big "BIGGER THAN 10MB" /private/filters/values/small "SMALLER THAN 10KB")
		S: m OK GETMETADATA completed

		# Errors: bad entry names, unknown mailbox, server-only names.
		C: n GETMETADATA INBOX /foo/bar
		S: n BAD Invalid entry name
		C: o SETMETADATA INBOX ("/private/a*b" "x")
		S: o BAD Invalid entry name
		C: p SETMETADATA INBOX (/private "x")
		S: p BAD Invalid entry name
		C: q GETMETADATA Nonexistent /private/comment
		S: q NO [NONEXISTENT] Mailbox does not exist
	`)

	// 4.3: a multi-line value in a synchronizing literal, and the
	// literal in the answer.
	val := "My new comment across\r\ntwo lines."
	c.write(fmt.Sprintf("s1 SETMETADATA INBOX (/private/comment {%d}\r\n", len(val)))
	if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("continuation: %q", l)
	}
	c.write(val + ")\r\n")
	if l := c.readLine(); l != "s1 OK SETMETADATA completed" {
		t.Fatalf("set literal: %q", l)
	}
	// 4.2.1: MAXSIZE leaves out the long value and says how long it is.
	long := strings.Repeat("x", 2199)
	c.ok(fmt.Sprintf("SETMETADATA INBOX (/shared/comment {%d+}\r\n%s)", len(long), long))
	u, done := c.run("GETMETADATA (MAXSIZE 1024) INBOX (/shared/comment /private/comment)")
	if len(u) != 1 || u[0] != "* METADATA INBOX (/private/comment {33}\r\n"+val+")" || done != "OK [METADATA LONGENTRIES 2199] GETMETADATA completed" {
		t.Fatalf("MAXSIZE: %q %q", u, done)
	}
	u = c.ok("GETMETADATA (MAXSIZE 3000) INBOX /shared/comment")
	if len(u) != 1 || u[0] != "* METADATA INBOX (/shared/comment {2199}\r\n"+long+")" {
		t.Fatalf("MAXSIZE 3000: %q", u)
	}
	// Binary values (literal8) and empty ones.
	c.ok("SETMETADATA INBOX (/private/bin ~{3+}\r\na\x00b /private/empty \"\")")
	u = c.ok("GETMETADATA INBOX (/private/bin /private/empty)")
	if len(u) != 1 || u[0] != "* METADATA INBOX (/private/bin ~{3}\r\na\x00b /private/empty \"\")" {
		t.Fatalf("binary: %q", u)
	}

	// MAXSIZE: a value over the limit is refused before it is sent.
	c.write(fmt.Sprintf("s2 SETMETADATA INBOX (/private/big {%d}\r\n", 64<<10+1))
	if l := c.readLine(); l != "s2 NO [METADATA MAXSIZE 65536] Value too large" {
		t.Fatalf("too large: %q", l)
	}
	// TOOMANY, and nothing of a failed SETMETADATA is kept.
	c.ok("CREATE Notes")
	for i := 0; i < 256; i += 64 {
		var b strings.Builder
		for j := i; j < i+64; j++ {
			fmt.Fprintf(&b, " /private/n%03d \"%d\"", j, j)
		}
		c.ok("SETMETADATA Notes (" + b.String()[1:] + ")")
	}
	c.fail(`SETMETADATA Notes (/private/n000 "changed" /private/one-more "x")`, "NO [METADATA TOOMANY]")
	has(t, c.ok("GETMETADATA Notes /private/n000"), `* METADATA Notes (/private/n000 "0")`)

	// Annotations follow RENAME and go with DELETE.
	c.ok("RENAME Notes Journal")
	has(t, c.ok("GETMETADATA Journal /private/n255"), `* METADATA Journal (/private/n255 "255")`)
	c.ok("DELETE Journal")
	c.ok("CREATE Journal")
	if u := c.ok("GETMETADATA (DEPTH infinity) Journal (/private /shared)"); len(u) != 0 {
		t.Fatalf("recreated mailbox: %q", u)
	}
	// Selected state works too; the session is still in sync.
	c.ok("SELECT INBOX")
	has(t, c.ok("GETMETADATA INBOX /private/filters/values/small"), `"SMALLER THAN 10KB"`)
}
