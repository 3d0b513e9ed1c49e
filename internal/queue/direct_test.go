package queue_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
)

// stsServer serves an MTA-STS policy over HTTPS with a certificate from ca
// for mta-sts.<domain>, and returns a client that reaches it whatever
// host it asks for.
func stsServer(t *testing.T, ca *testCA, domain, policy string) (*http.Client, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Host != "mta-sts."+domain || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(policy))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, "mta-sts."+domain)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.pool},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, &hits
}

func direct(t *testing.T, e *env, dns *dnsresolver.Fake, port int, sts *queue.MTASTS, ca *testCA) *queue.SMTP {
	o := queue.SMTPOptions{Resolver: dns, Port: port, EHLOName: "mail.example.org", Logger: e.log, MTASTS: sts,
		CommandTimeout: 5 * time.Second, ConnectTimeout: 2 * time.Second}
	if ca != nil {
		o.RootCAs = ca.pool
	}
	tr := queue.NewSMTP(o)
	t.Cleanup(tr.Close)
	return tr
}

func TestDirectMX(t *testing.T) {
	ca := newCA(t)
	cert := ca.leaf(t, "mx2.example.net")
	good := newSink(t, "127.0.0.1:0", &cert, false)
	port := good.port()
	// mx1 (preferred) is an address where nothing listens: the runner
	// must fall back to mx2.
	dns := dnsresolver.NewFake()
	dns.AddMX("example.net", 10, "mx1.example.net")
	dns.AddMX("example.net", 20, "mx2.example.net")
	dns.AddIP("mx1.example.net", "127.0.0.9")
	dns.AddIP("mx2.example.net", "127.0.0.1")
	// No MX: implicit MX on the address record.
	dns.AddIP("implicit.example", "127.0.0.1")
	// Null MX.
	dns.AddMX("nomail.example", 0, ".")
	// Temporary DNS failure.
	dns.Fail("broken.example", dnsresolver.FailServFail)
	e := newEnv(t, "")
	e.runner(direct(t, e, dns, port, nil, nil), func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })

	ids := e.submit(rcpt("bob@example.net", "x@implicit.example", "y@nomail.example", "z@nxdomain.example", "w@broken.example")...)
	if len(ids) != 5 {
		t.Fatalf("%d entries", len(ids))
	}
	waitFor(t, "two deliveries", func() bool { return len(good.received()) == 2 })
	waitFor(t, "bounces", func() bool { return e.queueLen() == 1 && len(e.inbox()) == 2 })
	for _, m := range good.received() {
		if !m.TLS {
			t.Error("opportunistic STARTTLS not used")
		}
	}
	var broken store.QueueEntry
	es, _ := e.st.QueueList(context.Background())
	broken = es[0]
	if broken.Destination != "broken.example" || broken.Recipients[0].Status != store.RcptPending || !strings.Contains(broken.LastError, "4.4.3") {
		t.Fatalf("DNS temperror entry: %+v", broken)
	}
	all := strings.Join(e.inbox(), "\n")
	if !strings.Contains(all, "Status: 5.1.10") || !strings.Contains(all, "null MX") {
		t.Errorf("null MX DSN missing:\n%s", all)
	}
	if !strings.Contains(all, "Final-Recipient: rfc822; z@nxdomain.example") || !strings.Contains(all, "Status: 5.1.2") {
		t.Errorf("NXDOMAIN DSN missing:\n%s", all)
	}
	if !strings.Contains(e.logs.String(), `relay="mx2.example.net[127.0.0.1]`) {
		t.Errorf("fallback host not logged:\n%s", e.logs)
	}
}

