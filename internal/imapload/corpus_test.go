package imapload

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodedText returns the decoded text of every text/* part of a message,
// using only the standard library's MIME readers (independent of the
// generator's own encoders).
func decodedText(t *testing.T, header textproto.MIMEHeader, body io.Reader) string {
	t.Helper()
	ct := header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", ct, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		var out strings.Builder
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("multipart: %v", err)
			}
			out.WriteString(decodedText(t, p.Header, p))
		}
		return out.String()
	}
	switch cte := strings.ToLower(header.Get("Content-Transfer-Encoding")); cte {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, &crlfStripper{r: body})
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "7bit", "8bit", "":
	default:
		t.Fatalf("unexpected transfer encoding %q", cte)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("decoding %s: %v", mt, err)
	}
	if !strings.HasPrefix(mt, "text/") {
		return ""
	}
	if !utf8.Valid(data) {
		t.Errorf("%s part is not valid UTF-8", mt)
	}
	return string(data)
}

// crlfStripper drops CR and LF, which base64.NewDecoder already skips for
// "\r\n" but not reliably across reads of arbitrary size.
type crlfStripper struct{ r io.Reader }

func (c *crlfStripper) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	j := 0
	for _, b := range p[:n] {
		if b != '\r' && b != '\n' {
			p[j] = b
			j++
		}
	}
	return j, err
}

func TestCorpus(t *testing.T) {
	c := Corpus{Seed: 42}
	var withWord, seen, encodedSubjects, big, small int
	kinds := map[string]int{}
	dec := new(mime.WordDecoder)
	const n = 400
	for i := range n {
		g := c.Message(i)
		if !bytes.Equal(g.Data, c.Message(i).Data) {
			t.Fatalf("message %d is not deterministic", i)
		}
		if len(g.Data) < 1000 || len(g.Data) > 52*1024 {
			t.Errorf("message %d has %d bytes, want 1–50 KiB", i, len(g.Data))
		}
		if len(g.Data) > 16*1024 {
			big++
		}
		if len(g.Data) < 4*1024 {
			small++
		}
		for _, line := range bytes.Split(g.Data, []byte("\r\n")) {
			if len(line) > 998 || bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0 {
				t.Fatalf("message %d has a bad line %.80q", i, line)
			}
		}
		m, err := mail.ReadMessage(bytes.NewReader(g.Data))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		subj, err := dec.DecodeHeader(m.Header.Get("Subject"))
		if err != nil || !utf8.ValidString(subj) {
			t.Errorf("message %d subject %q: %v", i, m.Header.Get("Subject"), err)
		}
		if strings.Contains(m.Header.Get("Subject"), "=?utf-8?") {
			encodedSubjects++
		}
		if _, err := m.Header.Date(); err != nil {
			t.Errorf("message %d date: %v", i, err)
		}
		ct, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
		kinds[ct+" "+m.Header.Get("Content-Transfer-Encoding")]++
		text := decodedText(t, textproto.MIMEHeader(m.Header), m.Body)
		if strings.Contains(strings.ToLower(text), DefaultWord) != g.HasWord {
			t.Errorf("message %d: HasWord %v but decoded text says otherwise", i, g.HasWord)
		}
		if g.HasWord {
			withWord++
		}
		if g.Seen {
			seen++
		}
	}
	t.Logf("kinds %v; with word %d, seen %d, encoded subjects %d, >16K %d, <4K %d", kinds, withWord, seen, encodedSubjects, big, small)
	for _, k := range []string{
		"text/plain 7bit", "text/plain 8bit", "text/plain quoted-printable", "text/plain base64",
		"multipart/alternative ", "multipart/mixed ",
	} {
		if kinds[k] < n/20 {
			t.Errorf("only %d messages of kind %q", kinds[k], k)
		}
	}
	if withWord < 2 || withWord > n/15 || seen < n/2 || seen > n*9/10 || encodedSubjects < n/10 || big < n/20 || small < n/3 {
		t.Errorf("distribution off: word %d, seen %d, encoded subjects %d, >16K %d, <4K %d", withWord, seen, encodedSubjects, big, small)
	}
	for _, w := range append(append([]string{}, vocabulary...), vocabularyUTF8...) {
		if strings.Contains(strings.ToLower(w), DefaultWord) {
			t.Fatalf("vocabulary word %q contains the search word", w)
		}
	}
	// Another seed gives other messages.
	if bytes.Equal(c.Message(1).Data, (&Corpus{Seed: 43}).Message(1).Data) {
		t.Error("seed has no effect")
	}
}

func TestFixedSize(t *testing.T) {
	for _, size := range []int{300, 4096, 10000} {
		m := FixedSize(7, size, "x@example.test")
		if len(m) != size {
			t.Errorf("FixedSize(%d) has %d bytes", size, len(m))
		}
		if _, err := mail.ReadMessage(bytes.NewReader(m)); err != nil {
			t.Errorf("FixedSize(%d): %v", size, err)
		}
	}
}
