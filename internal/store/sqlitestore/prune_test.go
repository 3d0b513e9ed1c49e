package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

func pruneSetup(t *testing.T, s *Store) (store.Account, int64) {
	t.Helper()
	ctx := context.Background()
	if err := s.AddDomain(ctx, store.Domain{Name: "example.org"}); err != nil {
		t.Fatal(err)
	}
	acc, err := s.CreateAccount(ctx, store.Account{Address: "a@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	var mb int64
	for i := 0; i < 3; i++ {
		d, err := s.Deliver(ctx, store.Delivery{Blob: bytes.NewReader([]byte("x")), Recipients: []store.Recipient{{AccountID: acc.ID}}})
		if err != nil {
			t.Fatal(err)
		}
		mb = d[0].MailboxID
	}
	return acc, mb
}

// TestMaintainPrunes: the maintenance loop prunes with Options.ExpungeWindow.
func TestMaintainPrunes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{ExpungeWindow: time.Millisecond, MaintainInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, mb := pruneSetup(t, s)
	if _, err := s.Expunge(ctx, mb, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := s.Changes(ctx, mb, 0)
		if err != nil {
			t.Fatal(err)
		}
		if c.ExpungesPruned && len(c.Expunged) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expunge record not pruned by the maintenance loop: %+v", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNoPruneWithNegativeWindow: a negative window keeps records.
func TestNoPruneWithNegativeWindow(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{ExpungeWindow: -1, MaintainInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, mb := pruneSetup(t, s)
	if _, err := s.Expunge(ctx, mb, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	c, err := s.Changes(ctx, mb, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.ExpungesPruned || len(c.Expunged) != 1 {
		t.Fatalf("records pruned with a negative window: %+v", c)
	}
}

// TestMigrateExpungedAt: records from before migration 8 get the migration
// time, so they are kept for a full window, not pruned at once.
func TestMigrateExpungedAt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "mailstead.db"))
	if err != nil {
		t.Fatal(err)
	}
	for v := 0; v < 7; v++ {
		if _, err := db.Exec(migrations[v]); err != nil {
			t.Fatalf("migration %d: %v", v+1, err)
		}
	}
	for _, q := range []string{
		"PRAGMA user_version = 7",
		"INSERT INTO domains(name, created_at) VALUES('example.org', 0)",
		"INSERT INTO accounts(id, address, address_key, domain, password_hash, created_at) VALUES(1, 'a@example.org', 'a@example.org', 'example.org', 'x', 0)",
		"INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext, highest_modseq, object_id) VALUES(1, 1, 'INBOX', 1, 3, 5, 'F1')",
		"INSERT INTO expunged(mailbox_id, uid, modseq) VALUES(1, 1, 4), (1, 2, 5)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	before := time.Now().Add(-time.Second)
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.PruneExpunged(ctx, before); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) records older than the migration", n, err)
	}
	c, err := s.Changes(ctx, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if c.ExpungesPruned || fmt.Sprint(c.Expunged) != "[{1 4} {2 5}]" {
		t.Fatalf("after migration: %+v", c)
	}
	if n, err := s.PruneExpunged(ctx, time.Now().Add(2*time.Second)); err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want 2", n, err)
	}
	if c, _ := s.Changes(ctx, 1, 4); !c.ExpungesPruned {
		t.Fatalf("floor not raised: %+v", c)
	}
}

// TestPruneManyMailboxes: more mailboxes than one pruning transaction
// handles are all pruned by one call.
func TestPruneManyMailboxes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{ExpungeWindow: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc, _ := pruneSetup(t, s)
	n := pruneMailboxesPerTxn + 5
	err = s.write(ctx, nil, func(tx *txn) error {
		for i := 0; i < n; i++ {
			id, err := tx.createMailbox(acc.ID, fmt.Sprintf("m%d", i), "", 0)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(tx.ctx, "INSERT INTO expunged(mailbox_id, uid, modseq, expunged_at) VALUES(?, 1, 2, 1)", id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.PruneExpunged(ctx, time.Unix(0, 2))
	if err != nil || got != n {
		t.Fatalf("pruned %d (%v), want %d", got, err, n)
	}
	var floors int
	if err := s.rdb.QueryRow("SELECT count(*) FROM mailboxes WHERE expunged_floor = 2").Scan(&floors); err != nil || floors != n {
		t.Fatalf("%d floors raised (%v), want %d", floors, err, n)
	}
}
