package imapload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Bounds on what a server may send, so a broken or hostile server cannot
// make the tool allocate without limit.
const (
	// MaxLine bounds one response line (without its literals). An
	// untagged SEARCH over 100,000 messages is about 600 KB.
	MaxLine = 16 << 20
	// MaxLiteral bounds one literal (a message body in FETCH).
	MaxLiteral = 256 << 20
	// maxLiterals bounds the literals in one response.
	maxLiterals = 1000
)

// ErrProtocol is wrapped by errors about responses that do not follow the
// IMAP grammar or exceed the bounds above.
var ErrProtocol = errors.New("imap protocol error")

// Response is one server response: a tagged completion, an untagged
// response ("*") or a continuation request ("+").
type Response struct {
	// Tag is "*", "+" or the tag of the command completed.
	Tag string
	// Text is everything after the tag, with the lines of a response that
	// carries literals joined; each literal is left as its "{n}" marker
	// and its bytes are in Literals, in order.
	Text []byte
	// Literals holds the literal data, in order.
	Literals [][]byte
}

// readResponse reads one response. Lines may end in CRLF or a bare LF.
func readResponse(r *bufio.Reader) (*Response, error) {
	line, err := readLine(r, MaxLine)
	if err != nil {
		return nil, err
	}
	sp := bytes.IndexByte(line, ' ')
	var resp Response
	if sp < 0 {
		if len(line) == 1 && line[0] == '+' { // "+" with no text
			return &Response{Tag: "+"}, nil
		}
		return nil, fmt.Errorf("%w: response without tag separator: %.80q", ErrProtocol, line)
	}
	resp.Tag = string(line[:sp])
	if resp.Tag == "" {
		return nil, fmt.Errorf("%w: empty tag: %.80q", ErrProtocol, line)
	}
	text := line[sp+1:]
	for {
		n, ok, err := literalSuffix(text)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if len(resp.Literals) >= maxLiterals {
			return nil, fmt.Errorf("%w: more than %d literals in one response", ErrProtocol, maxLiterals)
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(r, lit); err != nil {
			return nil, fmt.Errorf("reading literal of %d bytes: %w", n, err)
		}
		resp.Literals = append(resp.Literals, lit)
		more, err := readLine(r, MaxLine-len(text))
		if err != nil {
			return nil, err
		}
		text = append(text, more...)
	}
	resp.Text = text
	return &resp, nil
}

// readLine returns the next line without its line end, refusing lines
// longer than max bytes. The returned slice is newly allocated.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max+2 {
			return nil, fmt.Errorf("%w: response line longer than %d bytes", ErrProtocol, max)
		}
		line = append(line, frag...)
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// literalSuffix reports whether line ends with a literal announcement
// "{n}" (or literal8 "~{n}", or the client forms "{n+}"/"{n-}", which a
// lenient reader may as well accept) and returns n.
func literalSuffix(line []byte) (n int, ok bool, err error) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, nil
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false, nil
	}
	digits := line[open+1 : len(line)-1]
	if l := len(digits); l > 0 && (digits[l-1] == '+' || digits[l-1] == '-') {
		digits = digits[:l-1]
	}
	if !isDigits(digits) {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil || len(digits) > 10 || v > MaxLiteral {
		return 0, false, fmt.Errorf("%w: literal of %s bytes exceeds the limit of %d", ErrProtocol, digits, MaxLiteral)
	}
	return int(v), true, nil
}

// Status returns the status word of a tagged response or an untagged
// status response: "OK", "NO", "BAD", "BYE" or "PREAUTH"; "" otherwise.
func (r *Response) Status() string {
	w := firstWord(r.Text)
	switch w {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		return w
	}
	return ""
}

// Code returns the text of the bracketed response code of a status
// response ("APPENDUID 38505 3955", "CAPABILITY IMAP4rev1 ..."), or "".
func (r *Response) Code() string {
	if r.Status() == "" {
		return ""
	}
	rest := r.Text[len(r.Status()):]
	if len(rest) < 2 || rest[0] != ' ' || rest[1] != '[' {
		return ""
	}
	end := bytes.IndexByte(rest, ']')
	if end < 0 {
		return ""
	}
	return string(rest[2:end])
}

// Kind returns the name of an untagged response in upper case: "EXISTS",
// "EXPUNGE", "FETCH" and "RECENT" for "* n NAME ..." (with n returned as
// num), otherwise the first word ("SEARCH", "CAPABILITY", "OK", ...).
func (r *Response) Kind() (kind string, num uint32) {
	w := firstWord(r.Text)
	if w == "" || w[0] < '0' || w[0] > '9' {
		return upper(w), 0
	}
	v, err := strconv.ParseUint(w, 10, 32)
	if err != nil {
		return "", 0
	}
	rest := r.Text[len(w):]
	if len(rest) < 2 || rest[0] != ' ' {
		return "", 0
	}
	return upper(firstWord(rest[1:])), uint32(v)
}

// Numbers returns the numbers of an untagged SEARCH response ("SEARCH 1 4
// 9"), or of the ALL part of an ESEARCH response as a count of the
// sequence set. Anything that is not a number is ignored.
func (r *Response) Numbers() int {
	kind, _ := r.Kind()
	f := bytes.Fields(r.Text)
	switch kind {
	case "SEARCH":
		n := 0
		for _, w := range f[1:] {
			if isDigits(w) {
				n++
			}
		}
		return n
	case "ESEARCH":
		for i := 0; i+1 < len(f); i++ {
			switch upper(string(f[i])) {
			case "COUNT":
				v, _ := strconv.Atoi(string(f[i+1]))
				return v
			case "ALL":
				return setSize(string(f[i+1]))
			}
		}
	}
	return 0
}

// setSize counts the members of a sequence set like "1:4,7,9:10".
func setSize(s string) int {
	n := 0
	for s != "" {
		var part string
		part, s, _ = cut(s, ',')
		lo, hi, isRange := cut(part, ':')
		a, err1 := strconv.Atoi(lo)
		if !isRange {
			if err1 == nil {
				n++
			}
			continue
		}
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil {
			continue
		}
		if a > b {
			a, b = b, a
		}
		n += b - a + 1
	}
	return n
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func firstWord(b []byte) string {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func upper(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'a' && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
