package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func parse(t testing.TB, in string) (*Command, error, int) {
	t.Helper()
	conts := 0
	r := NewReader(bufio.NewReader(strings.NewReader(in)))
	r.MaxAppend = 1 << 20
	r.MaxLiteral = 1024
	r.Continue = func() error { conts++; return nil }
	cmd, err := r.ReadCommand()
	return cmd, err, conts
}

func TestParseCommands(t *testing.T) {
	tests := []struct {
		in    string
		want  *Command
		conts int
	}{
		{"a1 CAPABILITY\r\n", &Command{Tag: "a1", Name: "CAPABILITY"}, 0},
		{"a1 noop\n", &Command{Tag: "a1", Name: "NOOP"}, 0},
		{"x LOGIN joe \"pa\\\"ss\"\r\n", &Command{Tag: "x", Name: "LOGIN", Args: &LoginArgs{"joe", `pa"ss`}}, 0},
		{"x LOGIN {3}\r\njoe {4+}\r\nsecr\r\n", &Command{Tag: "x", Name: "LOGIN", Args: &LoginArgs{"joe", "secr"}}, 1},
		{"x AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ=\r\n", &Command{Tag: "x", Name: "AUTHENTICATE", Args: &AuthenticateArgs{Mechanism: "PLAIN", Initial: []byte("\x00joe\x00secret"), HasInitial: true}}, 0},
		{"x AUTHENTICATE plain =\r\n", &Command{Tag: "x", Name: "AUTHENTICATE", Args: &AuthenticateArgs{Mechanism: "PLAIN", Initial: []byte{}, HasInitial: true}}, 0},
		{"x AUTHENTICATE PLAIN\r\n", &Command{Tag: "x", Name: "AUTHENTICATE", Args: &AuthenticateArgs{Mechanism: "PLAIN"}}, 0},
		{"e ENABLE IMAP4rev2 condstore\r\n", &Command{Tag: "e", Name: "ENABLE", Args: &EnableArgs{[]string{"IMAP4REV2", "CONDSTORE"}}}, 0},
		{"s SELECT inbox\r\n", &Command{Tag: "s", Name: "SELECT", Args: &SelectArgs{Mailbox: "inbox"}}, 0},
		{"s EXAMINE \"Sent Items\" (CONDSTORE)\r\n", &Command{Tag: "s", Name: "EXAMINE", Args: &SelectArgs{Mailbox: "Sent Items", CondStore: true}}, 0},
		{"s SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n", &Command{Tag: "s", Name: "SELECT", Args: &SelectArgs{Mailbox: "INBOX", QResync: &QResyncArgs{UIDValidity: 67890007, ModSeq: 20050715194045000, KnownUIDs: &NumSet{Ranges: []NumRange{{41, 41}, {43, 211}, {214, 541}}}}}}, 0},
		{"c CREATE Archive/2024 (USE (\\Archive))\r\n", &Command{Tag: "c", Name: "CREATE", Args: &CreateArgs{Mailbox: "Archive/2024", Use: []string{`\Archive`}}}, 0},
		{"c CREATE foo\r\n", &Command{Tag: "c", Name: "CREATE", Args: &CreateArgs{Mailbox: "foo"}}, 0},
		{"r RENAME a b\r\n", &Command{Tag: "r", Name: "RENAME", Args: &RenameArgs{"a", "b"}}, 0},
		{"l LIST \"\" *\r\n", &Command{Tag: "l", Name: "LIST", Args: &ListArgs{Ref: "", Patterns: []string{"*"}}}, 0},
		{"l LIST \"\" %/x]\r\n", &Command{Tag: "l", Name: "LIST", Args: &ListArgs{Ref: "", Patterns: []string{"%/x]"}}}, 0},
		{"l LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n", &Command{Tag: "l", Name: "LIST", Args: &ListArgs{
			SelectOpts: []string{"SUBSCRIBED", "RECURSIVEMATCH"}, Patterns: []string{"INBOX", "Sent"}, ReturnOpts: []string{"CHILDREN", "STATUS"}, StatusItems: []string{"MESSAGES", "UNSEEN"}, Extended: true}}, 0},
		{"l LSUB \"\" %\r\n", &Command{Tag: "l", Name: "LSUB", Args: &LsubArgs{"", "%"}}, 0},
		{"s STATUS INBOX (messages uidnext)\r\n", &Command{Tag: "s", Name: "STATUS", Args: &StatusArgs{"INBOX", []string{"MESSAGES", "UIDNEXT"}}}, 0},
		{"f FETCH 1:*,3 (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100> BINARY[1.2] BINARY.SIZE[1] BODY[1.MIME] BODY)\r\n", &Command{Tag: "f", Name: "FETCH", Args: &FetchArgs{
			Set: NumSet{Ranges: []NumRange{{1, 0}, {3, 3}}},
			Items: []FetchItem{
				{Name: "FLAGS"},
				{Name: "BODY[]", Peek: true, Section: &Section{Specifier: "HEADER.FIELDS", Fields: []string{"From", "Subject"}}, Partial: &Partial{0, 100}},
				{Name: "BINARY", Section: &Section{Part: []int{1, 2}}},
				{Name: "BINARY.SIZE", Section: &Section{Part: []int{1}}},
				{Name: "BODY[]", Section: &Section{Part: []int{1}, Specifier: "MIME"}},
				{Name: "BODY"},
			}}}, 0},
		{"f UID FETCH 1:* fast\r\n", &Command{Tag: "f", Name: "FETCH", UID: true, Args: &FetchArgs{
			Set: NumSet{Ranges: []NumRange{{1, 0}}}, Items: []FetchItem{{Name: "FLAGS"}, {Name: "INTERNALDATE"}, {Name: "RFC822.SIZE"}}}}, 0},
		{"f UID FETCH 4 (UID FLAGS) (CHANGEDSINCE 12 VANISHED)\r\n", &Command{Tag: "f", Name: "FETCH", UID: true, Args: &FetchArgs{
			Set: NumSet{Ranges: []NumRange{{4, 4}}}, Items: []FetchItem{{Name: "UID"}, {Name: "FLAGS"}}, ChangedSince: 12, HasChangedSince: true, Vanished: true}}, 0},
		{"f FETCH $ BODY[]\r\n", &Command{Tag: "f", Name: "FETCH", Args: &FetchArgs{Set: NumSet{Saved: true}, Items: []FetchItem{{Name: "BODY[]", Section: &Section{}}}}}, 0},
		{"s UID STORE 1:3 +FLAGS.SILENT (\\Seen $Label1)\r\n", &Command{Tag: "s", Name: "STORE", UID: true, Args: &StoreArgs{Set: NumSet{Ranges: []NumRange{{1, 3}}}, Op: StoreAdd, Silent: true, Flags: []string{`\Seen`, "$Label1"}}}, 0},
		{"s STORE 2 (UNCHANGEDSINCE 5) -flags \\Deleted \\Seen\r\n", &Command{Tag: "s", Name: "STORE", Args: &StoreArgs{Set: NumSet{Ranges: []NumRange{{2, 2}}}, Op: StoreRemove, Flags: []string{`\Deleted`, `\Seen`}, UnchangedSince: 5, HasUnchangedSince: true}}, 0},
		{"s STORE 2 FLAGS ()\r\n", &Command{Tag: "s", Name: "STORE", Args: &StoreArgs{Set: NumSet{Ranges: []NumRange{{2, 2}}}, Op: StoreReplace, Flags: nil}}, 0},
		{"m UID MOVE 7:5 Processed\r\n", &Command{Tag: "m", Name: "MOVE", UID: true, Args: &CopyArgs{NumSet{Ranges: []NumRange{{7, 5}}}, "Processed"}}, 0},
		{"e UID EXPUNGE 3\r\n", &Command{Tag: "e", Name: "EXPUNGE", UID: true, Args: &ExpungeArgs{NumSet{Ranges: []NumRange{{3, 3}}}}}, 0},
		{"i ID (\"name\" \"imaplib\" \"version\" NIL)\r\n", &Command{Tag: "i", Name: "ID", Args: &IDArgs{[][2]string{{"name", "imaplib"}, {"version", ""}}}}, 0},
		{"i ID NIL\r\n", &Command{Tag: "i", Name: "ID", Args: &IDArgs{}}, 0},
		{"q GETQUOTAROOT INBOX\r\n", &Command{Tag: "q", Name: "GETQUOTAROOT", Args: &MailboxArgs{"INBOX"}}, 0},
		{"q SETQUOTA \"\" (STORAGE 512)\r\n", &Command{Tag: "q", Name: "SETQUOTA", Args: &QuotaArgs{Root: "", Resources: [][2]string{{"STORAGE", "512"}}}}, 0},
		{"s SELECT INBOX (CONDSTORE QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973)))\r\n", &Command{Tag: "s", Name: "SELECT", Args: &SelectArgs{Mailbox: "INBOX", CondStore: true, QResync: &QResyncArgs{
			UIDValidity: 67890007, ModSeq: 90060115194045000, KnownUIDs: &NumSet{Ranges: []NumRange{{1, 29997}}},
			SeqMatch: &[2]NumSet{{Ranges: []NumRange{{5000, 5000}, {7500, 7500}, {9000, 9000}, {9990, 9999}}}, {Ranges: []NumRange{{15000, 15000}, {22500, 22500}, {27000, 27000}, {29970, 29970}, {29973, 29973}}}}}}}, 0},
		{"s EXAMINE INBOX (QRESYNC (1 0 (1 2)))\r\n", &Command{Tag: "s", Name: "EXAMINE", Args: &SelectArgs{Mailbox: "INBOX", QResync: &QResyncArgs{
			UIDValidity: 1, SeqMatch: &[2]NumSet{{Ranges: []NumRange{{1, 1}}}, {Ranges: []NumRange{{2, 2}}}}}}}, 0},
		{"z COMPRESS deflate\r\n", &Command{Tag: "z", Name: "COMPRESS", Args: &CompressArgs{"DEFLATE"}}, 0},
		{"o SORT (REVERSE arrival Subject DISPLAYFROM) utf-8 SINCE 1-Feb-1994 UNSEEN\r\n", &Command{Tag: "o", Name: "SORT", Args: &SortArgs{
			Criteria: []SortCriterion{{"ARRIVAL", true}, {"SUBJECT", false}, {"DISPLAYFROM", false}}, Charset: "UTF-8",
			Key: &SearchKey{Op: "AND", Keys: []*SearchKey{{Op: "SINCE", Date: time.Date(1994, 2, 1, 0, 0, 0, 0, time.UTC)}, {Op: "UNSEEN"}}}}}, 0},
		{"o UID SORT RETURN (MIN COUNT) (SIZE) US-ASCII ALL\r\n", &Command{Tag: "o", Name: "SORT", UID: true, Args: &SortArgs{
			Return: []string{"MIN", "COUNT"}, ReturnGiven: true, Criteria: []SortCriterion{{"SIZE", false}}, Charset: "US-ASCII", Key: &SearchKey{Op: "ALL"}}}, 0},
		{"h THREAD references UTF-8 SUBJECT {3+}\r\nfoo\r\n", &Command{Tag: "h", Name: "THREAD", Args: &ThreadArgs{
			Algorithm: "REFERENCES", Charset: "UTF-8", Key: &SearchKey{Op: "SUBJECT", Str: "foo"}}}, 0},
		{"h UID THREAD ORDEREDSUBJECT \"UTF-8\" 1:*\r\n", &Command{Tag: "h", Name: "THREAD", UID: true, Args: &ThreadArgs{
			Algorithm: "ORDEREDSUBJECT", Charset: "UTF-8", Key: &SearchKey{Op: "SEQ", Set: NumSet{Ranges: []NumRange{{1, 0}}}}}}, 0},
	}
	for _, tc := range tests {
		cmd, err, conts := parse(t, tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(cmd, tc.want) {
			t.Errorf("%q:\n got %#v\nwant %#v", tc.in, cmd, tc.want)
			if a, ok := cmd.Args.(*FetchArgs); ok {
				t.Errorf("items %+v", a.Items)
			}
		}
		if conts != tc.conts {
			t.Errorf("%q: %d continuations, want %d", tc.in, conts, tc.conts)
		}
	}
}

func TestParseAppend(t *testing.T) {
	in := "a APPEND Drafts (\\Seen \\Draft) \" 7-Feb-1994 21:52:25 -0800\" {11}\r\nhello world (\\Flagged) ~{3+}\r\na\x00b\r\n"
	cmd, err, conts := parse(t, in)
	if err != nil {
		t.Fatal(err)
	}
	a := cmd.Args.(*AppendArgs)
	if a.Mailbox != "Drafts" || len(a.Messages) != 2 || conts != 1 {
		t.Fatalf("got %+v, %d continuations", a, conts)
	}
	m := a.Messages[0]
	want := time.Date(1994, 2, 7, 21, 52, 25, 0, time.FixedZone("", -8*3600))
	if string(m.Data) != "hello world" || !m.Date.Equal(want) || !reflect.DeepEqual(m.Flags, []string{`\Seen`, `\Draft`}) {
		t.Errorf("message 1: %+v", m)
	}
	if m := a.Messages[1]; string(m.Data) != "a\x00b" || !m.Binary || !m.Date.IsZero() {
		t.Errorf("message 2: %+v", m)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in    string
		tag   string
		no    bool
		fatal bool
	}{
		{"\r\n", "", false, false},
		{"+ NOOP\r\n", "", false, false},
		{"a FOO\r\n", "a", false, false},
		{"a UID NOOP\r\n", "a", false, false},
		{"a LOGIN joe\r\n", "a", false, false},
		{"a FETCH 0 FLAGS\r\n", "a", false, false},
		{"a FETCH 1 BODY[MIME]\r\n", "a", false, false},
		{"a FETCH 1 (FLAGS\r\n", "a", false, false},
		{"a SEARCH FOO\r\n", "a", false, false},
		{"a SEARCH " + strings.Repeat("NOT ", 100) + "ALL\r\n", "a", false, false},
		{"a LOGIN {2000}\r\n", "a", true, false},
		{"a LOGIN {2000+}\r\n", "a", false, true},
		{"a APPEND INBOX {2000000}\r\n", "a", true, false},
		{"a LOGIN \"abc\r\n", "a", false, false},
		{"a NOOP extra\r\n", "a", false, false},
		{"a STORE 1 FLAGS (\\)\r\n", "a", false, false},
		{"a SORT () UTF-8 ALL\r\n", "a", false, false},
		{"a SORT (REVERSE) UTF-8 ALL\r\n", "a", false, false},
		{"a SORT (REVERSE REVERSE DATE) UTF-8 ALL\r\n", "a", false, false},
		{"a SORT (DATE) ALL\r\n", "a", false, false},
		{"a SORT (DATE) UTF-8\r\n", "a", false, false},
		{"a SORT (" + strings.Repeat("DATE ", 30) + "SIZE) UTF-8 ALL\r\n", "a", false, false},
		{"a SORT RETURN (" + strings.Repeat("MIN ", 30) + "MAX) (DATE) UTF-8 ALL\r\n", "a", false, false},
		{"a THREAD REFERENCES UTF-8\r\n", "a", false, false},
		{"a THREAD\r\n", "a", false, false},
		{"a COMPRESS\r\n", "a", false, false},
		{"a SELECT INBOX (QRESYNC (0 1))\r\n", "a", false, false},
		{"a SELECT INBOX (QRESYNC (1 1 1:5 (1:2)))\r\n", "a", false, false},
		{"a SELECT INBOX (QRESYNC (1 1 1:5 (1:2 3:4) x))\r\n", "a", false, false},
	}
	for _, tc := range tests {
		_, err, conts := parse(t, tc.in)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%q: got %v, want *Error", tc.in, err)
			continue
		}
		if pe.Tag != tc.tag || pe.No != tc.no || pe.Fatal != tc.fatal {
			t.Errorf("%q: got %+v", tc.in, pe)
		}
		if conts != 0 {
			t.Errorf("%q: sent continuation for rejected literal", tc.in)
		}
	}
}

