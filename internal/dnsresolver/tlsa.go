package dnsresolver

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// TLSA is one TLSA record (RFC 6698 section 2.1): which certificate or
// public key of a TLS server's chain to expect, and how to compare it.
type TLSA struct {
	// Usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE (RFC 7218 names).
	Usage uint8
	// Selector: 0 the full certificate, 1 its SubjectPublicKeyInfo.
	Selector uint8
	// MatchingType: 0 the data itself, 1 its SHA-256, 2 its SHA-512.
	MatchingType uint8
	// Data is the certificate association data.
	Data []byte
}

// TLSA certificate usages, selectors and matching types (RFC 6698, RFC 7218).
const (
	UsagePKIXTA = 0
	UsagePKIXEE = 1
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0
	SelectorSPKI = 1

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// maxTLSAData bounds the association data of one record: a full
// certificate (matching type 0) is the largest legitimate value, and a
// DNS RDATA cannot exceed 64 KiB anyway.
const maxTLSAData = 65535

// String renders the record's data in presentation format with the
// association data in lower-case hex, e.g. "3 1 1 8f2e…": the form RFC
// 8460 section 4.4 asks for in a TLS report's policy-string.
func (r TLSA) String() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data))
}

// ParseTLSA parses a TLSA record's data in presentation format: usage,
// selector and matching type as decimal numbers, then the association
// data in hex, which may be split by white space (RFC 6698 section 2.2).
// The mnemonics of RFC 7218 ("DANE-EE SPKI SHA2-256") are accepted too.
func ParseTLSA(s string) (TLSA, error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return TLSA{}, fmt.Errorf("TLSA %q: want usage, selector, matching type and data", trunc(s))
	}
	var r TLSA
	for i, m := range []struct {
		p     *uint8
		names []string
	}{
		{&r.Usage, []string{"PKIX-TA", "PKIX-EE", "DANE-TA", "DANE-EE"}},
		{&r.Selector, []string{"CERT", "SPKI"}},
		{&r.MatchingType, []string{"FULL", "SHA2-256", "SHA2-512"}},
	} {
		v, err := tlsaField(f[i], m.names)
		if err != nil {
			return TLSA{}, fmt.Errorf("TLSA %q: %w", trunc(s), err)
		}
		*m.p = v
	}
	h := strings.Join(f[3:], "")
	if len(h) > 2*maxTLSAData {
		return TLSA{}, fmt.Errorf("TLSA %q: association data longer than %d bytes", trunc(s), maxTLSAData)
	}
	d, err := hex.DecodeString(h)
	if err != nil || len(d) == 0 {
		return TLSA{}, fmt.Errorf("TLSA %q: association data is not hex", trunc(s))
	}
	r.Data = d
	return r, nil
}

func tlsaField(s string, names []string) (uint8, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return uint8(i), nil
		}
	}
	v, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("field %q is not a number from 0 to 255", trunc(s))
	}
	return uint8(v), nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
