package spam

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
)

// AuthResult is one method result for the Authentication-Results field
// (RFC 8601 2.2), e.g. {Method: "iprev", Result: "pass", Reason:
// "mail.example.org", Props: {{"policy.iprev", "192.0.2.1"}}}. It has the
// shape of mailauth.Method, which writes the field.
type AuthResult struct {
	Method string
	Result string
	// Reason is a comment (printable ASCII), "" for none.
	Reason string
	// Props are ptype.property=value pairs, in order.
	Props [][2]string
}

// StripFields are inbound header fields that must be removed before
// delivery so that no sender can forge our (or an Rspamd's) verdicts. A
// trailing "*" matches a prefix, case-insensitively, as
// mailauth.StripForeignResults takes them.
var StripFields = []string{"X-Spam*", "X-Rspamd-*"}

// IsStripField reports whether a header field name is one of StripFields.
func IsStripField(name string) bool {
	for _, s := range StripFields {
		if p, ok := strings.CutSuffix(s, "*"); ok {
			if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
				return true
			}
		} else if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// Bounds on the X-Spam-Status field.
const (
	maxHeaderSymbols = 64
	maxSymbolName    = 64
	foldAt           = 76
)

// spamHeaders returns the X-Spam-Score, X-Spam-Status and, for junk,
// X-Spam-Flag fields, SpamAssassin style:
//
//	X-Spam-Score: 7.50
//	X-Spam-Status: Yes, score=7.50 required=5.00
//		tests=DNSBL_ZEN_SPAMHAUS_ORG,HELO_BARE_IP
//	X-Spam-Flag: YES
func spamHeaders(junk bool, score, required float64, syms []Symbol) []byte {
	var b bytes.Buffer
	sc := strconv.FormatFloat(score, 'f', 2, 64)
	b.WriteString("X-Spam-Score: " + sc + "\r\n")
	yes := "No"
	if junk {
		yes = "Yes"
	}
	b.WriteString("X-Spam-Status: " + yes + ", score=" + sc + " required=" + strconv.FormatFloat(required, 'f', 2, 64))
	var names []string
	for _, s := range syms {
		if n := symbolToken(s.Name); n != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	more := false
	if len(names) > maxHeaderSymbols {
		names, more = names[:maxHeaderSymbols], true
	}
	if len(names) > 0 || more {
		b.WriteString("\r\n\ttests=")
		line := len("\ttests=")
		for i, n := range names {
			if i > 0 {
				b.WriteByte(',')
				line++
				if line+len(n) > foldAt {
					b.WriteString("\r\n\t")
					line = 1
				}
			}
			b.WriteString(n)
			line += len(n)
		}
		if more {
			b.WriteString(",\r\n\t...")
		}
	} else {
		b.WriteString(" tests=none")
	}
	b.WriteString("\r\n")
	if junk {
		b.WriteString("X-Spam-Flag: YES\r\n")
	}
	return b.Bytes()
}

// symbolToken keeps a symbol name to characters that are safe in a
// header and in a comma-separated list.
func symbolToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxSymbolName; i++ {
		ch := s[i]
		if ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '-' || ch == '.' {
			b.WriteByte(ch)
		}
	}
	return b.String()
}