// After a bad command that carried a non-synchronizing literal, the next
// command must parse cleanly.
func TestParseRecovers(t *testing.T) {
	in := "a FOO {5+}\r\nhello {3+}\r\nabc\r\nb NOOP\r\n"
	r := NewReader(bufio.NewReader(strings.NewReader(in)))
	if _, err := r.ReadCommand(); err == nil {
		t.Fatal("want error")
	}
	cmd, err := r.ReadCommand()
	if err != nil || cmd.Tag != "b" || cmd.Name != "NOOP" {
		t.Fatalf("got %+v, %v", cmd, err)
	}
}

func TestLineTooLong(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("a NOOP " + strings.Repeat("x", 200) + "\r\n")))
	r.MaxLine = 100
	_, err := r.ReadCommand()
	var pe *Error
	if !errors.As(err, &pe) || !pe.Fatal {
		t.Fatalf("got %v", err)
	}
}

func TestParseSearch(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ALL", "ALL"},
		{"UNSEEN", "UNSEEN"},
		{"CHARSET UTF-8 FROM \"Jörg\" SINCE 1-Feb-1994", `(FROM "Jörg" SINCE 1-Feb-1994)`},
		{"OR (DELETED FLAGGED) NOT UID 1:5,7 2:4", `(OR (DELETED FLAGGED) NOT UID 1:5,7 2:4)`},
		{"HEADER Message-ID <x@y> LARGER 100 SMALLER 2000", `(HEADER "Message-ID" "<x@y>" LARGER 100 SMALLER 2000)`},
		{"UNKEYWORD $Processed SENTBEFORE \"3-Mar-2020\" $", `(UNKEYWORD "$Processed" SENTBEFORE 3-Mar-2020 $)`},
		{"RETURN (MIN MAX COUNT) BODY {4}\r\nfoo) SEEN", `(BODY "foo)" SEEN)`},
		{"MODSEQ \"/flags/\\\\draft\" all 620162338", "MODSEQ 620162338"},
		{"OLDER 3600 YOUNGER 60", "(OLDER 3600 YOUNGER 60)"},
	}
	for _, tc := range tests {
		cmd, err, _ := parse(t, "t SEARCH "+tc.in+"\r\n")
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := cmd.Args.(*SearchArgs).Key.String(); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.in, got, tc.want)
		}
	}
	cmd, _, _ := parse(t, "t UID SEARCH RETURN () CHARSET us-ascii ALL\r\n")
	a := cmd.Args.(*SearchArgs)
	if !a.ReturnGiven || len(a.Return) != 0 || a.Charset != "US-ASCII" || !cmd.UID {
		t.Errorf("got %+v", a)
	}
}

