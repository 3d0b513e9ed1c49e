// Package imapwire is the IMAP4rev2/IMAP4rev1 wire layer of mailstead: a
// streaming command parser (quoted strings, synchronizing and LITERAL+
// literals, literal8, sequence sets with "$", search keys) and a response
// writer. It knows the grammar of RFC 9051, RFC 3501 and the extensions the
// server implements, but nothing about sessions or storage: the server asks
// it for the next Command and gets typed arguments back.
//
// Everything read from the network is bounded: line length, literal sizes,
// the number of literals per command and the nesting depth of search keys
// and parenthesised lists.
package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Error is a protocol error found while reading a command. The server
// answers a non-fatal error with a tagged BAD (or NO when Code says so) and
// continues; a fatal error ends the connection with BYE.
type Error struct {
	Tag   string // tag of the command, "" if it could not be read
	Code  string // response code, e.g. "TOOBIG", "BADCHARSET"
	No    bool   // answer NO rather than BAD
	Fatal bool
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Default limits.
const (
	DefaultMaxLine    = 64 * 1024
	DefaultMaxLiteral = 64 * 1024
	// DefaultMaxMetadataValue is store.MetadataMaxValue.
	DefaultMaxMetadataValue = 64 << 10
	maxLiterals             = 1000 // literals per command
	maxDepth                = 50   // nesting of lists and search keys
)

// Reader reads commands from a client.
type Reader struct {
	br *bufio.Reader
	// MaxLine bounds one line (without literals).
	MaxLine int
	// MaxLiteral bounds a literal that is an argument (strings, flag
	// names, search strings).
	MaxLiteral int64
	// MaxMetadataValue bounds a SETMETADATA value (RFC 5464); it is the
	// store's limit, announced in [METADATA MAXSIZE n]. 0 means
	// DefaultMaxMetadataValue; MaxLiteral bounds it too.
	MaxMetadataValue int64
	// MaxAppend bounds a message literal of APPEND. 0 refuses APPEND
	// literals, which the server uses before authentication.
	MaxAppend int64
	// Continue is called before the data of a synchronizing literal is
	// read: the server sends "+ Ready". It may return an error to stop.
	Continue func() error
	// Spool, when set, provides a file for APPEND literals larger than
	// SpoolThreshold, so big messages do not sit in memory. The file is
	// handed over in AppendMessage.File; the Reader closes it only when
	// the command fails to parse.
	Spool func() (*os.File, error)

	buf      []byte // line buffer
	line     []byte // current line without CRLF
	pos      int
	literals int
	depth    int
	tag      string
	spooled  []*os.File // files of the command being parsed
}

// SpoolThreshold is the APPEND literal size from which Spool is used.
const SpoolThreshold = 1 << 20

// NewReader returns a Reader with default limits.
func NewReader(br *bufio.Reader) *Reader {
	return &Reader{br: br, MaxLine: DefaultMaxLine, MaxLiteral: DefaultMaxLiteral}
}

// Release drops buffers that grew large so idle sessions stay small.
func (r *Reader) Release() {
	if cap(r.buf) > 4096 {
		r.buf = nil
	}
	r.line = nil
	r.pos = 0
}

// ReadLine reads one line (CRLF or bare LF removed), bounded by MaxLine. It
// is used for AUTHENTICATE continuation data and IDLE's DONE.
func (r *Reader) ReadLine() ([]byte, error) {
	r.buf = r.buf[:0]
	max := r.MaxLine
	if max <= 0 {
		max = DefaultMaxLine
	}
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(r.buf)+len(frag) > max+2 {
			return nil, &Error{Fatal: true, Msg: "line too long", Code: "TOOBIG"}
		}
		r.buf = append(r.buf, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF && len(r.buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	l := r.buf[:len(r.buf)-1]
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	return l, nil
}

func (r *Reader) errf(format string, args ...any) *Error {
	return &Error{Tag: r.tag, Msg: fmt.Sprintf(format, args...)}
}

// syntax errors are signalled by panicking with *Error inside the parser
// and recovered at the command boundary; this keeps the recursive descent
// readable. Only *Error values are recovered.
func (r *Reader) fail(format string, args ...any) {
	panic(r.errf(format, args...))
}

func (r *Reader) eol() bool { return r.pos >= len(r.line) }

func (r *Reader) peek() byte {
	if r.pos >= len(r.line) {
		return 0
	}
	return r.line[r.pos]
}

func (r *Reader) take(c byte) bool {
	if r.pos < len(r.line) && r.line[r.pos] == c {
		r.pos++
		return true
	}
	return false
}

func (r *Reader) expect(c byte) {
	if !r.take(c) {
		if r.eol() {
			r.fail("expected %q, got end of line", c)
		}
		r.fail("expected %q at position %d", c, r.pos)
	}
}

func (r *Reader) sp() { r.expect(' ') }

// takeFold consumes s (ASCII, upper case) case-insensitively if present.
func (r *Reader) takeFold(s string) bool {
	if len(r.line)-r.pos < len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := r.line[r.pos+i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	r.pos += len(s)
	return true
}

func isAtomChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

func isAstringChar(c byte) bool { return isAtomChar(c) || c == ']' }

func isListChar(c byte) bool { return isAtomChar(c) || c == ']' || c == '%' || c == '*' }

func (r *Reader) span(ok func(byte) bool) string {
	start := r.pos
	for r.pos < len(r.line) && ok(r.line[r.pos]) {
		r.pos++
	}
	return string(r.line[start:r.pos])
}

// atom reads 1*ATOM-CHAR.
func (r *Reader) atom() string {
	s := r.span(isAtomChar)
	if s == "" {
		r.fail("expected atom at position %d", r.pos)
	}
	return s
}

// upperAtom reads an atom and upper-cases it (ASCII).
func (r *Reader) upperAtom() string { return upperASCII(r.atom()) }

func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// quoted reads a quoted string; the opening quote is the current byte.
func (r *Reader) quoted() string {
	r.expect('"')
	var b []byte
	for {
		if r.eol() {
			r.fail("unterminated quoted string")
		}
		c := r.line[r.pos]
		r.pos++
		switch c {
		case '"':
			return string(b)
		case '\\':
			if r.eol() {
				r.fail("unterminated quoted string")
			}
			c = r.line[r.pos]
			if c != '"' && c != '\\' {
				r.fail("invalid escape in quoted string")
			}
			r.pos++
			b = append(b, c)
		case 0:
			r.fail("NUL in quoted string")
		default:
			b = append(b, c)
		}
	}
}

// literalHeader parses "{n}" or "{n+}" (and "~{n}" when binary is set) at
// the end of the current line and returns the size and whether it is
// synchronizing.
func (r *Reader) literalHeader() (size int64, sync bool) {
	r.expect('{')
	start := r.pos
	for r.pos < len(r.line) && '0' <= r.line[r.pos] && r.line[r.pos] <= '9' {
		r.pos++
	}
	if r.pos == start || r.pos-start > 19 {
		r.fail("invalid literal size")
	}
	n, err := strconv.ParseInt(string(r.line[start:r.pos]), 10, 64)
	if err != nil {
		r.fail("invalid literal size")
	}
	sync = !r.take('+')
	r.expect('}')
	if !r.eol() {
		r.fail("literal must end the line")
	}
	return n, sync
}

// literalData reads the data of a literal of the given size with limit,
// then the next line, on which parsing continues.
func (r *Reader) literalData(n int64, sync bool, limit int64) []byte {
	r.literals++
	if r.literals > maxLiterals {
		panic(&Error{Tag: r.tag, Fatal: true, Msg: "too many literals"})
	}
	if n > limit {
		if sync {
			// The client waits for our continuation and will not send the
			// data, so the stream stays in sync.
			panic(&Error{Tag: r.tag, No: true, Code: "TOOBIG", Msg: fmt.Sprintf("literal of %d bytes exceeds limit of %d", n, limit)})
		}
		panic(&Error{Tag: r.tag, Fatal: true, Code: "TOOBIG", Msg: "non-synchronizing literal too large"})
	}
	if sync && r.Continue != nil {
		if err := r.Continue(); err != nil {
			panic(&Error{Tag: r.tag, Fatal: true, Msg: "write continuation: " + err.Error()})
		}
	}
	// Grow with the data actually received, not the announced size.
	var data bytes.Buffer
	if n <= 64*1024 {
		data.Grow(int(n))
	}
	if _, err := io.CopyN(&data, r.br, n); err != nil {
		panic(&Error{Tag: r.tag, Fatal: true, Msg: "reading literal: " + err.Error()})
	}
	line, err := r.ReadLine()
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			pe.Tag = r.tag
			panic(pe)
		}
		panic(&Error{Tag: r.tag, Fatal: true, Msg: "reading line after literal: " + err.Error()})
	}
	r.line = line
	r.pos = 0
	return data.Bytes()
}

// spoolLiteral is literalData for a large APPEND message: the data goes
// to a file from Spool.
func (r *Reader) spoolLiteral(n int64, sync bool, limit int64) (*os.File, bool) {
	if r.Spool == nil || n < SpoolThreshold || n > limit {
		return nil, false
	}
	f, err := r.Spool()
	if err != nil {
		return nil, false // fall back to memory
	}
	r.spooled = append(r.spooled, f)
	r.literals++
	if sync && r.Continue != nil {
		if err := r.Continue(); err != nil {
			panic(&Error{Tag: r.tag, Fatal: true, Msg: "write continuation: " + err.Error()})
		}
	}
	if _, err := io.CopyN(f, r.br, n); err != nil {
		panic(&Error{Tag: r.tag, Fatal: true, Msg: "reading literal: " + err.Error()})
	}
	line, err := r.ReadLine()
	if err != nil {
		panic(&Error{Tag: r.tag, Fatal: true, Msg: "reading line after literal: " + err.Error()})
	}
	r.line = line
	r.pos = 0
	return f, true
}

// literal reads a literal argument bounded by MaxLiteral.
func (r *Reader) literal() []byte {
	n, sync := r.literalHeader()
	lim := r.MaxLiteral
	if lim <= 0 {
		lim = DefaultMaxLiteral
	}
	return r.literalData(n, sync, lim)
}

// str reads a string: quoted or literal.
func (r *Reader) str() string {
	switch r.peek() {
	case '"':
		return r.quoted()
	case '{':
		return string(r.literal())
	}
	r.fail("expected string at position %d", r.pos)
	return ""
}

// astring reads an atom (with "]") or a string.
func (r *Reader) astring() string {
	switch r.peek() {
	case '"', '{':
		return r.str()
	}
	// 8-bit bytes are not ASTRING-CHARs, but clients send UTF-8 search
	// strings and mailbox names unquoted; accepting them is harmless.
	s := r.span(func(c byte) bool { return isAstringChar(c) || c >= 0x80 })
	if s == "" {
		r.fail("expected astring at position %d", r.pos)
	}
	return s
}

// nstring reads a string or NIL; ok is false for NIL.
func (r *Reader) nstring() (string, bool) {
	if r.peek() != '"' && r.peek() != '{' {
		if r.takeFold("NIL") {
			return "", false
		}
	}
	return r.astring(), true
}

// listMailbox reads a LIST pattern: list-char atoms or a string.
func (r *Reader) listMailbox() string {
	switch r.peek() {
	case '"', '{':
		return r.str()
	}
	s := r.span(func(c byte) bool { return isListChar(c) || c >= 0x80 })
	if s == "" {
		r.fail("expected mailbox pattern at position %d", r.pos)
	}
	return s
}

func (r *Reader) number() uint32 {
	start := r.pos
	for r.pos < len(r.line) && '0' <= r.line[r.pos] && r.line[r.pos] <= '9' {
		r.pos++
	}
	if r.pos == start {
		r.fail("expected number at position %d", r.pos)
	}
	n, err := strconv.ParseUint(string(r.line[start:r.pos]), 10, 32)
	if err != nil {
		r.fail("number out of range")
	}
	return uint32(n)
}

func (r *Reader) number64() int64 {
	start := r.pos
	for r.pos < len(r.line) && '0' <= r.line[r.pos] && r.line[r.pos] <= '9' {
		r.pos++
	}
	if r.pos == start {
		r.fail("expected number at position %d", r.pos)
	}
	n, err := strconv.ParseInt(string(r.line[start:r.pos]), 10, 64)
	if err != nil {
		r.fail("number out of range")
	}
	return n
}

func (r *Reader) nzNumber() uint32 {
	n := r.number()
	if n == 0 {
		r.fail("zero is not a valid number here")
	}
	return n
}

func (r *Reader) enter() {
	r.depth++
	if r.depth > maxDepth {
		r.fail("nesting too deep")
	}
}

func (r *Reader) leave() { r.depth-- }

// flag reads a flag: "\"atom, keyword, or "\*" when star is allowed.
func (r *Reader) flag(star bool) string {
	if r.take('\\') {
		if star && r.take('*') {
			return `\*`
		}
		return `\` + r.atom()
	}
	return r.atom()
}

// flagList reads "(" [flag *(SP flag)] ")".
func (r *Reader) flagList() []string {
	r.expect('(')
	var flags []string
	if r.take(')') {
		return flags
	}
	for {
		flags = append(flags, r.flag(false))
		if r.take(')') {
			return flags
		}
		r.sp()
	}
}

// flags reads a flag list or, as STORE allows, space-separated flags.
func (r *Reader) storeFlags() []string {
	if r.peek() == '(' {
		return r.flagList()
	}
	flags := []string{r.flag(false)}
	for r.take(' ') {
		flags = append(flags, r.flag(false))
	}
	return flags
}

// atomList reads "(" atom *(SP atom) ")" (possibly empty).
func (r *Reader) atomList() []string {
	r.expect('(')
	var out []string
	if r.take(')') {
		return out
	}
	for {
		out = append(out, r.upperAtom())
		if r.take(')') {
			return out
		}
		r.sp()
	}
}
