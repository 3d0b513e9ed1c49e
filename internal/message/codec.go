package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Encode serialises the summary for the store: JSON with short keys and
// empty fields omitted. All strings in a parsed Part are valid UTF-8, so the
// encoding is lossless.
func (p *Part) Encode() []byte {
	b, err := marshal(p)
	if err != nil {
		// Cannot happen for Part: no channels, funcs or cycles.
		panic(fmt.Sprintf("encode message summary: %v", err))
	}
	return b
}

// marshal is json.Marshal without HTML escaping: message IDs are full of
// angle brackets, and \u003c takes six bytes.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// MarshalJSON leaves out Sender and Reply-To when they equal From, as they
// do when the header lacks them (Parse fills them in per RFC 3501);
// UnmarshalJSON restores them.
func (e Envelope) MarshalJSON() ([]byte, error) {
	type plain Envelope
	c := plain(e)
	if addressesEqual(c.Sender, c.From) {
		c.Sender = nil
	}
	if addressesEqual(c.ReplyTo, c.From) {
		c.ReplyTo = nil
	}
	return marshal(c)
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	type plain Envelope
	var c plain
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	*e = Envelope(c)
	if len(e.Sender) == 0 {
		e.Sender = e.From
	}
	if len(e.ReplyTo) == 0 {
		e.ReplyTo = e.From
	}
	return nil
}

func addressesEqual(a, b []Address) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Decode parses a summary made by Encode. It checks the structure (offsets
// ordered and nested, depth and part count within limits) so that callers
// can slice message content by its offsets without further checks; they
// must still clamp to the actual content size.
func Decode(b []byte) (*Part, error) {
	var p Part
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode message summary: %w", err)
	}
	n := 0
	if err := p.check(0, 0, -1, &n); err != nil {
		return nil, fmt.Errorf("decode message summary: %w", err)
	}
	return &p, nil
}

var errBadSummary = errors.New("invalid summary")

// check verifies p lies within [lo, hi] (hi < 0: unbounded) and recurses.
func (p *Part) check(depth int, lo, hi int64, n *int) error {
	*n++
	switch {
	case depth > MaxDepth+1:
		return fmt.Errorf("%w: nesting deeper than %d", errBadSummary, MaxDepth)
	case *n > MaxParts+1:
		return fmt.Errorf("%w: more than %d parts", errBadSummary, MaxParts)
	case p.HeaderStart < lo || p.BodyStart < p.HeaderStart || p.BodyEnd < p.BodyStart || (hi >= 0 && p.BodyEnd > hi):
		return fmt.Errorf("%w: offsets %d %d %d outside %d..%d", errBadSummary, p.HeaderStart, p.BodyStart, p.BodyEnd, lo, hi)
	case p.BodyLines < 0:
		return fmt.Errorf("%w: negative line count", errBadSummary)
	case p.MediaType == "" || p.MediaSubtype == "":
		return fmt.Errorf("%w: empty media type", errBadSummary)
	case p.MediaType == "multipart" && len(p.Parts) == 0:
		return fmt.Errorf("%w: multipart without parts", errBadSummary)
	case p.MediaType != "multipart" && len(p.Parts) > 0:
		return fmt.Errorf("%w: parts in non-multipart", errBadSummary)
	case p.Message != nil && len(p.Parts) > 0:
		return fmt.Errorf("%w: both parts and message", errBadSummary)
	}
	for _, c := range p.Parts {
		if c == nil {
			return fmt.Errorf("%w: null part", errBadSummary)
		}
		if err := c.check(depth+1, p.BodyStart, p.BodyEnd, n); err != nil {
			return err
		}
	}
	if p.Message != nil {
		if p.Message.Envelope == nil {
			return fmt.Errorf("%w: embedded message without envelope", errBadSummary)
		}
		if err := p.Message.check(depth+1, p.BodyStart, p.BodyEnd, n); err != nil {
			return err
		}
	}
	return nil
}

// Size is the body size in bytes, as BODYSTRUCTURE reports it.
func (p *Part) Size() int64 { return p.BodyEnd - p.BodyStart }

// Param returns the value of a Content-Type parameter (name in lower case).
func (p *Part) Param(name string) string { return paramValue(p.Params, name) }

// DispositionParam returns the value of a Content-Disposition parameter
// (name in lower case).
func (p *Part) DispositionParam(name string) string { return paramValue(p.DispositionParams, name) }

// Charset returns the charset parameter, "us-ascii" for text parts without
// one (RFC 2045), "" for others.
func (p *Part) Charset() string {
	if cs := p.Param("charset"); cs != "" {
		return cs
	}
	if p.MediaType == "text" {
		return "us-ascii"
	}
	return ""
}

// Find returns the part at an IMAP section path (1-based part numbers), or
// nil. An empty path is the message itself. A non-multipart message has a
// single part 1, itself; the parts of a message/rfc822 part are the parts
// of the embedded message (its part 1 is its body if it is not a
// multipart).
func (p *Part) Find(path []int) *Part {
	if p == nil {
		return nil
	}
	if len(path) == 0 {
		return p
	}
	cur := messagePart(p, path[0])
	for _, n := range path[1:] {
		switch {
		case cur == nil:
			return nil
		case cur.MediaType == "multipart":
			cur = nth(cur.Parts, n)
		case cur.Message != nil:
			cur = messagePart(cur.Message, n)
		default:
			return nil
		}
	}
	return cur
}

// messagePart returns part n of the message whose root is m.
func messagePart(m *Part, n int) *Part {
	if m.MediaType == "multipart" {
		return nth(m.Parts, n)
	}
	if n == 1 {
		return m
	}
	return nil
}

func nth(parts []*Part, n int) *Part {
	if n < 1 || n > len(parts) {
		return nil
	}
	return parts[n-1]
}

// Section returns the byte range of a section: path as for Find, spec one
// of "" (BODY[path]; the whole message for an empty path), "HEADER" and
// "TEXT" (of the message, or of the message/rfc822 part at path; also the
// base for HEADER.FIELDS), "MIME" (the part's MIME header, path not
// empty). ok is false for sections that do not exist.
func (p *Part) Section(path []int, spec string) (start, end int64, ok bool) {
	q := p.Find(path)
	if q == nil {
		return 0, 0, false
	}
	switch {
	case spec == "":
		if len(path) == 0 {
			return q.HeaderStart, q.BodyEnd, true
		}
		return q.BodyStart, q.BodyEnd, true
	case equalFoldASCII(spec, "MIME"):
		if len(path) == 0 {
			return 0, 0, false
		}
		return q.HeaderStart, q.BodyStart, true
	case equalFoldASCII(spec, "HEADER"), equalFoldASCII(spec, "TEXT"):
		m := q
		if len(path) > 0 {
			m = q.Message
			if m == nil {
				return 0, 0, false
			}
		}
		if equalFoldASCII(spec, "HEADER") {
			return m.HeaderStart, m.BodyStart, true
		}
		return m.BodyStart, m.BodyEnd, true
	}
	return 0, 0, false
}
