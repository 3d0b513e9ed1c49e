package queue_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
)

// daneTransport is a direct transport with DANE answered by dns, that
// records TLS results in e's store. RootCAs is ca's pool, so a PKIX
// check of a certificate from another CA fails.
func daneTransport(t *testing.T, e *env, dns *dnsresolver.Fake, port int, sts *queue.MTASTS, ca *testCA) *queue.SMTP {
	tr := queue.NewSMTP(queue.SMTPOptions{Resolver: dns, DANE: dns, Port: port, EHLOName: "mail.example.org", Logger: e.log, MTASTS: sts,
		CommandTimeout: 5 * time.Second, ConnectTimeout: 2 * time.Second, RootCAs: ca.pool, TLSResults: e.st, Now: fixedNow})
	t.Cleanup(tr.Close)
	return tr
}

// tlsaOf returns a TLSA record of usage u, selector 1 (SPKI) or 0 (full
// certificate), SHA-256, for the first certificate of c.
func tlsaOf(t *testing.T, u, sel uint8, der []byte) dnsresolver.TLSA {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	data := c.Raw
	if sel == 1 {
		data = c.RawSubjectPublicKeyInfo
	}
	h := sha256.Sum256(data)
	return dnsresolver.TLSA{Usage: u, Selector: sel, MatchingType: 1, Data: h[:]}
}

