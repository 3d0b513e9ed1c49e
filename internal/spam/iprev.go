package spam

import (
	"context"
	"net/netip"
	"strings"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

// IprevStatus is an iprev result (RFC 8601 3).
type IprevStatus string

const (
	// IprevPass: a PTR name of the address resolves back to it.
	IprevPass IprevStatus = "pass"
	// IprevFail: PTR names exist but none resolves back to the address.
	IprevFail IprevStatus = "fail"
	// IprevTempError: a lookup failed; the answer is unknown.
	IprevTempError IprevStatus = "temperror"
	// IprevPermError: the address has no PTR record.
	IprevPermError IprevStatus = "permerror"
)

// IprevResult is the reverse DNS check of a client address.
type IprevResult struct {
	Status IprevStatus
	// Name is the PTR name that resolved back to the address (pass).
	Name string
	// Names are the PTR names found (bounded, lower case, no final dot).
	Names  []string
	Reason string
}

// maxPTRNames bounds the PTR names checked (RFC 8601 3 leaves it to the
// receiver; RFC 7208 5.5 uses 10 for the same purpose).
const maxPTRNames = 10

func (r IprevResult) authResult(ip netip.Addr) AuthResult {
	st := string(r.Status)
	if st == "" {
		st = "none"
	}
	ar := AuthResult{Method: "iprev", Result: st, Props: [][2]string{{"policy.iprev", ip.String()}}}
	switch {
	case r.Name != "":
		ar.Reason = r.Name
	case len(r.Names) > 0:
		ar.Reason = r.Names[0]
	}
	return ar
}

// checkIprev does the iprev check: PTR names of ip, then A/AAAA of each
// name until one contains ip.
func (c *Checker) checkIprev(ctx context.Context, ip netip.Addr) IprevResult {
	key := "i|" + ip.String()
	if e, ok := c.cache.get(key); ok {
		c.metrics.checks.WithLabelValues("iprev", string(e.iprev.Status)).Inc()
		return e.iprev
	}
	r := iprev(ctx, c.r, ip)
	c.metrics.checks.WithLabelValues("iprev", string(r.Status)).Inc()
	if r.Status != IprevTempError {
		c.cache.put(key, cached{iprev: r})
	}
	return r
}

func iprev(ctx context.Context, res Resolver, ip netip.Addr) IprevResult {
	ptrs, err := res.LookupAddr(ctx, ip.String())
	if err != nil {
		if dnsresolver.IsNotFound(err) {
			return IprevResult{Status: IprevPermError, Reason: "no PTR record"}
		}
		return IprevResult{Status: IprevTempError, Reason: "PTR lookup: " + sanitizeText(err.Error(), maxReasonBytes)}
	}
	var r IprevResult
	for _, p := range ptrs {
		n := strings.ToLower(strings.TrimSuffix(p, "."))
		if !validDomain(n) {
			continue
		}
		r.Names = append(r.Names, n)
		if len(r.Names) == maxPTRNames {
			break
		}
	}
	if len(r.Names) == 0 {
		return IprevResult{Status: IprevPermError, Reason: "no valid PTR name"}
	}
	temp := false
	for _, n := range r.Names {
		addrs, err := res.LookupIPAddr(ctx, n)
		if err != nil {
			if !dnsresolver.IsNotFound(err) {
				temp = true
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		for _, a := range addrs {
			if fa, ok := netip.AddrFromSlice(a.IP); ok && fa.Unmap() == ip {
				r.Status, r.Name = IprevPass, n
				return r
			}
		}
	}
	if temp {
		r.Status, r.Reason = IprevTempError, "forward lookup failed"
		return r
	}
	r.Status, r.Reason = IprevFail, "PTR name does not resolve to the address"
	return r
}
