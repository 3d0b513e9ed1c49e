package spam

import (
	"context"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

// HeloResult is the check of the client's EHLO/HELO name.
type HeloResult struct {
	Helo string
	// Problem is the symbol of what is wrong with the name (SymHelo*),
	// "" when nothing is.
	Problem string
	// DNS is the outcome of resolving the name: "pass" (has addresses),
	// "fail" (does not exist), "temperror", or "" when not resolved
	// (address literals, names already found bad).
	DNS string
}

// maxHeloBytes bounds the HELO name looked at; go-smtp bounds the line
// already, this keeps the checks cheap whatever the caller passes.
const maxHeloBytes = 512

// privateTLDs are suffixes of names that exist only inside a network.
var privateTLDs = []string{"localdomain", "local", "localhost", "lan", "home", "internal", "intranet", "corp", "invalid", "test", "example", "arpa"}

// heloSyntax checks the form of a HELO name against the client address
// and our own name. It returns the problem symbol (or "") and the name to
// resolve, if any: a well-formed domain that is not ours.
func heloSyntax(helo string, ip netip.Addr, ourHost string) (problem, resolve string) {
	h := strings.TrimSpace(helo)
	if h == "" || len(h) > maxHeloBytes {
		return SymHeloInvalid, ""
	}
	if strings.HasPrefix(h, "[") {
		inner, ok := strings.CutSuffix(h[1:], "]")
		if !ok {
			return SymHeloInvalid, ""
		}
		if rest, ok := cutPrefixFold(inner, "IPv6:"); ok {
			a, err := netip.ParseAddr(rest)
			if err != nil || !a.Is6() || a.Zone() != "" {
				return SymHeloInvalid, ""
			}
			if a.Unmap() != ip.Unmap() {
				return SymHeloLiteralMismatch, ""
			}
			return "", ""
		}
		a, err := netip.ParseAddr(inner)
		if err != nil || !a.Is4() {
			return SymHeloInvalid, ""
		}
		if a != ip.Unmap() {
			return SymHeloLiteralMismatch, ""
		}
		return "", ""
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return SymHeloBareIP, ""
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if !isASCII(name) {
		// SMTPUTF8 clients may send U-labels (RFC 6531 3.7.1).
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return SymHeloInvalid, ""
		}
		name = a
	}
	if !validDomain(name) {
		return SymHeloInvalid, ""
	}
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return SymHeloNotFQDN, ""
	}
	tld := name[i+1:]
	if allDigits(tld) {
		// "1.2.3" or "300.1.1.1": neither an address nor a name.
		return SymHeloInvalid, ""
	}
	for _, p := range privateTLDs {
		if tld == p {
			return SymHeloNotFQDN, ""
		}
	}
	if ourHost != "" && name == strings.ToLower(strings.TrimSuffix(ourHost, ".")) {
		return SymHeloOurs, ""
	}
	return "", name
}

// checkHELO checks the HELO name: its form, whether it claims to be us,
// and whether it resolves.
func (c *Checker) checkHELO(ctx context.Context, helo string, ip netip.Addr) HeloResult {
	r := HeloResult{Helo: sanitizeText(helo, maxHeloBytes)}
	problem, name := heloSyntax(helo, ip, c.cfg.Hostname)
	r.Problem = problem
	if name != "" && c.cfg.IsLocalDomain != nil {
		local, err := c.cfg.IsLocalDomain(ctx, name)
		if err != nil {
			c.log.Debug("HELO: local domain lookup failed", "helo", r.Helo, "err", err)
		}
		if local {
			r.Problem, name = SymHeloOurs, ""
		}
	}
	if name != "" {
		r.DNS = c.heloDNS(ctx, name)
		if r.DNS == "fail" {
			r.Problem = SymHeloNoDNS
		}
	}
	res := "ok"
	if r.Problem != "" {
		res = strings.ToLower(strings.TrimPrefix(r.Problem, "HELO_"))
	}
	c.metrics.checks.WithLabelValues("helo", res).Inc()
	return r
}

func (c *Checker) heloDNS(ctx context.Context, name string) string {
	key := "h|" + name
	if e, ok := c.cache.get(key); ok {
		return e.helo
	}
	addrs, err := c.r.LookupIPAddr(ctx, name)
	var st string
	switch {
	case err == nil && len(addrs) > 0:
		st = "pass"
	case err == nil || dnsresolver.IsNotFound(err):
		st = "fail"
	default:
		return "temperror"
	}
	c.cache.put(key, cached{helo: st})
	return st
}

// validDomain reports whether s (lower case, no final dot) is a
// syntactically valid host name: labels of letters, digits, hyphens (not
// at either end) and, leniently, underscores; at most 253 bytes.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
