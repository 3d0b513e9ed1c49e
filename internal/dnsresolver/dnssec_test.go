package dnsresolver

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// adServer is a DNS server on loopback (UDP and TCP, one port) that
// plays a validating resolver: it sets the AD bit for names under
// "signed.", answers SERVFAIL for names under "bogus." and never answers
// names under "silent.". It records whether queries asked for DNSSEC.
type adServer struct {
	addr string

	mu      sync.Mutex
	queries []string // "udp TLSA name"
	noDO    int      // queries without the DO bit or the AD bit
}

const testTLSAHex = "8f2e0a1c9d3b4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f2a3b"

func newADServer(t *testing.T) *adServer {
	t.Helper()
	s := &adServer{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = pc.LocalAddr().String()
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		pc.Close()
		t.Skipf("TCP port %s not free: %v", s.addr, err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: l, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("test DNS server did not start")
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

func (s *adServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	s.queries = append(s.queries, w.RemoteAddr().Network()+" "+dns.TypeToString[q.Qtype]+" "+name)
	if opt := req.IsEdns0(); opt == nil || !opt.Do() || !req.AuthenticatedData {
		s.noDO++
	}
	s.mu.Unlock()
	if strings.HasSuffix(name, "silent.") {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.AuthenticatedData = strings.HasSuffix(name, ".signed.")
	switch {
	case strings.HasSuffix(name, "bogus."):
		m.SetRcode(req, dns.RcodeServerFailure)
		m.AuthenticatedData = false
	case strings.HasPrefix(name, "nxdomain."):
		m.SetRcode(req, dns.RcodeNameError)
		m.AuthenticatedData = strings.HasSuffix(name, ".signed.")
	case strings.HasPrefix(name, "nodata."):
	case strings.HasPrefix(name, "refused."):
		m.SetRcode(req, dns.RcodeRefused)
	case q.Qtype == dns.TypeMX:
		m.Answer = append(m.Answer,
			&dns.MX{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: 20, Mx: "mx2." + name},
			&dns.MX{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: 10, Mx: "mx1." + name})
	case q.Qtype == dns.TypeTLSA:
		n := 2
		if strings.HasPrefix(name, "big.") {
			n = 40 // more than fits in 1232 bytes: truncated over UDP
		}
		if strings.HasPrefix(name, "big.") && w.RemoteAddr().Network() == "udp" {
			m.Truncated = true
			break
		}
		for i := 0; i < n; i++ {
			m.Answer = append(m.Answer, &dns.TLSA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: 60},
				Usage: 3, Selector: 1, MatchingType: 1, Certificate: testTLSAHex})
		}
		// A record of another type in the answer is ignored.
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
	}
	w.WriteMsg(m)
}

func (s *adServer) log() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries), s.noDO
}

// TestTrustAD runs the real resolver code against a loopback server:
// the AD bit is trusted, its absence makes answers insecure, SERVFAIL is
// temporary.
func TestTrustAD(t *testing.T) {
	srv := newADServer(t)
	// Answered names get a timeout long enough for a loaded machine.
	r := &TrustAD{Servers: []string{srv.addr}, Timeout: 30 * time.Second}
	ctx := context.Background()

	mxs, sec, err := r.LookupMXSecure(ctx, "mail.signed")
	if err != nil || !sec || len(mxs) != 2 || mxs[0].Host != "mx1.mail.signed." || mxs[0].Pref != 10 {
		t.Errorf("signed MX: %v %v %v", mxs, sec, err)
	}
	if mxs, sec, err := r.LookupMXSecure(ctx, "mail.unsigned"); err != nil || sec || len(mxs) != 2 {
		t.Errorf("unsigned MX: %v %v %v", mxs, sec, err)
	}
	recs, sec, err := r.LookupTLSA(ctx, "_25._tcp.mx.signed")
	if err != nil || !sec || len(recs) != 2 || recs[0].String() != "3 1 1 "+testTLSAHex {
		t.Errorf("signed TLSA: %v %v %v", recs, sec, err)
	}
	if recs, sec, err := r.LookupTLSA(ctx, "_25._tcp.mx.unsigned"); err != nil || sec || len(recs) != 2 {
		t.Errorf("unsigned TLSA: %v %v %v", recs, sec, err)
	}
	if _, sec, err := r.LookupTLSA(ctx, "nxdomain.signed"); !IsNotFound(err) || !sec {
		t.Errorf("signed NXDOMAIN: %v %v", sec, err)
	}
	if _, sec, err := r.LookupTLSA(ctx, "nodata.signed"); !IsNotFound(err) || !sec {
		t.Errorf("signed NODATA: %v %v", sec, err)
	}
	if _, sec, err := r.LookupTLSA(ctx, "nodata.unsigned"); !IsNotFound(err) || sec {
		t.Errorf("unsigned NODATA: %v %v", sec, err)
	}
	_, sec, err = r.LookupTLSA(ctx, "_25._tcp.mx.bogus")
	var de *net.DNSError
	if !IsTemporary(err) || IsNotFound(err) || sec || !errors.As(err, &de) || !strings.Contains(de.Err, "SERVFAIL") {
		t.Errorf("SERVFAIL: %v %v", sec, err)
	}
	if _, _, err := r.LookupTLSA(ctx, "refused.signed"); !IsTemporary(err) {
		t.Errorf("REFUSED: %v", err)
	}
	recs, sec, err = r.LookupTLSA(ctx, "big.signed")
	if err != nil || !sec || len(recs) != 40 {
		t.Errorf("truncated answer: %d records, %v %v", len(recs), sec, err)
	}
	if _, _, err := r.LookupTLSA(ctx, "bad..name"); err == nil || IsTemporary(err) {
		t.Errorf("invalid name: %v", err)
	}
	q, noDO := srv.log()
	if noDO != 0 {
		t.Errorf("%d queries without the DO and AD bits", noDO)
	}
	if !slices.Contains(q, "tcp TLSA big.signed.") || !slices.Contains(q, "udp TLSA big.signed.") {
		t.Errorf("no TCP retry of a truncated answer: %q", q)
	}
}

