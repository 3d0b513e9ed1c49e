package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
)

// Resolver is the DNS the SMTP transport needs. *net.Resolver satisfies
// it; tests use a fake zone. Not-found answers (NXDOMAIN, no records of
// the type) must be reported as a *net.DNSError with IsNotFound set,
// temporary failures as any other error.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Bounds on what one domain's DNS can make an attempt do.
const (
	maxMXHosts     = 10
	maxAddrPerHost = 4
	maxDialsPerTry = 12
)

// deliveryError is a failure that applies to all recipients of an attempt.
type deliveryError struct {
	perm   bool
	status string // enhanced status code
	msg    string
	remote string
}

func (e *deliveryError) Error() string { return e.status + " " + e.msg }

func tempErr(status, format string, args ...any) *deliveryError {
	return &deliveryError{status: status, msg: fmt.Sprintf(format, args...)}
}

func permErr(status, format string, args ...any) *deliveryError {
	return &deliveryError{perm: true, status: status, msg: fmt.Sprintf(format, args...)}
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// mxHosts returns the hosts to try for domain, best first: its MX hosts
// by preference (equal preferences shuffled, RFC 5321 5.1), or the domain
// itself when it has no MX record (implicit MX). A null MX (RFC 7505) and
// a domain that does not exist are permanent failures.
func mxHosts(ctx context.Context, r Resolver, domain string) ([]string, error) {
	hosts, _, err := mxHostsFrom(ctx, func(ctx context.Context, name string) ([]*net.MX, bool, error) {
		mxs, err := r.LookupMX(ctx, name)
		return mxs, false, err
	}, r, domain)
	return hosts, err
}

// mxHostsFrom is mxHosts with the MX records from lookupMX, which also
// says whether its answer (records or denial) was DNSSEC-secure; the
// result's secure is that, for the MX hosts or the implicit MX (DANE
// applies only when it is true, RFC 7672 2.2).
func mxHostsFrom(ctx context.Context, lookupMX func(context.Context, string) ([]*net.MX, bool, error), r Resolver, domain string) (hosts []string, secure bool, err error) {
	mxs, secure, err := lookupMX(ctx, domain)
	if err != nil && !isNotFound(err) {
		return nil, false, tempErr("4.4.3", "DNS lookup of MX for %s failed: %v", domain, err)
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, false, permErr("5.1.10", "domain %s does not accept mail (null MX, RFC 7505)", domain)
	}
	if len(mxs) == 0 {
		// Implicit MX: the domain's own address records (RFC 5321 5.1).
		ips, err := r.LookupIPAddr(ctx, domain)
		if err != nil && !isNotFound(err) {
			return nil, false, tempErr("4.4.3", "DNS lookup of %s failed: %v", domain, err)
		}
		if len(ips) == 0 {
			return nil, false, permErr("5.1.2", "domain %s has no MX or address records", domain)
		}
		return []string{domain}, secure, nil
	}
	// Shuffle, then stable-sort by preference: equal preferences end up
	// in random order.
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	for _, mx := range mxs {
		h := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		if h == "" {
			continue // a "." among real MX hosts is a misconfiguration: skip it
		}
		hosts = append(hosts, h)
		if len(hosts) == maxMXHosts {
			break
		}
	}
	if len(hosts) == 0 {
		return nil, false, permErr("5.1.10", "domain %s has no usable MX host", domain)
	}
	return hosts, secure, nil
}

// hostAddrs returns host's addresses ordered by preference ("ipv4",
// "ipv6", "ipv4-only", "ipv6-only"). An IP literal host is returned as is.
func hostAddrs(ctx context.Context, r Resolver, host, pref string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	ips, err := r.LookupIPAddr(ctx, host)
	if err != nil && !isNotFound(err) {
		return nil, tempErr("4.4.3", "DNS lookup of %s failed: %v", host, err)
	}
	var v4, v6 []netip.Addr
	for _, ip := range ips {
		a, ok := netip.AddrFromSlice(ip.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	var out []netip.Addr
	switch pref {
	case "ipv6":
		out = append(v6, v4...)
	case "ipv4-only":
		out = v4
	case "ipv6-only":
		out = v6
	default:
		out = append(v4, v6...)
	}
	if len(out) > maxAddrPerHost {
		out = out[:maxAddrPerHost]
	}
	if len(out) == 0 {
		return nil, tempErr("4.4.4", "host %s has no usable address", host)
	}
	return out, nil
}
