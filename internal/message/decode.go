package message

import (
	"io"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/transform"
)

// lookupCharset returns the decoder for a MIME charset name. It returns nil
// for UTF-8 and US-ASCII (passed through as is) and for unknown charsets.
// WHATWG labels are tried first (they map e.g. ISO-8859-1 to its superset
// windows-1252, as browsers and mail clients do), then IANA names.
func lookupCharset(name string) encoding.Encoding {
	name = strings.Trim(strings.TrimSpace(name), `"'`)
	// RFC 2231 language suffix: "utf-8*en".
	if i := strings.IndexByte(name, '*'); i >= 0 {
		name = name[:i]
	}
	if name == "" || len(name) > 64 {
		return nil
	}
	switch strings.ToLower(name) {
	case "utf-8", "utf8", "us-ascii", "ascii", "unicode-1-1-utf-8":
		return nil
	}
	if enc, err := htmlindex.Get(name); err == nil && enc != nil {
		return enc
	}
	if enc, err := ianaindex.MIME.Encoding(name); err == nil && enc != nil {
		return enc
	}
	if enc, err := ianaindex.IANA.Encoding(name); err == nil && enc != nil {
		return enc
	}
	return nil
}

// CharsetReader returns a reader converting r from the named MIME charset
// to UTF-8. UTF-8, US-ASCII and unknown charsets are passed through
// unchanged: showing the bytes is more useful than failing.
func CharsetReader(charset string, r io.Reader) io.Reader {
	enc := lookupCharset(charset)
	if enc == nil {
		return r
	}
	return transform.NewReader(r, enc.NewDecoder())
}

// decodeCharset converts b from charset to a valid UTF-8 string. Unknown
// charsets and conversion failures fall back to the bytes as UTF-8, with
// invalid bytes taken as windows-1252.
func decodeCharset(charset string, b []byte) string {
	if enc := lookupCharset(charset); enc != nil {
		if out, err := enc.NewDecoder().Bytes(b); err == nil {
			return text(out)
		}
	}
	return text(b)
}

// DecodeReader returns a reader decoding the Content-Transfer-Encoding of
// r. base64 and quoted-printable are decoded tolerantly (stray characters
// are skipped or passed through, never an error); 7bit, 8bit, binary and
// unknown encodings are passed through.
func DecodeReader(encoding string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "base64":
		return &base64Reader{r: r}
	case "quoted-printable":
		return &qpReader{r: r}
	}
	return r
}

// base64Value maps base64 characters (standard and URL alphabet) to their
// value; 0xff for padding, 0xfe for anything else (skipped).
var base64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xfe
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = byte(i)
	}
	t['-'], t['_'] = 62, 63
	t['='] = 0xff
	return t
}()

const decodeChunk = 8 << 10

// base64Reader decodes base64, skipping characters outside the alphabet.
// Padding ends a quantum, and decoding resumes after it, so concatenated
// base64 blobs decode too.
type base64Reader struct {
	r    io.Reader
	in   []byte
	out  []byte
	pend []byte // undelivered decoded bytes, aliasing out
	acc  uint32 // bits of the current quantum
	nacc int    // characters in the current quantum
	err  error
	// empty counts consecutive empty reads, to stop on a reader that
	// never makes progress.
	empty int
}

func (b *base64Reader) Read(p []byte) (int, error) {
	for len(b.pend) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.in == nil {
			b.in = make([]byte, decodeChunk)
			b.out = make([]byte, 0, decodeChunk)
		}
		n, err := b.r.Read(b.in)
		if n == 0 && err == nil {
			if b.empty++; b.empty >= 100 {
				err = io.ErrNoProgress
			}
		} else {
			b.empty = 0
		}
		out := b.out[:0]
		for _, c := range b.in[:n] {
			v := base64Value[c]
			switch v {
			case 0xfe:
				continue
			case 0xff:
				out = b.flush(out)
				continue
			}
			b.acc = b.acc<<6 | uint32(v)
			b.nacc++
			if b.nacc == 4 {
				out = append(out, byte(b.acc>>16), byte(b.acc>>8), byte(b.acc))
				b.acc, b.nacc = 0, 0
			}
		}
		if err != nil {
			out = b.flush(out)
			b.err = err
		}
		b.out = out
		b.pend = out
	}
	n := copy(p, b.pend)
	b.pend = b.pend[n:]
	return n, nil
}

// flush emits the bytes of an incomplete quantum (2 or 3 characters).
func (b *base64Reader) flush(out []byte) []byte {
	switch b.nacc {
	case 2:
		out = append(out, byte(b.acc>>4))
	case 3:
		out = append(out, byte(b.acc>>10), byte(b.acc>>2))
	}
	b.acc, b.nacc = 0, 0
	return out
}

