package spam

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

// List is one DNS blocklist (DNSBL) or allowlist (DNSWL), RFC 5782.
type List struct {
	// Zone is the list's DNS zone, e.g. "zen.spamhaus.org".
	Zone string
	// Name is the symbol reported when the list lists a client; default
	// DNSBL_<ZONE> or DNSWL_<ZONE> (upper case, dots as underscores).
	Name string
	// Weight is added to the score when the list lists the client:
	// positive for a DNSBL, negative (or 0) for a DNSWL.
	Weight float64
	// Codes are the answers that mean "listed": addresses
	// ("127.0.0.2"), ranges ("127.0.0.2-127.0.0.11") or prefixes
	// ("127.0.10.0/24"). Empty means any address in 127.0.0.0/8 except
	// 127.255.255.0/24, where lists put their error codes (e.g.
	// Spamhaus' "queried through a public resolver").
	Codes []string
	// Reject refuses clients this DNSBL lists outright (550 5.7.1 at
	// RCPT), whatever the score.
	Reject bool
}

// ListStatus is the outcome of one list query.
type ListStatus string

const (
	Listed    ListStatus = "listed"
	NotListed ListStatus = "notlisted"
	// Unknown: the query timed out, failed, or the list answered with an
	// error code. Never counted as listed.
	Unknown ListStatus = "unknown"
	// Skipped: the address is not a public one (loopback, private, ...);
	// lists know nothing about those.
	Skipped ListStatus = "skipped"
)

// ListResult is the outcome of one list for one client.
type ListResult struct {
	Zone   string
	Symbol string
	Allow  bool // a DNSWL
	Status ListStatus
	// Codes are the addresses the list answered with (bounded).
	Codes []netip.Addr
	// Reason is the list's TXT record for a listed client (sanitised,
	// bounded) or why the status is Unknown.
	Reason string
	// Weight is the list's weight when Listed, else 0.
	Weight float64
	Reject bool
}

// authResult is the list's Authentication-Results method: RFC 8904's
// "dnswl" for allowlists, the experimental "x-dnsbl" for blocklists.
func (l ListResult) authResult() (AuthResult, bool) {
	if l.Status == Skipped || l.Status == "" {
		return AuthResult{}, false
	}
	ar := AuthResult{Method: "x-dnsbl", Props: [][2]string{{"dns.zone", l.Zone}}}
	if l.Allow {
		ar.Method = "dnswl"
	}
	switch {
	case l.Status == Unknown:
		ar.Result = "temperror"
	case l.Status == Listed && l.Allow:
		ar.Result = "pass"
	case l.Status == Listed:
		ar.Result = "fail"
	case l.Allow:
		ar.Result = "none"
	default:
		ar.Result = "pass"
	}
	if l.Status == Listed && len(l.Codes) > 0 {
		ar.Props = append(ar.Props, [2]string{"policy.ip", l.Codes[0].String()})
	}
	return ar, true
}

// Bounds on what a list answer may contribute.
const (
	maxListCodes   = 8
	maxReasonBytes = 200
	maxLists       = 32
)

type list struct {
	List
	allow  bool
	ranges []addrRange
}

type addrRange struct{ lo, hi netip.Addr }

func (r addrRange) contains(a netip.Addr) bool {
	return a.Compare(r.lo) >= 0 && a.Compare(r.hi) <= 0
}

var (
	loopback8   = addrRange{netip.MustParseAddr("127.0.0.0"), netip.MustParseAddr("127.255.255.255")}
	errorCodes  = addrRange{netip.MustParseAddr("127.255.255.0"), netip.MustParseAddr("127.255.255.255")}
	defaultCode = []addrRange{loopback8}
)

