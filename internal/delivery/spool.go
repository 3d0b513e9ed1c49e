package delivery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge is returned when a message exceeds the size limit.
var ErrTooLarge = errors.New("message exceeds size limit")

// Spool holds one incoming message while it is checked and delivered: in
// memory up to a threshold, in a temporary file beyond, so memory per
// session stays bounded however large the accepted size limit is.
type Spool struct {
	mem  []byte
	file *os.File
	size int64
}

// memThreshold is how much of a message stays in memory.
const memThreshold = 1 << 20

// NewSpool reads r (after writing head, e.g. our Received header) into a
// spool. Messages over max bytes (head included; 0 = unlimited) fail with
// ErrTooLarge. tmpDir is where large messages spill.
func NewSpool(head []byte, r io.Reader, max int64, tmpDir string) (*Spool, error) {
	s := &Spool{}
	buf := bytes.NewBuffer(make([]byte, 0, 8192))
	buf.Write(head)
	limit := int64(memThreshold) - int64(len(head))
	if limit < 0 {
		limit = 0
	}
	n, err := io.CopyN(buf, r, limit+1)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read message: %w", err)
	}
	if max > 0 && int64(buf.Len()) > max {
		return nil, ErrTooLarge
	}
	if n <= limit {
		s.mem = buf.Bytes()
		s.size = int64(len(s.mem))
		return s, nil
	}
	f, err := os.CreateTemp(tmpDir, "spool-*")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	// Unlink at once: the file lives while open and never outlives a
	// crash.
	os.Remove(f.Name())
	s.file = f
	if _, err := f.Write(buf.Bytes()); err != nil {
		s.Close()
		return nil, fmt.Errorf("write spool file: %w", err)
	}
	src := r
	if max > 0 {
		src = io.LimitReader(r, max-int64(buf.Len())+1)
	}
	m, err := io.Copy(f, src)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("read message: %w", err)
	}
	s.size = int64(buf.Len()) + m
	if max > 0 && s.size > max {
		s.Close()
		return nil, ErrTooLarge
	}
	return s, nil
}

// SpoolBytes makes a spool of a byte slice (APPEND, tests, HTTP API).
func SpoolBytes(b []byte) *Spool { return &Spool{mem: b, size: int64(len(b))} }

// Size is the message size.
func (s *Spool) Size() int64 { return s.size }

// ReadAt implements io.ReaderAt.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	if s.file != nil {
		return s.file.ReadAt(p, off)
	}
	if off >= int64(len(s.mem)) {
		return 0, io.EOF
	}
	n := copy(p, s.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Header returns the message header (up to and including the blank line),
// at most max bytes.
func (s *Spool) Header(max int) []byte {
	n := int64(max)
	if n > s.size {
		n = s.size
	}
	b := make([]byte, n)
	k, _ := s.ReadAt(b, 0)
	b = b[:k]
	if i := headerEnd(b); i >= 0 {
		return b[:i]
	}
	return b
}

// headerEnd returns the offset just past the first empty line (LF or CRLF)
// of b, or -1. Searching for "\r\n\r\n" and "\n\n" separately is not
// enough: an LF-only header followed by a CRLF blank line in the body, or
// a header ending in "\n\r\n", would count body lines as header lines.
func headerEnd(b []byte) int {
	for off := 0; off < len(b); {
		switch {
		case b[off] == '\n':
			return off + 1
		case b[off] == '\r' && off+1 < len(b) && b[off+1] == '\n':
			return off + 2
		}
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	return -1
}

// Close releases the spool file.
func (s *Spool) Close() error {
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		return err
	}
	return nil
}
