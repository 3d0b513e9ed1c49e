// Package dnsresolver is the one DNS interface every DNS consumer of the
// server uses (SPF, DKIM, DMARC now; iprev, DNSBL, MX lookup and MTA-STS
// later), so that tests run against an in-process zone (Fake) and never
// touch the network, and so that timeouts and the distinction between
// "does not exist" and "could not find out" are handled the same way
// everywhere.
//
// Errors returned by a Resolver are *net.DNSError values, unwrapped: the
// SPF and DKIM libraries we pass a Resolver to classify errors with type
// assertions (not errors.As), and a temporary failure they cannot
// recognise would turn into a permanent error, i.e. a wrong verdict.
package dnsresolver

import (
	"context"
	"errors"
	"net"
	"time"
)

// Resolver looks up DNS records. Its method set is a superset of
// blitiri.com.ar/go/spf's DNSResolver, so a Resolver can be handed to
// spf.WithResolver as is; *net.Resolver satisfies it too.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	// LookupAddr is a reverse (PTR) lookup of an IP address in text form.
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// IsNotFound reports whether err says the name or record does not exist
// (NXDOMAIN, or no records of the type asked for): a definite answer.
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// IsTemporary reports whether err is a failure to get an answer (timeout,
// SERVFAIL, network trouble, cancelled context): the answer is unknown and
// a later retry may succeed. Verdicts depending on such a lookup must be
// "temperror", never a pass.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.IsTimeout || de.IsTemporary
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// DefaultTimeout bounds one lookup by System when it has no Timeout.
const DefaultTimeout = 10 * time.Second

// System resolves through the operating system's configuration with the
// Go resolver. The zero value is ready to use.
type System struct {
	// Resolver is the resolver to use; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Timeout bounds each lookup (DefaultTimeout when 0), whatever the
	// caller's context allows.
	Timeout time.Duration
}

func (s System) resolver() *net.Resolver {
	if s.Resolver != nil {
		return s.Resolver
	}
	return net.DefaultResolver
}

func (s System) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	t := s.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	return context.WithTimeout(ctx, t)
}

// LookupTXT implements Resolver.
func (s System) LookupTXT(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := s.resolver().LookupTXT(ctx, name)
	return v, dnsError(err, name)
}

// LookupMX implements Resolver.
func (s System) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := s.resolver().LookupMX(ctx, name)
	return v, dnsError(err, name)
}

// LookupIPAddr implements Resolver.
func (s System) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := s.resolver().LookupIPAddr(ctx, host)
	return v, dnsError(err, host)
}

// LookupAddr implements Resolver.
func (s System) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := s.resolver().LookupAddr(ctx, addr)
	return v, dnsError(err, addr)
}

// dnsError makes every failure a *net.DNSError (see the package comment):
// the Go resolver returns bare context or parse errors in some paths.
func dnsError(err error, name string) error {
	if err == nil {
		return nil
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de
	}
	timeout := errors.Is(err, context.DeadlineExceeded)
	return &net.DNSError{
		Err:         err.Error(),
		Name:        name,
		IsTimeout:   timeout,
		IsTemporary: timeout || errors.Is(err, context.Canceled),
	}
}
