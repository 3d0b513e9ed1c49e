package imapserver

import (
	"fmt"
	"strings"
	"testing"
)

const msgReply = `From: Joe <joe@example.org>
To: Alice <alice@example.com>
Subject: Re: Hello invoice
Date: Tue, 5 Mar 2024 10:00:00 +0100
Message-ID: <r1@example.org>
In-Reply-To: <m1@example.com>
References: <m1@example.com>

Thanks.
`

// THREADID (RFC 8474 section 5.2, example of section 7): messages of one
// conversation share a thread id whichever way they arrived (delivery,
// APPEND), unrelated ones do not, SEARCH THREADID finds the thread, and
// COPY keeps it.
func TestThreadID(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)    // 1: <m1@example.com>
	e.deliver("INBOX", msgMultipart) // 2: unrelated
	e.deliver("INBOX", msgReply)     // 3: reply to 1
	c := e.login()
	vars := map[string]string{}
	runTranscript(t, c, vars, `
		C: 1 SELECT INBOX
		S: ...
		S: 1 OK [READ-WRITE] SELECT completed
		C: 2 FETCH 1:3 (THREADID)
		S: * 1 FETCH (THREADID ({*}))
		S: * 2 FETCH (THREADID ({*}))
		S: * 3 FETCH (THREADID ({*}))
		S: 2 OK FETCH completed
	`)
	// $name only binds numbers: compare the ids here.
	ids := map[int]string{}
	for i, l := range c.ok("FETCH 1:3 (THREADID)") {
		_, id, ok := strings.Cut(l, "THREADID (")
		if !ok {
			t.Fatalf("no THREADID in %q", l)
		}
		ids[i+1] = strings.TrimSuffix(id, "))")
		if !validObjectID(ids[i+1]) {
			t.Fatalf("thread id %q is not an objectid", ids[i+1])
		}
	}
	if ids[1] != ids[3] || ids[1] == ids[2] {
		t.Fatalf("thread ids %v", ids)
	}
	// A reply to the reply, stored by the client (Sent copy).
	reply2 := strings.ReplaceAll("Message-ID: <r2@example.com>\nIn-Reply-To: <r1@example.org>\nReferences: <m1@example.com> <r1@example.org>\nSubject: Re: Re: Hello invoice\n\nOK.\n", "\n", "\r\n")
	c.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(reply2), reply2))
	c.ok("NOOP")
	has(t, c.ok("FETCH 4 (THREADID)"), "* 4 FETCH (THREADID ("+ids[1]+"))")
	has(t, c.ok("SEARCH THREADID "+ids[1]), "* SEARCH 1 3 4")
	has(t, c.ok("UID SEARCH THREADID "+ids[2]), "* SEARCH 2")
	if u := c.ok("SEARCH THREADID T0000"); len(u) != 1 || u[0] != "* SEARCH" {
		t.Fatalf("unknown thread: %q", u)
	}
	c.ok("UID MOVE 3 Archive")
	c.ok("EXAMINE Archive")
	has(t, c.ok("FETCH 1 (THREADID EMAILID)"), "* 1 FETCH (THREADID ("+ids[1]+") EMAILID (")
	has(t, c.ok("SEARCH THREADID "+ids[1]), "* SEARCH 1")
}

func validObjectID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