// qpReader decodes quoted-printable tolerantly: invalid escapes are passed
// through literally, lower-case hex is accepted, trailing white space on
// lines is removed (RFC 2045 6.7 rule 3), soft line breaks may have white
// space before the line break, and line breaks are kept as they are.
type qpReader struct {
	r     io.Reader
	in    []byte
	out   []byte
	pend  []byte
	state int
	hex1  byte
	ws    []byte // pending white space (dropped at the end of a line)
	err   error
	empty int
}

const (
	qpNormal = iota
	qpCR     // saw CR
	qpEq     // saw '='
	qpEqHex  // saw '=' and one hex digit
	qpEqWS   // saw '=' followed by white space
	qpEqCR   // saw '=' [white space] CR
)

// maxQPWS bounds buffered white space; longer runs are emitted.
const maxQPWS = 1024

func (q *qpReader) Read(p []byte) (int, error) {
	for len(q.pend) == 0 {
		if q.err != nil {
			return 0, q.err
		}
		if q.in == nil {
			q.in = make([]byte, decodeChunk)
			q.out = make([]byte, 0, decodeChunk+maxQPWS+8)
		}
		n, err := q.r.Read(q.in)
		if n == 0 && err == nil {
			if q.empty++; q.empty >= 100 {
				err = io.ErrNoProgress
			}
		} else {
			q.empty = 0
		}
		out := q.out[:0]
		for _, c := range q.in[:n] {
			out = q.step(out, c)
		}
		if err != nil {
			out = q.finish(out)
			q.err = err
		}
		q.out = out
		q.pend = out
	}
	n := copy(p, q.pend)
	q.pend = q.pend[n:]
	return n, nil
}

func (q *qpReader) step(out []byte, c byte) []byte {
	for {
		switch q.state {
		case qpNormal:
			switch c {
			case '=':
				out = append(out, q.ws...)
				q.ws = q.ws[:0]
				q.state = qpEq
			case ' ', '\t':
				if len(q.ws) >= maxQPWS {
					out = append(out, q.ws...)
					q.ws = q.ws[:0]
				}
				q.ws = append(q.ws, c)
			case '\r':
				q.state = qpCR
			case '\n':
				q.ws = q.ws[:0]
				out = append(out, '\n')
			default:
				out = append(out, q.ws...)
				q.ws = q.ws[:0]
				out = append(out, c)
			}
			return out
		case qpCR:
			if c == '\n' {
				q.ws = q.ws[:0]
				out = append(out, '\r', '\n')
				q.state = qpNormal
				return out
			}
			out = append(out, q.ws...)
			q.ws = q.ws[:0]
			out = append(out, '\r')
			q.state = qpNormal
			continue // reprocess c
		case qpEq:
			switch {
			case isHex(c):
				q.hex1 = c
				q.state = qpEqHex
				return out
			case c == '\n':
				q.state = qpNormal // soft line break
				return out
			case c == '\r':
				q.state = qpEqCR
				return out
			case c == ' ' || c == '\t':
				q.ws = append(q.ws[:0], c)
				q.state = qpEqWS
				return out
			}
			out = append(out, '=')
			q.state = qpNormal
			continue
		case qpEqHex:
			if isHex(c) {
				out = append(out, unhex(q.hex1)<<4|unhex(c))
				q.state = qpNormal
				return out
			}
			out = append(out, '=', q.hex1)
			q.state = qpNormal
			continue
		case qpEqWS:
			switch c {
			case ' ', '\t':
				if len(q.ws) < maxQPWS {
					q.ws = append(q.ws, c)
					return out
				}
			case '\r':
				q.ws = q.ws[:0]
				q.state = qpEqCR
				return out
			case '\n':
				q.ws = q.ws[:0]
				q.state = qpNormal
				return out
			}
			// '=' followed by white space and text: literal.
			out = append(out, '=')
			out = append(out, q.ws...)
			q.ws = q.ws[:0]
			q.state = qpNormal
			continue
		case qpEqCR:
			// Soft line break ("=\r\n"); a bare CR counts as well.
			q.state = qpNormal
			if c == '\n' {
				return out
			}
			continue
		}
		return out
	}
}

// finish handles the end of input: pending white space is trailing and
// dropped, an incomplete escape is kept literally.
func (q *qpReader) finish(out []byte) []byte {
	switch q.state {
	case qpCR:
		out = append(out, '\r')
	case qpEq:
		out = append(out, '=')
	case qpEqHex:
		out = append(out, '=', q.hex1)
	}
	q.ws = q.ws[:0]
	q.state = qpNormal
	return out
}
