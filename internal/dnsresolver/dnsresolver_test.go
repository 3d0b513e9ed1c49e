package dnsresolver

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var (
	_ Resolver = System{}
	_ Resolver = (*Fake)(nil)
	_ Resolver = (*net.Resolver)(nil)
)

// fakeServer is a DNS server on a loopback UDP port with canned answers,
// so System is tested through the real Go resolver without leaving the
// machine.
func fakeServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			name := strings.ToLower(q.Name.String())
			if name == "slow.test." {
				continue // never answer: a timeout
			}
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
			switch name {
			case "fail.test.":
				rh.RCode = dnsmessage.RCodeServerFailure
			case "nx.test.":
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if name == "txt.test." && q.Type == dnsmessage.TypeTXT {
				b.TXTResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.TXTResource{TXT: []string{"hello ", "world"}})
			}
			out, err := b.Finish()
			if err != nil {
				continue
			}
			pc.WriteTo(out, addr)
		}
	}()
	return pc.LocalAddr().String()
}

func TestSystem(t *testing.T) {
	addr := fakeServer(t)
	goResolver := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
	// Names that are answered get a timeout long enough for a loaded
	// machine; only slow.test, never answered, runs into the short one.
	r := System{Resolver: goResolver, Timeout: 30 * time.Second}
	short := System{Resolver: goResolver, Timeout: 300 * time.Millisecond}
	ctx := context.Background()

	txt, err := r.LookupTXT(ctx, "txt.test")
	if err != nil || !slices.Equal(txt, []string{"hello world"}) {
		t.Fatalf("TXT: %q, %v", txt, err)
	}

	tests := []struct {
		name                string
		notFound, temporary bool
	}{
		{"nx.test", true, false},
		{"fail.test", false, true},
		{"slow.test", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := r
			if tc.name == "slow.test" {
				r = short
			}
			start := time.Now()
			_, err := r.LookupTXT(ctx, tc.name)
			if err == nil {
				t.Fatal("no error")
			}
			if _, ok := err.(*net.DNSError); !ok {
				t.Errorf("error %T is not an unwrapped *net.DNSError", err)
			}
			if IsNotFound(err) != tc.notFound || IsTemporary(err) != tc.temporary {
				t.Errorf("%v: IsNotFound %v, IsTemporary %v", err, IsNotFound(err), IsTemporary(err))
			}
			// Without System's timeout, the Go resolver would wait at
			// least its own (resolv.conf's, 5 s by default) per try.
			if d := time.Since(start); r.Timeout == short.Timeout && d >= 5*time.Second {
				t.Errorf("took %v despite the %v timeout", d, r.Timeout)
			}
		})
	}
}

func TestDNSError(t *testing.T) {
	tests := []struct {
		err                 error
		notFound, temporary bool
	}{
		{nil, false, false},
		{context.DeadlineExceeded, false, true},
		{context.Canceled, false, true},
		{errors.New("odd"), false, false},
		{&net.DNSError{IsNotFound: true}, true, false},
	}
	for _, tc := range tests {
		err := dnsError(tc.err, "x.test")
		if tc.err == nil {
			if err != nil {
				t.Errorf("nil became %v", err)
			}
			continue
		}
		if _, ok := err.(*net.DNSError); !ok {
			t.Errorf("%v: got %T", tc.err, err)
		}
		if IsNotFound(err) != tc.notFound || IsTemporary(err) != tc.temporary {
			t.Errorf("%v: IsNotFound %v, IsTemporary %v", tc.err, IsNotFound(err), IsTemporary(err))
		}
	}
	if !IsTemporary(context.DeadlineExceeded) || IsTemporary(nil) || IsNotFound(nil) {
		t.Error("helpers on plain errors")
	}
}

const zone = `
; comment
example.com TXT "v=spf1 ip4:127.0.0.1 " "-all"
example.com TXT plain text record
Example.COM. A 127.0.0.1
example.com AAAA ::1
example.com MX 20 mx2.example.com
example.com MX 10 mx1.example.com.
127.0.0.1 PTR localhost.example.com
fail.example.com SERVFAIL
slow.example.com TIMEOUT
hang.example.com HANG
`

