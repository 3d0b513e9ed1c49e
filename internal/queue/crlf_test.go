package queue

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

func TestCRLFReader(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"a\nb\n":            "a\r\nb\r\n",
		"a\r\nb\r\n":        "a\r\nb\r\n",
		"a\rb\n\n":          "a\rb\r\n\r\n",
		"\n\r\n\n":          "\r\n\r\n\r\n",
		"no newline at end": "no newline at end",
	} {
		got, err := io.ReadAll(iotest.OneByteReader(NewCRLFReader(bytes.NewReader([]byte(in)))))
		if err != nil || string(got) != want {
			t.Errorf("%q: got %q, want %q (%v)", in, got, want, err)
		}
	}
}

func FuzzCRLFReader(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\rd\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(NewCRLFReader(bytes.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range out {
			if c == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, out)
			}
		}
		// Removing the inserted CRs gives the input back.
		if !bytes.Equal(bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n"))) {
			t.Fatalf("content changed: %q -> %q", in, out)
		}
	})
}
