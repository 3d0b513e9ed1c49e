package dnsresolver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Failure makes a Fake fail lookups of a name.
type Failure int

const (
	// FailNone answers from the zone.
	FailNone Failure = iota
	// FailServFail answers like a SERVFAIL: a temporary error.
	FailServFail
	// FailTimeout returns a timeout error at once (fast tests).
	FailTimeout
	// FailHang blocks until the caller's context ends, then returns a
	// timeout: proves that callers bound their lookups.
	FailHang
)

// maxQueries bounds the query log of a Fake.
const maxQueries = 10000

// Fake is an in-process DNS zone for tests. It never touches the network:
// names not in the zone are NXDOMAIN. Names are compared
// case-insensitively, with or without a trailing dot. A Fake is safe for
// concurrent use.
type Fake struct {
	mu      sync.Mutex
	txt     map[string][]string
	ip      map[string][]netip.Addr
	mx      map[string][]*net.MX
	ptr     map[netip.Addr][]string
	tlsa    map[string][]TLSA
	secure  map[string]bool
	fail    map[string]Failure
	queries []string
}

// NewFake returns an empty zone.
func NewFake() *Fake {
	return &Fake{
		txt:    map[string][]string{},
		ip:     map[string][]netip.Addr{},
		mx:     map[string][]*net.MX{},
		ptr:    map[netip.Addr][]string{},
		tlsa:   map[string][]TLSA{},
		secure: map[string]bool{},
		fail:   map[string]Failure{},
	}
}

func key(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// AddTXT adds TXT records (each string one record, as net.LookupTXT
// returns them: the strings of one record concatenated).
func (f *Fake) AddTXT(name string, values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txt[key(name)] = append(f.txt[key(name)], values...)
}

// SetTXT replaces the TXT records of name; no values removes them.
func (f *Fake) SetTXT(name string, values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(values) == 0 {
		delete(f.txt, key(name))
		return
	}
	f.txt[key(name)] = slices.Clone(values)
}

// AddIP adds A/AAAA records. It panics on an invalid address: it is
// meant for test setup with literal addresses.
func (f *Fake) AddIP(name string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		f.ip[key(name)] = append(f.ip[key(name)], netip.MustParseAddr(a).Unmap())
	}
}

// AddMX adds an MX record.
func (f *Fake) AddMX(name string, pref uint16, host string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mx[key(name)] = append(f.mx[key(name)], &net.MX{Host: dotted(host), Pref: pref})
}

// AddPTR adds reverse names for an IP address (panics on an invalid
// address, like AddIP).
func (f *Fake) AddPTR(ip string, names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := netip.MustParseAddr(ip).Unmap()
	for _, n := range names {
		f.ptr[a] = append(f.ptr[a], dotted(n))
	}
}

// Fail makes every lookup of name (any type; for LookupAddr the address
// in text form) fail with mode; FailNone restores normal answers.
func (f *Fake) Fail(name string, mode Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mode == FailNone {
		delete(f.fail, key(name))
		return
	}
	f.fail[key(name)] = mode
}

// Queries returns the lookups made so far, as "TYPE name".
func (f *Fake) Queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.queries)
}

// Clone returns an independent copy of the zone (without the query log),
// so table tests can start each case from one base zone.
func (f *Fake) Clone() *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := NewFake()
	for k, v := range f.txt {
		c.txt[k] = slices.Clone(v)
	}
	for k, v := range f.ip {
		c.ip[k] = slices.Clone(v)
	}
	for k, v := range f.mx {
		for _, mx := range v {
			c.mx[k] = append(c.mx[k], &net.MX{Host: mx.Host, Pref: mx.Pref})
		}
	}
	for k, v := range f.ptr {
		c.ptr[k] = slices.Clone(v)
	}
	for k, v := range f.tlsa {
		for _, r := range v {
			r.Data = slices.Clone(r.Data)
			c.tlsa[k] = append(c.tlsa[k], r)
		}
	}
	for k, v := range f.secure {
		c.secure[k] = v
	}
	for k, v := range f.fail {
		c.fail[k] = v
	}
	return c
}

// AddTLSA adds TLSA records (e.g. at "_25._tcp.mx.example.net").
func (f *Fake) AddTLSA(name string, recs ...TLSA) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range recs {
		r.Data = slices.Clone(r.Data)
		f.tlsa[key(name)] = append(f.tlsa[key(name)], r)
	}
}

// SetSecure declares whether the answers for name (records or a denial,
// any type) are DNSSEC-secure, as the AD bit of a validating resolver
// would say. Names are insecure unless declared secure.
func (f *Fake) SetSecure(name string, secure bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !secure {
		delete(f.secure, key(name))
		return
	}
	f.secure[key(name)] = true
}

