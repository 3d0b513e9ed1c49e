package imapserver

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.UTC) }

// TestSearchKeys checks every RFC 9051 search key against a small mailbox.
func TestSearchKeys(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliverWith("INBOX", `From: Alice <alice@example.com>
To: joe@example.org
Cc: Carol <carol@example.com>
Subject: Invoice March
Date: Fri, 1 Mar 2024 09:00:00 +0000

total due 100 EUR
`, store.FlagSeen|store.FlagAnswered, []string{"$Paid"}, day(2024, 3, 1))
	e.deliverWith("INBOX", `From: Bob <bob@example.com>
To: joe@example.org
Bcc: dave@example.com
Subject: =?ISO-8859-1?Q?K=F6ln?=
Date: Sun, 10 Mar 2024 09:00:00 +0000
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Stra=DFe 1
`, store.FlagFlagged|store.FlagDraft, nil, day(2024, 3, 10))
	e.deliverWith("INBOX", `From: carl@example.net
To: team@example.org
Subject: report
Date: Thu, 1 Feb 2024 09:00:00 +0000
Content-Type: multipart/mixed; boundary=x

--x
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

c2VjcmV0IHdvcmQgYmFuYW5h
--x--
`, store.FlagDeleted, nil, day(2024, 2, 1))
	e.deliverWith("INBOX", "From: dora@example.net\nTo: team@example.org\nX-Custom: foo bar\nSubject: big\n\n"+strings.Repeat("filler text\n", 150),
		0, nil, day(2024, 4, 1))

	c := e.login()
	c.ok("SELECT INBOX")
	tests := []struct{ key, want string }{
		{"ALL", "1 2 3 4"},
		{"ANSWERED", "1"}, {"UNANSWERED", "2 3 4"},
		{"SEEN", "1"}, {"UNSEEN", "2 3 4"},
		{"FLAGGED", "2"}, {"UNFLAGGED", "1 3 4"},
		{"DRAFT", "2"}, {"UNDRAFT", "1 3 4"},
		{"DELETED", "3"}, {"UNDELETED", "1 2 4"},
		{"KEYWORD $paid", "1"}, {"UNKEYWORD $Paid", "2 3 4"}, {"KEYWORD $Other", ""},
		{"RECENT", "1 2 3 4"}, {"NEW", "2 3 4"}, {"OLD", ""},
		{"FROM alice", "1"}, {"FROM BOB", "2"}, {"FROM example.net", "3 4"},
		{"TO joe", "1 2"}, {"CC carol", "1"}, {"BCC dave", "2"},
		{"SUBJECT köln", "2"}, {"SUBJECT invoice", "1"},
		{"BODY straße", "2"}, {"BODY banana", "3"}, {"BODY invoice", ""},
		{"TEXT banana", "3"}, {"TEXT INVOICE", "1"}, {`TEXT "x-custom: foo"`, "4"},
		{"HEADER X-Custom foo", "4"}, {`HEADER X-Custom ""`, "4"}, {`HEADER Cc ""`, "1"},
		{"LARGER 1500", "4"}, {"SMALLER 1500", "1 2 3"},
		{"BEFORE 2-Mar-2024", "1 3"}, {"ON 10-Mar-2024", "2"}, {"SINCE 10-Mar-2024", "2 4"},
		{"SENTBEFORE 1-Mar-2024", "3"}, {"SENTON 1-Mar-2024", "1"}, {"SENTSINCE 2-Mar-2024", "2 4"},
		{"UID 2:3", "2 3"}, {"UID 2,4", "2 4"}, {"UID *", "4"}, {"2:*", "2 3 4"}, {"1,3", "1 3"},
		{"NOT SEEN", "2 3 4"}, {"OR FLAGGED DELETED", "2 3"}, {"(SEEN ANSWERED)", "1"},
		{"OR (FROM alice) (BODY banana)", "1 3"}, {"NOT (OR SEEN DRAFT)", "3 4"},
		{"SEEN UNSEEN", ""}, {"OLDER 1", "1 2 3 4"}, {"YOUNGER 1", ""},
	}
	for _, tc := range tests {
		u, d := c.run("SEARCH " + tc.key)
		if !strings.HasPrefix(d, "OK") {
			t.Errorf("SEARCH %s: %s", tc.key, d)
			continue
		}
		want := "* SEARCH"
		if tc.want != "" {
			want += " " + tc.want
		}
		if len(u) != 1 || u[0] != want {
			t.Errorf("SEARCH %s: got %q, want %q", tc.key, u, want)
		}
	}

	// ESEARCH return options.
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (COUNT) DELETED", ` COUNT 1`},
		{"SEARCH RETURN (MIN MAX) FROM nobody", ``},
		{"SEARCH RETURN (MIN MAX COUNT) FROM nobody", ` COUNT 0`},
		{"UID SEARCH RETURN (ALL) 1:2", ` UID ALL 1:2`},
		{"SEARCH RETURN (MAX) UNSEEN", ` MAX 4`},
	} {
		u, d := c.run(tc.cmd)
		want := `* ESEARCH (TAG "t` + strconv.Itoa(c.n) + `")` + tc.want
		if !strings.HasPrefix(d, "OK") || len(u) != 1 || u[0] != want {
			t.Errorf("%s: got %q %s, want %q", tc.cmd, u, d, want)
		}
	}
	// SEARCHRES: "$" in later commands, also combined.
	c.ok("SEARCH RETURN (SAVE) FROM example.net")
	has(t, c.ok("SEARCH $ UNDELETED"), "* SEARCH 4")
	has(t, c.ok("UID FETCH $ (FLAGS)"), "* 3 FETCH (UID 3 FLAGS (\\Deleted \\Recent))")
	c.ok("SEARCH RETURN (SAVE MIN) UNSEEN")
	has(t, c.ok("SEARCH UID $"), "* SEARCH 2")
	// Unknown return option, bad key.
	c.fail("SEARCH RETURN (FOO) ALL", "BAD")
	c.fail("SEARCH FOO", "BAD")
}

