package sqlitestore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/storetest"
)

// TestConformance runs the suite with small blobs inside the database (the
// default) and with every blob as a file, so both paths are covered.
func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name   string
		inline int64
	}{{"inline", 0}, {"files", -1}} {
		t.Run(mode.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				s, err := Open(context.Background(), t.TempDir(), Options{InlineMax: mode.inline})
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}

// TestSweepOrphans: a blob file without a committed row (a crash between
// blob write and commit) is removed at the next open; committed ones stay.
func TestSweepOrphans(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{InlineMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.AddDomain(ctx, store.Domain{Name: "example.org"})
	acc, err := s.CreateAccount(ctx, store.Account{Address: "a@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Deliver(ctx, store.Delivery{Blob: bytes.NewReader([]byte("kept")), Recipients: []store.Recipient{{AccountID: acc.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	orphan := filepath.Join(dir, "blobs", "0", "77")
	if err := os.WriteFile(orphan, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir, Options{InlineMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphan blob not swept: %v", err)
	}
	ms, err := s.GetMessages(ctx, d[0].MailboxID, []uint32{d[0].UID})
	if err != nil || len(ms) != 1 {
		t.Fatalf("committed message lost: %v %d", err, len(ms))
	}
	// The next blob id must not collide with the committed one.
	d2, err := s.Deliver(ctx, store.Delivery{Blob: bytes.NewReader([]byte("next")), Recipients: []store.Recipient{{AccountID: acc.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	ms2, _ := s.GetMessages(ctx, d2[0].MailboxID, []uint32{d2[0].UID})
	if ms2[0].BlobID == ms[0].BlobID {
		t.Fatal("blob id reused")
	}
}

// TestGroupCommitFsyncs: concurrent deliveries of large (file) blobs share
// directory fsyncs and commits, so blob-layer fsyncs per message stay close
// to one; small (inline) blobs need none of their own.
func TestGroupCommitFsyncs(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{InlineMax: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddDomain(ctx, store.Domain{Name: "example.org"})
	acc, _ := s.CreateAccount(ctx, store.Account{Address: "a@example.org"})
	before := s.BlobFsyncs()
	const n = 200
	done := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := s.Deliver(ctx, store.Delivery{Blob: bytes.NewReader(make([]byte, 4096)), Recipients: []store.Recipient{{AccountID: acc.ID}}})
			done <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	per := float64(s.BlobFsyncs()-before) / n
	t.Logf("blob-layer fsyncs per message: %.2f", per)
	if per < 1 || per > 2.01 {
		t.Fatalf("fsyncs per message %.2f, want between 1 (file) and 2 (file + dir)", per)
	}
	before = s.BlobFsyncs()
	for i := 0; i < 20; i++ {
		if _, err := s.Deliver(ctx, store.Delivery{Blob: bytes.NewReader(make([]byte, 1000)), Recipients: []store.Recipient{{AccountID: acc.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.BlobFsyncs() - before; n != 0 {
		t.Fatalf("inline blobs made %d blob fsyncs", n)
	}
}
