package store

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Content is a stored message's full bytes: its per-recipient Prefix
// followed by the shared blob.
type Content struct {
	prefix []byte
	blob   BlobReader
}

// OpenContent opens the bytes of m for reading. Close it when done.
func OpenContent(ctx context.Context, st interface {
	OpenBlob(context.Context, int64) (BlobReader, error)
}, m Message) (*Content, error) {
	b, err := st.OpenBlob(ctx, m.BlobID)
	if err != nil {
		return nil, fmt.Errorf("open message %d blob %d: %w", m.ID, m.BlobID, err)
	}
	return &Content{prefix: m.Prefix, blob: b}, nil
}

// Size is the exact RFC822.SIZE.
func (c *Content) Size() int64 { return int64(len(c.prefix)) + c.blob.Size() }

// PrefixLen is the number of bytes before the blob starts.
func (c *Content) PrefixLen() int64 { return int64(len(c.prefix)) }

// ReadAt reads across the prefix and the blob.
func (c *Content) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset")
	}
	n := 0
	pl := int64(len(c.prefix))
	if off < pl {
		n = copy(p, c.prefix[off:])
		if n == len(p) {
			return n, nil
		}
	}
	boff := off + int64(n) - pl
	m, err := c.blob.ReadAt(p[n:], boff)
	n += m
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

// Reader returns a reader over the whole content.
func (c *Content) Reader() io.Reader { return io.NewSectionReader(c, 0, c.Size()) }

// Close releases the blob.
func (c *Content) Close() error { return c.blob.Close() }

// FlagsFromNames splits IMAP flag names into system flags and keywords.
// Unknown backslash flags other than the system ones (e.g. \Recent) are
// dropped: \Recent is session state, never stored.
func FlagsFromNames(names []string) (Flags, []string) {
	var f Flags
	var kw []string
outer:
	for _, n := range names {
		for _, fn := range FlagNames {
			if strings.EqualFold(n, fn.Name) {
				f |= fn.Flag
				continue outer
			}
		}
		if strings.HasPrefix(n, `\`) {
			continue
		}
		kw = append(kw, n)
	}
	return f, kw
}

// Names returns the IMAP names of the set system flags.
func (f Flags) Names() []string {
	var out []string
	for _, fn := range FlagNames {
		if f&fn.Flag != 0 {
			out = append(out, fn.Name)
		}
	}
	return out
}
