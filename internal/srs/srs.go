// Package srs implements the Sender Rewriting Scheme the way postsrsd and the
// libsrs2 code it embeds (srs2.c) do, byte for byte, so that a secret migrated
// from docker-mailserver (which runs postsrsd) keeps verifying the bounce
// addresses it issued, and addresses we issue look exactly like the old ones.
//
// Forward rewrites an envelope sender into our domain:
//
//	user@orig.example            -> SRS0=HHHH=TT=orig.example=user@our.example
//	SRS0=HHHH=TT=orig=user@hop1  -> SRS1=GGGG=hop1==HHHH=TT=orig=user@our.example
//	SRS1=GGGG=hop1==…@hop2       -> SRS1=FFFF=hop1==…@our.example
//
// Reverse undoes one step after verifying the hash (and, for SRS0, the
// timestamp): an SRS0 address gives back the original sender, an SRS1 address
// gives back the SRS0 address at the first forwarder (hop1 above), where the
// bounce has to go next.
//
// The hash is HMAC-SHA1 keyed with the secret over the ASCII-lower-cased
// fields concatenated without separators (SRS0: timestamp, host, user; SRS1:
// first-hop host, the opaque part after "SRS0" including its separator),
// encoded with the standard base64 alphabet (A–Z a–z 0–9 + /) and cut to the
// hash length. Verification compares case-insensitively, as libsrs2 does with
// strncasecmp, because some MTAs lower-case local parts. The timestamp is the
// day number modulo 1024 as two base32 characters (A–Z 2–7, high bits first).
//
// Known libsrs2 properties kept for compatibility: the fields are hashed
// without separators, so the split between host and user of an SRS0 address
// is not authenticated (moving characters across the "=" keeps the hash
// valid); and a hash longer than the configured length is accepted after
// truncation.
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults are those of libsrs2 and postsrsd.
const (
	DefaultSeparator  = '='
	DefaultHashLength = 4
	DefaultMaxAgeDays = 21

	// MaxAddressLen bounds the input addresses. An SMTP path is at most 256
	// octets (RFC 5321 section 4.5.3.1.3); postsrsd's own buffers are 1024.
	MaxAddressLen = 1000

	// maxHashLength is what an SHA-1 digest (20 bytes) fills completely in
	// base64 characters.
	maxHashLength = 26

	timeSlots  = 1 << 10 // two base32 characters
	dayseconds = 24 * 60 * 60
)

const (
	timeChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	// separators that may follow the SRS0/SRS1 tag; the fields after the
	// first one are always separated by '='.
	separators = "=+-"
)

// Errors returned, wrapped with detail, by Forward and Reverse. They follow
// libsrs2's classes (its messages are in the wrapping text).
var (
	ErrNotSRS      = errors.New("not an SRS address")
	ErrSyntax      = errors.New("malformed SRS address")
	ErrHashInvalid = errors.New("SRS hash invalid")
	ErrTimestamp   = errors.New("SRS timestamp out of date")
	ErrBadSender   = errors.New("sender cannot be rewritten")
)

// Options tune the rewriting. The zero value gives postsrsd's defaults.
type Options struct {
	// Separator after the SRS0/SRS1 tag in addresses we generate: '=', '+'
	// or '-'. All three are accepted on input regardless. Zero means '='.
	Separator byte
	// HashLength is the number of hash characters generated (and compared).
	// Zero means 4.
	HashLength int
	// HashMin is the shortest hash accepted on input; shorter hashes are
	// compared as a prefix. Zero means HashLength.
	HashMin int
	// MaxAgeDays is how many days an SRS0 address stays valid. Zero means 21.
	MaxAgeDays int
	// Now is the clock; nil means time.Now. Tests fix it.
	Now func() time.Time
}

// SRS rewrites and verifies addresses. It is safe for concurrent use.
type SRS struct {
	secrets [][]byte
	sep     byte
	hashLen int
	hashMin int
	maxAge  int64
	now     func() time.Time
}

