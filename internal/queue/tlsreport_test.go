package queue_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

// reportDay is the day reported; reportNow is shortly after it.
var (
	reportDay = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	reportNow = time.Date(2025, 3, 2, 0, 30, 0, 0, time.UTC)
)

var stsLines = []string{"version: STSv1", "mode: enforce", "mx: mx1.example.net", "mx: *.mx.example.net", "max_age: 604800"}

// reportResults are a day of results for example.net.
func reportResults() []store.TLSResult {
	d := "2025-03-01"
	return []store.TLSResult{
		{Day: d, PolicyDomain: "example.net", PolicyType: "sts", PolicyString: stsLines, MXHost: "mx1.example.net", ReceivingIP: "192.0.2.10", SendingIP: "198.51.100.7", Count: 120},
		{Day: d, PolicyDomain: "example.net", PolicyType: "sts", PolicyString: stsLines, MXHost: "a.mx.example.net", ReceivingIP: "2001:db8::25", SendingIP: "2001:db8:1::7", Count: 30},
		{Day: d, PolicyDomain: "example.net", PolicyType: "sts", PolicyString: stsLines, ResultType: "certificate-expired", MXHost: "a.mx.example.net", ReceivingIP: "192.0.2.11", SendingIP: "198.51.100.7", Count: 4},
		{Day: d, PolicyDomain: "example.net", PolicyType: "sts", PolicyString: stsLines, ResultType: "validation-failure", Reason: "mx host not in mta-sts policy", MXHost: "evil.example.org", Count: 1},
		{Day: d, PolicyDomain: "example.net", PolicyType: "sts", ResultType: "sts-policy-fetch-error", Reason: "http status 503", Count: 2},
		{Day: d, PolicyDomain: "example.net", PolicyType: "no-policy-found", MXHost: "mx1.example.net", ReceivingIP: "192.0.2.10", SendingIP: "198.51.100.7", Count: 5},
		{Day: d, PolicyDomain: "example.net", PolicyType: "no-policy-found", ResultType: "starttls-not-supported", MXHost: "mx1.example.net", ReceivingIP: "192.0.2.10", SendingIP: "198.51.100.7", Count: 1},
	}
}

var reportMeta = queue.TLSReportMeta{OrganizationName: "Example Org", Contact: "postmaster@example.org", Submitter: "mail.example.org"}

// TestTLSReportJSON compares a report with testdata/tlsrpt-report.json
// (RFC 8460 section 4; run with -update to rewrite after review).
func TestTLSReportJSON(t *testing.T) {
	rep := queue.BuildTLSReport(reportMeta, reportDay.Add(13*time.Hour), "example.net", reportResults())
	got, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "tlsrpt-report.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("report differs from %s:\n%s", path, got)
	}
}

func TestParseTLSRPTRecord(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		err  bool
		ruas []string
	}{
		{"v=TLSRPTv1; rua=mailto:tlsrpt@example.net", true, false, []string{"mailto:tlsrpt@example.net"}},
		{"v=TLSRPTv1;rua=mailto:a@example.net,https://r.example.net/v1 ;", true, false, []string{"mailto:a@example.net", "https://r.example.net/v1"}},
		{"v=TLSRPTv1 ; ext=1; rua=mailto:a@example.net , mailto:b@example.net", true, false, []string{"mailto:a@example.net", "mailto:b@example.net"}},
		{"v=TLSRPTv1", true, true, nil},
		{"v=TLSRPTv1; rua=", true, true, nil},
		{"v=TLSRPTv1; garbage", true, true, nil},
		{"v=TLSRPTv1; rua=://x", true, true, nil},
		{"v=STSv1; id=1", false, false, nil},
		{"v=TLSRPTv10; rua=mailto:a@example.net", false, false, nil},
		{"rua=mailto:a@example.net; v=TLSRPTv1", false, false, nil},
		{"", false, false, nil},
	}
	for _, tt := range tests {
		ruas, ok, err := queue.ParseTLSRPTRecord(tt.in)
		if ok != tt.ok || (err != nil) != tt.err || !slices.Equal(ruas, tt.ruas) {
			t.Errorf("%q: %q, %v, %v", tt.in, ruas, ok, err)
		}
	}
}

func FuzzParseTLSRPTRecord(f *testing.F) {
	f.Add("v=TLSRPTv1; rua=mailto:tlsrpt@example.net")
	f.Add("v=TLSRPTv1;rua=mailto:a@example.net,https://r.example.net/v1;x=y")
	f.Fuzz(func(t *testing.T, s string) {
		ruas, ok, err := queue.ParseTLSRPTRecord(s)
		if !ok && (ruas != nil || err != nil && len(s) <= 4096) {
			t.Fatalf("not a record but %q, %v", ruas, err)
		}
		if len(ruas) > 20 {
			t.Fatalf("%d ruas", len(ruas))
		}
	})
}

