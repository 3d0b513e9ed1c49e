package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzReadCommand feeds arbitrary input to the command parser: it must never
// panic, must stay within its limits, and every parsed search key must
// format and parse back to the same key.
func FuzzReadCommand(f *testing.F) {
	seeds := []string{
		"a LOGIN {3}\r\njoe {4+}\r\nsecr\r\n",
		"a APPEND INBOX (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {5+}\r\nhello\r\n",
		"a APPEND INBOX ~{3}\r\na\x00b UTF8 (~{1+}\r\nx)\r\n",
		"a UID SEARCH RETURN (MIN COUNT SAVE) CHARSET UTF-8 OR (FROM x TO {2+}\r\nyz) NOT 1:*,$\r\n",
		"a FETCH 1:* (BODY.PEEK[1.2.HEADER.FIELDS.NOT (A B)]<0.10> BINARY[1] UID) (CHANGEDSINCE 1)\r\n",
		"a LIST (SUBSCRIBED) \"\" (% *) RETURN (STATUS (MESSAGES) CHILDREN)\r\n",
		"a SELECT INBOX (QRESYNC (1 2 1:5 (1,3 2,9)))\r\n",
		"a STORE 1,2:3 (UNCHANGEDSINCE 9) +FLAGS.SILENT \\Seen foo\r\n",
		"a AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ=\r\n",
		"a ID (\"name\" NIL)\r\nb NOOP\r\n",
		"a CREATE x (USE (\\Sent \\Archive))\r\n",
		"a SETQUOTA \"\" (STORAGE 1)\r\n",
		"a SORT (REVERSE DATE SUBJECT DISPLAYTO) UTF-8 OR FROM x (TO y CC z)\r\n",
		"a UID SORT RETURN (MIN MAX ALL COUNT SAVE) (ARRIVAL) US-ASCII $\r\n",
		"a THREAD REFERENCES UTF-8 SINCE 1-Jan-2000 HEADER References {3+}\r\n<x>\r\n",
		"a UID THREAD ORDEREDSUBJECT UTF-8 ALL\r\n",
		"a COMPRESS DEFLATE\r\n",
		"a EXAMINE x (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9990:9999 15000,22500,29970,29973)))\r\n",
		"a SELECT x (QRESYNC (1 2 (3:4 5:6)) CONDSTORE)\r\n",
		"a GETMETADATA (MAXSIZE 1024 DEPTH infinity) \"INBOX\" (/shared/comment /private/comment)\r\n",
		"a GETMETADATA \"\" /shared/admin\r\n",
		"a SETMETADATA INBOX (/private/comment {5+}\r\nhello /shared/x NIL /shared/y ~{2+}\r\n\x00\x01 /shared/z \"\")\r\n",
		"a NOTIFY SET STATUS (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))\r\n",
		"a NOTIFY SET (selected MessageNew (uid) MessageExpunge) (mailboxes (misc {3+}\r\nx y) NONE) (personal (MailboxName SubscriptionChange FooEvent))\r\n",
		"a notify set (selected-delayed (messagenew messageexpunge flagchange)) (inboxes (MessageNew MessageExpunge)) (subscribed NONE)\r\n",
		"a NOTIFY NONE\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bufio.NewReader(bytes.NewReader(data)))
		r.MaxLine = 1000
		r.MaxLiteral = 100
		r.MaxAppend = 1000
		r.Continue = func() error { return nil }
		for i := 0; i < 20; i++ {
			cmd, err := r.ReadCommand()
			var pe *Error
			if errors.As(err, &pe) {
				if pe.Fatal {
					return
				}
				continue
			}
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if cmd.Tag == "" || cmd.Name == "" {
				t.Fatalf("empty tag or name: %+v", cmd)
			}
			var key *SearchKey
			switch a := cmd.Args.(type) {
			case *SearchArgs:
				key = a.Key
			case *SortArgs:
				key = a.Key
				if len(a.Criteria) == 0 || len(a.Criteria) > maxSortCriteria {
					t.Fatalf("sort criteria: %+v", a.Criteria)
				}
			case *ThreadArgs:
				key = a.Key
			case *SelectArgs:
				if q := a.QResync; q != nil && q.UIDValidity == 0 {
					t.Fatalf("QRESYNC with UIDVALIDITY 0 accepted")
				}
			case *GetMetadataArgs:
				if len(a.Entries) == 0 || len(a.Entries) > MaxMetadataEntries || a.Depth < -1 || a.Depth > 1 || a.MaxSize < -1 {
					t.Fatalf("GETMETADATA args %+v", a)
				}
			case *NotifyArgs:
				if a.None != (len(a.Groups) == 0) || len(a.Groups) > MaxNotifyGroups {
					t.Fatalf("NOTIFY args %+v", a)
				}
				sel := 0
				for _, g := range a.Groups {
					if len(g.Events) > MaxNotifyEvents || len(g.Mailboxes) > MaxNotifyMailboxes || len(g.FetchAtts) > MaxNotifyFetchAtts {
						t.Fatalf("NOTIFY group too big: %+v", g)
					}
					has := map[string]bool{}
					for _, e := range g.Events {
						has[e] = true
					}
					if has["MessageNew"] != has["MessageExpunge"] || has["FlagChange"] && !has["MessageNew"] {
						t.Fatalf("NOTIFY event rules not enforced: %v", g.Events)
					}
					if strings.HasPrefix(g.Filter, "SELECTED") {
						sel++
						for _, e := range g.Events {
							if !IsMessageEvent(e) {
								t.Fatalf("%s with %s", g.Filter, e)
							}
						}
					}
				}
				if sel > 1 {
					t.Fatalf("two SELECTED groups: %+v", a)
				}
			case *SetMetadataArgs:
				if len(a.Entries) == 0 || len(a.Entries) > MaxMetadataEntries {
					t.Fatalf("SETMETADATA with %d entries", len(a.Entries))
				}
				for _, e := range a.Entries {
					// Literals are bounded by MaxLiteral, quoted
					// strings by the line.
					if len(e.Value) > max(int(r.MaxLiteral), r.MaxLine) {
						t.Fatalf("value of %d bytes", len(e.Value))
					}
				}
			}
			if key != nil {
				s := key.String()
				r2 := NewReader(bufio.NewReader(bytes.NewReader([]byte("t SEARCH " + s + "\r\n"))))
				cmd2, err := r2.ReadCommand()
				if err != nil {
					t.Fatalf("reparse %q: %v", s, err)
				}
				if s2 := cmd2.Args.(*SearchArgs).Key.String(); s2 != s {
					t.Fatalf("search round trip: %q -> %q", s, s2)
				}
			}
		}
	})
}

