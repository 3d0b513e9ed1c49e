// Package address normalises mail addresses the one way the whole server
// uses: domains lower-cased and kept as IDNA A-labels internally (shown as
// U-labels), local parts stored as given and compared case-insensitively,
// SMTPUTF8 local parts accepted, and subaddresses split on a configurable
// delimiter.
package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalid is returned for addresses that cannot be used.
var ErrInvalid = errors.New("invalid address")

// Limits from RFC 5321 4.5.3.1.
const (
	MaxLocalPart = 64
	MaxDomain    = 255
	MaxAddress   = 320
)

var lookup = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false), idna.StrictDomainName(false))

// Domain returns the A-label, lower-case form of a domain given as U-label
// or A-label, without a trailing dot.
func Domain(d string) (string, error) {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if d == "" || len(d) > MaxDomain {
		return "", fmt.Errorf("domain %q: %w", d, ErrInvalid)
	}
	if strings.HasPrefix(d, "[") {
		// Address literal: kept as is, lower case.
		if !strings.HasSuffix(d, "]") {
			return "", fmt.Errorf("domain %q: %w", d, ErrInvalid)
		}
		return strings.ToLower(d), nil
	}
	a, err := lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("domain %q: %w: %v", d, ErrInvalid, err)
	}
	a = strings.ToLower(a)
	for _, label := range strings.Split(a, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("domain %q: empty or long label: %w", d, ErrInvalid)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("domain %q: character %q: %w", d, c, ErrInvalid)
			}
		}
	}
	return a, nil
}

// DisplayDomain returns the U-label form of an A-label domain for display.
func DisplayDomain(d string) string {
	u, err := idna.ToUnicode(d)
	if err != nil {
		return d
	}
	return u
}

// Address is a parsed address.
type Address struct {
	Local  string // as given
	Domain string // A-label, lower case
}

func (a Address) String() string {
	if a.Domain == "" {
		return a.Local
	}
	return a.Local + "@" + a.Domain
}

// Key is the case-insensitive identity of an address.
func (a Address) Key() string { return strings.ToLower(a.Local) + "@" + a.Domain }

// Parse parses local@domain (no angle brackets, no display name). Quoted
// local parts are accepted and kept with their quotes removed when they
// need none.
func Parse(s string) (Address, error) {
	if len(s) > MaxAddress || !utf8.ValidString(s) {
		return Address{}, fmt.Errorf("address too long or not UTF-8: %w", ErrInvalid)
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Address{}, fmt.Errorf("address %q: need local@domain: %w", s, ErrInvalid)
	}
	local, dom := s[:at], s[at+1:]
	if len(local) > MaxLocalPart {
		return Address{}, fmt.Errorf("address %q: local part over %d bytes: %w", s, MaxLocalPart, ErrInvalid)
	}
	if strings.HasPrefix(local, `"`) {
		if len(local) < 2 || !strings.HasSuffix(local, `"`) {
			return Address{}, fmt.Errorf("address %q: unterminated quote: %w", s, ErrInvalid)
		}
	} else {
		for _, r := range local {
			if r <= ' ' || r == 0x7f || strings.ContainsRune(`()<>[]:;@\,"`, r) {
				return Address{}, fmt.Errorf("address %q: character %q in local part: %w", s, r, ErrInvalid)
			}
		}
		if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
			return Address{}, fmt.Errorf("address %q: dots in local part: %w", s, ErrInvalid)
		}
	}
	d, err := Domain(dom)
	if err != nil {
		return Address{}, err
	}
	return Address{Local: local, Domain: d}, nil
}

// Base returns the address without its subaddress: "user+tag" → "user",
// "tag". Each character of delims is a delimiter (as Postfix's
// recipient_delimiter), the first one found splits; "" disables
// subaddressing.
func (a Address) Base(delims string) (Address, string) {
	if delims == "" {
		return a, ""
	}
	i := strings.IndexAny(a.Local, delims)
	if i <= 0 {
		return a, ""
	}
	_, w := utf8.DecodeRuneInString(a.Local[i:])
	return Address{Local: a.Local[:i], Domain: a.Domain}, a.Local[i+w:]
}

// ParseAlias normalises an alias address as it is stored: "local@domain"
// (as Parse), or "@domain" for a domain's catch-all. The CLI, the control
// operations and declarative apply all key aliases by it.
func ParseAlias(s string) (string, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutPrefix(s, "@"); ok {
		d, err := Domain(d)
		if err != nil {
			return "", err
		}
		return "@" + d, nil
	}
	a, err := Parse(s)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}
