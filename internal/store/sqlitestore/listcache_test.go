package sqlitestore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// uncached reads the list straight from the database.
func uncached(t *testing.T, s *Store, mb int64) []store.MessageMeta {
	t.Helper()
	out, err := list(context.Background(), s.rdb, "test", func(r scanner) (store.MessageMeta, error) { return scanMeta(r) }, "SELECT "+metaCols+" FROM messages m WHERE m.mailbox_id = ? ORDER BY m.uid", mb)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestListCacheMatchesDatabase runs random deliveries, flag changes,
// expunges, moves and mailbox re-creation, and after each checks the
// cached list equals a fresh read.
func TestListCacheMatchesDatabase(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddDomain(ctx, store.Domain{Name: "example.org"})
	acc, _ := s.CreateAccount(ctx, store.Account{Address: "a@example.org"})
	in, _ := s.GetMailbox(ctx, acc.ID, "INBOX")
	arch, _ := s.GetMailbox(ctx, acc.ID, "Archive")
	r := rand.New(rand.NewPCG(1, 2))
	tmp, _ := s.CreateMailbox(ctx, acc.ID, "Tmp", "", 0)
	for step := 0; step < 300; step++ {
		mbs := []int64{in.ID, arch.ID, tmp.ID}
		mb := mbs[r.IntN(len(mbs))]
		cur, _ := s.ListMessages(ctx, mb)
		var uids []uint32
		for _, m := range cur {
			if r.IntN(3) == 0 {
				uids = append(uids, m.UID)
			}
		}
		switch op := r.IntN(6); {
		case op <= 1 || len(cur) == 0:
			_, err = s.Deliver(ctx, store.Delivery{Blob: bytes.NewReader([]byte(fmt.Sprint("m", step))), Recipients: []store.Recipient{{AccountID: acc.ID, MailboxID: mb}}})
		case op == 2:
			_, err = s.StoreFlags(ctx, mb, uids, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagSeen, Keywords: []string{"k" + fmt.Sprint(step%3)}})
		case op == 3:
			_, err = s.Expunge(ctx, mb, uids)
		case op == 4:
			dst := mbs[(r.IntN(2)+1+indexOf(mbs, mb))%3]
			_, err = s.Move(ctx, mb, uids, dst)
		default:
			if mb == tmp.ID && r.IntN(4) == 0 {
				// Delete and re-create: the id may be reused.
				if err = s.DeleteMailbox(ctx, tmp.ID); err == nil {
					tmp, err = s.CreateMailbox(ctx, acc.ID, "Tmp", "", 0)
				}
			}
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for _, id := range []int64{in.ID, arch.ID, tmp.ID} {
			got, err := s.ListMessages(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := uncached(t, s, id)
			if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
				t.Fatalf("step %d mailbox %d: cached list differs:\n got %+v\nwant %+v", step, id, got, want)
			}
		}
	}
}

func indexOf(s []int64, v int64) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return 0
}

// TestListShared checks the shared list is handed out without copies,
// derive runs once per list, and bringing the list forward never
// modifies a list a caller may still hold.
func TestListShared(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddDomain(ctx, store.Domain{Name: "example.org"})
	acc, _ := s.CreateAccount(ctx, store.Account{Address: "a@example.org"})
	in, _ := s.GetMailbox(ctx, acc.ID, "INBOX")
	for i := range 20 {
		if _, err := s.Deliver(ctx, store.Delivery{Blob: bytes.NewReader([]byte(fmt.Sprint("m", i))), Recipients: []store.Recipient{{AccountID: acc.ID, MailboxID: in.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	derive := func(ms []store.MessageMeta) any { calls++; return len(ms) }
	a, da, err := s.ListShared(ctx, in.ID, derive)
	if err != nil || len(a) != 20 || da != 20 {
		t.Fatalf("ListShared: %d messages, derived %v, %v", len(a), da, err)
	}
	b, db, _ := s.ListShared(ctx, in.ID, derive)
	if &a[0] != &b[0] || db != 20 || calls != 1 {
		t.Fatalf("unchanged mailbox: same array %v, derived %v, derive calls %d", &a[0] == &b[0], db, calls)
	}
	if cap(a) != len(a) {
		t.Errorf("shared list has spare capacity %d > %d: an append would write into it", cap(a), len(a))
	}
	// The caller's copy is its own.
	c, _ := s.ListMessages(ctx, in.ID)
	c[0].UID = 999
	if a[0].UID == 999 {
		t.Fatal("ListMessages returned the shared array")
	}

	before := slices.Clone(a)
	if _, err := s.StoreFlags(ctx, in.ID, []uint32{a[3].UID}, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagFlagged}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, in.ID, []uint32{a[5].UID, a[6].UID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, store.Delivery{Blob: bytes.NewReader([]byte("new")), Recipients: []store.Recipient{{AccountID: acc.ID, MailboxID: in.ID}}}); err != nil {
		t.Fatal(err)
	}
	n, dn, _ := s.ListShared(ctx, in.ID, derive)
	if len(n) != 19 || dn != 19 || calls != 2 || n[3].Flags&store.FlagFlagged == 0 {
		t.Fatalf("after changes: %d messages, derived %v, calls %d, flags %v", len(n), dn, calls, n[3].Flags)
	}
	if !reflect.DeepEqual(a, before) {
		t.Fatal("bringing the list forward modified the list callers held")
	}
}

// TestListCacheTrim checks lists nobody used for listIdle are dropped and
// used ones are kept.
func TestListCacheTrim(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := &listCache{now: func() time.Time { return now }, listIdle: time.Minute, trimEvery: 10 * time.Second}
	c.put(1, &cachedList{metas: make([]store.MessageMeta, 3)})
	c.put(2, &cachedList{metas: make([]store.MessageMeta, 4)})
	now = now.Add(50 * time.Second)
	c.get(2)
	now = now.Add(20 * time.Second)
	c.trim()
	if c.lists[1] != nil || c.lists[2] == nil || c.entries != 4 {
		t.Fatalf("after trim: list 1 %v, list 2 %v, entries %d", c.lists[1] != nil, c.lists[2] != nil, c.entries)
	}
	// put trims too, at most every trimEvery.
	now = now.Add(2 * time.Minute)
	c.put(3, &cachedList{metas: make([]store.MessageMeta, 1)})
	if c.lists[2] != nil || c.lists[3] == nil || c.entries != 1 {
		t.Fatalf("after put: list 2 %v, list 3 %v, entries %d", c.lists[2] != nil, c.lists[3] != nil, c.entries)
	}
}
