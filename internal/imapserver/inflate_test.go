package imapserver

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// A client using zlib's Z_PARTIAL_FLUSH (isync/mbsync does) must get its
// command decoded at once, with no more input coming.
func TestInflatePartialFlush(t *testing.T) {
	// python3: c = zlib.compressobj(6, zlib.DEFLATED, -15);
	// c.compress(cmd) + c.flush(zlib.Z_PARTIAL_FLUSH), twice.
	parts := []struct{ hex, want string }{
		{"4a3454f0f3f70fe0e50208", "a1 NOOP\r\n"},
		{"a044238560571f57e710054f3f27ff08a080b1829b6b88b38782a1959682869b8fa37bb0262f1740", "a2 SELECT INBOX\r\na3 FETCH 1:* (FLAGS)\r\n"},
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	z := newInflater(bufio.NewReaderSize(pr, 16))
	for _, p := range parts {
		data, _ := hex.DecodeString(p.hex)
		go pw.Write(data)
		got := make([]byte, 0, len(p.want))
		done := make(chan error, 1)
		go func() {
			buf := make([]byte, 100)
			for len(got) < len(p.want) {
				n, err := z.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil || string(got) != p.want {
				t.Fatalf("got %q, %v; want %q", got, err, p.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("decoder waits for more input; have %q", got)
		}
	}
}

func testInputs() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 100000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var text bytes.Buffer
	for i := 0; text.Len() < 200000; i++ {
		text.WriteString("* " + strings.Repeat("x", i%50) + " FETCH (UID 12345 FLAGS (\\Seen $Label" + string(rune('a'+i%26)) + "))\r\n")
	}
	return [][]byte{nil, []byte("a"), []byte("a1 NOOP\r\n"), bytes.Repeat([]byte{'z'}, 100000), random, text.Bytes()}
}

// Round trips through compress/flate at every level with sync flushes
// at random points, read through tiny buffers and short reads so that the
// inflater yields and resumes everywhere.
func TestInflateRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, in := range testInputs() {
		for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, flate.BestSpeed, 5, flate.BestCompression} {
			var z bytes.Buffer
			w, _ := flate.NewWriter(&z, level)
			for rest := in; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(70000))
				w.Write(rest[:n])
				rest = rest[n:]
				if rng.IntN(2) == 0 {
					w.Flush()
				}
			}
			w.Close()
			for _, r := range []io.Reader{bytes.NewReader(z.Bytes()), iotest.OneByteReader(bytes.NewReader(z.Bytes())), iotest.HalfReader(bytes.NewReader(z.Bytes()))} {
				got, err := io.ReadAll(newInflater(bufio.NewReaderSize(r, 16)))
				if err != nil || !bytes.Equal(got, in) {
					t.Fatalf("level %d, %d bytes: got %d bytes, %v", level, len(in), len(got), err)
				}
			}
		}
	}
}

func TestInflateCorrupt(t *testing.T) {
	for _, in := range []string{
		"\x07",                 // block type 3
		"\x00\x05\x00\x00\x00", // stored: LEN and NLEN disagree
		"\x01\x01\x00\xfe\xff", // stored, final, but the data is missing
		"\x03\x02\x00\x00",     // fixed code, distance beyond the start
	} {
		_, err := io.ReadAll(newInflater(bufio.NewReader(strings.NewReader(in))))
		if err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// FuzzInflate checks the inflater against compress/flate: on arbitrary
// input it must not panic, and whenever compress/flate decodes a stream
// completely, the inflater must produce the same bytes. Data compressed by
// compress/flate must round-trip.
func FuzzInflate(f *testing.F) {
	for _, in := range testInputs() {
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestSpeed)
		w.Write(in[:min(len(in), 3000)])
		w.Flush()
		f.Add(z.Bytes())
	}
	for _, h := range []string{"4a3454f0f3f70fe0e50208", "0300", "010000ffff"} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, werr := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(data)), 1<<20))
		got, gerr := io.ReadAll(io.LimitReader(newInflater(bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(data)), 16)), 1<<20))
		if werr == nil && (gerr != nil || !bytes.Equal(got, want)) {
			t.Fatalf("compress/flate: %d bytes; inflater: %d bytes, %v", len(want), len(got), gerr)
		}
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, int(len(data)%11)-2)
		w.Write(data)
		w.Flush()
		got, err := io.ReadAll(io.LimitReader(newInflater(bufio.NewReaderSize(bytes.NewReader(z.Bytes()), 16)), int64(len(data))))
		if err != nil && err != io.ErrUnexpectedEOF || !bytes.Equal(got, data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// BenchmarkInflate compares the inflater with compress/flate on mail-like
// text (an APPEND through COMPRESS).
func BenchmarkInflate(b *testing.B) {
	in := testInputs()[5]
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.DefaultCompression)
	w.Write(in)
	w.Close()
	for _, name := range []string{"inflater", "compress-flate"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for i := 0; i < b.N; i++ {
				var r io.Reader
				if name == "inflater" {
					r = newInflater(bufio.NewReader(bytes.NewReader(z.Bytes())))
				} else {
					r = flate.NewReader(bytes.NewReader(z.Bytes()))
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(in)) {
					b.Fatal(n, err)
				}
			}
		})
	}
}
