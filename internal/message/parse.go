package message

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// Limits that keep parsing bounded on hostile input. Beyond them parsing
// still succeeds: deeper structure is summarised as a leaf part.
const (
	// MaxDepth is the deepest nesting of multiparts and embedded messages
	// that is parsed; a multipart or message/rfc822 deeper than this is
	// treated as a leaf.
	MaxDepth = 50
	// MaxParts is the maximum number of parts (including embedded message
	// roots) in one summary. Further parts are skipped.
	MaxParts = 10000

	// maxFieldLen caps the bytes of one header field kept for parsing
	// (unfolded value). Longer fields are truncated for the summary only;
	// offsets stay exact.
	maxFieldLen = 128 << 10
	// bufSize is the read window. Lines longer than this are scanned in
	// pieces; they can never be boundary delimiters anyway.
	bufSize = 128 << 10
)

// Default values used when a header is absent or unparsable (RFC 2045).
const (
	defaultType    = "text"
	defaultSubtype = "plain"
)

// parserPool keeps parsers with their read window and scratch buffers:
// Parse runs for every delivered message, and most messages are small.
var parserPool = sync.Pool{New: func() any { return &parser{} }}

// Parse reads the message of size bytes from r and returns its summary.
// Malformed mail never fails: missing or broken headers fall back to RFC
// defaults, a multipart without usable boundaries becomes text/plain. Only
// read errors (including r being shorter than size) are returned.
//
// Offsets follow RFC 3501 section semantics:
//
//   - BODY[HEADER] of the message is root.HeaderStart..root.BodyStart
//     (including the blank line), BODY[TEXT] root.BodyStart..root.BodyEnd.
//   - For a part inside a multipart, BODY[n.MIME] is HeaderStart..BodyStart
//     and BODY[n] is BodyStart..BodyEnd. BodyEnd excludes the line break
//     before the next boundary delimiter, which belongs to the delimiter.
//   - For a message/rfc822 part, Message.HeaderStart == BodyStart, and
//     BODY[n.HEADER]/BODY[n.TEXT] are the Message's header and body.
//
// Use Find and Section to navigate by IMAP section path.
func Parse(r io.ReaderAt, size int64) (*Part, error) {
	if size < 0 {
		return nil, fmt.Errorf("parse message: negative size %d", size)
	}
	p := parserPool.Get().(*parser)
	defer p.release()
	p.s.init(r, size)
	root := &Part{}
	p.count = 1
	p.parsePart(root, false, 0, true)
	if p.s.err != nil {
		return nil, fmt.Errorf("parse message: %w", p.s.err)
	}
	return root, nil
}

// release returns p to the pool, keeping its buffers unless a hostile
// message made them large.
func (p *parser) release() {
	buf := p.s.buf[:cap(p.s.buf)]
	p.s = scanner{buf: buf}
	p.bounds = p.bounds[:0]
	p.count = 0
	if cap(p.h.buf) > 1<<20 {
		p.h.buf = nil
	}
	if cap(p.toks) > 4096 {
		p.toks = nil
	}
	parserPool.Put(p)
}

// scanner yields the lines of the input with their offsets, reading through
// a bounded window.
type scanner struct {
	r      io.ReaderAt
	size   int64
	buf    []byte // read window; its capacity is kept across uses
	base   int64  // input offset of buf[0]
	pos, n int    // next unread byte in buf; valid bytes in buf
	err    error

	// Current line, valid until the next call of next.
	line     []byte
	off      int64 // input offset of line[0]
	nl       int64 // newlines before off
	atStart  bool  // line starts at the beginning of a line (not a piece of a long line)
	haveLine bool

	nlCount   int64 // newlines before the next unread byte
	nextStart bool  // next unread byte starts a line

	// The line before the current one.
	prevContentEnd int64 // offset of its line break
	prevEOL        bool  // it ended with a line break
	prevEmpty      bool  // it was an empty line
}

// init prepares s for reading size bytes from r, with a window of up to
// bufSize bytes.
func (s *scanner) init(r io.ReaderAt, size int64) {
	s.r = r
	s.size = size
	s.nextStart = true
	n := int(min(size, bufSize))
	if cap(s.buf) < n {
		// Small messages get a window just their size; one that has
		// grown to bufSize is reused from the pool.
		s.buf = make([]byte, max(n, 4096))
	}
	s.buf = s.buf[:n]
}

// offset returns the input offset of the next unread byte.
func (s *scanner) offset() int64 { return s.base + int64(s.pos) }

