package dnsresolver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DNSSEC is the DNS that DANE (RFC 7672) needs: answers together with
// whether DNSSEC validated them. "Secure" covers denials too: a secure
// NXDOMAIN or NODATA is a not-found error with secure true.
//
// Errors follow the package convention (*net.DNSError): IsNotFound for
// NXDOMAIN and NODATA, IsTemporary for everything that leaves the answer
// unknown, including SERVFAIL, which is how a validating resolver reports
// a bogus (failed validation) answer.
type DNSSEC interface {
	// LookupMXSecure is LookupMX with the answer's security.
	LookupMXSecure(ctx context.Context, name string) ([]*net.MX, bool, error)
	// LookupTLSA returns the TLSA records at name (e.g.
	// "_25._tcp.mx.example.com") and the answer's security.
	LookupTLSA(ctx context.Context, name string) ([]TLSA, bool, error)
}

// Bounds of one DNSSEC answer.
const (
	maxTLSARecords = 64
	maxMXRecords   = 100
	// configTTL is how long TrustAD keeps the parsed resolv.conf, so a
	// changed nameserver is picked up without a restart.
	configTTL = time.Minute
)

// TrustAD asks the nameservers of resolv.conf with the DO and AD bits set
// and trusts the AD bit of their answers, as Postfix does with
// smtp_dns_support_level = dnssec. It validates nothing itself: the
// nameserver must be a validating resolver the server can trust, which in
// practice means one on loopback (unbound, knot-resolver,
// systemd-resolved with DNSSEC=yes); a resolver across a network can be
// impersonated and its AD bit forged. The Go resolver (System) is not used
// here because it does not expose the AD bit.
//
// The zero value reads /etc/resolv.conf. A TrustAD is safe for concurrent
// use.
type TrustAD struct {
	// ConfigFile is the resolv.conf to read (default /etc/resolv.conf);
	// Servers, when set, are used instead ("127.0.0.1:53").
	ConfigFile string
	Servers    []string
	// Timeout bounds one lookup, all servers and retries included
	// (DefaultTimeout when 0).
	Timeout time.Duration
	// Logger receives a warning when a nameserver is not on loopback.
	Logger *slog.Logger

	mu       sync.Mutex
	servers  []string
	perQuery time.Duration
	attempts int
	readAt   time.Time
	warned   map[string]bool
}

// LookupMXSecure implements DNSSEC.
func (r *TrustAD) LookupMXSecure(ctx context.Context, name string) ([]*net.MX, bool, error) {
	ans, secure, err := r.query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, secure, err
	}
	var out []*net.MX
	for _, rr := range ans {
		if mx, ok := rr.(*dns.MX); ok && len(out) < maxMXRecords {
			out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
		}
	}
	if len(out) == 0 {
		return nil, secure, notFound(name)
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, secure, nil
}

// LookupTLSA implements DNSSEC. Records whose data is not valid hex are
// skipped (they can match nothing).
func (r *TrustAD) LookupTLSA(ctx context.Context, name string) ([]TLSA, bool, error) {
	ans, secure, err := r.query(ctx, name, dns.TypeTLSA)
	if err != nil {
		return nil, secure, err
	}
	var out []TLSA
	for _, rr := range ans {
		t, ok := rr.(*dns.TLSA)
		if !ok || len(out) >= maxTLSARecords {
			continue
		}
		d, err := hex.DecodeString(t.Certificate)
		if err != nil {
			continue
		}
		out = append(out, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: d})
	}
	if len(out) == 0 {
		return nil, secure, notFound(name)
	}
	return out, secure, nil
}

// config returns the nameservers to ask, rereading resolv.conf when
// the cached copy is older than configTTL.
func (r *TrustAD) config() ([]string, time.Duration, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.Servers) > 0 {
		return r.Servers, 5 * time.Second, 2, nil // resolv.conf's defaults
	}
	if r.servers != nil && time.Since(r.readAt) < configTTL {
		return r.servers, r.perQuery, r.attempts, nil
	}
	file := r.ConfigFile
	if file == "" {
		file = "/etc/resolv.conf"
	}
	cc, err := dns.ClientConfigFromFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		cc, err = &dns.ClientConfig{Port: "53", Timeout: 5, Attempts: 2}, nil
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("reading %s: %w", file, err)
	}
	if len(cc.Servers) == 0 {
		// No resolv.conf or no nameserver in it: the local resolver,
		// as glibc and the Go resolver (System) assume.
		cc.Servers = []string{"127.0.0.1", "::1"}
	}
	var servers []string
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue // a name or scoped address we cannot use
		}
		servers = append(servers, net.JoinHostPort(a.String(), cc.Port))
		if !a.IsLoopback() && r.Logger != nil {
			if r.warned == nil {
				r.warned = map[string]bool{}
			}
			if !r.warned[s] {
				r.warned[s] = true
				r.Logger.Warn("dane: trusting the DNSSEC (AD) bit of a nameserver that is not on loopback; run a validating resolver on 127.0.0.1",
					"nameserver", s, "file", file)
			}
		}
	}
	if len(servers) == 0 {
		return nil, 0, 0, fmt.Errorf("%s names no usable nameserver", file)
	}
	r.servers, r.readAt = servers, time.Now()
	r.perQuery = time.Duration(min(max(cc.Timeout, 1), 30)) * time.Second
	r.attempts = min(max(cc.Attempts, 1), 5)
	return r.servers, r.perQuery, r.attempts, nil
}

// query asks the nameservers in turn until one gives a definite answer
// (NOERROR or NXDOMAIN). It returns the answer section and its AD bit.
func (r *TrustAD) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, bool, error) {
	t := r.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	servers, perQuery, attempts, err := r.config()
	if err != nil {
		return nil, false, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	}
	fqdn := dns.Fqdn(name)
	if _, ok := dns.IsDomainName(fqdn); !ok {
		return nil, false, &net.DNSError{Err: "invalid domain name", Name: name}
	}
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	// AD in a query asks for the AD bit in the answer (RFC 6840 5.7);
	// DO asks for DNSSEC records, which some resolvers need to set AD.
	m.AuthenticatedData = true
	m.SetEdns0(1232, true)

	lastErr := errors.New("no answer")
	for attempt := 0; attempt < attempts; attempt++ {
		for _, srv := range servers {
			if ctx.Err() != nil {
				return nil, false, dnsError(ctx.Err(), name)
			}
			resp, err := exchange(ctx, m, srv, perQuery)
			if err != nil {
				lastErr = err
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess:
				return resp.Answer, resp.AuthenticatedData, nil
			case dns.RcodeNameError:
				return nil, resp.AuthenticatedData, notFound(name)
			case dns.RcodeServerFailure:
				lastErr = errors.New("server misbehaving (SERVFAIL; DNSSEC validation may have failed)")
			default:
				lastErr = fmt.Errorf("server answered %s", dns.RcodeToString[resp.Rcode])
			}
		}
	}
	timeout := errors.Is(lastErr, context.DeadlineExceeded) || isTimeout(lastErr)
	return nil, false, &net.DNSError{Err: lastErr.Error(), Name: name, IsTimeout: timeout, IsTemporary: true}
}

// exchange sends m to srv over UDP, and again over TCP when the answer
// is truncated.
func exchange(ctx context.Context, m *dns.Msg, srv string, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: 1232}
	resp, _, err := c.ExchangeContext(ctx, m, srv)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, srv)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", srv, err)
	}
	if !resp.Response || len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, m.Question[0].Name) ||
		resp.Question[0].Qtype != m.Question[0].Qtype {
		return nil, fmt.Errorf("%s: answer does not match the question", srv)
	}
	return resp, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
