package arc

import (
	"bufio"
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// RFC 6376 section 3.4.6, example 1 (relaxed) and 2 (simple).
func TestCanonicalizationRFCExample(t *testing.T) {
	hdr := "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n"
	body := " C \r\nD \t E\r\n\r\n\r\n"
	fields, err := readHeader(bufio.NewReader(strings.NewReader(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	var relaxed, simple string
	for _, f := range fields {
		relaxed += canonHeader(canonRelaxed, f)
		simple += canonHeader(canonSimple, f)
	}
	if relaxed != "a:X\r\nb:Y Z\r\n" {
		t.Errorf("relaxed header %q", relaxed)
	}
	if simple != "A: X\r\nB : Y\t\r\n\tZ  \r\n" {
		t.Errorf("simple header %q", simple)
	}
	if got := canonBody(t, canonRelaxed, body, -1, 1000); got != " C\r\nD E\r\n" {
		t.Errorf("relaxed body %q", got)
	}
	if got := canonBody(t, canonSimple, body, -1, 1000); got != " C \r\nD \t E\r\n" {
		t.Errorf("simple body %q", got)
	}
}

func TestBodyCanonicalization(t *testing.T) {
	for _, tc := range []struct {
		in, relaxed, simple string
	}{
		{"", "", "\r\n"},
		{"\r\n", "", "\r\n"},
		{"\r\n\r\n", "", "\r\n"},
		{"a", "a\r\n", "a\r\n"},
		{"a  ", "a\r\n", "a  \r\n"},
		{"a\n\nb\n\n\n", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},
		{"  \r\n", "", "  \r\n"},
		{"x\r\n \t \r\n", "x\r\n", "x\r\n \t \r\n"},
		{"a\rb\r\n", "a\rb\r\n", "a\rb\r\n"},
		{"a\r", "a\r\r\n", "a\r\r\n"},
		{"\ta\t\tb \r\n", " a b\r\n", "\ta\t\tb \r\n"},
	} {
		for _, chunk := range []int{1, 2, 3, 1000} {
			if got := canonBody(t, canonRelaxed, tc.in, -1, chunk); got != tc.relaxed {
				t.Errorf("relaxed(%q) chunk %d = %q, want %q", tc.in, chunk, got, tc.relaxed)
			}
			if got := canonBody(t, canonSimple, tc.in, -1, chunk); got != tc.simple {
				t.Errorf("simple(%q) chunk %d = %q, want %q", tc.in, chunk, got, tc.simple)
			}
		}
	}
	// l= cuts the canonical body.
	if got := canonBody(t, canonRelaxed, "hello  world\r\n", 7, 3); got != "hello w" {
		t.Errorf("limited = %q", got)
	}
}

func canonBody(t testing.TB, canon, body string, limit int64, chunk int) string {
	t.Helper()
	var out bytes.Buffer
	c := newBodyCanonicalizer(&out, canon, limit)
	for b := []byte(body); len(b) > 0; {
		n := min(chunk, len(b))
		if _, err := c.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

var (
	reLineEnd  = regexp.MustCompile(`\r?\n`)
	reTrailWSP = regexp.MustCompile(`[\t ]+\r\n`)
	reWSP      = regexp.MustCompile(`[\t ]+`)
)

// refBody is the whole-buffer canonicalization dkimpy uses, after turning
// line ends into CRLF and ending the body with one as SMTP would.
func refBody(canon, body string) string {
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\r\n"
	}
	s := reLineEnd.ReplaceAllString(body, "\r\n")
	if canon == canonRelaxed {
		s = reWSP.ReplaceAllString(reTrailWSP.ReplaceAllString(s, "\r\n"), " ")
	}
	for strings.HasSuffix(s, "\r\n\r\n") {
		s = strings.TrimSuffix(s, "\r\n")
	}
	if s == "\r\n" || s == "" {
		if canon == canonRelaxed {
			return ""
		}
		return "\r\n"
	}
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

// FuzzBodyCanonicalization compares the streaming canonicalizer, fed in
// chunks of any size, with the whole-buffer reference.
func FuzzBodyCanonicalization(f *testing.F) {
	f.Add([]byte(" C \r\nD \t E\r\n\r\n\r\n"), uint8(1))
	f.Add([]byte("a\n\n \n\t\r\n"), uint8(2))
	f.Add([]byte("x\r\r\n \r"), uint8(3))
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8) {
		n := int(chunk)%64 + 1
		for _, canon := range []string{canonSimple, canonRelaxed} {
			got := canonBody(t, canon, string(body), -1, n)
			if want := refBody(canon, string(body)); got != want {
				t.Fatalf("%s(%q) in chunks of %d = %q, want %q", canon, body, n, got, want)
			}
		}
	})
}

// FuzzReadHeader: any input either fails or yields fields whose raw form
// ends in CRLF and whose relaxed form is a single line.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\nbody"))
	f.Add([]byte("A: x\n continued\nB:\n\n"))
	f.Add([]byte("no colon\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields, err := readHeader(bufio.NewReader(bytes.NewReader(msg)))
		if err != nil {
			return
		}
		for _, fl := range fields {
			if !bytes.HasSuffix(fl.raw, []byte("\r\n")) || fl.name == "" {
				t.Fatalf("field %q", fl.raw)
			}
			r := relaxedHeader(fl.name, fl.value)
			if strings.Count(r, "\n") != 1 || !strings.HasSuffix(r, "\r\n") {
				t.Fatalf("relaxed %q", r)
			}
		}
	})
}