// next advances to the next line (including its line break). Lines longer
// than the window are returned in pieces; only the first has atStart set.
func (s *scanner) next() bool {
	if s.haveLine {
		l := s.line
		e := eolLen(l)
		s.prevEOL = e > 0
		s.prevContentEnd = s.off + int64(len(l)-e)
		s.prevEmpty = s.atStart && len(l) == e
		s.haveLine = false
	}
	if s.err != nil || s.offset() >= s.size {
		return false
	}
	i := bytes.IndexByte(s.buf[s.pos:s.n], '\n')
	if i < 0 && s.base+int64(s.n) < s.size {
		s.fill()
		if s.err != nil {
			return false
		}
		i = bytes.IndexByte(s.buf[s.pos:s.n], '\n')
	}
	end := s.n
	if i >= 0 {
		end = s.pos + i + 1
	}
	s.line = s.buf[s.pos:end]
	s.off = s.offset()
	s.nl = s.nlCount
	s.atStart = s.nextStart
	s.nextStart = i >= 0
	if i >= 0 {
		s.nlCount++
	}
	s.pos = end
	s.haveLine = true
	return true
}

// fill moves the unread bytes to the front of the window and reads more.
func (s *scanner) fill() {
	if s.pos > 0 {
		copy(s.buf, s.buf[s.pos:s.n])
		s.base += int64(s.pos)
		s.n -= s.pos
		s.pos = 0
	}
	want := len(s.buf) - s.n
	if rem := s.size - (s.base + int64(s.n)); int64(want) > rem {
		want = int(rem)
	}
	if want <= 0 {
		return
	}
	off := s.base + int64(s.n)
	m, err := s.r.ReadAt(s.buf[s.n:s.n+want], off)
	if m > want || m < 0 {
		m = 0
	}
	s.n += m
	if m < want {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		s.err = fmt.Errorf("read at offset %d of %d: %w", off+int64(m), s.size, err)
	}
}

// eolLen returns the length of the line break ending l: 2 for CRLF, 1 for a
// bare LF, 0 if l does not end a line.
func eolLen(l []byte) int {
	n := len(l)
	if n == 0 || l[n-1] != '\n' {
		return 0
	}
	if n >= 2 && l[n-2] == '\r' {
		return 2
	}
	return 1
}

// endInfo describes where a body ended: before the line break preceding a
// boundary delimiter line, or at the end of input.
type endInfo struct {
	off    int64 // end offset (exclusive)
	nl     int64 // newlines before off
	lastNL bool  // the byte before off is a line feed
	level  int   // index into parser.bounds of the delimiter found; -1 at EOF
	close  bool  // the delimiter was a close delimiter
}

// endBefore returns the end of a body that stops at the current line, a
// delimiter line: the line break before it belongs to the delimiter.
func (s *scanner) endBefore(level int, close bool) endInfo {
	if s.prevEOL && s.off > 0 {
		return endInfo{off: s.prevContentEnd, nl: s.nl - 1, lastNL: s.prevEmpty, level: level, close: close}
	}
	return endInfo{off: s.off, nl: s.nl, level: level, close: close}
}

// endEOF returns the end of a body running to the end of input.
func (s *scanner) endEOF() endInfo {
	return endInfo{off: s.size, nl: s.nlCount, lastNL: s.nextStart, level: -1}
}

// lineCount returns the number of lines in [bs, be): line breaks, plus one
// for a last line without line break.
func lineCount(bs, bsNL, be int64, e endInfo) int64 {
	if be <= bs {
		return 0
	}
	n := e.nl - bsNL
	if !e.lastNL {
		n++
	}
	if n < 0 {
		n = 0
	}
	return n
}

type parser struct {
	s      scanner
	bounds []string // boundaries of the enclosing multiparts, outermost first
	count  int      // parts created
	h      hdr
	toks   []atok // scratch for address parsing
}

// delim reports whether the current line is a boundary delimiter of one of
// the enclosing multiparts, innermost first: its level (-1 if none) and
// whether it is a close delimiter. Like Go's mime/multipart, only linear
// white space may follow the boundary, so a boundary that is a prefix of a
// nested one does not end the outer part.
func (p *parser) delim() (int, bool) {
	l := p.s.line
	if !p.s.atStart || len(p.bounds) == 0 || len(l) < 3 || l[0] != '-' || l[1] != '-' {
		return -1, false
	}
	l = l[2:]
	for i := len(p.bounds) - 1; i >= 0; i-- {
		b := p.bounds[i]
		if len(l) < len(b) || string(l[:len(b)]) != b {
			continue
		}
		rest := l[len(b):]
		cl := false
		if len(rest) >= 2 && rest[0] == '-' && rest[1] == '-' {
			cl = true
			rest = rest[2:]
		}
		if onlyLWSP(rest) {
			return i, cl
		}
	}
	return -1, false
}