func reporter(t *testing.T, st queue.TLSReportStore, dns queue.Resolver, mod func(*queue.TLSReporterOptions)) *queue.TLSReporter {
	o := queue.TLSReporterOptions{OrganizationName: "Example Org", Contact: "postmaster@example.org", Submitter: "mail.example.org",
		Now: func() time.Time { return reportNow }}
	if mod != nil {
		mod(&o)
	}
	r, err := queue.NewTLSReporter(st, dns, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func addResults(t *testing.T, st *env, rs []store.TLSResult) {
	t.Helper()
	if _, err := st.st.AddTLSResults(context.Background(), rs, queue.MaxTLSResultRows); err != nil {
		t.Fatal(err)
	}
}

func reportState(t *testing.T, e *env, dom string) store.TLSReport {
	t.Helper()
	reps, err := e.st.TLSReports(context.Background(), "2025-03-01")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.PolicyDomain == dom {
			return r
		}
	}
	return store.TLSReport{}
}

// TestTLSReportMailto: the report is queued as RFC 8460 5.3 describes,
// once, and delivered by the queue without its own session being
// recorded.
func TestTLSReportMailto(t *testing.T) {
	e := newEnv(t, "")
	addResults(t, e, reportResults())
	dns := dnsresolver.NewFake()
	dns.AddTXT("_smtp._tls.example.net", "v=TLSRPTv1; rua=mailto:tlsrpt@example.net")
	r := reporter(t, e.st, dns, func(o *queue.TLSReporterOptions) { o.Injector = e.sub })
	ctx := context.Background()
	if err := r.SendReports(ctx, reportDay); err != nil {
		t.Fatal(err)
	}
	if err := r.SendReports(ctx, reportDay); err != nil {
		t.Fatal(err)
	}
	es, err := e.st.QueueList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("%d queue entries, want 1", len(es))
	}
	q := es[0]
	if q.From != "postmaster@example.org" || q.Destination != "example.net" || len(q.Recipients) != 1 || q.Recipients[0].Address != "tlsrpt@example.net" || q.AccountID != 0 {
		t.Fatalf("queue entry %+v", q)
	}
	if st := reportState(t, e, "example.net"); st.State != store.TLSReportSent || st.Attempts != 1 {
		t.Fatalf("report record %+v", st)
	}
	b, err := e.st.OpenBlob(ctx, q.BlobID)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	b.Close()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	wantHdr := map[string]string{
		"Subject":              "Report Domain: example.net Submitter: mail.example.org Report-ID: <2025-03-01.example.net@mail.example.org>",
		"Tls-Report-Domain":    "example.net",
		"Tls-Report-Submitter": "mail.example.org",
		"From":                 "<postmaster@example.org>",
		"To":                   "<tlsrpt@example.net>",
		"Mime-Version":         "1.0",
	}
	for k, v := range wantHdr {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("content type %q: %v", h.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	text, err := mr.NextPart()
	if err != nil || !strings.HasPrefix(text.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("first part %v %v", text, err)
	}
	att, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if ct := att.Header.Get("Content-Type"); ct != "application/tlsrpt+gzip" {
		t.Fatalf("attachment type %q", ct)
	}
	if fn := att.FileName(); fn != "mail.example.org!example.net!1740787200!1740873599.json.gz" {
		t.Fatalf("file name %q", fn)
	}
	enc, _ := io.ReadAll(att)
	gz, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(enc)))
	if err != nil {
		t.Fatal(err)
	}
	var got queue.AggregateTLSReport
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(zr).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if want := queue.BuildTLSReport(reportMeta, reportDay, "example.net", reportResults()); !reflect.DeepEqual(got, want) {
		t.Fatalf("attached report\n%+v\nwant\n%+v", got, want)
	}

	// The queue delivers it (to a host without STARTTLS) and does not
	// record that session: no report about reports.
	before, err := e.st.TLSResults(ctx, "", "2025-03-01", "2025-03-01")
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, "127.0.0.1:0", nil, false)
	dns.AddMX("example.net", 10, "mx.example.net")
	dns.AddIP("mx.example.net", "127.0.0.1")
	tr := recording(t, e, dns, s.port(), nil, newCA(t))
	e.runner(tr, nil)
	waitFor(t, "report delivered", func() bool { return len(s.received()) == 1 })
	if !bytes.Contains(s.received()[0].Data, []byte("TLS-Report-Domain: example.net")) {
		t.Fatal("delivered message is not the report")
	}
	// The transport dates results 2025-03-01, the reported day.
	if rs := tlsResults(t, e, tr, ""); !reflect.DeepEqual(rs, before) {
		t.Fatalf("report delivery recorded: %+v", rs)
	}
}