// FuzzMUTF7 checks that decoding never panics and that encoding the result
// of a successful decode gives the input back.
func FuzzMUTF7(f *testing.F) {
	for _, s := range []string{"INBOX", "Entw&APw-rfe", "&-", "&2D3eAA-", "&U,BTFw-/&ZeVnLIqe-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := DecodeMUTF7(s)
		if err != nil {
			return
		}
		if e := EncodeMUTF7(d); e != s {
			t.Fatalf("%q decodes to %q which encodes to %q", s, d, e)
		}
	})
}

// FuzzWriterRoundTrip checks that whatever the writer emits as a string or
// astring parses back to the same value (NUL, which IMAP strings cannot
// carry, becomes a space).
func FuzzWriterRoundTrip(f *testing.F) {
	for _, s := range []string{"", "INBOX", "a b", `q"uo\te`, "line\r\nbreak", "Grüße", "nil", "NIL", "x]", "{3}", "\x00"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, utf8 bool) {
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		w := NewWriter(bw)
		w.UTF8 = utf8
		w.Raw("a LOGIN ")
		w.AString(s)
		w.SP()
		w.String(s)
		w.CRLF()
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		r := NewReader(bufio.NewReader(&buf))
		r.MaxLiteral = int64(len(s)) + 1
		r.MaxLine = len(s)*2 + 100
		cmd, err := r.ReadCommand()
		if err != nil {
			t.Fatalf("%q: %v (wire %q)", s, err, buf.String())
		}
		want := bytes.ReplaceAll([]byte(s), []byte{0}, []byte{' '})
		a := cmd.Args.(*LoginArgs)
		if a.Username != string(want) || a.Password != string(want) {
			t.Fatalf("%q: got %q / %q", s, a.Username, a.Password)
		}
	})
}
