package arc

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// parseTags parses a DKIM tag-list (RFC 6376 section 3.2): "t=v; t=v".
// Names are lower-cased (they are case-sensitive in DKIM, but every tag we
// use is lower case and no verifier we know of rejects upper case); values
// keep their inner whitespace. Duplicate tags make the list invalid.
func parseTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.Trim(part, " \t\r\n")
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("tag %q without '='", truncate([]byte(part)))
		}
		name = strings.ToLower(strings.Trim(name, " \t\r\n"))
		if name == "" {
			return nil, errors.New("empty tag name")
		}
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("duplicate tag %q", name)
		}
		tags[name] = strings.Trim(value, " \t\r\n")
	}
	return tags, nil
}

// stripSpace removes all whitespace (FWS inside base64 values).
func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}

// withoutB returns the header field value with the value of its b= tag
// removed (RFC 6376 section 3.7: the signature is computed with b= empty),
// everything else untouched.
func withoutB(value string) string {
	start := 0
	for start <= len(value) {
		end := strings.IndexByte(value[start:], ';')
		if end < 0 {
			end = len(value)
		} else {
			end += start
		}
		part := value[start:end]
		if eq := strings.IndexByte(part, '='); eq >= 0 && strings.Trim(part[:eq], " \t\r\n") == "b" {
			return value[:start+eq+1] + value[end:]
		}
		start = end + 1
	}
	return value
}

// instanceOf returns the i= of an ARC header field, 0 if it has none or a
// bad one. ARC-Authentication-Results is not a tag-list: its value starts
// with "i=N;" followed by the Authentication-Results payload.
func instanceOf(name, value string) int {
	var s string
	if strings.EqualFold(name, hdrAAR) {
		v := strings.TrimLeft(value, " \t\r\n")
		first, _, _ := strings.Cut(v, ";")
		k, val, ok := strings.Cut(first, "=")
		if !ok || strings.Trim(k, " \t\r\n") != "i" {
			return 0
		}
		s = val
	} else {
		tags, err := parseTags(value)
		if err != nil {
			return 0
		}
		s = tags["i"]
	}
	s = strings.Trim(s, " \t\r\n")
	if s == "" || len(s) > 3 {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// publicKey is a key published in DNS (RFC 6376 section 3.6.1).
type publicKey struct {
	alg string // "rsa" or "ed25519"
	key crypto.PublicKey
}

// minRSABits is the smallest RSA key accepted (RFC 8301).
const minRSABits = 1024

func parseKeyRecord(txt string) (*publicKey, error) {
	tags, err := parseTags(txt)
	if err != nil {
		return nil, err
	}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return nil, fmt.Errorf("key record version %q", v)
	}
	if h, ok := tags["h"]; ok {
		found := false
		for _, a := range strings.Split(h, ":") {
			if strings.Trim(a, " \t\r\n") == "sha256" {
				found = true
			}
		}
		if !found {
			return nil, errors.New("key record does not allow sha256")
		}
	}
	if s, ok := tags["s"]; ok {
		found := false
		for _, a := range strings.Split(s, ":") {
			if a = strings.Trim(a, " \t\r\n"); a == "*" || a == "email" {
				found = true
			}
		}
		if !found {
			return nil, errors.New("key record not for email")
		}
	}
	p, ok := tags["p"]
	if !ok {
		return nil, errors.New("key record without p=")
	}
	p = stripSpace(p)
	if p == "" {
		return nil, errors.New("key revoked")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("key record p=: %w", err)
	}
	switch k := tags["k"]; k {
	case "", "rsa":
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			// Some publish the bare PKCS#1 RSAPublicKey.
			rk, err2 := x509.ParsePKCS1PublicKey(der)
			if err2 != nil {
				return nil, fmt.Errorf("key record RSA key: %w", err)
			}
			pub = rk
		}
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("key record k=rsa holds another key type")
		}
		if rk.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too short", rk.N.BitLen())
		}
		return &publicKey{alg: "rsa", key: rk}, nil
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return nil, errors.New("key record Ed25519 key has a bad length")
		}
		return &publicKey{alg: "ed25519", key: ed25519.PublicKey(der)}, nil
	default:
		return nil, fmt.Errorf("key type %q not supported", k)
	}
}
