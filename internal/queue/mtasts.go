package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MTA-STS (RFC 8461): a domain publishes in DNS that it has a policy
// (_mta-sts TXT with an id) and serves the policy over HTTPS from
// mta-sts.<domain>. In "enforce" mode mail may go only to the listed MX
// hosts, over TLS with a certificate valid for the host name.

// STSMode is a policy mode.
type STSMode string

const (
	STSEnforce STSMode = "enforce"
	STSTesting STSMode = "testing"
	STSNone    STSMode = "none"
)

// STSPolicy is a parsed MTA-STS policy.
type STSPolicy struct {
	Mode    STSMode
	MX      []string
	MaxAge  time.Duration
	ID      string // the TXT record's id when fetched
	Fetched time.Time
	// Lines are the policy file's non-empty lines, for TLS reports
	// (RFC 8460 policy-string).
	Lines []string
}

// Limits from RFC 8461 and common sense.
const (
	maxPolicySize   = 64 << 10
	maxPolicyMaxAge = 31557600 * time.Second
	maxSTSCache     = 10000
	stsFetchTimeout = 30 * time.Second
)

// ParseSTSPolicy parses a policy file (RFC 8461 3.2).
func ParseSTSPolicy(b []byte) (*STSPolicy, error) {
	if len(b) > maxPolicySize {
		return nil, fmt.Errorf("mta-sts policy larger than %d bytes", maxPolicySize)
	}
	p := &STSPolicy{}
	var version, mode, maxAge bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1024), maxPolicySize)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(p.Lines) < 200 {
			p.Lines = append(p.Lines, line)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("mta-sts policy: bad line %q", line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "version":
			if v != "STSv1" {
				return nil, fmt.Errorf("mta-sts policy: version %q", v)
			}
			version = true
		case "mode":
			switch STSMode(v) {
			case STSEnforce, STSTesting, STSNone:
				p.Mode = STSMode(v)
			default:
				return nil, fmt.Errorf("mta-sts policy: mode %q", v)
			}
			mode = true
		case "max_age":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || len(v) > 10 {
				return nil, fmt.Errorf("mta-sts policy: max_age %q", v)
			}
			p.MaxAge = min(time.Duration(n)*time.Second, maxPolicyMaxAge)
			maxAge = true
		case "mx":
			if len(p.MX) >= 100 {
				return nil, errors.New("mta-sts policy: too many mx lines")
			}
			p.MX = append(p.MX, strings.ToLower(strings.TrimSuffix(v, ".")))
		default:
			// Unknown keys are ignored (RFC 8461 3.2).
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mta-sts policy: %w", err)
	}
	if !version || !mode || !maxAge {
		return nil, errors.New("mta-sts policy: version, mode and max_age are required")
	}
	if p.Mode != STSNone && len(p.MX) == 0 {
		return nil, errors.New("mta-sts policy: no mx patterns")
	}
	return p, nil
}

// Match reports whether host matches one of the policy's MX patterns
// ("*.example.net" matches exactly one leftmost label).
func (p *STSPolicy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, m := range p.MX {
		if m == host {
			return true
		}
		if strings.HasPrefix(m, "*.") {
			suffix := m[1:]
			if strings.HasSuffix(host, suffix) {
				label := host[:len(host)-len(suffix)]
				if label != "" && !strings.Contains(label, ".") {
					return true
				}
			}
		}
	}
	return false
}

// parseSTSRecord extracts the id of a "v=STSv1; id=..." TXT record.
func parseSTSRecord(txt string) (string, bool) {
	fields := strings.Split(txt, ";")
	if strings.TrimSpace(fields[0]) != "v=STSv1" {
		return "", false
	}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok && k == "id" && v != "" && len(v) <= 32 {
			return v, true
		}
	}
	return "", false
}

// MTASTS fetches and caches policies.
type MTASTS struct {
	Resolver Resolver
	// HTTPClient fetches policies; tests inject one that trusts a test
	// CA and dials a local server. It must not follow redirects (RFC
	// 8461 3.3); New's default does not.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time

	mu    sync.Mutex
	cache map[string]*STSPolicy
}

