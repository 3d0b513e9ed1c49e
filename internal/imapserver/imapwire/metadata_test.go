package imapwire

import (
	"bufio"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The command forms of RFC 5464 (examples of sections 4.2 and 4.3, with
// erratum 2785: options before the mailbox).
func TestParseMetadata(t *testing.T) {
	tests := []struct {
		in    string
		want  any
		conts int
	}{
		{"a GETMETADATA \"\" /shared/comment\r\n", &GetMetadataArgs{Mailbox: "", Entries: []string{"/shared/comment"}, MaxSize: -1}, 0},
		{"a GETMETADATA INBOX (/shared/comment /private/comment)\r\n", &GetMetadataArgs{Mailbox: "INBOX", Entries: []string{"/shared/comment", "/private/comment"}, MaxSize: -1}, 0},
		{"a GETMETADATA (MAXSIZE 1024) \"INBOX\" (/shared/comment /private/comment)\r\n", &GetMetadataArgs{Mailbox: "INBOX", Entries: []string{"/shared/comment", "/private/comment"}, MaxSize: 1024}, 0},
		{"a GETMETADATA (DEPTH 1) \"INBOX\" (/private/filters/values)\r\n", &GetMetadataArgs{Mailbox: "INBOX", Entries: []string{"/private/filters/values"}, MaxSize: -1, Depth: 1}, 0},
		{"a GETMETADATA (depth infinity maxsize 0) INBOX {7}\r\n/shared\r\n", &GetMetadataArgs{Mailbox: "INBOX", Entries: []string{"/shared"}, MaxSize: 0, Depth: -1}, 1},
		{"a SETMETADATA INBOX (/private/comment {33}\r\nMy new comment across\r\ntwo lines.)\r\n", &SetMetadataArgs{Mailbox: "INBOX", Entries: []MetadataValue{{"/private/comment", []byte("My new comment across\r\ntwo lines.")}}}, 1},
		{"a SETMETADATA INBOX (/private/comment NIL)\r\n", &SetMetadataArgs{Mailbox: "INBOX", Entries: []MetadataValue{{"/private/comment", nil}}}, 0},
		{"a SETMETADATA \"\" (/shared/a \"\" /private/b ~{3+}\r\na\x00b /private/c {0}\r\n)\r\n", &SetMetadataArgs{Mailbox: "", Entries: []MetadataValue{{"/shared/a", []byte{}}, {"/private/b", []byte("a\x00b")}, {"/private/c", []byte{}}}}, 1},
	}
	for _, tc := range tests {
		cmd, err, conts := parse(t, tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(cmd.Args, tc.want) || conts != tc.conts {
			t.Errorf("%q:\n got %#v (%d continuations)\nwant %#v (%d)", tc.in, cmd.Args, conts, tc.want, tc.conts)
		}
	}
}

func TestParseMetadataErrors(t *testing.T) {
	tests := []struct {
		in   string
		no   bool
		code string
	}{
		{"a GETMETADATA INBOX\r\n", false, ""},
		{"a GETMETADATA INBOX ()\r\n", false, ""},
		{"a GETMETADATA (DEPTH 2) INBOX /a\r\n", false, ""},
		{"a GETMETADATA (MAXSIZE 1 MAXSIZE 2) INBOX /a\r\n", false, ""},
		{"a GETMETADATA (FOO 1) INBOX /a\r\n", false, ""},
		{"a GETMETADATA INBOX (MAXSIZE 1) /a\r\n", false, ""}, // pre-erratum order
		{"a GETMETADATA INBOX (" + strings.Repeat("/a ", MaxMetadataEntries) + "/b)\r\n", false, ""},
		{"a SETMETADATA INBOX (/a)\r\n", false, ""},
		{"a SETMETADATA INBOX /a x\r\n", false, ""},
		{"a SETMETADATA INBOX (/a x)\r\n", false, ""},
		{"a SETMETADATA INBOX (/a {2000}\r\n", true, "METADATA MAXSIZE 1024"},
		{"a SETMETADATA INBOX (/a ~{2000}\r\n", true, "METADATA MAXSIZE 1024"},
		{"a SETMETADATA INBOX (" + strings.Repeat("/a NIL ", MaxMetadataEntries) + "/b NIL)\r\n", true, "METADATA TOOMANY"},
	}
	for _, tc := range tests {
		_, err, conts := parse(t, tc.in)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%q: got %v, want *Error", tc.in, err)
			continue
		}
		if pe.Tag != "a" || pe.No != tc.no || pe.Code != tc.code || pe.Fatal {
			t.Errorf("%q: got %+v", tc.in, pe)
		}
		if conts != 0 {
			t.Errorf("%q: sent a continuation", tc.in)
		}
	}
}

// TestMetadataValueLimit: a server with a large MaxLiteral (APPEND-sized
// literals elsewhere) still refuses a metadata value over the store's
// limit before the client sends it, and announces that limit.
func TestMetadataValueLimit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		maxLit  int64
		maxMeta int64
		code    string
	}{
		{"a SETMETADATA INBOX (/private/a {70000}\r\n", 64 << 20, 0, "METADATA MAXSIZE 65536"},
		{"a SETMETADATA INBOX (/private/a ~{70000}\r\n", 64 << 20, 65536, "METADATA MAXSIZE 65536"},
		{"a SETMETADATA INBOX (/private/a {2000}\r\n", 64 << 20, 1000, "METADATA MAXSIZE 1000"},
		{"a SETMETADATA INBOX (/private/a {2000}\r\n", 500, 65536, "METADATA MAXSIZE 500"},
	} {
		conts := 0
		r := NewReader(bufio.NewReader(strings.NewReader(tc.in)))
		r.MaxLiteral, r.MaxMetadataValue = tc.maxLit, tc.maxMeta
		r.Continue = func() error { conts++; return nil }
		_, err := r.ReadCommand()
		var pe *Error
		if !errors.As(err, &pe) || !pe.No || pe.Code != tc.code || conts != 0 {
			t.Errorf("%q (MaxLiteral %d, MaxMetadataValue %d): %v, %d continuations; want NO [%s] before the data", tc.in, tc.maxLit, tc.maxMeta, err, conts, tc.code)
		}
	}
}
