package sieve

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Pos is a position in a script: 1-based line and column (in characters).
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Error is a script error: a syntax or validation error found by Parse, or
// a runtime error of Run. Pos is zero when the error has no place in the
// script (e.g. a limit of the whole script).
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

func errorf(p Pos, format string, args ...any) *Error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // identifier, lower-cased
	tTag            // ":" identifier, lower-cased, without the colon
	tNumber         // number with its quantifier applied
	tString         // quoted or multi-line string, unescaped
	tSemi           // ;
	tLBrace         // {
	tRBrace         // }
	tLBrack         // [
	tRBrack         // ]
	tLParen         // (
	tRParen         // )
	tComma          // ,
)

func (k tokKind) String() string {
	switch k {
	case tEOF:
		return "end of script"
	case tIdent:
		return "identifier"
	case tTag:
		return "tag"
	case tNumber:
		return "number"
	case tString:
		return "string"
	case tSemi:
		return `";"`
	case tLBrace:
		return `"{"`
	case tRBrace:
		return `"}"`
	case tLBrack:
		return `"["`
	case tRBrack:
		return `"]"`
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tComma:
		return `","`
	}
	return "token"
}

type token struct {
	kind tokKind
	pos  Pos
	text string // identifier, tag or string value
	num  int64
}

// lexer splits a script into tokens (RFC 5228 section 8.1). Identifiers and
// tags are case-insensitive and returned lower-cased.
type lexer struct {
	src       string
	off       int
	line      int
	lineStart int
}

func newLexer(src string) *lexer { return &lexer{src: src, line: 1} }

func (l *lexer) pos(off int) Pos {
	return Pos{Line: l.line, Col: utf8.RuneCountInString(l.src[l.lineStart:off]) + 1}
}

// newline records a line break at off (the offset of the '\n').
func (l *lexer) newline(off int) {
	l.line++
	l.lineStart = off + 1
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skip skips white space and comments.
func (l *lexer) skip() *Error {
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == '\n':
			l.newline(l.off)
			l.off++
		case c == ' ' || c == '\t' || c == '\r':
			l.off++
		case c == '#':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.off++
			}
		case c == '/' && l.off+1 < len(l.src) && l.src[l.off+1] == '*':
			start := l.pos(l.off)
			end := strings.Index(l.src[l.off+2:], "*/")
			if end < 0 {
				return errorf(start, "unterminated comment")
			}
			stop := l.off + 2 + end + 2
			for i := l.off; i < stop; i++ {
				if l.src[i] == '\n' {
					l.newline(i)
				}
			}
			l.off = stop
		default:
			return nil
		}
	}
	return nil
}

func (l *lexer) next() (token, *Error) {
	if err := l.skip(); err != nil {
		return token{}, err
	}
	p := l.pos(l.off)
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: p}, nil
	}
	c := l.src[l.off]
	switch c {
	case ';':
		l.off++
		return token{kind: tSemi, pos: p}, nil
	case '{':
		l.off++
		return token{kind: tLBrace, pos: p}, nil
	case '}':
		l.off++
		return token{kind: tRBrace, pos: p}, nil
	case '[':
		l.off++
		return token{kind: tLBrack, pos: p}, nil
	case ']':
		l.off++
		return token{kind: tRBrack, pos: p}, nil
	case '(':
		l.off++
		return token{kind: tLParen, pos: p}, nil
	case ')':
		l.off++
		return token{kind: tRParen, pos: p}, nil
	case ',':
		l.off++
		return token{kind: tComma, pos: p}, nil
	case '"':
		s, err := l.quoted()
		return token{kind: tString, pos: p, text: s}, err
	case ':':
		l.off++
		start := l.off
		if l.off >= len(l.src) || !isIdentStart(l.src[l.off]) {
			return token{}, errorf(p, `":" must be followed by a tag name`)
		}
		for l.off < len(l.src) && isIdentChar(l.src[l.off]) {
			l.off++
		}
		return token{kind: tTag, pos: p, text: strings.ToLower(l.src[start:l.off])}, nil
	}
	if c >= '0' && c <= '9' {
		return l.number(p)
	}
	if isIdentStart(c) {
		start := l.off
		for l.off < len(l.src) && isIdentChar(l.src[l.off]) {
			l.off++
		}
		id := strings.ToLower(l.src[start:l.off])
		if id == "text" && l.off < len(l.src) && l.src[l.off] == ':' {
			l.off++
			s, err := l.multiline(p)
			return token{kind: tString, pos: p, text: s}, err
		}
		return token{kind: tIdent, pos: p, text: id}, nil
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.off:])
	return token{}, errorf(p, "unexpected character %q", r)
}