// NewMTASTS returns a policy fetcher with a default HTTPS client.
func NewMTASTS(r Resolver, log *slog.Logger) *MTASTS {
	return &MTASTS{Resolver: r, Logger: log, HTTPClient: &http.Client{
		Timeout:       stsFetchTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (m *MTASTS) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *MTASTS) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

// Policy returns domain's policy, nil when it has none. Errors never
// stop delivery: a domain whose policy cannot be fetched and that has no
// cached one is treated as having none (RFC 8461 3.3, 5.1).
func (m *MTASTS) Policy(ctx context.Context, domain string) *STSPolicy {
	p, _ := m.lookup(ctx, domain)
	return p
}

// stsFetchError is a failed policy fetch, classified for TLS reports.
type stsFetchError struct {
	result string // ResultSTSPolicyFetchError, ResultSTSPolicyInvalid or ResultSTSWebPKIInvalid
	reason string // short failure-reason-code
	err    error
}

func (e *stsFetchError) Error() string { return e.err.Error() }
func (e *stsFetchError) Unwrap() error { return e.err }

// lookup is Policy that also returns why a published policy could not be
// fetched (nil when it was, or when none is published).
func (m *MTASTS) lookup(ctx context.Context, domain string) (*STSPolicy, *stsFetchError) {
	domain = strings.ToLower(domain)
	now := m.now()
	m.mu.Lock()
	cached := m.cache[domain]
	if cached != nil && now.Sub(cached.Fetched) > cached.MaxAge {
		delete(m.cache, domain)
		cached = nil
	}
	m.mu.Unlock()

	txts, err := m.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		if !isNotFound(err) {
			m.logger().Info("mta-sts: TXT lookup failed; using cached policy if any", "domain", domain, "err", err)
		}
		return cached, nil
	}
	id, n := "", 0
	for _, t := range txts {
		if v, ok := parseSTSRecord(t); ok {
			id = v
			n++
		}
	}
	if n != 1 {
		// None, or several (RFC 8461 3.1: treat as no policy).
		return cached, nil
	}
	if cached != nil && cached.ID == id {
		return cached, nil
	}
	p, err := m.fetch(ctx, domain)
	if err != nil {
		m.logger().Warn("mta-sts: policy fetch failed", "domain", domain, "err", err)
		var fe *stsFetchError
		if !errors.As(err, &fe) {
			fe = &stsFetchError{result: ResultSTSPolicyFetchError, err: err}
		}
		return cached, fe
	}
	p.ID, p.Fetched = id, now
	m.mu.Lock()
	if m.cache == nil {
		m.cache = map[string]*STSPolicy{}
	}
	if len(m.cache) >= maxSTSCache {
		for k := range m.cache {
			delete(m.cache, k)
			break
		}
	}
	m.cache[domain] = p
	m.mu.Unlock()
	return p, nil
}

func (m *MTASTS) fetch(ctx context.Context, domain string) (*STSPolicy, error) {
	ctx, cancel := context.WithTimeout(ctx, stsFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://mta-sts."+domain+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.HTTPClient.Do(req)
	if err != nil {
		if rt, _ := TLSResultType(err); rt == ResultCertificateHostMismatch || rt == ResultCertificateExpired || rt == ResultCertificateNotTrusted {
			return nil, &stsFetchError{result: ResultSTSWebPKIInvalid, reason: rt, err: err}
		}
		_, reason := TLSResultType(err)
		return nil, &stsFetchError{result: ResultSTSPolicyFetchError, reason: reason, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &stsFetchError{result: ResultSTSPolicyFetchError, reason: fmt.Sprintf("http status %d", resp.StatusCode), err: fmt.Errorf("HTTP status %s", resp.Status)}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "text/plain") {
		return nil, &stsFetchError{result: ResultSTSPolicyInvalid, reason: "content type not text/plain", err: fmt.Errorf("content type %q, want text/plain", ct)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicySize+1))
	if err != nil {
		return nil, &stsFetchError{result: ResultSTSPolicyFetchError, reason: "reading policy failed", err: err}
	}
	p, err := ParseSTSPolicy(b)
	if err != nil {
		return nil, &stsFetchError{result: ResultSTSPolicyInvalid, reason: truncReason(err.Error()), err: err}
	}
	return p, nil
}