func compileLists(ls []List, allow bool) ([]*list, error) {
	if len(ls) > maxLists {
		return nil, fmt.Errorf("spam: at most %d lists of a kind", maxLists)
	}
	var out []*list
	seen := map[string]bool{}
	for _, l := range ls {
		zone := strings.ToLower(strings.Trim(strings.TrimSpace(l.Zone), "."))
		if zone == "" || !validDomain(zone) {
			return nil, fmt.Errorf("spam: invalid list zone %q", l.Zone)
		}
		if seen[zone] {
			return nil, fmt.Errorf("spam: list %s given twice", zone)
		}
		seen[zone] = true
		if allow && l.Weight > 0 {
			return nil, fmt.Errorf("spam: DNSWL %s: weight %g must not be positive", zone, l.Weight)
		}
		if !allow && l.Weight < 0 {
			return nil, fmt.Errorf("spam: DNSBL %s: weight %g must not be negative", zone, l.Weight)
		}
		if allow && l.Reject {
			return nil, fmt.Errorf("spam: DNSWL %s: reject makes no sense for an allowlist", zone)
		}
		c := &list{List: l, allow: allow}
		c.Zone = zone
		if c.Name == "" {
			prefix := "DNSBL_"
			if allow {
				prefix = "DNSWL_"
			}
			c.Name = prefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(zone))
		}
		for _, code := range l.Codes {
			r, err := parseCode(code)
			if err != nil {
				return nil, fmt.Errorf("spam: list %s: %w", zone, err)
			}
			c.ranges = append(c.ranges, r)
		}
		out = append(out, c)
	}
	return out, nil
}

// parseCode parses "a", "a-b" or "a/n" into an address range.
func parseCode(s string) (addrRange, error) {
	s = strings.TrimSpace(s)
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(lo))
		b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a.BitLen() != b.BitLen() || a.Compare(b) > 0 {
			return addrRange{}, fmt.Errorf("invalid return code range %q", s)
		}
		return addrRange{a, b}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return addrRange{}, fmt.Errorf("invalid return code prefix %q", s)
		}
		p = p.Masked()
		return addrRange{p.Addr(), lastAddr(p)}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return addrRange{}, fmt.Errorf("invalid return code %q", s)
	}
	return addrRange{a, a}, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// QueryName returns the DNS name to look up for ip in zone (RFC 5782
