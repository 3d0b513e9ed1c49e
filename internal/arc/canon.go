package arc

import (
	"io"
	"strings"
)

// Canonicalization algorithms of RFC 6376 section 3.4, which ARC reuses.
const (
	canonSimple  = "simple"
	canonRelaxed = "relaxed"
)

// relaxedHeader is the "relaxed" header canonicalization (RFC 6376 section
// 3.4.2): lower-case name, unfolded value, whitespace runs as one space, no
// whitespace at the ends of the value, "name:value\r\n".
func relaxedHeader(name, value string) string {
	var b strings.Builder
	b.Grow(len(name) + len(value) + 3)
	b.WriteString(strings.ToLower(strings.TrimRight(name, " \t")))
	b.WriteByte(':')
	b.WriteString(relaxedValue(value))
	b.WriteString("\r\n")
	return b.String()
}

func relaxedValue(value string) string {
	var b strings.Builder
	b.Grow(len(value))
	space := false
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch c {
		case '\r', '\n':
			// Unfolding: line breaks go; the whitespace after them stays.
		case ' ', '\t':
			space = true
		default:
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteByte(c)
		}
	}
	return b.String()
}

// canonHeader canonicalizes one header field with the given algorithm.
func canonHeader(canon string, f field) string {
	if canon == canonSimple {
		return string(f.raw)
	}
	return relaxedHeader(f.name, f.value)
}

// bodyCanonicalizer is an io.WriteCloser that canonicalizes a message body
// (RFC 6376 sections 3.4.3 and 3.4.4) as it streams through, without holding
// more than the count of pending empty lines. Bare LF counts as a line end.
type bodyCanonicalizer struct {
	w       io.Writer
	relaxed bool
	limit   int64 // bytes of canonical output still to pass on; <0: no limit

	wrote      bool  // anything written at all
	lineBytes  bool  // the current line has content
	pendingWSP bool  // relaxed: whitespace seen, not yet written
	pendingCR  bool  // a CR that may start a CRLF
	emptyLines int64 // empty lines held back (dropped if at the end)
	out        []byte
	err        error
}

func newBodyCanonicalizer(w io.Writer, canon string, limit int64) *bodyCanonicalizer {
	return &bodyCanonicalizer{w: w, relaxed: canon == canonRelaxed, limit: limit}
}

func (c *bodyCanonicalizer) emit(b ...byte) {
	if c.limit >= 0 {
		if int64(len(b)) > c.limit {
			b = b[:c.limit]
		}
		c.limit -= int64(len(b))
	}
	c.out = append(c.out, b...)
	c.wrote = true
}

// content writes a byte that belongs to the current line.
func (c *bodyCanonicalizer) content(ch byte) {
	if !c.lineBytes {
		for ; c.emptyLines > 0; c.emptyLines-- {
			c.emit('\r', '\n')
		}
	}
	if c.pendingWSP {
		c.emit(' ')
		c.pendingWSP = false
	}
	c.emit(ch)
	c.lineBytes = true
}

func (c *bodyCanonicalizer) endLine() {
	c.pendingWSP = false
	if c.lineBytes {
		c.emit('\r', '\n')
		c.lineBytes = false
	} else {
		c.emptyLines++
	}
}

func (c *bodyCanonicalizer) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for _, ch := range p {
		if c.pendingCR {
			c.pendingCR = false
			if ch == '\n' {
				c.endLine()
				continue
			}
			c.content('\r')
		}
		switch {
		case ch == '\r':
			c.pendingCR = true
		case ch == '\n':
			c.endLine()
		case c.relaxed && (ch == ' ' || ch == '\t'):
			c.pendingWSP = true
		default:
			c.content(ch)
		}
		if len(c.out) >= 32<<10 {
			c.flush()
		}
	}
	c.flush()
	if c.err != nil {
		return 0, c.err
	}
	return len(p), nil
}

func (c *bodyCanonicalizer) flush() {
	if len(c.out) > 0 && c.err == nil {
		_, c.err = c.w.Write(c.out)
	}
	c.out = c.out[:0]
}

// Close ends the body: a last line without a line break gets one, trailing
// empty lines are dropped, and an empty body is CRLF under "simple".
func (c *bodyCanonicalizer) Close() error {
	if c.pendingCR {
		c.pendingCR = false
		c.content('\r')
	}
	if c.lineBytes {
		c.endLine()
	}
	if !c.relaxed && !c.wrote {
		c.emit('\r', '\n')
	}
	c.flush()
	return c.err
}
