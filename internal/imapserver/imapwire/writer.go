package imapwire

import (
	"bufio"
	"io"
	"strconv"
	"unicode/utf8"
)

// Writer writes responses. Errors are sticky: after the first write error
// every method does nothing and Flush returns the error, so response
// builders need not check each call.
type Writer struct {
	bw *bufio.Writer
	// UTF8 allows UTF-8 in quoted strings (IMAP4rev2 or UTF8=ACCEPT
	// enabled); otherwise non-ASCII strings are sent as literals.
	UTF8 bool
	err  error
}

// NewWriter returns a Writer on bw.
func NewWriter(bw *bufio.Writer) *Writer { return &Writer{bw: bw} }

// Err returns the first write error.
func (w *Writer) Err() error { return w.err }

// Flush writes buffered data to the connection.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return w.err
}

// Raw writes s unchanged.
func (w *Writer) Raw(s string) {
	if w.err == nil {
		_, w.err = w.bw.WriteString(s)
	}
}

// Bytes writes b unchanged.
func (w *Writer) Bytes(b []byte) {
	if w.err == nil {
		_, w.err = w.bw.Write(b)
	}
}

// Byte writes one byte.
func (w *Writer) Byte(c byte) {
	if w.err == nil {
		w.err = w.bw.WriteByte(c)
	}
}

// SP writes a space.
func (w *Writer) SP() { w.Byte(' ') }

// CRLF ends a response line.
func (w *Writer) CRLF() { w.Raw("\r\n") }

// Num writes a decimal number.
func (w *Writer) Num(n int64) {
	if w.err == nil {
		var buf [20]byte
		_, w.err = w.bw.Write(strconv.AppendInt(buf[:0], n, 10))
	}
}

// Unum writes an unsigned 32-bit number.
func (w *Writer) Unum(n uint32) { w.Num(int64(n)) }

// quotable reports whether s can be sent as a quoted string.
func (w *Writer) quotable(s string) bool {
	if len(s) > 1024 {
		return false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return ascii || (w.UTF8 && utf8.ValidString(s))
}

// String writes s as a quoted string, or as a literal when it cannot be
// quoted. NUL bytes, which IMAP strings cannot carry, become spaces.
func (w *Writer) String(s string) {
	if w.quotable(s) {
		w.quoted(s)
		return
	}
	b := []byte(s)
	for i, c := range b {
		if c == 0 {
			b[i] = ' '
		}
	}
	w.Literal(b)
}

func (w *Writer) quoted(s string) {
	w.Byte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			w.Raw(s[start:i])
			w.Byte('\\')
			start = i
		}
	}
	w.Raw(s[start:])
	w.Byte('"')
}

// NString writes s, or NIL when s is empty.
func (w *Writer) NString(s string) {
	if s == "" {
		w.Raw("NIL")
		return
	}
	w.String(s)
}

// AString writes s as an atom when it is one, else as a string.
func (w *Writer) AString(s string) {
	if s != "" && len(s) < 1024 && isAtomString(s) && !(len(s) == 3 && upperASCII(s) == "NIL") {
		w.Raw(s)
		return
	}
	w.String(s)
}

func isAtomString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAstringChar(s[i]) {
			return false
		}
	}
	return true
}

// Literal writes b as a literal.
func (w *Writer) Literal(b []byte) {
	w.Byte('{')
	w.Num(int64(len(b)))
	w.Raw("}\r\n")
	w.Bytes(b)
}

// LiteralFrom writes a literal of size bytes read from r; binary selects
// literal8 (~{n}).
func (w *Writer) LiteralFrom(r io.Reader, size int64, binary bool) {
	if binary {
		w.Byte('~')
	}
	w.Byte('{')
	w.Num(size)
	w.Raw("}\r\n")
	if w.err != nil {
		return
	}
	n, err := io.CopyN(w.bw, r, size)
	if err != nil {
		// The literal length is already on the wire: pad so the
		// client's parser stays in sync, and report the error.
		for ; n < size && w.err == nil; n++ {
			w.err = w.bw.WriteByte(' ')
		}
		if w.err == nil {
			w.err = err
		}
	}
}

// Tagged writes a complete tagged or untagged status response: tag (or
// "*"), status (OK/NO/BAD/BYE/PREAUTH), optional code, text.
func (w *Writer) Status(tag, status, code, text string) {
	w.Raw(tag)
	w.SP()
	w.Raw(status)
	w.SP()
	if code != "" {
		w.Byte('[')
		w.Raw(code)
		w.Raw("] ")
	}
	if text == "" {
		text = "done"
	}
	w.Raw(sanitizeText(text))
	w.CRLF()
}

// sanitizeText keeps human-readable text on one line.
func sanitizeText(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' || s[i] == 0 {
			b := []byte(s)
			for j := range b {
				if b[j] == '\r' || b[j] == '\n' || b[j] == 0 {
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return s
}