func TestDANEDelivery(t *testing.T) {
	ca := newCA(t)        // trusted by RootCAs
	untrusted := newCA(t) // not trusted: only DANE can authenticate its certificates
	const host = "mx.example.net"
	type want struct {
		delivered bool
		tls       bool   // delivered over TLS
		dane      bool   // the attempt log says dane
		errSub    string // in the entry's last error when not delivered
		typ       string // TLS result policy type
		result    string // TLS result type ("" success)
	}
	tests := []struct {
		name       string
		cert       func(t *testing.T) *tls.Certificate // nil: no STARTTLS
		recs       func(t *testing.T, c *tls.Certificate) []dnsresolver.TLSA
		secureMX   bool
		secureTLSA bool
		tlsaFail   bool
		want       want
	}{
		{"DANE-EE match", leafOf(untrusted, host), eeOf, true, true, false,
			want{delivered: true, tls: true, dane: true, typ: "tlsa"}},
		{"DANE-EE full certificate", leafOf(untrusted, "elsewhere.example"),
			func(t *testing.T, c *tls.Certificate) []dnsresolver.TLSA {
				return []dnsresolver.TLSA{tlsaOf(t, 3, 0, c.Certificate[0])}
			}, true, true, false,
			want{delivered: true, tls: true, dane: true, typ: "tlsa"}},
		{"DANE-EE mismatch", leafOf(ca, host), otherEE(untrusted), true, true, false,
			want{errSub: "DANE", typ: "tlsa", result: "tlsa-invalid"}},
		{"DANE-TA", chainOf(untrusted, host),
			func(t *testing.T, c *tls.Certificate) []dnsresolver.TLSA {
				return []dnsresolver.TLSA{tlsaOf(t, 2, 0, untrusted.cert.Raw)}
			}, true, true, false,
			want{delivered: true, tls: true, dane: true, typ: "tlsa"}},
		{"DANE-TA wrong name", chainOf(untrusted, "other.example.net"),
			func(t *testing.T, c *tls.Certificate) []dnsresolver.TLSA {
				return []dnsresolver.TLSA{tlsaOf(t, 2, 1, untrusted.cert.Raw)}
			}, true, true, false,
			want{errSub: "DANE", typ: "tlsa", result: "certificate-host-mismatch"}},
		{"DANE without STARTTLS", nil, otherEE(untrusted), true, true, false,
			want{errSub: "TLSA records of mx.example.net require TLS", typ: "tlsa", result: "starttls-not-supported"}},
		{"insecure TLSA", leafOf(untrusted, host), otherEE(untrusted), true, false, false,
			want{delivered: true, tls: true, typ: "no-policy-found"}},
		{"insecure MX", leafOf(untrusted, host), otherEE(untrusted), false, true, false,
			want{delivered: true, tls: true, typ: "no-policy-found"}},
		{"insecure TLSA, no STARTTLS", nil, otherEE(untrusted), true, false, false,
			want{delivered: true, typ: "no-policy-found", result: "starttls-not-supported"}},
		{"secure denial, no STARTTLS", nil, nil, true, true, false,
			want{delivered: true, typ: "no-policy-found", result: "starttls-not-supported"}},
		{"TLSA lookup fails", leafOf(untrusted, host), eeOf, true, true, true,
			want{errSub: "TLSA records of mx.example.net failed", typ: "tlsa", result: "dnssec-invalid"}},
		{"TLSA lookup fails, insecure MX", leafOf(untrusted, host), eeOf, false, true, true,
			want{delivered: true, tls: true, typ: "no-policy-found"}},
		{"only unusable records", leafOf(untrusted, host),
			func(t *testing.T, c *tls.Certificate) []dnsresolver.TLSA {
				return []dnsresolver.TLSA{tlsaOf(t, 1, 1, c.Certificate[0]), {Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{1, 2}}}
			}, true, true, false,
			want{delivered: true, tls: true, typ: "tlsa"}},
		{"only unusable records, no STARTTLS", nil,
			func(t *testing.T, c *tls.Certificate) []dnsresolver.TLSA {
				return []dnsresolver.TLSA{{Usage: 0, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}}
			}, true, true, false,
			want{errSub: "require TLS", typ: "tlsa", result: "starttls-not-supported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var cert *tls.Certificate
			if tt.cert != nil {
				cert = tt.cert(t)
			}
			s := newSink(t, "127.0.0.1:0", cert, false)
			dns := dnsresolver.NewFake()
			dns.AddMX("example.net", 10, host)
			dns.AddIP(host, "127.0.0.1")
			dns.SetSecure("example.net", tt.secureMX)
			dns.SetSecure("_25._tcp."+host, tt.secureTLSA)
			var recs []dnsresolver.TLSA
			if tt.recs != nil {
				recs = tt.recs(t, cert)
				dns.AddTLSA("_25._tcp."+host, recs...)
			}
			if tt.tlsaFail {
				dns.Fail("_25._tcp."+host, dnsresolver.FailServFail)
			}
			e := newEnv(t, "")
			tr := daneTransport(t, e, dns, s.port(), nil, ca)
			e.runner(tr, func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })
			ids := e.submit(rcpt("bob@example.net")...)
			waitFor(t, "one attempt", func() bool { q, ok := e.entry(ids[0]); return !ok || q.Attempts == 1 })
			got := s.received()
			if (len(got) == 1) != tt.want.delivered {
				q, _ := e.entry(ids[0])
				t.Fatalf("delivered %d, want %v; entry %+v", len(got), tt.want.delivered, q)
			}
			if tt.want.delivered {
				if got[0].TLS != tt.want.tls {
					t.Errorf("TLS %v, want %v", got[0].TLS, tt.want.tls)
				}
			} else {
				q, _ := e.entry(ids[0])
				if q.Recipients[0].Status != store.RcptPending || !strings.Contains(q.LastError, tt.want.errSub) || !strings.Contains(q.LastError, "4.7.") {
					t.Errorf("entry %+v, want a deferral with %q", q, tt.want.errSub)
				}
			}
			// The attempt log line says dane where it says the TLS version.
			if dane := strings.Contains(e.logs.String(), ", dane)"); dane != tt.want.dane {
				t.Errorf("dane in the attempt log: %v, want %v\n%s", dane, tt.want.dane, e.logs)
			}
			if l := e.logs.String(); tt.secureMX && !strings.Contains(l, "msg=dane") && !strings.Contains(l, `msg="dane:`) {
				t.Errorf("no DANE decision logged:\n%s", e.logs)
			}
			var rs []store.TLSResult
			waitFor(t, "TLS result", func() bool { rs = tlsResults(t, e, tr, "example.net"); return len(rs) > 0 })
			r := rs[0]
			if len(rs) != 1 || r.PolicyType != tt.want.typ || r.ResultType != tt.want.result || r.Count != 1 {
				t.Fatalf("TLS results %+v, want %s/%q", rs, tt.want.typ, tt.want.result)
			}
			if r.PolicyType == "tlsa" {
				if r.MXHost != host {
					t.Errorf("tlsa result without its MX host: %+v", r)
				}
				var wantLines []string
				if !tt.tlsaFail {
					for _, x := range recs {
						wantLines = append(wantLines, x.String())
					}
				}
				if !slices.Equal(r.PolicyString, wantLines) {
					t.Errorf("policy-string %q, want %q", r.PolicyString, wantLines)
				}
			}
		})
	}
}

func leafOf(ca *testCA, name string) func(*testing.T) *tls.Certificate {
	return func(t *testing.T) *tls.Certificate { c := ca.leaf(t, name); return &c }
}

// chainOf is a leaf for name followed by ca's certificate.
func chainOf(ca *testCA, name string) func(*testing.T) *tls.Certificate {
	return func(t *testing.T) *tls.Certificate {
		c := ca.leaf(t, name)
		c.Certificate = append(c.Certificate, ca.cert.Raw)
		return &c
	}
}

func eeOf(t *testing.T, c *tls.Certificate) []dnsresolver.TLSA {
	return []dnsresolver.TLSA{tlsaOf(t, 3, 1, c.Certificate[0])}
}

