package imapserver

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzSession sends arbitrary commands to a logged-in session with a
// selected mailbox holding real messages; the server must never panic and
// must keep the connection usable or close it cleanly.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"a FETCH 1:* (BODY.PEEK[1.2.3.HEADER] BINARY.PEEK[2] BINARY.SIZE[9] BODY[2.MIME]<100.5> BODY.PEEK[TEXT]<99999.1>)",
		"a UID FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY RFC822.HEADER RFC822.TEXT MODSEQ EMAILID THREADID SAVEDATE)",
		"a FETCH $ FLAGS\r\nb SEARCH RETURN (SAVE MIN MAX) OR $ UID 1:* NOT 1,2:*",
		"a STORE 1:* +FLAGS (\\Seen $a \\Recent)\r\nb STORE 2 FLAGS ()\r\nc EXPUNGE",
		"a COPY 1:* INBOX\r\nb MOVE 2 INBOX\r\nc UID MOVE 1:* Trash",
		"a LIST \"\" \"%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*x\"\r\nb LIST (SUBSCRIBED RECURSIVEMATCH SPECIAL-USE) \"INBOX\" (\"\" %) RETURN (STATUS (SIZE RECENT HIGHESTMODSEQ) SUBSCRIBED)",
		"a RENAME INBOX Old\r\nb SELECT Old\r\nc DELETE Old\r\nd CREATE a/b/c (USE (\\Junk))",
		"a SEARCH CHARSET UTF-8 TEXT \"\" BODY \"\" HEADER \"\" \"\" SENTON 1-Jan-1970 SAVEDON 1-Jan-2000 MODSEQ 0",
		"a APPEND INBOX ~{5+}\r\nab\x00cd\r\nb FETCH * BINARY[]",
		"a IDLE\r\nDONE\r\nb UNSELECT\r\nc EXAMINE INBOX\r\nd FETCH 1 BODY[]",
		"a ENABLE IMAP4rev2 UTF8=ACCEPT\r\nb SELECT \"&-&\"\r\nc STATUS \"Entwürfe\" (MESSAGES)",
		"a ENABLE QRESYNC\r\nb SELECT INBOX (QRESYNC (1 0 1:*,5 (1:* 1:*)))\r\nc UID FETCH 1:* FLAGS (CHANGEDSINCE 0 VANISHED)\r\nd UID STORE * (UNCHANGEDSINCE 0) FLAGS.SILENT ()\r\ne SEARCH MODSEQ 0 RETURN (ALL)",
		"a ENABLE QRESYNC\r\nb EXAMINE INBOX (QRESYNC (1 1 (4294967295,1:3 2:1,5)))\r\nc UID FETCH $ (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\nd EXPUNGE",
		"a SORT (REVERSE DATE SUBJECT DISPLAYFROM DISPLAYTO CC TO FROM SIZE ARRIVAL) UTF-8 ALL\r\nb UID SORT RETURN (SAVE MIN MAX COUNT ALL) (SUBJECT) US-ASCII OR $ NOT 1\r\nc FETCH $ UID",
		"a THREAD REFERENCES UTF-8 ALL\r\nb UID THREAD ORDEREDSUBJECT UTF-8 TEXT x\r\nc THREAD REFERENCES KOI8-R ALL\r\nd ENABLE UTF8=ACCEPT\r\ne SORT (DATE) US-ASCII ALL",
		"a COMPRESS DEFLATE\r\nJ\x34T\xf0\xf3\xf7\x0f\xe0\xe5\x02\x08",
		"a SETMETADATA INBOX (/private/x \"1\" /shared/y ~{2+}\r\n\x00z /private/x/y NIL)\r\nb GETMETADATA (MAXSIZE 1 DEPTH infinity) INBOX (/private /shared)\r\nc GETMETADATA \"\" /shared/comment",
		"a NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER] FLAGS) MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))\r\nb APPEND INBOX {1+}\r\nx\r\nc UID STORE 1:* +FLAGS (\\Deleted)\r\nd EXPUNGE\r\ne IDLE\r\nDONE\r\nf CREATE n1\r\ng RENAME n1 n2\r\nh SUBSCRIBE n2\r\ni DELETE n2\r\nj NOTIFY NONE",
		"a NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (subtree (INBOX \"a b\") (MessageNew MessageExpunge)) (mailboxes x NONE) (subscribed (SubscriptionChange))\r\nb COPY 1:* INBOX\r\nc EXPUNGE\r\nd NOTIFY SET (personal (XEvent))",
		"a SETMETADATA \"\" (/shared/comment \"x\")\r\nb SETMETADATA \"\" (\"/private/a b(\" \"v\")\r\nc GETMETADATA (DEPTH 1) \"\" /private\r\nd RENAME INBOX M\r\ne GETMETADATA M /private/x",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	e := newTestEnv(f, nil)
	e.deliver("INBOX", msgSimple)
	e.deliver("INBOX", msgMultipart)
	f.Fuzz(func(t *testing.T, in string) {
		// Inputs like "COPY 1:* INBOX" double a mailbox each run: keep
		// every mailbox small.
		ctx := t.Context()
		mbs, err := e.st.ListMailboxes(ctx, e.acct.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range mbs {
			if st, err := e.st.MailboxStatus(ctx, mb.ID); err == nil && st.Messages > 20 {
				msgs, err := e.st.ListMessages(ctx, mb.ID)
				if err != nil {
					t.Fatal(err)
				}
				uids := make([]uint32, len(msgs))
				for i, m := range msgs {
					uids[i] = m.UID
				}
				if _, err := e.st.Expunge(ctx, mb.ID, uids); err != nil {
					t.Fatal(err)
				}
			}
		}
		inbox, err := e.st.GetMailbox(ctx, e.acct.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if st, err := e.st.MailboxStatus(ctx, inbox.ID); err == nil && st.Messages < 2 {
			et := *e
			et.t = t // deliver reports through the fuzz iteration's t
			et.deliver("INBOX", msgMultipart)
			et.deliver("INBOX", msgSimple)
		}
		conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		script := "l LOGIN joe@example.org \"" + testPass + "\"\r\ns SELECT INBOX\r\n" + in + "\r\nzz LOGOUT\r\n"
		go func() {
			io.WriteString(conn, script)
			// EOF ends sessions still waiting for literal data or DONE.
			conn.(*net.TCPConn).CloseWrite()
		}()
		out, _ := io.ReadAll(conn)
		if !strings.Contains(string(out), "s OK") && !strings.Contains(string(out), "* BYE") {
			t.Fatalf("session did not get through SELECT:\n%s", out)
		}
		if n := e.srv.panics.Load(); n > 0 {
			t.Fatalf("server panicked on %q", in)
		}
	})
}
