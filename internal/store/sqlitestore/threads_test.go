package sqlitestore

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/store"
)

func TestThreadKeysFromHeader(t *testing.T) {
	many := "References:"
	for i := 0; i < 80; i++ {
		many += " <r" + strings.Repeat("x", i) + "@example.com>\r\n"
	}
	tests := []struct {
		name   string
		header string
		own    string
		refs   []string // in lookup order
	}{
		{"plain", "Message-ID: <a@x>\r\n\r\n", "a@x", nil},
		{"reply", "Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nReferences: <r@x> <a@x>\r\n\r\n", "b@x", []string{"a@x", "r@x"}},
		{"references newest first", "References: <1@x>\r\n\t<2@x> <3@x>\r\n\r\n", "", []string{"3@x", "2@x", "1@x"}},
		{"in-reply-to with comment", "In-Reply-To: <p@x> (Joe's message of Monday)\r\n\r\n", "", []string{"p@x"}},
		{"self reference ignored", "Message-ID: <a@x>\r\nReferences: <a@x> <b@x>\r\n\r\n", "a@x", []string{"b@x"}},
		{"bad ids skipped", "References: <a b@x> <> <c@x> <unterminated\r\n\r\n", "", []string{"c@x"}},
		{"body not read", "Subject: x\r\n\r\nReferences: <body@x>\r\n", "", nil},
		{"bare LF", "Message-ID: <a@x>\nIn-Reply-To: <p@x>\n\n", "a@x", []string{"p@x"}},
	}
	for _, tc := range tests {
		k := threadKeysFromHeader([]byte(tc.header))
		var wantOwn int64
		if tc.own != "" {
			wantOwn = msgIDKey(tc.own)
		}
		if k.own != wantOwn {
			t.Errorf("%s: own key %d, want %d (%s)", tc.name, k.own, wantOwn, tc.own)
		}
		if len(k.refs) != len(tc.refs) {
			t.Errorf("%s: %d refs, want %d", tc.name, len(k.refs), len(tc.refs))
			continue
		}
		for i, r := range tc.refs {
			if k.refs[i] != msgIDKey(r) {
				t.Errorf("%s: ref %d is not %s", tc.name, i, r)
			}
		}
	}
	k := threadKeysFromHeader([]byte(many + "\r\n"))
	if len(k.refs) != maxThreadRefs || k.refs[0] != msgIDKey("r"+strings.Repeat("x", 79)+"@example.com") {
		t.Fatalf("long References: %d refs, newest first expected", len(k.refs))
	}
	if msgIDKey("a@x") == copyKey(0, "a@x") {
		t.Fatal("key namespaces collide")
	}
}

// FuzzThreadKeys: any header, however broken, yields bounded keys without
// panicking.
func FuzzThreadKeys(f *testing.F) {
	f.Add([]byte("Message-ID: <a@x>\r\nIn-Reply-To: <p@x>\r\nReferences: <r@x>\r\n <p@x>\r\n\r\nbody"))
	f.Add([]byte("References: <<<>>> <\r\n\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		k := threadKeysOf(bytes.NewReader(b))
		if len(k.refs) > maxThreadRefs {
			t.Fatalf("%d refs", len(k.refs))
		}
		for _, r := range k.refs {
			if r == 0 || r == k.own {
				t.Fatalf("bad ref key %d (own %d)", r, k.own)
			}
		}
	})
}

// TestThreadRowsBounded: a message whose References name forty ids adds
// at most two rows (its own id and its parent's), while a reply naming an
// earlier message anywhere in its References still joins its thread.
func TestThreadRowsBounded(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc, _ := pruneSetup(t, s) // three messages without Message-ID
	rows := func() int {
		var n int
		if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM threads WHERE account_id = ?", acc.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deliver := func(hdr string) store.Delivered {
		t.Helper()
		d, err := s.Deliver(ctx, store.Delivery{Blob: bytes.NewReader([]byte(hdr + "Subject: x\r\n\r\nbody\r\n")), Recipients: []store.Recipient{{AccountID: acc.ID}}})
		if err != nil {
			t.Fatal(err)
		}
		return d[0]
	}
	threadOf := func(d store.Delivered) string {
		t.Helper()
		ms, err := s.GetMessages(ctx, d.MailboxID, []uint32{d.UID})
		if err != nil || len(ms) != 1 {
			t.Fatal(err)
		}
		return ms[0].ThreadID
	}
	before := rows()
	root := deliver("Message-ID: <root@example.net>\r\n")
	var refs []string
	for i := range 40 {
		refs = append(refs, fmt.Sprintf("<spam%d@example.net>", i))
	}
	// The root is the oldest reference; the parent (last) is unknown.
	reply := deliver("Message-ID: <reply@example.net>\r\nReferences: <root@example.net> " + strings.Join(refs, " ") + "\r\n")
	if got := rows() - before; got > 3 {
		t.Errorf("%d thread rows for two messages, want at most 3 (root, reply, reply's parent)", got)
	}
	if threadOf(reply) != threadOf(root) || threadOf(root) == "" {
		t.Errorf("reply thread %q, root thread %q", threadOf(reply), threadOf(root))
	}
}
