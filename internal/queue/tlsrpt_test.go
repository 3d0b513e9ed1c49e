package queue_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
)

// tlsDay is the day the transports of these tests date their results.
var tlsDay = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return tlsDay }

// expiredLeaf is a certificate for name from ca that expired yesterday.
func expiredLeaf(t *testing.T, ca *testCA, name string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// policyServer answers every request with status and body over HTTPS
// with a certificate for certName, and returns a client that reaches it.
func policyServer(t *testing.T, ca *testCA, certName string, status int, body string) *http.Client {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, certName)}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
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
	}
}

// recording returns a direct transport that records TLS results in e's
// store.
func recording(t *testing.T, e *env, dns *dnsresolver.Fake, port int, sts *queue.MTASTS, ca *testCA) *queue.SMTP {
	tr := queue.NewSMTP(queue.SMTPOptions{Resolver: dns, Port: port, EHLOName: "mail.example.org", Logger: e.log, MTASTS: sts,
		CommandTimeout: 5 * time.Second, ConnectTimeout: 2 * time.Second, RootCAs: ca.pool, TLSResults: e.st, Now: fixedNow})
	t.Cleanup(tr.Close)
	return tr
}

func tlsResults(t *testing.T, e *env, tr *queue.SMTP, domain string) []store.TLSResult {
	t.Helper()
	if err := tr.FlushTLSResults(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs, err := e.st.TLSResults(context.Background(), domain, tlsDay.Format(time.DateOnly), tlsDay.Format(time.DateOnly))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestTLSResultsRecorded delivers through real TLS sessions to loopback
// servers with good and bad certificates, with and without MTA-STS, and
// checks what is recorded per domain.
func TestTLSResultsRecorded(t *testing.T) {
	ca := newCA(t)
	otherCA := newCA(t)
	const testingPolicy = "version: STSv1\nmode: testing\nmx: mx.example.net\nmax_age: 86400\n"
	const enforcePolicy = "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 86400\n"
	type want struct {
		typ, result, reason string
		policy              []string
		ip                  bool // receiving and sending IP recorded
	}
	tests := []struct {
		name      string
		cert      func(*testing.T) *tls.Certificate
		policy    string // "" no MTA-STS; "404" a published policy that cannot be fetched
		delivered bool
		want      []want
	}{
		{"plain, no policy", func(t *testing.T) *tls.Certificate { return nil }, "", true,
			[]want{{typ: "no-policy-found", result: "starttls-not-supported", ip: true}}},
		{"tls, no policy", func(t *testing.T) *tls.Certificate { c := ca.leaf(t, "mx.example.net"); return &c }, "", true,
			[]want{{typ: "no-policy-found", ip: true}}},
		{"untrusted, no policy", func(t *testing.T) *tls.Certificate { c := otherCA.leaf(t, "x.invalid"); return &c }, "", true,
			// Opportunistic TLS does not validate.
			[]want{{typ: "no-policy-found", ip: true}}},
		{"testing, host mismatch", func(t *testing.T) *tls.Certificate { c := ca.leaf(t, "wrong.example"); return &c }, testingPolicy, true,
			[]want{{typ: "sts", result: "certificate-host-mismatch", policy: strings.Split(strings.TrimSpace(testingPolicy), "\n"), ip: true}}},
		{"enforce, expired", func(t *testing.T) *tls.Certificate { c := expiredLeaf(t, ca, "mx.example.net"); return &c }, enforcePolicy, false,
			[]want{{typ: "sts", result: "certificate-expired", policy: strings.Split(strings.TrimSpace(enforcePolicy), "\n"), ip: true}}},
		{"enforce, untrusted", func(t *testing.T) *tls.Certificate { c := otherCA.leaf(t, "mx.example.net"); return &c }, enforcePolicy, false,
			[]want{{typ: "sts", result: "certificate-not-trusted", reason: "unknown authority", policy: strings.Split(strings.TrimSpace(enforcePolicy), "\n"), ip: true}}},
		{"enforce, starttls missing", func(t *testing.T) *tls.Certificate { return nil }, enforcePolicy, false,
			[]want{{typ: "sts", result: "starttls-not-supported", policy: strings.Split(strings.TrimSpace(enforcePolicy), "\n"), ip: true}}},
		{"enforce, ok", func(t *testing.T) *tls.Certificate { c := ca.leaf(t, "mx.example.net"); return &c }, enforcePolicy, true,
			[]want{{typ: "sts", policy: strings.Split(strings.TrimSpace(enforcePolicy), "\n"), ip: true}}},
		{"policy not found", func(t *testing.T) *tls.Certificate { c := ca.leaf(t, "mx.example.net"); return &c }, "404", true,
			[]want{{typ: "sts", result: "sts-policy-fetch-error", reason: "http status 404"}, {typ: "no-policy-found", ip: true}}},
		{"policy invalid", func(t *testing.T) *tls.Certificate { c := ca.leaf(t, "mx.example.net"); return &c }, "garbage", true,
			[]want{{typ: "sts", result: "sts-policy-invalid", reason: `mta-sts policy: bad line "garbage"`}, {typ: "no-policy-found", ip: true}}},
		{"policy host certificate", func(t *testing.T) *tls.Certificate { c := ca.leaf(t, "mx.example.net"); return &c }, "webpki", true,
			[]want{{typ: "sts", result: "sts-webpki-invalid", reason: "certificate-host-mismatch"}, {typ: "no-policy-found", ip: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSink(t, "127.0.0.1:0", tt.cert(t), false)
			dns := dnsresolver.NewFake()
			dns.AddMX("example.net", 10, "mx.example.net")
			dns.AddIP("mx.example.net", "127.0.0.1")
			var sts *queue.MTASTS
			if tt.policy != "" {
				dns.AddTXT("_mta-sts.example.net", "v=STSv1; id=1")
				var client *http.Client
				switch tt.policy {
				case "404":
					client = policyServer(t, ca, "mta-sts.example.net", http.StatusNotFound, "")
				case "garbage":
					client = policyServer(t, ca, "mta-sts.example.net", http.StatusOK, "garbage")
				case "webpki":
					client = policyServer(t, ca, "mta-sts.elsewhere.example", http.StatusOK, testingPolicy)
				default:
					client, _ = stsServer(t, ca, "example.net", tt.policy)
				}
				sts = queue.NewMTASTS(dns, nil)
				sts.HTTPClient = client
			}
			e := newEnv(t, "")
			tr := recording(t, e, dns, s.port(), sts, ca)
			e.runner(tr, func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })
			ids := e.submit(rcpt("bob@example.net")...)
			waitFor(t, "one attempt", func() bool { q, ok := e.entry(ids[0]); return !ok || q.Attempts == 1 })
			if got := len(s.received()) == 1; got != tt.delivered {
				t.Fatalf("delivered %v, want %v", got, tt.delivered)
			}
			rs := tlsResults(t, e, tr, "example.net")
			if len(rs) != len(tt.want) {
				t.Fatalf("results %+v", rs)
			}
			for i, w := range tt.want {
				r := rs[len(rs)-1-i] // stored "sts" sorts after "no-policy-found"
				if len(tt.want) == 1 {
					r = rs[0]
				}
				if r.PolicyType != w.typ || r.ResultType != w.result || r.Reason != w.reason || !slices.Equal(r.PolicyString, w.policy) || r.Count != 1 || r.PolicyDomain != "example.net" {
					t.Errorf("result %d: %+v, want %+v", i, r, w)
				}
				// Failures keep where they happened; successes are
				// one row per policy, without addresses.
				if w.ip && w.result != "" && (r.MXHost != "mx.example.net" || r.ReceivingIP != "127.0.0.1" || r.SendingIP != "127.0.0.1") {
					t.Errorf("result %d addresses: %+v", i, r)
				}
				if w.result == "" && (r.MXHost != "" || r.ReceivingIP != "" || r.SendingIP != "") {
					t.Errorf("success %d keeps addresses: %+v", i, r)
				}
			}
			sum, err := queue.TLSSummaries(context.Background(), e.st, "example.net", tlsDay, tlsDay)
			if err != nil || len(sum) != 1 {
				t.Fatalf("summaries %+v, %v", sum, err)
			}
			failed := int64(0)
			for _, w := range tt.want {
				if w.result != "" {
					failed++
				}
			}
			if sum[0].Failed != failed || sum[0].Successful != int64(len(tt.want))-failed || len(sum[0].Failures) != int(failed) {
				t.Fatalf("summary %+v", sum[0])
			}
		})
	}
}

// TestTLSReportSessionsNotReported: a TLS report is delivered despite an
// enforced policy's TLS failure and its session is not recorded (RFC
// 8460 5.3), while ordinary mail to the same host is deferred and its
// failure recorded.
func TestTLSReportSessionsNotReported(t *testing.T) {
	ca := newCA(t)
	bad := newCA(t).leaf(t, "mx.example.net")
	s := newSink(t, "127.0.0.1:0", &bad, false)
	dns := dnsresolver.NewFake()
	dns.AddMX("example.net", 10, "mx.example.net")
	dns.AddIP("mx.example.net", "127.0.0.1")
	dns.AddTXT("_mta-sts.example.net", "v=STSv1; id=1")
	client, _ := stsServer(t, ca, "example.net", "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 86400\n")
	sts := queue.NewMTASTS(dns, nil)
	sts.HTTPClient = client
	e := newEnv(t, "")
	tr := recording(t, e, dns, s.port(), sts, ca)
	e.runner(tr, func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })

	ctx := context.Background()
	report := "From: <postmaster@example.org>\r\nTo: <tlsrpt@example.net>\r\nSubject: Report Domain: example.org\r\nTLS-Report-Domain: example.org\r\nTLS-Report-Submitter: mail.example.org\r\n\r\nreport\r\n"
	if err := e.sub.InjectTLSReport(ctx, "postmaster@example.org", []string{"tlsrpt@example.net"}, []byte(report)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "report delivered", func() bool { return len(s.received()) == 1 })
	if m := s.received()[0]; !m.TLS || m.To[0] != "tlsrpt@example.net" {
		t.Fatalf("report delivery %+v", m)
	}
	if rs := tlsResults(t, e, tr, "example.net"); len(rs) != 0 {
		t.Fatalf("report's session recorded: %+v", rs)
	}

	// The same header in other mail (a user's, or system mail such as a
	// forward or DSN) does not make it a report: only the reporter's
	// transport does.
	if err := e.sub.Inject(ctx, "postmaster@example.org", []string{"tlsrpt2@example.net"}, []byte(report)); err != nil {
		t.Fatal(err)
	}
	ids := e.submitMsg(report, delivery.DSNOptions{}, rcpt("carol@example.net")...)
	waitFor(t, "attempt", func() bool { q, ok := e.entry(ids[0]); return ok && q.Attempts == 1 })
	var rs []store.TLSResult
	waitFor(t, "both attempts recorded", func() bool {
		rs = tlsResults(t, e, tr, "example.net")
		return len(rs) == 1 && rs[0].Count == 2
	})
	if len(s.received()) != 1 {
		t.Fatal("mail with a report header delivered despite the enforced policy")
	}
	if rs[0].ResultType != "certificate-not-trusted" {
		t.Fatalf("results %+v", rs)
	}
}
