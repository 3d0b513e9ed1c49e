package mailauth

import (
	"bytes"
	"strings"
)

// DefaultStripFields are inbound header fields removed before delivery
// besides Authentication-Results claiming our authserv-id: nobody else
// may write our verdicts. A trailing "*" makes a name a prefix.
var DefaultStripFields = []string{"X-Mailstead-*"}

// maxFields bounds the header fields looked at by the header scanners.
const maxFields = 10000

// forEachField calls fn for every header field of hdr (a header block,
// optionally ending with its blank line) with the field's name and raw
// value (after the colon, folding kept). Lines that are not fields are
// skipped. It stops at the blank line, when fn returns false, or after
// maxFields fields.
func forEachField(hdr []byte, fn func(name, value []byte) bool) {
	fieldLines(hdr, func(name, lines []byte) bool {
		if name == nil {
			return true
		}
		c := bytes.IndexByte(lines, ':')
		return fn(name, lines[c+1:])
	})
}

// fieldLines splits hdr into fields: each call gets the field name (nil
// for a line that is not a field, e.g. a leading continuation line or
// garbage) and the field's lines with continuation lines and line
// endings exactly as in hdr. It stops at the blank line ending the
// header (which it does not pass to fn) and returns its offset, or
// len(hdr) when there is none.
func fieldLines(hdr []byte, fn func(name, lines []byte) bool) int {
	off := 0
	for n := 0; off < len(hdr); n++ {
		rest := hdr[off:]
		l := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l = rest[:i+1]
		}
		if string(l) == "\n" || string(l) == "\r\n" {
			return off
		}
		end := len(l)
		for end < len(rest) && (rest[end] == ' ' || rest[end] == '\t') {
			if i := bytes.IndexByte(rest[end:], '\n'); i >= 0 {
				end += i + 1
			} else {
				end = len(rest)
			}
		}
		var name []byte
		if l[0] != ' ' && l[0] != '\t' {
			if c := bytes.IndexByte(l, ':'); c > 0 {
				name = bytes.TrimRight(l[:c], " \t")
				if len(name) == 0 {
					name = nil
				}
			}
		}
		if n >= maxFields || !fn(name, rest[:end]) {
			return len(hdr)
		}
		off += end
	}
	return off
}

// StripForeignResults returns hdr (a message header block) without the
// fields that could be mistaken for our own verdicts: every
// Authentication-Results field whose authserv-id is authservID (compared
// case-insensitively, trailing dot ignored; RFC 8601 5), and every field
// named in strip (case-insensitive; a trailing "*" matches a prefix, as
// in "X-Spam-*"). Everything else, including fields of other
// authserv-ids, is kept byte for byte. When nothing is removed it
// returns hdr itself and 0.
func StripForeignResults(hdr []byte, authservID string, strip []string) ([]byte, int) {
	id := normID(authservID)
	var out []byte
	removed := 0
	kept := 0 // hdr[:kept] is accounted for in out
	pos := 0
	fieldLines(hdr, func(name, lines []byte) bool {
		start := pos
		pos += len(lines)
		if name == nil || !shouldStrip(name, lines, id, strip) {
			return true
		}
		if out == nil {
			out = make([]byte, 0, len(hdr))
		}
		out = append(out, hdr[kept:start]...)
		kept = pos
		removed++
		return true
	})
	if removed == 0 {
		return hdr, 0
	}
	out = append(out, hdr[kept:]...)
	return out, removed
}

func shouldStrip(name, lines []byte, id string, strip []string) bool {
	n := string(name)
	if strings.EqualFold(n, "Authentication-Results") {
		if id == "" {
			return false
		}
		v := lines[bytes.IndexByte(lines, ':')+1:]
		return normID(AuthServID(string(v))) == id
	}
	for _, s := range strip {
		if p, ok := strings.CutSuffix(s, "*"); ok {
			if len(n) >= len(p) && strings.EqualFold(n[:len(p)], p) {
				return true
			}
		} else if strings.EqualFold(n, s) {
			return true
		}
	}
	return false
}

func normID(s string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}

// AuthServID returns the authserv-id of an Authentication-Results field
// value (RFC 8601 2.2): the first token or quoted string after optional
// comments and white space, folding allowed. "" when there is none.
func AuthServID(v string) string {
	v = skipCFWS(v)
	if v == "" {
		return ""
	}
	if v[0] == '"' {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch v[i] {
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case '"':
				return b.String()
			case '\r', '\n':
			default:
				b.WriteByte(v[i])
			}
		}
		return "" // unterminated
	}
	end := strings.IndexAny(v, " \t\r\n;()\"")
	if end < 0 {
		end = len(v)
	}
	return v[:end]
}

// maxCommentDepth bounds nested comments.
const maxCommentDepth = 32

// skipCFWS skips white space, line breaks and (nested) comments.
func skipCFWS(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" || s[0] != '(' {
			return s
		}
		depth := 0
		i := 0
	comment:
		for ; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '(':
				depth++
				if depth > maxCommentDepth {
					return ""
				}
			case ')':
				depth--
				if depth == 0 {
					break comment
				}
			}
		}
		if i >= len(s) {
			return "" // unterminated comment
		}
		s = s[i+1:]
	}
}
