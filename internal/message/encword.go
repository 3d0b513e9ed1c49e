package message

import (
	"strings"
)

// maxEncodedWordText bounds the encoded text of one RFC 2047 word. RFC 2047
// allows 75 characters for the whole word; real mail exceeds that.
const maxEncodedWordText = 4096

// DecodeHeaderValue decodes RFC 2047 encoded words in an (unfolded) header
// value to UTF-8, for SEARCH and SORT. It is tolerant: white space between
// adjacent encoded words is removed, adjacent words in the same charset are
// joined before conversion (so a multi-byte character split across words
// survives), malformed words are left as they are, unknown charsets are
// taken as UTF-8, and invalid UTF-8 outside encoded words as windows-1252.
// The result is always valid UTF-8.
func DecodeHeaderValue(s string) string {
	if !strings.Contains(s, "=?") {
		return textString(s)
	}
	var out strings.Builder
	out.Grow(len(s))
	var pend []byte
	pendCharset := ""
	flush := func() {
		if len(pend) > 0 {
			out.WriteString(decodeCharset(pendCharset, pend))
			pend = pend[:0]
		}
	}
	i := 0
	lastWordEnd := -1
	for i < len(s) {
		j := strings.Index(s[i:], "=?")
		if j < 0 {
			break
		}
		j += i
		cs, enc, data, end, ok := parseEncodedWord(s, j)
		if !ok {
			flush()
			out.WriteString(textString(s[i : j+2]))
			i = j + 2
			continue
		}
		if between := s[i:j]; lastWordEnd != i || !isWS(between) {
			flush()
			out.WriteString(textString(between))
		}
		if !equalFoldASCII(cs, pendCharset) {
			flush()
			pendCharset = cs
		}
		if enc == 'b' || enc == 'B' {
			pend = decodeBase64String(pend, data)
		} else {
			pend = decodeQString(pend, data)
		}
		i = end
		lastWordEnd = end
	}
	flush()
	out.WriteString(textString(s[i:]))
	return out.String()
}

// parseEncodedWord parses "=?charset?enc?text?=" at s[j:].
func parseEncodedWord(s string, j int) (charset string, enc byte, data string, end int, ok bool) {
	rest := s[j+2:]
	// Searches are confined to the longest plausible word, so that text
	// full of "=?" does not make decoding quadratic.
	q := strings.IndexByte(rest[:min(len(rest), 76)], '?')
	if q <= 0 || strings.ContainsAny(rest[:q], " \t\r\n") {
		return
	}
	charset = rest[:q]
	rest = rest[q+1:]
	if len(rest) < 2 || rest[1] != '?' {
		return
	}
	enc = rest[0]
	switch enc {
	case 'b', 'B', 'q', 'Q':
	default:
		return
	}
	rest = rest[2:]
	e := strings.Index(rest[:min(len(rest), maxEncodedWordText+2)], "?=")
	if e < 0 || strings.ContainsAny(rest[:e], "\r\n") {
		return
	}
	data = rest[:e]
	end = len(s) - len(rest) + e + 2
	return charset, enc, data, end, true
}

func isWS(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
		default:
			return false
		}
	}
	return true
}

func decodeBase64String(b []byte, s string) []byte {
	var acc uint32
	n := 0
	for i := 0; i < len(s); i++ {
		v := base64Value[s[i]]
		if v == 0xff {
			break // padding
		}
		if v == 0xfe {
			continue
		}
		acc = acc<<6 | uint32(v)
		n++
		if n == 4 {
			b = append(b, byte(acc>>16), byte(acc>>8), byte(acc))
			acc, n = 0, 0
		}
	}
	switch n {
	case 2:
		b = append(b, byte(acc>>4))
	case 3:
		b = append(b, byte(acc>>10), byte(acc>>2))
	}
	return b
}

func decodeQString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
			b = append(b, ' ')
		case c == '=' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return b
}