// New returns an SRS that signs with secrets[0] and verifies with any of the
// secrets, so keys can be rotated by prepending a new one and dropping the old
// one after the maximum age.
func New(secrets []string, opts Options) (*SRS, error) {
	if len(secrets) == 0 {
		return nil, errors.New("srs: no secrets")
	}
	s := &SRS{
		sep:     opts.Separator,
		hashLen: opts.HashLength,
		hashMin: opts.HashMin,
		maxAge:  int64(opts.MaxAgeDays),
		now:     opts.Now,
	}
	for i, sec := range secrets {
		if sec == "" {
			return nil, fmt.Errorf("srs: secret %d is empty", i+1)
		}
		// libsrs2 keys the HMAC with strlen(secret): a NUL would silently
		// shorten the key there.
		if strings.IndexByte(sec, 0) >= 0 {
			return nil, fmt.Errorf("srs: secret %d contains a NUL byte", i+1)
		}
		s.secrets = append(s.secrets, []byte(sec))
	}
	if s.sep == 0 {
		s.sep = DefaultSeparator
	}
	if strings.IndexByte(separators, s.sep) < 0 {
		return nil, fmt.Errorf("srs: separator %q is not one of %q", s.sep, separators)
	}
	if s.hashLen == 0 {
		s.hashLen = DefaultHashLength
	}
	if s.hashLen < 1 || s.hashLen > maxHashLength {
		return nil, fmt.Errorf("srs: hash length %d out of range 1..%d", s.hashLen, maxHashLength)
	}
	if s.hashMin == 0 {
		s.hashMin = s.hashLen
	}
	if s.hashMin < 1 || s.hashMin > s.hashLen {
		return nil, fmt.Errorf("srs: minimum hash length %d out of range 1..%d", s.hashMin, s.hashLen)
	}
	if s.maxAge == 0 {
		s.maxAge = DefaultMaxAgeDays
	}
	if s.maxAge < 1 || s.maxAge >= timeSlots {
		return nil, fmt.Errorf("srs: maximum age %d days out of range 1..%d", s.maxAge, timeSlots-1)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// IsSRS reports whether addr looks like an SRS address (SRS0 or SRS1 tag,
// case-insensitive, followed by one of the separators), the test libsrs2
// applies before attempting to reverse it.
func IsSRS(addr string) bool {
	return len(addr) >= 5 && equalFoldASCII(addr[:3], "SRS") &&
		(addr[3] == '0' || addr[3] == '1') && strings.IndexByte(separators, addr[4]) >= 0
}

// hasTag reports whether local starts with tag (case-insensitively) followed
// by a separator.
func hasTag(local, tag string) bool {
	return len(local) >= 5 && equalFoldASCII(local[:4], tag) && strings.IndexByte(separators, local[4]) >= 0
}

// Forward rewrites the envelope sender for forwarding through domain (which
// may also be given as an address; its domain is used). A sender already in
// domain, or an SRS address we issued and that still verifies, is returned
// unchanged, as postsrsd does. The null sender and addresses without a local
// part or domain cannot be rewritten (ErrBadSender).
func (s *SRS) Forward(sender, domain string) (string, error) {
	out, err := s.forward(sender, domain)
	if err == nil && len(out) > MaxAddressLen {
		// Reverse would refuse it.
		return "", fmt.Errorf("srs: rewritten address longer than %d octets: %w", MaxAddressLen, ErrBadSender)
	}
	return out, err
}

func (s *SRS) forward(sender, domain string) (string, error) {
	if i := strings.LastIndexByte(domain, '@'); i >= 0 {
		domain = domain[i+1:]
	}
	if domain == "" || strings.ContainsAny(domain, "=@") {
		return "", fmt.Errorf("srs: forward domain %q is invalid", domain)
	}
	if len(sender) > MaxAddressLen {
		return "", fmt.Errorf("srs: sender longer than %d octets: %w", MaxAddressLen, ErrBadSender)
	}
	at := strings.IndexByte(sender, '@')
	if at < 0 {
		return "", fmt.Errorf("srs: no at sign in sender address: %w", ErrBadSender)
	}
	// libsrs2 splits at the first '@' when forwarding and when reversing; a
	// quoted local part containing '@' would not survive the round trip.
	if strings.IndexByte(sender[at+1:], '@') >= 0 {
		return "", fmt.Errorf("srs: sender has more than one at sign: %w", ErrBadSender)
	}
	user, host := sender[:at], sender[at+1:]
	if user == "" || host == "" {
		return "", fmt.Errorf("srs: sender %q lacks a local part or domain: %w", sender, ErrBadSender)
	}
	// '=' in the domain would shift the fields of the SRS0 address, and the
	// reverse would not verify.
	if strings.IndexByte(host, '=') >= 0 {
		return "", fmt.Errorf("srs: sender domain contains '=': %w", ErrBadSender)
	}
	if equalFoldASCII(host, domain) {
		return sender, nil
	}
	// postsrsd leaves an address that already reverses with our secrets alone.
	if _, err := s.Reverse(sender); err == nil {
		return sender, nil
	}

	switch {
	case hasTag(user, "SRS1"):
		// Re-forward of an SRS1 address: keep the first hop and the opaque
		// part, re-sign them for our domain.
		rest := user[5:]
		i := strings.IndexByte(rest, '=')
		if i < 0 {
			return "", fmt.Errorf("srs: no host in SRS1 address: %w", ErrSyntax)
		}
		rest = rest[i+1:]
		j := strings.IndexByte(rest, '=')
		if j < 0 {
			return "", fmt.Errorf("srs: no user in SRS1 address: %w", ErrSyntax)
		}
		srsHost, srsUser := rest[:j], rest[j+1:]
		// Reverse refuses these, so there is no point issuing them.
		if srsHost == "" || srsUser == "" {
			return "", fmt.Errorf("srs: empty host or user in SRS1 address: %w", ErrSyntax)
		}
		return s.compileSRS1(srsHost, srsUser, domain), nil
	case hasTag(user, "SRS0"):
		// The opaque part starts with the SRS0 separator, so the result
		// reads SRS1=HHHH=hop==HHHH=… for an '=' separator.
		return s.compileSRS1(host, user[4:], domain), nil
	default:
		stamp := s.stamp()
		h := s.hash(s.secrets[0], stamp, host, user)
		var b strings.Builder
		b.Grow(len(sender) + len(domain) + 16)
		b.WriteString("SRS0")
		b.WriteByte(s.sep)
		b.WriteString(h)
		b.WriteByte('=')
		b.WriteString(stamp)
		b.WriteByte('=')
		b.WriteString(host)
		b.WriteByte('=')
		b.WriteString(user)
		b.WriteByte('@')
		b.WriteString(domain)
		return b.String(), nil
	}
}

func (s *SRS) compileSRS1(srsHost, srsUser, domain string) string {
	h := s.hash(s.secrets[0], srsHost, srsUser)
	return "SRS1" + string(s.sep) + h + "=" + srsHost + "=" + srsUser + "@" + domain
}

// Reverse verifies an SRS address and returns the address one step back: the
// original sender for SRS0, the SRS0 address at the first forwarder for SRS1.
// The domain of addr is not checked (libsrs2 does not either); the caller
// routes only its own domains here. Errors wrap ErrNotSRS, ErrSyntax,
// ErrHashInvalid or ErrTimestamp.
func (s *SRS) Reverse(addr string) (string, error) {
	if !IsSRS(addr) {
		return "", ErrNotSRS
	}
	if len(addr) > MaxAddressLen {
		return "", fmt.Errorf("srs: address longer than %d octets: %w", MaxAddressLen, ErrSyntax)
	}
	local := addr
	if at := strings.IndexByte(local, '@'); at >= 0 {
		local = local[:at]
	}
	rest := local[5:]
	if local[3] == '1' {
		if rest == "" {
			return "", fmt.Errorf("srs: no hash in SRS1 address: %w", ErrSyntax)
		}
		i := strings.IndexByte(rest, '=')
		if i < 0 {
			return "", fmt.Errorf("srs: no host in SRS1 address: %w", ErrSyntax)
		}
		hash, rest := rest[:i], rest[i+1:]
		j := strings.IndexByte(rest, '=')
		if j < 0 {
			return "", fmt.Errorf("srs: no user in SRS1 address: %w", ErrSyntax)
		}
		host, user := rest[:j], rest[j+1:]
		// libsrs2 would hand back "SRS0…@" here; there is nowhere to send
		// such a bounce.
		if host == "" || user == "" {
			return "", fmt.Errorf("srs: empty host or user in SRS1 address: %w", ErrSyntax)
		}
		if err := s.checkHash(hash, host, user); err != nil {
			return "", err
		}
		return "SRS0" + user + "@" + host, nil
	}

	if rest == "" {
		return "", fmt.Errorf("srs: no hash in SRS0 address: %w", ErrSyntax)
	}
	i := strings.IndexByte(rest, '=')
	if i < 0 {
		return "", fmt.Errorf("srs: no timestamp in SRS0 address: %w", ErrSyntax)
	}
	hash, rest := rest[:i], rest[i+1:]
	i = strings.IndexByte(rest, '=')
	if i < 0 {
		return "", fmt.Errorf("srs: no host in SRS0 address: %w", ErrSyntax)
	}
	stamp, rest := rest[:i], rest[i+1:]
	i = strings.IndexByte(rest, '=')
	if i < 0 {
		return "", fmt.Errorf("srs: no user in SRS0 address: %w", ErrSyntax)
	}
	host, user := rest[:i], rest[i+1:]
	if host == "" || user == "" {
		return "", fmt.Errorf("srs: empty host or user in SRS0 address: %w", ErrSyntax)
	}
	// Same order as libsrs2: the timestamp first, then the hash.
	if err := s.checkStamp(stamp); err != nil {
		return "", err
	}
	if err := s.checkHash(hash, stamp, host, user); err != nil {
		return "", err
	}
	return user + "@" + host, nil
}

// hash is libsrs2's srs_hash_create: HMAC-SHA1 over the ASCII-lower-cased
// fields, base64, first hashLen characters.
func (s *SRS) hash(key []byte, fields ...string) string {
	m := hmac.New(sha1.New, key)
	var buf []byte
	for _, f := range fields {
		buf = appendLowerASCII(buf[:0], f)
		m.Write(buf)
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))[:s.hashLen]
}

// checkHash is libsrs2's srs_hash_check: a hash longer than hashLen is
// truncated, one shorter than hashMin refused, and the rest compared
// case-insensitively as a prefix against each secret's hash.
func (s *SRS) checkHash(hash string, fields ...string) error {
	if len(hash) < s.hashMin {
		return fmt.Errorf("srs: hash too short in SRS address: %w", ErrSyntax)
	}
	if len(hash) > s.hashLen {
		hash = hash[:s.hashLen]
	}
	given := appendLowerASCII(nil, hash)
	for _, key := range s.secrets {
		want := appendLowerASCII(nil, s.hash(key, fields...)[:len(hash)])
		if subtle.ConstantTimeCompare(given, want) == 1 {
			return nil
		}
	}
	return fmt.Errorf("srs: hash invalid in SRS address: %w", ErrHashInvalid)
}

// stamp is libsrs2's srs_timestamp_create for the current day.
func (s *SRS) stamp() string {
	day := s.now().Unix() / dayseconds
	if day < 0 {
		day = 0
	}
	return string([]byte{timeChars[(day>>5)&31], timeChars[day&31]})
}

// checkStamp is libsrs2's srs_timestamp_check: the stamp is a day number
// modulo 1024, valid from that day to maxAge days later; a stamp "in the
// future" is read as one from 1024 days ago and so refused.
func (s *SRS) checkStamp(stamp string) error {
	if len(stamp) != 2 {
		return fmt.Errorf("srs: timestamp %q has not 2 characters: %w", stamp, ErrTimestamp)
	}
	var then int64
	for i := 0; i < len(stamp); i++ {
		off := strings.IndexByte(timeChars, upperASCII(stamp[i]))
		if off < 0 {
			return fmt.Errorf("srs: bad base32 character in timestamp: %w", ErrSyntax)
		}
		then = then<<5 | int64(off)
	}
	now := s.now().Unix() / dayseconds
	if now < 0 {
		now = 0
	}
	now %= timeSlots
	if now < then {
		now += timeSlots
	}
	if now <= then+s.maxAge {
		return nil
	}
	return fmt.Errorf("srs: timestamp out of date: %w", ErrTimestamp)
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// appendLowerASCII lower-cases A–Z only, like tolower in the C locale.
func appendLowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// equalFoldASCII is strcasecmp: unlike strings.EqualFold it does not fold
// non-ASCII (the Kelvin sign is not a 'k' here).
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
