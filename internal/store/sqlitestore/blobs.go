package sqlitestore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mailstead/mailstead/internal/store"
)

// blobDir keeps message bodies as immutable files, one per blob, named by
// the blob's id and fanned out 4096 to a directory:
//
//	data/blobs/<id>>12 in hex>/<id>
//
// A blob file is written and fsynced (and its directory fsynced) before the
// metadata transaction that references it commits, so a committed message
// always has its bytes. A crash between the two leaves an unreferenced file
// that sweep removes on the next start. Files never change after they are
// written, which makes an incremental backup a copy of the files that are
// new since the last one plus a SQLite snapshot.
type blobDir struct {
	root   string
	nextID atomic.Int64
	fsyncs atomic.Int64 // counted for tests and the fsyncs-per-message metric

	mu      sync.Mutex
	madeDir map[string]bool // directories known to exist and be durable
}

func newBlobDir(root string) (*blobDir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create blob directory: %w", err)
	}
	return &blobDir{root: root, madeDir: map[string]bool{}}, nil
}

func (b *blobDir) dir(id int64) string {
	return filepath.Join(b.root, strconv.FormatInt(id>>12, 16))
}

func (b *blobDir) path(id int64) string {
	return filepath.Join(b.dir(id), strconv.FormatInt(id, 10))
}

// write stores the content of src as blob id and fsyncs the file. It returns
// the directory that must be fsynced before the referencing commit.
func (b *blobDir) write(id int64, src store.Blob) (string, error) {
	dir := b.dir(id)
	if err := b.ensureDir(dir); err != nil {
		return "", err
	}
	p := filepath.Join(dir, strconv.FormatInt(id, 10))
	// O_TRUNC and not O_EXCL: an id can only collide with an orphan of a
	// previous crash that sweep did not remove yet, which is garbage.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("create blob %d: %w", id, err)
	}
	n, err := io.Copy(f, io.NewSectionReader(src, 0, src.Size()))
	if err == nil && n != src.Size() {
		err = fmt.Errorf("short copy: %d of %d bytes", n, src.Size())
	}
	if err == nil {
		err = f.Sync()
		b.fsyncs.Add(1)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return "", fmt.Errorf("write blob %d: %w", id, err)
	}
	return dir, nil
}

func (b *blobDir) ensureDir(dir string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.madeDir[dir] {
		return nil
	}
	if _, err := os.Stat(dir); err != nil {
		if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
			return fmt.Errorf("create blob directory: %w", err)
		}
		// The new directory's entry in the root must be durable too.
		if err := b.syncDir(b.root); err != nil {
			return err
		}
	}
	b.madeDir[dir] = true
	return nil
}

func (b *blobDir) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	err = d.Sync()
	b.fsyncs.Add(1)
	d.Close()
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

func (b *blobDir) remove(id int64) error {
	err := os.Remove(b.path(id))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove blob %d: %w", id, err)
	}
	return nil
}

type blobFile struct {
	*os.File
	size int64
}

func (f blobFile) Size() int64 { return f.size }

func (b *blobDir) open(id int64) (store.BlobReader, error) {
	f, err := os.Open(b.path(id))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("blob %d: %w", id, store.ErrNotFound)
		}
		return nil, fmt.Errorf("open blob %d: %w", id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat blob %d: %w", id, err)
	}
	return blobFile{f, fi.Size()}, nil
}

// sweep removes blob files that no committed row references: orphans of a
// crash between blob write and commit, and files whose removal after a
// delete was interrupted. known reports whether an id is referenced.
func (b *blobDir) sweep(known func(int64) bool) (removed int, err error) {
	dirs, err := os.ReadDir(b.root)
	if err != nil {
		return 0, fmt.Errorf("read blob directory: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(b.root, d.Name()))
		if err != nil {
			return removed, fmt.Errorf("read blob directory: %w", err)
		}
		for _, f := range files {
			name := f.Name()
			id, perr := strconv.ParseInt(name, 10, 64)
			if perr != nil || strings.HasPrefix(name, ".") {
				continue // not ours; leave it alone
			}
			if !known(id) {
				if err := os.Remove(filepath.Join(b.root, d.Name(), name)); err == nil {
					removed++
				}
			}
		}
	}
	return removed, nil
}