// TestTrustADTimeout: a server that never answers makes a bounded,
// temporary failure; a dead first server is skipped for the next.
func TestTrustADTimeout(t *testing.T) {
	srv := newADServer(t)
	r := &TrustAD{Servers: []string{srv.addr}, Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, _, err := r.LookupTLSA(context.Background(), "x.silent")
	// Without the overall timeout, one try alone would take 5 s.
	if d := time.Since(start); !IsTemporary(err) || d >= 5*time.Second {
		t.Errorf("silent server: %v after %s", err, d)
	}
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsTimeout {
		t.Errorf("not a timeout: %#v", err)
	}

	// A port where nothing listens, then the real server.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	r = &TrustAD{Servers: []string{dead, srv.addr}, Timeout: 30 * time.Second}
	if recs, sec, err := r.LookupTLSA(context.Background(), "_25._tcp.mx.signed"); err != nil || !sec || len(recs) != 2 {
		t.Errorf("fallback to the second server: %v %v %v", recs, sec, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := r.LookupTLSA(ctx, "_25._tcp.mx.signed"); !IsTemporary(err) {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestTrustADConfig reads the nameservers from a resolv.conf and warns
// once about each that is not on loopback.
func TestTrustADConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(file, []byte("nameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.53\noptions timeout:3 attempts:9\nsearch example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r := &TrustAD{ConfigFile: file, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	for i := 0; i < 2; i++ {
		servers, perQuery, attempts, err := r.config()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(servers, []string{"127.0.0.53:53", "[::1]:53", "192.0.2.53:53"}) || perQuery != 3*time.Second || attempts != 5 {
			t.Fatalf("config: %q %s %d", servers, perQuery, attempts)
		}
	}
	if n := strings.Count(logs.String(), "not on loopback"); n != 1 || !strings.Contains(logs.String(), "192.0.2.53") {
		t.Errorf("%d warnings:\n%s", n, logs.String())
	}
	// Without resolv.conf, the local resolver (as glibc and Go do).
	r = &TrustAD{ConfigFile: filepath.Join(dir, "missing")}
	if servers, _, _, err := r.config(); err != nil || !slices.Equal(servers, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Errorf("missing resolv.conf: %q %v", servers, err)
	}
	os.WriteFile(file, []byte("search example.org\n"), 0o644)
	r = &TrustAD{ConfigFile: file}
	if servers, _, _, err := r.config(); err != nil || len(servers) != 2 {
		t.Errorf("resolv.conf without nameservers: %q %v", servers, err)
	}
	os.WriteFile(file, []byte("nameserver dns.example\n"), 0o644)
	r = &TrustAD{ConfigFile: file}
	if _, _, err := r.LookupTLSA(context.Background(), "x.example"); !IsTemporary(err) {
		t.Errorf("resolv.conf with only unusable nameservers: %v", err)
	}
}