func TestFake(t *testing.T) {
	f := NewFake()
	if err := f.LoadZone(strings.NewReader(zone)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	txt, err := f.LookupTXT(ctx, "EXAMPLE.com.")
	if err != nil || !slices.Equal(txt, []string{"v=spf1 ip4:127.0.0.1 -all", "plain text record"}) {
		t.Errorf("TXT: %q %v", txt, err)
	}
	ips, err := f.LookupIPAddr(ctx, "example.com")
	if err != nil || len(ips) != 2 || ips[0].IP.String() != "127.0.0.1" || ips[1].IP.String() != "::1" {
		t.Errorf("IP: %v %v", ips, err)
	}
	ips, err = f.LookupIPAddr(ctx, "127.0.0.9")
	if err != nil || len(ips) != 1 || ips[0].IP.String() != "127.0.0.9" {
		t.Errorf("IP literal: %v %v", ips, err)
	}
	mx, err := f.LookupMX(ctx, "example.com")
	if err != nil || len(mx) != 2 || mx[0].Host != "mx1.example.com." || mx[0].Pref != 10 || mx[1].Host != "mx2.example.com." {
		t.Errorf("MX: %v %v", mx, err)
	}
	ptr, err := f.LookupAddr(ctx, "127.0.0.1")
	if err != nil || !slices.Equal(ptr, []string{"localhost.example.com."}) {
		t.Errorf("PTR: %v %v", ptr, err)
	}
	if _, err := f.LookupAddr(ctx, "::ffff:127.0.0.1"); err != nil {
		t.Errorf("PTR of mapped address: %v", err)
	}

	for _, name := range []string{"nx.example.com", "fail.example.com", "slow.example.com"} {
		_, err := f.LookupTXT(ctx, name)
		if _, ok := err.(*net.DNSError); !ok {
			t.Errorf("%s: %T %v", name, err, err)
		}
		wantNF := name == "nx.example.com"
		if IsNotFound(err) != wantNF || IsTemporary(err) == wantNF {
			t.Errorf("%s: %v notfound %v temporary %v", name, err, IsNotFound(err), IsTemporary(err))
		}
	}
	// NODATA is not-found too.
	if _, err := f.LookupMX(ctx, "localhost.example.com"); !IsNotFound(err) {
		t.Errorf("MX nodata: %v", err)
	}

	// The clock starts before the context's, so the deadline cannot come
	// sooner than 50ms after start.
	start := time.Now()
	hctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := f.LookupTXT(hctx, "hang.example.com"); !IsTemporary(err) {
		t.Errorf("hang: %v", err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Error("hang returned before the context ended")
	}
	// A done context fails every lookup, even of existing names.
	if _, err := f.LookupTXT(hctx, "example.com"); !IsTemporary(err) {
		t.Errorf("done context: %v", err)
	}

	c := f.Clone()
	c.SetTXT("example.com")
	c.Fail("fail.example.com", FailNone)
	if _, err := c.LookupTXT(ctx, "example.com"); !IsNotFound(err) {
		t.Errorf("clone SetTXT: %v", err)
	}
	if _, err := c.LookupTXT(ctx, "fail.example.com"); !IsNotFound(err) {
		t.Errorf("clone Fail(FailNone): %v", err)
	}
	if _, err := f.LookupTXT(ctx, "example.com"); err != nil {
		t.Errorf("original changed by clone: %v", err)
	}
	if q := f.Queries(); len(q) == 0 || q[0] != "TXT example.com" {
		t.Errorf("queries: %q", q)
	}
}

func TestLoadZoneErrors(t *testing.T) {
	for _, z := range []string{
		"x.test BOGUS data",
		"x.test A not-an-ip",
		"x.test MX ten mx.test",
		"x.test PTR y.test",
		`x.test TXT "unterminated`,
		`x.test TXT "a" b`,
	} {
		if err := NewFake().LoadZone(strings.NewReader(z)); err == nil {
			t.Errorf("%q: no error", z)
		}
	}
}