func onlyLWSP(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// parsePart parses the entity starting at the scanner's position: its
// header, then its body up to a delimiter of an enclosing multipart or the
// end of input, which it returns.
func (p *parser) parsePart(part *Part, inDigest bool, depth int, msgRoot bool) endInfo {
	s := &p.s
	part.HeaderStart = s.offset()
	bs, bsNL, e, ended := p.readHeader(msgRoot)
	if ended && bs < part.HeaderStart {
		bs = part.HeaderStart
	}
	part.BodyStart = bs
	boundary := p.applyHeader(part, inDigest, msgRoot)

	isMsg := part.MediaType == "message" && (part.MediaSubtype == "rfc822" || part.MediaSubtype == "global")
	canNest := depth < MaxDepth && p.count < MaxParts
	if ended {
		// Header without body (ended by a delimiter or end of input).
		part.BodyEnd = bs
		switch {
		case part.MediaType == "multipart":
			degradeMultipart(part)
		case isMsg && canNest && identityEncoding(part.Encoding):
			p.count++
			part.Message = &Part{HeaderStart: bs, BodyStart: bs, BodyEnd: bs, MediaType: defaultType, MediaSubtype: defaultSubtype, Envelope: &Envelope{}}
		case isMsg:
			degradeMessage(part)
		}
		return e
	}

	switch {
	case part.MediaType == "multipart" && boundary != "" && canNest:
		e = p.parseMultipart(part, depth, boundary)
	case isMsg && canNest && identityEncoding(part.Encoding):
		m := &Part{}
		p.count++
		e = p.parsePart(m, false, depth+1, true)
		part.Message = m
	default:
		if part.MediaType == "multipart" {
			degradeMultipart(part)
		} else if isMsg {
			degradeMessage(part)
		}
		e = p.skipBody()
	}
	end := max(bs, e.off)
	// A last child whose header was ended by the delimiter that also ends
	// this part reaches up to that delimiter line, past the line break
	// before it; keep children inside their parent.
	if part.Message != nil {
		end = max(end, part.Message.BodyEnd)
	}
	if n := len(part.Parts); n > 0 {
		end = max(end, part.Parts[n-1].BodyEnd)
	}
	le := e
	if end > e.off && e.level >= 0 {
		// end is the delimiter line's start: count the line break.
		le.nl++
		le.lastNL = true
	}
	part.BodyEnd = end
	part.BodyLines = lineCount(bs, bsNL, end, le)
	return e
}

// degradeMultipart turns a multipart without parts into text/plain so that
// BODYSTRUCTURE stays well-formed (a multipart needs at least one part) and
// the content stays reachable as BODY[1].
func degradeMultipart(part *Part) {
	part.MediaType, part.MediaSubtype = defaultType, defaultSubtype
	part.Parts = nil
}

// degradeMessage turns a message/rfc822 whose content cannot be parsed in
// place (transfer-encoded, or beyond the limits) into an opaque part:
// BODYSTRUCTURE for message/rfc822 requires an envelope and body structure.
func degradeMessage(part *Part) {
	part.MediaType, part.MediaSubtype = "application", "octet-stream"
	part.Message = nil
}

// identityEncoding reports whether a Content-Transfer-Encoding leaves the
// content as is, so an embedded message can be parsed in place.
func identityEncoding(enc string) bool {
	switch {
	case enc == "", equalFoldASCII(enc, "7bit"), equalFoldASCII(enc, "8bit"), equalFoldASCII(enc, "binary"):
		return true
	}
	return false
}

// skipBody scans a leaf body up to a delimiter or the end of input.
func (p *parser) skipBody() endInfo {
	for p.s.next() {
		if lvl, cl := p.delim(); lvl >= 0 {
			return p.s.endBefore(lvl, cl)
		}
	}
	return p.s.endEOF()
}

// parseMultipart parses the body of a multipart: preamble, parts, epilogue.
func (p *parser) parseMultipart(part *Part, depth int, boundary string) endInfo {
	digest := part.MediaSubtype == "digest"
	p.bounds = append(p.bounds, boundary)
	my := len(p.bounds) - 1
	pop := func() { p.bounds = p.bounds[:my] }

	// Preamble, up to the first delimiter.
	found := false
	for !found && p.s.next() {
		lvl, cl := p.delim()
		switch {
		case lvl < 0:
			continue
		case lvl < my:
			// An enclosing part ends before this one had any part.
			pop()
			degradeMultipart(part)
			return p.s.endBefore(lvl, cl)
		case cl:
			// Close delimiter without any part: the rest is epilogue.
			pop()
			degradeMultipart(part)
			return p.skipBody()
		}
		found = true
	}
	if !found {
		pop()
		degradeMultipart(part)
		return p.s.endEOF()
	}

	var e endInfo
	for {
		if p.count >= MaxParts {
			e = p.skipParts(my)
			break
		}
		child := &Part{}
		p.count++
		e = p.parsePart(child, digest, depth+1, false)
		part.Parts = append(part.Parts, child)
		if e.level != my || e.close {
			break
		}
	}
	pop()
	if e.level == my && e.close {
		// Epilogue: up to an enclosing delimiter or the end of input.
		e = p.skipBody()
	}
	return e
}

// skipParts skips the remaining parts of the multipart at level my once
// MaxParts is reached.
func (p *parser) skipParts(my int) endInfo {
	for p.s.next() {
		lvl, cl := p.delim()
		if lvl < 0 || (lvl == my && !cl) {
			continue
		}
		return p.s.endBefore(lvl, cl)
	}
	return p.s.endEOF()
}