func TestNumSet(t *testing.T) {
	cmd, err, _ := parse(t, "f FETCH 5:3,*,1,9:* FLAGS\r\n")
	if err != nil {
		t.Fatal(err)
	}
	s := cmd.Args.(*FetchArgs).Set
	if s.String() != "5:3,*,1,9:*" {
		t.Errorf("String: %s", s)
	}
	if got := s.Resolve(7); !reflect.DeepEqual(got, []NumRange{{1, 1}, {3, 5}, {7, 9}}) {
		t.Errorf("Resolve: %v", got)
	}
	if !s.Contains(10, 20) || !s.Contains(8, 7) || s.Contains(6, 7) || !s.Contains(20, 20) {
		t.Error("Contains")
	}
	if got := CompactSet([]uint32{1, 2, 3, 5, 7, 8}); got != "1:3,5,7:8" {
		t.Errorf("CompactSet: %s", got)
	}
	if got := (NumSet{Ranges: []NumRange{{0, 0}}}).Resolve(0); len(got) != 0 {
		t.Errorf("* in empty mailbox: %v", got)
	}
}

func TestMUTF7(t *testing.T) {
	tests := []struct{ utf8, mutf7 string }{
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"A&B", "A&-B"},
		{"😀", "&2D3eAA-"},
	}
	for _, tc := range tests {
		if got := EncodeMUTF7(tc.utf8); got != tc.mutf7 {
			t.Errorf("encode %q: %q, want %q", tc.utf8, got, tc.mutf7)
		}
		if got, err := DecodeMUTF7(tc.mutf7); err != nil || got != tc.utf8 {
			t.Errorf("decode %q: %q, %v", tc.mutf7, got, err)
		}
	}
	for _, bad := range []string{"&", "&Jjo", "&AGE-", "&2D0-", "ä"} {
		if _, err := DecodeMUTF7(bad); err == nil {
			t.Errorf("decode %q: want error", bad)
		}
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := NewWriter(bw)
	w.String(`a"b\c`)
	w.SP()
	w.String("line\r\nbreak")
	w.SP()
	w.String("Grüße")
	w.SP()
	w.AString("INBOX")
	w.SP()
	w.AString("nil")
	w.SP()
	w.NString("")
	w.UTF8 = true
	w.SP()
	w.String("Grüße")
	w.CRLF()
	w.Status("a1", "OK", "APPENDUID 1 2", "APPEND\r\ncompleted")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "\"a\\\"b\\\\c\" {11}\r\nline\r\nbreak {7}\r\nGrüße INBOX \"nil\" NIL \"Grüße\"\r\na1 OK [APPENDUID 1 2] APPEND  completed\r\n"
	if buf.String() != want {
		t.Errorf("got  %q\nwant %q", buf.String(), want)
	}
}

func TestParseAppendSpool(t *testing.T) {
	big := strings.Repeat("x", SpoolThreshold+10)
	in := fmt.Sprintf("a APPEND INBOX {%d+}\r\n%s {3+}\r\nabc\r\n", len(big), big)
	r := NewReader(bufio.NewReader(strings.NewReader(in)))
	r.MaxAppend = 4 << 20
	var files []*os.File
	r.Spool = func() (*os.File, error) {
		f, err := os.CreateTemp(t.TempDir(), "spool")
		files = append(files, f)
		return f, err
	}
	cmd, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	a := cmd.Args.(*AppendArgs)
	if len(files) != 1 || a.Messages[0].File != files[0] || a.Messages[0].Data != nil || a.Messages[0].Size != int64(len(big)) {
		t.Fatalf("big message not spooled: %+v", a.Messages[0])
	}
	got, _ := io.ReadAll(io.NewSectionReader(files[0], 0, a.Messages[0].Size))
	if string(got) != big {
		t.Error("spooled content differs")
	}
	if m := a.Messages[1]; m.File != nil || string(m.Data) != "abc" || m.Size != 3 {
		t.Errorf("small message: %+v", m)
	}
	files[0].Close()
}