// TestTLSReportHTTPS: the report is POSTed; a failure is retried on the
// next run, a success not repeated; retries stop after 24 hours.
func TestTLSReportHTTPS(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	fail := true
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/tlsrpt" || r.Header.Get("Content-Type") != "application/tlsrpt+gzip" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if fail {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		bodies = append(bodies, b)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t, "")
	addResults(t, e, reportResults())
	addResults(t, e, []store.TLSResult{{Day: "2025-03-01", PolicyDomain: "down.example", PolicyType: "no-policy-found", Count: 1}})
	dns := dnsresolver.NewFake()
	dns.AddTXT("_smtp._tls.example.net", "v=TLSRPTv1; rua="+srv.URL+"/tlsrpt")
	dns.AddTXT("_smtp._tls.down.example", "v=TLSRPTv1; rua="+srv.URL+"/nothere")
	now := reportNow
	r := reporter(t, e.st, dns, func(o *queue.TLSReporterOptions) {
		o.HTTPClient = srv.Client()
		o.Now = func() time.Time { return now }
	})
	ctx := context.Background()
	if err := r.SendReports(ctx, reportDay); err != nil {
		t.Fatal(err)
	}
	if st := reportState(t, e, "example.net"); st.State != store.TLSReportPending || st.Attempts != 1 || !strings.Contains(st.LastError, "503") || !st.FirstAttempt.Equal(reportNow) {
		t.Fatalf("after a failure: %+v", st)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	now = now.Add(time.Hour)
	r.RunOnce(ctx)
	r.RunOnce(ctx)
	if st := reportState(t, e, "example.net"); st.State != store.TLSReportSent || st.Attempts != 2 {
		t.Fatalf("after the retry: %+v", st)
	}
	mu.Lock()
	n := len(bodies)
	var got queue.AggregateTLSReport
	if n == 1 {
		zr, err := gzip.NewReader(bytes.NewReader(bodies[0]))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(zr).Decode(&got); err != nil {
			t.Fatal(err)
		}
	}
	mu.Unlock()
	if n != 1 || got.ReportID != "2025-03-01.example.net@mail.example.org" || len(got.Policies) != 3 {
		t.Fatalf("%d posts, report %+v", n, got)
	}
	if st := reportState(t, e, "down.example"); st.State != store.TLSReportPending || st.Attempts != 3 {
		t.Fatalf("failing domain: %+v", st)
	}
	// 24 hours after the first attempt: given up.
	now = reportNow.Add(25 * time.Hour)
	r.RunOnce(ctx)
	if st := reportState(t, e, "down.example"); st.State != store.TLSReportFailed {
		t.Fatalf("failing domain after a day: %+v", st)
	}
}

// TestTLSReportNoRecordAndRetention: a domain without a TLSRPT record
// gets none; a day not over is refused; old results are removed.
func TestTLSReportNoRecordAndRetention(t *testing.T) {
	e := newEnv(t, "")
	addResults(t, e, reportResults())
	addResults(t, e, []store.TLSResult{
		{Day: "2025-03-01", PolicyDomain: "several.example", PolicyType: "no-policy-found", Count: 1},
		{Day: "2025-01-10", PolicyDomain: "old.example", PolicyType: "no-policy-found", Count: 1},
	})
	dns := dnsresolver.NewFake()
	dns.AddTXT("_smtp._tls.several.example", "v=TLSRPTv1; rua=mailto:a@several.example", "v=TLSRPTv1; rua=mailto:b@several.example")
	r := reporter(t, e.st, dns, func(o *queue.TLSReporterOptions) { o.Injector = e.sub })
	ctx := context.Background()
	if err := r.SendReports(ctx, reportNow); err == nil {
		t.Fatal("report of the current day sent")
	}
	r.RunOnce(ctx)
	for _, dom := range []string{"example.net", "several.example"} {
		if st := reportState(t, e, dom); st.State != store.TLSReportNone {
			t.Fatalf("%s: %+v", dom, st)
		}
	}
	if e.queueLen() != 0 {
		t.Fatal("report queued without a record")
	}
	rs, err := e.st.TLSResults(ctx, "", "2000-01-01", "2099-01-01")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Day < "2025-02-16" {
			t.Fatalf("old result kept: %+v", r)
		}
	}
	if len(rs) != len(reportResults())+1 {
		t.Fatalf("%d results kept", len(rs))
	}
}

func TestNewTLSReporterChecks(t *testing.T) {
	for _, o := range []queue.TLSReporterOptions{
		{Contact: "a@example.org", Submitter: "mail.example.org"},
		{OrganizationName: "x", Contact: "not an address", Submitter: "mail.example.org"},
		{OrganizationName: "x", Contact: "a@example.org"},
	} {
		if _, err := queue.NewTLSReporter(nil, nil, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
