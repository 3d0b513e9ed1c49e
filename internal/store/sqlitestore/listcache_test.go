package sqlitestore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

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