// otherEE is a DANE-EE record of an unrelated certificate.
func otherEE(ca *testCA) func(*testing.T, *tls.Certificate) []dnsresolver.TLSA {
	return func(t *testing.T, _ *tls.Certificate) []dnsresolver.TLSA {
		o := ca.leaf(t, "unrelated.example")
		return []dnsresolver.TLSA{tlsaOf(t, 3, 1, o.Certificate[0])}
	}
}

// TestDANENextMX: a host whose TLSA lookup fails is skipped, a host whose
// certificate does not match is skipped, and the next MX host gets the
// mail; an implicit MX with secure records is held to them too.
func TestDANENextMX(t *testing.T) {
	untrusted := newCA(t)
	cert := untrusted.leaf(t, "mx3.example.net")
	s := newSink(t, "127.0.0.1:0", &cert, false)
	dns := dnsresolver.NewFake()
	dns.AddMX("example.net", 10, "mx1.example.net")
	dns.AddMX("example.net", 20, "mx2.example.net")
	dns.AddMX("example.net", 30, "mx3.example.net")
	for _, h := range []string{"mx1", "mx2", "mx3"} {
		dns.AddIP(h+".example.net", "127.0.0.1")
		dns.SetSecure("_25._tcp."+h+".example.net", true)
	}
	dns.SetSecure("example.net", true)
	dns.Fail("_25._tcp.mx1.example.net", dnsresolver.FailServFail)
	dns.AddTLSA("_25._tcp.mx2.example.net", otherEE(untrusted)(t, nil)...)
	dns.AddTLSA("_25._tcp.mx3.example.net", eeOf(t, &cert)...)
	// Implicit MX: no MX records, a secure denial, TLSA at the domain.
	dns.AddIP("implicit.example", "127.0.0.1")
	dns.SetSecure("implicit.example", true)
	dns.SetSecure("_25._tcp.implicit.example", true)
	dns.AddTLSA("_25._tcp.implicit.example", otherEE(untrusted)(t, nil)...)

	e := newEnv(t, "")
	tr := daneTransport(t, e, dns, s.port(), nil, newCA(t))
	e.runner(tr, func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })
	ids := e.submit(rcpt("bob@example.net", "carol@implicit.example")...)
	waitFor(t, "delivery to mx3", func() bool { return len(s.received()) == 1 })
	// The attempt is logged once the session is over.
	waitFor(t, "delivery logged as DANE via mx3", func() bool {
		return strings.Contains(e.logs.String(), "relay=\"mx3.example.net[127.0.0.1]:"+itoa(s.port())+" (TLS 1.3, dane)\"")
	})
	var implicit int64
	for _, id := range ids {
		if q, ok := e.entry(id); ok && q.Destination == "implicit.example" {
			implicit = id
		}
	}
	waitFor(t, "implicit MX attempt", func() bool { q, _ := e.entry(implicit); return q.Attempts == 1 })
	if q, _ := e.entry(implicit); len(s.received()) != 1 || !strings.Contains(q.LastError, "DANE") {
		t.Fatalf("implicit MX with mismatching TLSA: %d delivered, entry %+v", len(s.received()), q)
	}
	rs := tlsResults(t, e, tr, "example.net")
	byResult := map[string]string{}
	for _, r := range rs {
		byResult[r.ResultType] = r.MXHost
	}
	if len(rs) != 3 || byResult["dnssec-invalid"] != "mx1.example.net" || byResult["tlsa-invalid"] != "mx2.example.net" || byResult[""] != "mx3.example.net" {
		t.Fatalf("results %+v", rs)
	}
}