// 2.1 and 2.4): the IPv4 octets or the 32 IPv6 nibbles in reverse order,
// followed by the zone. IPv4-mapped IPv6 addresses are queried as IPv4.
func QueryName(ip netip.Addr, zone string) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(a[i])))
			b.WriteByte('.')
		}
	} else {
		a := ip.As16()
		const hex = "0123456789abcdef"
		for i := 15; i >= 0; i-- {
			b.WriteByte(hex[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[a[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(zone)
	return b.String()
}

// publicAddr reports whether lists can know anything about ip.
func publicAddr(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsLoopback() && !ip.IsPrivate() && !ip.IsLinkLocalUnicast() &&
		!ip.IsUnspecified() && !ip.IsMulticast() && !ip.IsInterfaceLocalMulticast()
}

// checkLists queries every list in parallel and returns their results in
// configured order (DNSBLs then DNSWLs). Lists that have not answered
// when ctx ends are Unknown.
func (c *Checker) checkLists(ctx context.Context, ip netip.Addr) []ListResult {
	all := append(append([]*list(nil), c.dnsbl...), c.dnswl...)
	out := make([]ListResult, len(all))
	if len(all) == 0 {
		return out
	}
	type res struct {
		i int
		r ListResult
	}
	// Buffered for every list, so a lookup finishing after we stopped
	// waiting does not leak its goroutine.
	ch := make(chan res, len(all))
	pending := 0
	for i, l := range all {
		base := ListResult{Zone: l.Zone, Symbol: l.Name, Allow: l.allow, Reject: l.List.Reject}
		if !publicAddr(ip) {
			base.Status = Skipped
			out[i] = base
			continue
		}
		if e, ok := c.cache.get("l|" + l.Zone + "|" + ip.String()); ok {
			out[i] = e.list
			c.metrics.countList(l.allow, e.list.Status)
			continue
		}
		pending++
		go func() {
			ch <- res{i, c.queryList(ctx, l, ip, base)}
		}()
	}
	for pending > 0 {
		select {
		case r := <-ch:
			out[r.i] = r.r
			c.metrics.countList(r.r.Allow, r.r.Status)
			pending--
		case <-ctx.Done():
			for i, l := range all {
				if out[i].Status == "" {
					out[i] = ListResult{Zone: l.Zone, Symbol: l.Name, Allow: l.allow, Reject: l.List.Reject, Status: Unknown, Reason: "timeout"}
					c.metrics.countList(l.allow, Unknown)
				}
			}
			pending = 0
		}
	}
	return out
}

func (c *Checker) queryList(ctx context.Context, l *list, ip netip.Addr, r ListResult) ListResult {
	name := QueryName(ip, l.Zone)
	addrs, err := c.r.LookupIPAddr(ctx, name)
	if err != nil {
		if dnsresolver.IsNotFound(err) {
			r.Status = NotListed
			c.cache.put("l|"+l.Zone+"|"+ip.String(), cached{list: r})
			return r
		}
		r.Status, r.Reason = Unknown, "lookup failed: "+sanitizeText(err.Error(), maxReasonBytes)
		return r
	}
	ranges := l.ranges
	if len(ranges) == 0 {
		ranges = defaultCode
	}
	var listed, errCode bool
	for _, a := range addrs {
		ad, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ad = ad.Unmap()
		if len(r.Codes) < maxListCodes {
			r.Codes = append(r.Codes, ad)
		}
		switch {
		case inRanges(ranges, ad) && !(len(l.ranges) == 0 && errorCodes.contains(ad)):
			listed = true
		case errorCodes.contains(ad):
			errCode = true
		}
	}
	switch {
	case listed:
		r.Status, r.Weight = Listed, l.Weight
		r.Reason = c.listReason(ctx, name)
	case errCode:
		// The list refuses to answer us (e.g. queried through a public
		// resolver, or over its free limit): say so, loudly, since the
		// list silently stopped working.
		r.Status, r.Reason = Unknown, "list returned error code "+r.Codes[0].String()
		if c.warnOnce("errcode|"+l.Zone, time.Hour) {
			c.log.Warn("DNS list answered with an error code; is it queried through a public resolver?", "zone", l.Zone, "code", r.Codes[0])
		}
		return r
	default:
		// Answers outside the codes (e.g. a resolver that rewrites
		// NXDOMAIN to an ad server) mean nothing.
		r.Status = NotListed
	}
	c.cache.put("l|"+l.Zone+"|"+ip.String(), cached{list: r})
	return r
}

func inRanges(rs []addrRange, a netip.Addr) bool {
	for _, r := range rs {
		if r.contains(a) {
			return true
		}
	}
	return false
}

// listReason fetches the TXT explanation of a listing, best effort.
func (c *Checker) listReason(ctx context.Context, name string) string {
	txt, err := c.r.LookupTXT(ctx, name)
	if err != nil || len(txt) == 0 {
		return ""
	}
	return sanitizeText(txt[0], maxReasonBytes)
}

// sanitizeText keeps printable ASCII of s, at most max bytes, so that
// DNS-provided text can go into SMTP replies and header comments.
func sanitizeText(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		ch := s[i]
		switch {
		case ch == '\t' || ch == '\r' || ch == '\n':
			b.WriteByte(' ')
		case ch >= 0x20 && ch < 0x7f:
			b.WriteByte(ch)
		}
	}
	return strings.TrimSpace(b.String())
}

// warnOnce reports whether a warning with key should be logged now: at
// most once per interval, so a misconfigured list does not log a line
// per connection.
func (c *Checker) warnOnce(key string, interval time.Duration) bool {
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	now := c.now()
	if last, ok := c.warned[key]; ok && now.Sub(last) < interval {
		return false
	}
	if c.warned == nil {
		c.warned = map[string]time.Time{}
	}
	if len(c.warned) > maxLists*4 {
		clear(c.warned)
	}
	c.warned[key] = now
	return true
}
