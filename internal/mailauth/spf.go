package mailauth

import (
	"context"
	"errors"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/dnsresolver"
)

// The resolver interface must stay usable as spf's.
var _ spf.DNSResolver = dnsresolver.Resolver(nil)

// checkSPF evaluates SPF for the MAIL FROM identity, or for the HELO
// identity when the sender is null (RFC 7208 2.4).
func checkSPF(ctx context.Context, r dnsresolver.Resolver, in Input) SPF {
	s := SPF{MailFrom: in.MailFrom, Helo: in.Helo, Status: None}
	var local, domain string
	if in.MailFrom != "" {
		s.Identity = "mailfrom"
		if at := strings.LastIndexByte(in.MailFrom, '@'); at > 0 {
			local, domain = in.MailFrom[:at], in.MailFrom[at+1:]
		}
	} else {
		s.Identity = "helo"
		domain = in.Helo
	}
	d, err := address.Domain(domain)
	if err != nil || strings.HasPrefix(d, "[") || !strings.Contains(d, ".") {
		// An address literal, a bare name or garbage: nothing SPF can
		// look up.
		s.Reason = "no domain to check"
		return s
	}
	s.Domain = d
	// The library takes the domain from the first "@"; a quoted local
	// part may contain one, and the null sender is postmaster@helo.
	sender := local + "@" + d
	if local == "" || strings.Contains(local, "@") {
		sender = "postmaster@" + d
	}
	if !in.RemoteIP.IsValid() {
		s.Reason = "no client address"
		return s
	}
	ip := net.IP(in.RemoteIP.Unmap().AsSlice())
	res, err := spf.CheckHostWithSender(ip, in.Helo, sender, spf.WithContext(ctx), spf.WithResolver(r))
	s.Status = spfStatus(res)
	if s.Status == TempError || s.Status == PermError {
		s.Reason = errReason(err)
	}
	return s
}

func spfStatus(r spf.Result) Status {
	switch r {
	case spf.Pass:
		return Pass
	case spf.Fail:
		return Fail
	case spf.SoftFail:
		return SoftFail
	case spf.Neutral:
		return Neutral
	case spf.TempError:
		return TempError
	case spf.PermError:
		return PermError
	}
	return None
}

// errReason is a short, header-safe explanation of err: for DNS errors
// only the error kind, not the resolver's address.
func errReason(err error) string {
	if err == nil {
		return ""
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return "DNS " + de.Err
	}
	return err.Error()
}