func TestQuotaAndMultiAppend(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := t.Context()
	acct := e.acct
	acct.QuotaBytes = 4096
	if err := e.st.UpdateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	c := e.login()
	u := c.ok("GETQUOTAROOT INBOX")
	has(t, u, `* QUOTAROOT INBOX ""`)
	has(t, u, `* QUOTA "" (STORAGE 0 4)`)
	has(t, c.ok(`GETQUOTA ""`), `* QUOTA "" (STORAGE 0 4)`)
	c.fail(`GETQUOTA "other"`, "NO")

	m1 := "Subject: one\r\n\r\nfirst\r\n"
	m2 := "Subject: two\r\n\r\nsecond\r\n"
	_, d := c.run("APPEND INBOX (\\Seen) {" + strconv.Itoa(len(m1)) + "+}\r\n" + m1 + " {" + strconv.Itoa(len(m2)) + "+}\r\n" + m2)
	if !strings.HasPrefix(d, "OK [APPENDUID ") || !strings.Contains(d, " 1:2]") {
		t.Fatalf("multiappend: %s", d)
	}
	has(t, c.ok("STATUS INBOX (MESSAGES UNSEEN)"), "(MESSAGES 2 UNSEEN 1)")
	big := "Subject: big\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n"
	c.fail("APPEND INBOX {"+strconv.Itoa(len(big))+"+}\r\n"+big, "NO [OVERQUOTA]")
	// A failing multiappend stores nothing.
	c.fail("APPEND INBOX {"+strconv.Itoa(len(m1))+"+}\r\n"+m1+" {"+strconv.Itoa(len(big))+"+}\r\n"+big, "NO [OVERQUOTA]")
	has(t, c.ok("STATUS INBOX (MESSAGES)"), "(MESSAGES 2)")
	has(t, c.ok("GETQUOTAROOT INBOX"), `* QUOTA "" (STORAGE 1 4)`)
	c.fail("APPEND INBOX {0+}\r\n", "NO")
}