// TestDANEOverridesMTASTS: for a host with usable secure TLSA records,
// DANE decides, not an MTA-STS enforce policy, even one that does not
// name the host or whose PKIX check the certificate fails (RFC 8461 2).
func TestDANEOverridesMTASTS(t *testing.T) {
	ca := newCA(t)
	untrusted := newCA(t)
	cert := untrusted.leaf(t, "mx.example.net")
	s := newSink(t, "127.0.0.1:0", &cert, false)
	client, _ := stsServer(t, ca, "example.net", "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 86400\n")
	dns := dnsresolver.NewFake()
	dns.AddTXT("_mta-sts.example.net", "v=STSv1; id=1")
	dns.AddMX("example.net", 10, "mx.example.net")
	dns.AddIP("mx.example.net", "127.0.0.1")
	sts := queue.NewMTASTS(dns, nil)
	sts.HTTPClient = client
	e := newEnv(t, "")
	tr := daneTransport(t, e, dns, s.port(), sts, ca)
	e.runner(tr, func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })

	// Without DANE, the enforce policy refuses the untrusted certificate.
	ids := e.submit(rcpt("bob@example.net")...)
	waitFor(t, "attempt under MTA-STS", func() bool { q, _ := e.entry(ids[0]); return q.Attempts == 1 })
	if len(s.received()) != 0 {
		t.Fatal("MTA-STS enforce accepted an untrusted certificate")
	}
	// With secure usable TLSA records, DANE decides.
	dns.SetSecure("example.net", true)
	dns.SetSecure("_25._tcp.mx.example.net", true)
	dns.AddTLSA("_25._tcp.mx.example.net", eeOf(t, &cert)...)
	e.submit(rcpt("carol@example.net")...)
	waitFor(t, "delivery by DANE", func() bool { return len(s.received()) == 1 })

	// An MX host that the policy does not name is used when DANE
	// authenticates it.
	cert2 := untrusted.leaf(t, "backup.example.org")
	s2 := newSink(t, "127.0.0.2:"+itoa(s.port()), &cert2, false)
	dns.AddMX("other.example", 10, "backup.example.org")
	dns.AddIP("backup.example.org", "127.0.0.2")
	dns.AddTXT("_mta-sts.other.example", "v=STSv1; id=1")
	client2, _ := stsServer(t, ca, "other.example", "version: STSv1\nmode: enforce\nmx: mx.other.example\nmax_age: 86400\n")
	sts2 := queue.NewMTASTS(dns, nil)
	sts2.HTTPClient = client2
	dns.SetSecure("other.example", true)
	dns.SetSecure("_25._tcp.backup.example.org", true)
	dns.AddTLSA("_25._tcp.backup.example.org", eeOf(t, &cert2)...)
	e2 := newEnv(t, "")
	tr2 := daneTransport(t, e2, dns, s.port(), sts2, ca)
	e2.runner(tr2, func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })
	e2.submit(rcpt("dave@other.example")...)
	waitFor(t, "delivery to a host outside the policy", func() bool { return len(s2.received()) == 1 })
	rs := tlsResults(t, e2, tr2, "other.example")
	if len(rs) != 1 || rs[0].PolicyType != "tlsa" || rs[0].ResultType != "" {
		t.Fatalf("results %+v", rs)
	}
}

// TestTLSReportTLSAPolicies: TLSA results make one policy per MX host,
// with its records as policy-string and the host as mx-host (RFC 8460
// 4.4), next to the other policies of the domain.
func TestTLSReportTLSAPolicies(t *testing.T) {
	d := "2025-03-01"
	a := []string{"3 1 1 00aa"}
	b := []string{"2 0 1 00bb", "3 1 1 00cc"}
	rs := []store.TLSResult{
		{Day: d, PolicyDomain: "example.net", PolicyType: "tlsa", PolicyString: a, MXHost: "mx1.example.net", Count: 7},
		{Day: d, PolicyDomain: "example.net", PolicyType: "tlsa", PolicyString: a, ResultType: "tlsa-invalid", MXHost: "mx1.example.net", ReceivingIP: "192.0.2.1", Reason: "certificate does not match", Count: 2},
		{Day: d, PolicyDomain: "example.net", PolicyType: "tlsa", PolicyString: b, MXHost: "mx2.example.net", Count: 3},
		{Day: d, PolicyDomain: "example.net", PolicyType: "tlsa", ResultType: "dnssec-invalid", MXHost: "mx3.example.net", Count: 1},
		{Day: d, PolicyDomain: "example.net", PolicyType: "no-policy-found", Count: 4},
	}
	rep := queue.BuildTLSReport(reportMeta, reportDay, "example.net", rs)
	if len(rep.Policies) != 4 {
		t.Fatalf("%d policies: %+v", len(rep.Policies), rep.Policies)
	}
	// Policies of one type sort by policy-string: mx3 (none), mx2, mx1.
	p := rep.Policies[2]
	if p.Policy.Type != "tlsa" || !slices.Equal(p.Policy.String, a) || !slices.Equal(p.Policy.MXHost, []string{"mx1.example.net"}) ||
		p.Summary.Successful != 7 || p.Summary.Failed != 2 || len(p.FailureDetails) != 1 || p.FailureDetails[0].ResultType != "tlsa-invalid" {
		t.Errorf("mx1 policy %+v", p)
	}
	if p := rep.Policies[1]; !slices.Equal(p.Policy.String, b) || !slices.Equal(p.Policy.MXHost, []string{"mx2.example.net"}) || p.Summary.Successful != 3 {
		t.Errorf("mx2 policy %+v", p)
	}
	if p := rep.Policies[0]; p.Policy.String != nil || !slices.Equal(p.Policy.MXHost, []string{"mx3.example.net"}) || p.Summary.Failed != 1 {
		t.Errorf("mx3 policy %+v", p)
	}
	if p := rep.Policies[3]; p.Policy.Type != "no-policy-found" || p.Policy.MXHost != nil {
		t.Errorf("no-policy-found %+v", p)
	}
}
