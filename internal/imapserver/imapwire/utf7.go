package imapwire

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 section 5.1.3) is how IMAP4rev1 clients that did
// not enable UTF8=ACCEPT or IMAP4rev2 spell non-ASCII mailbox names.

var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

var errUTF7 = errors.New("invalid modified UTF-7 mailbox name")

// EncodeMUTF7 encodes a UTF-8 mailbox name in modified UTF-7.
func EncodeMUTF7(s string) string {
	var b strings.Builder
	var pending []uint16
	flush := func() {
		if len(pending) == 0 {
			return
		}
		buf := make([]byte, 2*len(pending))
		for i, u := range pending {
			buf[2*i], buf[2*i+1] = byte(u>>8), byte(u)
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(buf))
		b.WriteByte('-')
		pending = pending[:0]
	}
	for _, r := range s {
		if 0x20 <= r && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			pending = append(pending, uint16(r1), uint16(r2))
		} else {
			pending = append(pending, uint16(r))
		}
	}
	flush()
	return b.String()
}

// DecodeMUTF7 decodes a modified UTF-7 mailbox name to UTF-8.
func DecodeMUTF7(s string) (string, error) {
	if !strings.Contains(s, "&") {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				return "", errUTF7
			}
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", errUTF7
		}
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errUTF7
		}
		enc := s[i+1 : i+1+j]
		i += j + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := mutf7.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 || len(raw) == 0 {
			return "", errUTF7
		}
		units := make([]uint16, len(raw)/2)
		for k := range units {
			units[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for _, r := range utf16.Decode(units) {
			if r == utf8.RuneError || (0x20 <= r && r <= 0x7e) {
				// Printable ASCII must not be encoded; lone surrogates
				// are invalid.
				return "", errUTF7
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}