// LookupMXSecure implements DNSSEC.
func (f *Fake) LookupMXSecure(ctx context.Context, name string) ([]*net.MX, bool, error) {
	mxs, err := f.LookupMX(ctx, name)
	if err != nil && !IsNotFound(err) {
		return nil, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return mxs, f.secure[key(name)], err
}

// LookupTLSA implements DNSSEC.
func (f *Fake) LookupTLSA(ctx context.Context, name string) ([]TLSA, bool, error) {
	if err := f.start(ctx, "TLSA", name); err != nil {
		return nil, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sec := f.secure[key(name)]
	v := f.tlsa[key(name)]
	if len(v) == 0 {
		return nil, sec, notFound(name)
	}
	out := make([]TLSA, len(v))
	for i, r := range v {
		r.Data = slices.Clone(r.Data)
		out[i] = r
	}
	return out, sec, nil
}

func dotted(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// start logs a query and returns the failure configured for name, if
// any, as an error (waiting for ctx for FailHang).
func (f *Fake) start(ctx context.Context, typ, name string) error {
	f.mu.Lock()
	if len(f.queries) < maxQueries {
		f.queries = append(f.queries, typ+" "+key(name))
	}
	mode := f.fail[key(name)]
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return &net.DNSError{Err: err.Error(), Name: name, IsTimeout: true, IsTemporary: true}
	}
	switch mode {
	case FailServFail:
		return &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	case FailTimeout:
		return &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true, IsTemporary: true}
	case FailHang:
		<-ctx.Done()
		return &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true, IsTemporary: true}
	}
	return nil
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// LookupTXT implements Resolver.
func (f *Fake) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if err := f.start(ctx, "TXT", name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.txt[key(name)]
	if len(v) == 0 {
		return nil, notFound(name)
	}
	return slices.Clone(v), nil
}

// LookupMX implements Resolver.
func (f *Fake) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	if err := f.start(ctx, "MX", name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.mx[key(name)]
	if len(v) == 0 {
		return nil, notFound(name)
	}
	out := make([]*net.MX, len(v))
	for i, mx := range v {
		out[i] = &net.MX{Host: mx.Host, Pref: mx.Pref}
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

// LookupIPAddr implements Resolver. An IP literal resolves to itself, as
// with net.Resolver.
func (f *Fake) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []net.IPAddr{{IP: a.AsSlice()}}, nil
	}
	if err := f.start(ctx, "A", host); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.ip[key(host)]
	if len(v) == 0 {
		return nil, notFound(host)
	}
	out := make([]net.IPAddr, len(v))
	for i, a := range v {
		out[i] = net.IPAddr{IP: a.AsSlice()}
	}
	return out, nil
}

// LookupAddr implements Resolver.
func (f *Fake) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	if err := f.start(ctx, "PTR", addr); err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.ptr[a.Unmap()]
	if len(v) == 0 {
		return nil, notFound(addr)
	}
	return slices.Clone(v), nil
}

// LoadZone adds the records of a zone in a simple text form to f, one
// record per line:
//
//	name TXT "string" ["string" ...]   (strings of one record concatenated)
//	name A|AAAA address
//	name MX preference host
//	address PTR name
//	name TLSA usage selector matching-type hex-data
//	name SECURE                        (see SetSecure)
//	name SERVFAIL|TIMEOUT|HANG         (see Fail)
//
// Blank lines and lines starting with ; or # are ignored. TXT data that
// is not quoted is taken verbatim to the end of the line.
func (f *Fake) LoadZone(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		typ, data, _ := strings.Cut(rest, " ")
		data = strings.TrimSpace(data)
		if err := f.addRecord(name, strings.ToUpper(typ), data); err != nil {
			return fmt.Errorf("zone line %d: %w", n, err)
		}
	}
	return sc.Err()
}

func (f *Fake) addRecord(name, typ, data string) error {
	switch typ {
	case "TXT":
		v, err := txtData(data)
		if err != nil {
			return err
		}
		f.AddTXT(name, v)
	case "A", "AAAA":
		if _, err := netip.ParseAddr(data); err != nil {
			return err
		}
		f.AddIP(name, data)
	case "MX":
		p, host, _ := strings.Cut(data, " ")
		pref, err := strconv.ParseUint(p, 10, 16)
		if err != nil || strings.TrimSpace(host) == "" {
			return fmt.Errorf("bad MX data %q", data)
		}
		f.AddMX(name, uint16(pref), strings.TrimSpace(host))
	case "PTR":
		if _, err := netip.ParseAddr(name); err != nil {
			return fmt.Errorf("PTR owner must be an IP address: %w", err)
		}
		f.AddPTR(name, data)
	case "TLSA":
		r, err := ParseTLSA(data)
		if err != nil {
			return err
		}
		f.AddTLSA(name, r)
	case "SECURE":
		f.SetSecure(name, true)
	case "SERVFAIL":
		f.Fail(name, FailServFail)
	case "TIMEOUT":
		f.Fail(name, FailTimeout)
	case "HANG":
		f.Fail(name, FailHang)
	default:
		return fmt.Errorf("unknown record type %q", typ)
	}
	return nil
}

// txtData concatenates the quoted strings of a TXT record's data, or
// returns unquoted data as is.
func txtData(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	var b strings.Builder
	for s != "" {
		if s[0] != '"' {
			return "", fmt.Errorf("TXT data: expected a quoted string at %q", s)
		}
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return "", fmt.Errorf("TXT data: unterminated string")
		}
		u, err := strconv.Unquote(s[:end+1])
		if err != nil {
			return "", fmt.Errorf("TXT data: %w", err)
		}
		b.WriteString(u)
		s = strings.TrimSpace(s[end+1:])
	}
	return b.String(), nil
}
