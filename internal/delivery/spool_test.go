package delivery

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

// pattern returns n bytes of message-like content (lines of varying
// bytes), so misplaced offsets show up as content mismatches.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		switch {
		case i%78 == 76:
			b[i] = '\r'
		case i%78 == 77:
			b[i] = '\n'
		default:
			b[i] = byte('!' + (i*7+i/78)%90)
		}
	}
	return b
}

func readAll(t *testing.T, s *Spool) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(s, 0, s.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirEntries(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestSpool(t *testing.T) {
	head := []byte("Received: from test; Mon, 1 Jan 2024 00:00:00 +0000\r\n")
	tests := []struct {
		name    string
		body    int   // body bytes
		max     int64 // 0 = unlimited
		inFile  bool
		tooBig  bool
		nilHead bool
	}{
		{name: "empty body", body: 0},
		{name: "small", body: 100},
		{name: "small, no head", body: 100, nilHead: true},
		{name: "memory, exactly the threshold", body: memThreshold - len(head)},
		{name: "file, one over the threshold", body: memThreshold - len(head) + 1, inFile: true},
		{name: "file, 3 MiB", body: 3 << 20, inFile: true},
		{name: "memory, exactly max", body: 1000 - len(head), max: 1000},
		{name: "memory, max+1", body: 1001 - len(head), max: 1000, tooBig: true},
		{name: "memory, far over max", body: 100000, max: 1000, tooBig: true},
		{name: "max below head", body: 0, max: int64(len(head)) - 1, tooBig: true},
		{name: "file, exactly max", body: 1536<<10 - len(head), max: 1536 << 10, inFile: true},
		{name: "file, max+1", body: 1536<<10 - len(head) + 1, max: 1536 << 10, tooBig: true},
		{name: "file, far over max", body: 4 << 20, max: 1536 << 10, tooBig: true},
		{name: "max over threshold, memory-sized message", body: 5000, max: 1536 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			h := head
			if tt.nilHead {
				h = nil
			}
			body := pattern(tt.body)
			s, err := NewSpool(h, bytes.NewReader(body), tt.max, tmp)
			if tt.tooBig {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("NewSpool: %v, want ErrTooLarge", err)
				}
				if n := dirEntries(t, tmp); n != 0 {
					t.Errorf("%d files left in the spool directory", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			want := append(append([]byte{}, h...), body...)
			if s.Size() != int64(len(want)) {
				t.Errorf("Size = %d, want %d", s.Size(), len(want))
			}
			if got := readAll(t, s); !bytes.Equal(got, want) {
				t.Errorf("content differs (got %d bytes, want %d)", len(got), len(want))
			}
			if (s.file != nil) != tt.inFile {
				t.Errorf("spilled to file = %v, want %v", s.file != nil, tt.inFile)
			}
			if len(s.mem) > memThreshold {
				t.Errorf("%d bytes held in memory, threshold %d", len(s.mem), memThreshold)
			}
			// The spool file is unlinked at once: nothing to leak even if
			// the process dies.
			if n := dirEntries(t, tmp); n != 0 {
				t.Errorf("%d names in the spool directory while the spool is open", n)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestSpoolReadError(t *testing.T) {
	boom := errors.New("connection reset")
	for _, n := range []int{10, 3 << 20} { // memory phase, file phase
		tmp := t.TempDir()
		_, err := NewSpool([]byte("H: x\r\n"), &failingReader{data: pattern(n), err: boom}, 0, tmp)
		if !errors.Is(err, boom) {
			t.Errorf("%d bytes then error: %v, want the reader's error", n, err)
		}
		if errors.Is(err, ErrTooLarge) {
			t.Errorf("read error reported as too large")
		}
		if k := dirEntries(t, tmp); k != 0 {
			t.Errorf("%d files left after a read error", k)
		}
	}
}

func TestSpoolBadTmpDir(t *testing.T) {
	_, err := NewSpool(nil, bytes.NewReader(pattern(2<<20)), 0, "/nonexistent/spool/dir")
	if err == nil {
		t.Fatal("spilling into a missing directory succeeded")
	}
	// Small messages never touch the directory.
	s, err := NewSpool(nil, bytes.NewReader(pattern(10)), 0, "/nonexistent/spool/dir")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestSpoolReadAt(t *testing.T) {
	data := []byte("0123456789")
	for _, s := range []*Spool{SpoolBytes(data), mustSpool(t, data, t.TempDir())} {
		p := make([]byte, 4)
		if n, err := s.ReadAt(p, 2); n != 4 || err != nil || string(p) != "2345" {
			t.Errorf("ReadAt(4, 2) = %d, %v, %q", n, err, p)
		}
		if n, err := s.ReadAt(p, 8); n != 2 || err != io.EOF || string(p[:n]) != "89" {
			t.Errorf("ReadAt(4, 8) = %d, %v, %q", n, err, p[:n])
		}
		if n, err := s.ReadAt(p, 10); n != 0 || err != io.EOF {
			t.Errorf("ReadAt(4, 10) = %d, %v", n, err)
		}
		if n, err := s.ReadAt(p, 100); n != 0 || err != io.EOF {
			t.Errorf("ReadAt(4, 100) = %d, %v", n, err)
		}
		s.Close()
	}
}

// mustSpool makes a file-backed spool of data by prefixing nothing and
// forcing the file path (data is padded past the threshold, then the
// spool is read back only up to len(data) by the callers' offsets).
func mustSpool(t *testing.T, data []byte, tmp string) *Spool {
	t.Helper()
	big := append(append([]byte{}, data...), make([]byte, memThreshold)...)
	s, err := NewSpool(nil, bytes.NewReader(big), 0, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if s.file == nil {
		t.Fatal("not file-backed")
	}
	// Trim to data: the file is only read through ReadAt, so truncating
	// it gives a file-backed spool of exactly data.
	if err := s.file.Truncate(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	s.size = int64(len(data))
	return s
}

func TestSpoolHeader(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		max  int
		want string
	}{
		{"CRLF", "A: b\r\nC: d\r\n\r\nbody\r\n", 1000, "A: b\r\nC: d\r\n\r\n"},
		{"LF", "A: b\nC: d\n\nbody\n", 1000, "A: b\nC: d\n\n"},
		{"LF header, CRLF blank line in body", "A: b\n\nbody\r\n\r\nReceived: x\r\n", 1000, "A: b\n\n"},
		{"CRLF header, LF blank line in body", "A: b\r\n\r\nbody\n\nReceived: x\n", 1000, "A: b\r\n\r\n"},
		{"LF then CRLF blank line", "A: b\n\r\nbody\r\n", 1000, "A: b\n\r\n"},
		{"CRLF then LF blank line", "A: b\r\n\nbody\r\n", 1000, "A: b\r\n\n"},
		{"no body", "A: b\r\nC: d\r\n", 1000, "A: b\r\nC: d\r\n"},
		{"no blank line, no final newline", "A: b", 1000, "A: b"},
		{"empty header CRLF", "\r\nbody\r\n\r\nmore", 1000, "\r\n"},
		{"empty header LF", "\nbody\n\nmore", 1000, "\n"},
		{"truncated by max", "A: b\r\nC: d\r\n\r\nbody", 6, "A: b\r\n"},
		{"max exactly the header", "A: b\r\n\r\nbody", 8, "A: b\r\n\r\n"},
		{"max zero", "A: b\r\n\r\n", 0, ""},
		{"empty message", "", 100, ""},
		{"CR inside a line is not a blank line", "A: b\r\rC: d\r\n\r\nx", 100, "A: b\r\rC: d\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(SpoolBytes([]byte(tt.msg)).Header(tt.max)); got != tt.want {
				t.Errorf("Header(%d) of %q = %q, want %q", tt.max, tt.msg, got, tt.want)
			}
			if got, want := string(SpoolBytes([]byte(tt.msg)).Header(tt.max)), string(refHeader([]byte(tt.msg), tt.max)); got != want {
				t.Errorf("reference disagrees: %q vs %q", got, want)
			}
		})
	}
	// A file-backed spool gives the same header.
	s := mustSpool(t, []byte("A: b\nC: d\n\nbody\r\n\r\n"), t.TempDir())
	defer s.Close()
	if got := string(s.Header(1000)); got != "A: b\nC: d\n\n" {
		t.Errorf("file spool Header = %q", got)
	}
}

// refHeader is the obvious line-by-line definition of Header: lines up to
// and including the first empty one (LF or CRLF), within max bytes.
func refHeader(msg []byte, max int) []byte {
	if max < len(msg) {
		msg = msg[:max]
	}
	off := 0
	for off < len(msg) {
		i := bytes.IndexByte(msg[off:], '\n')
		if i < 0 {
			break
		}
		line := msg[off : off+i]
		off += i + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return msg[:off]
		}
	}
	return msg
}

func FuzzSpoolHeader(f *testing.F) {
	f.Add([]byte("A: b\r\n\r\nbody"), 100)
	f.Add([]byte("A: b\n\nbody\r\n\r\n"), 100)
	f.Add([]byte("\r\n"), 1)
	f.Add([]byte("Received: x\r\nReceived: y\r\n\r\n"), 20)
	f.Fuzz(func(t *testing.T, msg []byte, max int) {
		if max < 0 || max > 1<<20 {
			return
		}
		got := SpoolBytes(msg).Header(max)
		if want := refHeader(msg, max); !bytes.Equal(got, want) {
			t.Fatalf("Header(%d) of %q = %q, want %q", max, msg, got, want)
		}
		if CountReceived(got) > CountReceived(msg) {
			t.Fatalf("header counts more Received fields than the message")
		}
	})
}