// number lexes a number with an optional K, M or G quantifier.
func (l *lexer) number(p Pos) (token, *Error) {
	var n int64
	for l.off < len(l.src) && l.src[l.off] >= '0' && l.src[l.off] <= '9' {
		d := int64(l.src[l.off] - '0')
		if n > (maxNumber-d)/10 {
			return token{}, errorf(p, "number too large")
		}
		n = n*10 + d
		l.off++
	}
	if l.off < len(l.src) {
		var mul int64
		switch l.src[l.off] {
		case 'k', 'K':
			mul = 1 << 10
		case 'm', 'M':
			mul = 1 << 20
		case 'g', 'G':
			mul = 1 << 30
		}
		if mul != 0 {
			l.off++
			if n > maxNumber/mul {
				return token{}, errorf(p, "number too large")
			}
			n *= mul
		}
	}
	if l.off < len(l.src) && isIdentChar(l.src[l.off]) {
		return token{}, errorf(l.pos(l.off), "unexpected character %q after number", l.src[l.off])
	}
	return token{kind: tNumber, pos: p, num: n}, nil
}

// quoted lexes a quoted string. "\" escapes the next character: \" and \\
// stand for themselves, and any other escaped character is taken as is
// (RFC 5228 section 2.4.2).
func (l *lexer) quoted() (string, *Error) {
	start := l.pos(l.off)
	l.off++ // opening quote
	var b strings.Builder
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch c {
		case '"':
			l.off++
			return b.String(), l.checkLen(start, b.Len())
		case '\\':
			if l.off+1 >= len(l.src) {
				return "", errorf(start, "unterminated string")
			}
			l.off++
			c = l.src[l.off]
		}
		if c == '\n' {
			l.newline(l.off)
		}
		b.WriteByte(c)
		if b.Len() > MaxStringLen {
			return "", errorf(start, "string longer than %d bytes", MaxStringLen)
		}
		l.off++
	}
	return "", errorf(start, "unterminated string")
}

// multiline lexes a "text:" string after the colon: optional white space
// and a hash comment up to the line break, then lines up to a line with a
// single ".". A leading "." of a line is removed (dot-stuffing). Line
// breaks are returned as CRLF, as RFC 5228 defines them.
func (l *lexer) multiline(start Pos) (string, *Error) {
	for l.off < len(l.src) && (l.src[l.off] == ' ' || l.src[l.off] == '\t') {
		l.off++
	}
	if l.off < len(l.src) && l.src[l.off] == '#' {
		for l.off < len(l.src) && l.src[l.off] != '\n' {
			l.off++
		}
	}
	if l.off < len(l.src) && l.src[l.off] == '\r' {
		l.off++
	}
	if l.off >= len(l.src) || l.src[l.off] != '\n' {
		return "", errorf(start, `"text:" must be followed by a line break`)
	}
	l.newline(l.off)
	l.off++
	var b strings.Builder
	for l.off < len(l.src) {
		end := strings.IndexByte(l.src[l.off:], '\n')
		var line string
		next := len(l.src)
		if end >= 0 {
			line = l.src[l.off : l.off+end]
			next = l.off + end + 1
		} else {
			line = l.src[l.off:]
		}
		line = strings.TrimSuffix(line, "\r")
		if line == "." {
			if end >= 0 {
				l.newline(l.off + end)
			}
			l.off = next
			return b.String(), l.checkLen(start, b.Len())
		}
		line = strings.TrimPrefix(line, ".")
		b.WriteString(line)
		b.WriteString("\r\n")
		if b.Len() > MaxStringLen {
			return "", errorf(start, "string longer than %d bytes", MaxStringLen)
		}
		if end < 0 {
			break
		}
		l.newline(l.off + end)
		l.off = next
	}
	return "", errorf(start, `unterminated multi-line string (missing a line with a single ".")`)
}

func (l *lexer) checkLen(p Pos, n int) *Error {
	if n > MaxStringLen {
		return errorf(p, "string longer than %d bytes", MaxStringLen)
	}
	return nil
}
