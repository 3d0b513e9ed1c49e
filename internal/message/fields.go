package message

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// MaxHeaderRead bounds ReadHeader: a header beyond this is truncated at a
// line boundary (fetching the full header as a byte range is unaffected).
const MaxHeaderRead = 1 << 20

// ReadHeader reads the header bytes [start, end) from r, e.g. a part's
// HeaderStart..BodyStart, for HeaderFields and HeaderValue. Headers longer
// than MaxHeaderRead are cut after the last complete line within the limit.
func ReadHeader(r io.ReaderAt, start, end int64) ([]byte, error) {
	if start < 0 || end < start {
		return nil, fmt.Errorf("read header: invalid range %d..%d", start, end)
	}
	n := end - start
	cut := false
	if n > MaxHeaderRead {
		n = MaxHeaderRead
		cut = true
	}
	b := make([]byte, n)
	m, err := r.ReadAt(b, start)
	if m < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read header at %d: %w", start, err)
	}
	if cut {
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i+1]
		}
	}
	return b, nil
}

// forEachField calls fn for each header field in raw (a header block,
// optionally ending with the blank line) with the field name (nil for lines
// that are not a field) and the field's lines including continuation lines,
// as in raw. It returns whether the blank line ending the header was seen.
func forEachField(raw []byte, fn func(name, lines []byte) bool) (blank bool) {
	for len(raw) > 0 {
		l := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			l = raw[:i+1]
		}
		if len(l) == eolLen(l) {
			return true
		}
		// Field extent: this line plus continuation lines.
		n := len(l)
		for n < len(raw) && (raw[n] == ' ' || raw[n] == '\t') {
			if i := bytes.IndexByte(raw[n:], '\n'); i >= 0 {
				n += i + 1
			} else {
				n = len(raw)
			}
		}
		var name []byte
		if l[0] != ' ' && l[0] != '\t' {
			if c := bytes.IndexByte(l, ':'); c > 0 {
				name = bytes.TrimRight(l[:c], " \t")
			}
		}
		if !fn(name, raw[:n]) {
			return false
		}
		raw = raw[n:]
	}
	return false
}

// appendCRLF appends lines with every line break made CRLF, and a final
// CRLF if the last line has none.
func appendCRLF(out, lines []byte) []byte {
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		if i < 0 {
			out = append(out, lines...)
			return append(out, '\r', '\n')
		}
		l := lines[:i]
		if len(l) > 0 && l[len(l)-1] == '\r' {
			l = l[:len(l)-1]
		}
		out = append(out, l...)
		out = append(out, '\r', '\n')
		lines = lines[i+1:]
	}
	return out
}

// HeaderFields returns the fields of the header block raw whose names are
// (not == false) or are not (not == true) in names, compared
// case-insensitively, as BODY[HEADER.FIELDS (...)] and
// BODY[HEADER.FIELDS.NOT (...)] need: whole fields with continuation lines,
// original bytes with CRLF line breaks, followed by the blank line if raw
// has one (RFC 3501 6.4.5). Lines that are not fields only appear in the
// .NOT form.
func HeaderFields(raw []byte, names []string, not bool) []byte {
	out := make([]byte, 0, 256)
	blank := forEachField(raw, func(name, lines []byte) bool {
		match := false
		if name != nil {
			for _, n := range names {
				if len(n) == len(name) && strings.EqualFold(n, string(name)) {
					match = true
					break
				}
			}
		}
		if match != not {
			out = appendCRLF(out, lines)
		}
		return true
	})
	if blank {
		out = append(out, '\r', '\n')
	}
	return out
}

// HeaderValues returns the unfolded values (line breaks removed, surrounding
// white space trimmed, encoded words kept) of all fields named name in the
// header block raw, in order. For SEARCH HEADER and SORT.
func HeaderValues(raw []byte, name string) []string {
	var vals []string
	forEachField(raw, func(n, lines []byte) bool {
		if n != nil && len(n) == len(name) && strings.EqualFold(name, string(n)) {
			vals = append(vals, unfold(lines[bytes.IndexByte(lines, ':')+1:]))
		}
		return true
	})
	return vals
}

// HeaderValue returns the first value of the field name in raw; see
// HeaderValues.
func HeaderValue(raw []byte, name string) (string, bool) {
	var val string
	found := false
	forEachField(raw, func(n, lines []byte) bool {
		if n != nil && len(n) == len(name) && strings.EqualFold(name, string(n)) {
			val = unfold(lines[bytes.IndexByte(lines, ':')+1:])
			found = true
			return false
		}
		return true
	})
	return val, found
}

// unfold removes line breaks (keeping the white space that follows them)
// and trims the value.
func unfold(b []byte) string {
	if bytes.IndexByte(b, '\n') < 0 {
		return text(bytes.TrimSpace(b))
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return text(bytes.TrimSpace(out))
}