func TestMTASTS(t *testing.T) {
	ca := newCA(t)
	cert := ca.leaf(t, "mx.example.net")
	tlsSink := newSink(t, "127.0.0.1:0", &cert, false)
	port := tlsSink.port()
	plain := newSink(t, "127.0.0.2:"+itoa(port), nil, false)

	policy := "version: STSv1\nmode: enforce\nmx: mx.example.net\nmx: *.plain.example.net\nmax_age: 86400\n"
	client, hits := stsServer(t, ca, "example.net", policy)

	dns := dnsresolver.NewFake()
	dns.AddTXT("_mta-sts.example.net", "v=STSv1; id=20250101")
	dns.AddMX("example.net", 10, "mx.example.net")
	dns.AddIP("mx.example.net", "127.0.0.1")

	sts := queue.NewMTASTS(dns, nil)
	sts.HTTPClient = client

	e := newEnv(t, "")
	e.runner(direct(t, e, dns, port, sts, ca), func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })
	e.submit(rcpt("bob@example.net")...)
	waitFor(t, "delivery under enforce", func() bool { return len(tlsSink.received()) == 1 })
	if !tlsSink.received()[0].TLS {
		t.Fatal("delivered without TLS under an enforce policy")
	}
	if hits.Load() != 1 {
		t.Fatalf("policy fetched %d times", hits.Load())
	}

	// The MX moves to a host that is in the policy but offers no
	// STARTTLS: deferred, not sent in plain text.
	dns2 := dnsresolver.NewFake()
	dns2.AddTXT("_mta-sts.example.net", "v=STSv1; id=20250101")
	dns2.AddMX("example.net", 10, "a.plain.example.net")
	dns2.AddIP("a.plain.example.net", "127.0.0.2")
	sts.Resolver = dns2
	e2 := newEnv(t, "")
	e2.runner(direct(t, e2, dns2, port, sts, ca), func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })
	ids := e2.submit(rcpt("carol@example.net")...)
	waitFor(t, "attempt", func() bool { q, _ := e2.entry(ids[0]); return q.Attempts == 1 })
	q, _ := e2.entry(ids[0])
	if len(plain.received()) != 0 || !strings.Contains(q.LastError, "MTA-STS") {
		t.Fatalf("enforce without STARTTLS: sent %d, entry %+v", len(plain.received()), q)
	}
	if hits.Load() != 1 {
		t.Fatalf("cached policy re-fetched: %d fetches", hits.Load())
	}

	// An MX not named by the policy is never used.
	dns3 := dnsresolver.NewFake()
	dns3.AddTXT("_mta-sts.example.net", "v=STSv1; id=20250101")
	dns3.AddMX("example.net", 10, "evil.example.org")
	dns3.AddIP("evil.example.org", "127.0.0.1")
	sts.Resolver = dns3
	e3 := newEnv(t, "")
	e3.runner(direct(t, e3, dns3, port, sts, ca), func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })
	ids = e3.submit(rcpt("dave@example.net")...)
	waitFor(t, "attempt", func() bool { q, _ := e3.entry(ids[0]); return q.Attempts == 1 })
	q, _ = e3.entry(ids[0])
	if len(tlsSink.received()) != 1 || !strings.Contains(q.LastError, "matches its MTA-STS policy") {
		t.Fatalf("MX outside the policy: sent %d, entry %+v", len(tlsSink.received()), q)
	}

	// Testing mode: the plain host gets the mail, as without a policy.
	client2, _ := stsServer(t, ca, "testing.example", "version: STSv1\nmode: testing\nmx: mx.testing.example\nmax_age: 600\n")
	dns4 := dnsresolver.NewFake()
	dns4.AddTXT("_mta-sts.testing.example", "v=STSv1; id=1")
	dns4.AddMX("testing.example", 10, "mx.testing.example")
	dns4.AddIP("mx.testing.example", "127.0.0.2")
	sts4 := queue.NewMTASTS(dns4, nil)
	sts4.HTTPClient = client2
	e4 := newEnv(t, "")
	e4.runner(direct(t, e4, dns4, port, sts4, ca), nil)
	e4.submit(rcpt("erin@testing.example")...)
	waitFor(t, "delivery under testing", func() bool { return len(plain.received()) == 1 })
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestParseSTSPolicy(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		mode    queue.STSMode
		match   []string
		nomatch []string
	}{
		{"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n", true, queue.STSEnforce,
			[]string{"mail.example.com", "MAIL.example.com.", "a.example.net"}, []string{"example.net", "a.b.example.net", "example.com"}},
		{"version: STSv1\nmode: none\nmax_age: 1\n", true, queue.STSNone, nil, []string{"x"}},
		{"version: STSv1\nmode: enforce\nmax_age: 1\n", false, "", nil, nil},
		{"version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n", false, "", nil, nil},
		{"version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n", false, "", nil, nil},
		{"version: STSv1\nmode: enforce\nmx: a\n", false, "", nil, nil},
		{"garbage", false, "", nil, nil},
		{"version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\nextension: ignored\n", false, "", nil, nil},
	}
	for i, tt := range tests {
		p, err := queue.ParseSTSPolicy([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("%d: err %v, want ok=%v", i, err, tt.ok)
			continue
		}
		if err != nil {
			continue
		}
		if p.Mode != tt.mode {
			t.Errorf("%d: mode %q", i, p.Mode)
		}
		for _, h := range tt.match {
			if !p.Match(h) {
				t.Errorf("%d: %s should match", i, h)
			}
		}
		for _, h := range tt.nomatch {
			if p.Match(h) {
				t.Errorf("%d: %s should not match", i, h)
			}
		}
	}
}

func FuzzParseSTSPolicy(f *testing.F) {
	f.Add([]byte("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n"))
	f.Add([]byte("version: STSv1\r\nmode: testing\r\nmx: *.example.net\r\nmax_age: 1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := queue.ParseSTSPolicy(b)
		if err == nil {
			p.Match("mx.example.com")
			if p.MaxAge < 0 {
				t.Fatal("negative max_age")
			}
		}
	})
}
