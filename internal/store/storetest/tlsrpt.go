package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// testTLSResults: counts add up per key, rows of a (day, domain) are
// bounded (details merged, then dropped), listing filters by domain and
// day range, report records round-trip, and deletion by day removes both.
func testTLSResults(t *testing.T, st store.Store) {
	sts := []string{"version: STSv1", "mode: enforce", "mx: mx.example.net", "max_age: 86400"}
	ok := store.TLSResult{Day: "2025-03-01", PolicyDomain: "Example.NET", PolicyType: "sts", PolicyString: sts,
		MXHost: "mx.example.net", ReceivingIP: "192.0.2.1", SendingIP: "198.51.100.1", Count: 2}
	bad := ok
	bad.ResultType, bad.Reason, bad.Count = "certificate-expired", "", 1
	_, err := st.AddTLSResults(ctx(), []store.TLSResult{ok, bad, ok}, 10)
	must(t, err)
	other := store.TLSResult{Day: "2025-03-02", PolicyDomain: "example.com", PolicyType: "no-policy-found", ResultType: "starttls-not-supported", MXHost: "mx.example.com", Count: 1}
	_, err = st.AddTLSResults(ctx(), []store.TLSResult{other}, 10)
	must(t, err)

	rs, err := st.TLSResults(ctx(), "example.net", "2025-03-01", "2025-03-01")
	must(t, err)
	if len(rs) != 2 {
		t.Fatalf("results %+v", rs)
	}
	// Ordered by result type: the success ("") first.
	if rs[0].ResultType != "" || rs[0].Count != 4 || rs[0].PolicyDomain != "example.net" || !slices.Equal(rs[0].PolicyString, sts) ||
		rs[0].MXHost != "mx.example.net" || rs[0].ReceivingIP != "192.0.2.1" || rs[0].SendingIP != "198.51.100.1" {
		t.Fatalf("success row %+v", rs[0])
	}
	if rs[1].ResultType != "certificate-expired" || rs[1].Count != 1 {
		t.Fatalf("failure row %+v", rs[1])
	}
	all, err := st.TLSResults(ctx(), "", "2025-03-01", "2025-03-31")
	must(t, err)
	if len(all) != 3 || all[2].PolicyDomain != "example.com" || all[2].PolicyString != nil {
		t.Fatalf("all results %+v", all)
	}
	if rs, _ := st.TLSResults(ctx(), "", "2025-03-03", "2025-03-31"); len(rs) != 0 {
		t.Fatalf("results outside the range: %+v", rs)
	}

	// Bounds: 3 rows allowed; the fourth distinct detail merges into a
	// detail-less row, and past 6 rows new ones are dropped.
	var many []store.TLSResult
	for i := 0; i < 10; i++ {
		many = append(many, store.TLSResult{Day: "2025-03-05", PolicyDomain: "big.example", PolicyType: "no-policy-found",
			ResultType: "validation-failure", MXHost: "mx.big.example", ReceivingIP: "192.0.2." + string(rune('0'+i)), Count: 1})
	}
	dropped, err := st.AddTLSResults(ctx(), many, 3)
	must(t, err)
	if dropped != 0 {
		t.Fatalf("dropped %d", dropped)
	}
	rs, err = st.TLSResults(ctx(), "big.example", "2025-03-05", "2025-03-05")
	must(t, err)
	var total int64
	for _, r := range rs {
		total += r.Count
	}
	if len(rs) != 4 || total != 10 || rs[0].MXHost != "" || rs[0].Count != 7 {
		t.Fatalf("bounded rows %+v", rs)
	}
	// New result types fill rows up to 2*maxRows, then are dropped.
	var kinds []store.TLSResult
	for _, k := range []string{"a", "b", "c", "d"} {
		kinds = append(kinds, store.TLSResult{Day: "2025-03-05", PolicyDomain: "big.example", PolicyType: "no-policy-found", ResultType: k, MXHost: "h", Count: 5})
	}
	dropped, err = st.AddTLSResults(ctx(), kinds, 3)
	must(t, err)
	if dropped != 10 {
		t.Fatalf("dropped %d sessions, want 10", dropped)
	}
	rs, _ = st.TLSResults(ctx(), "big.example", "2025-03-05", "2025-03-05")
	if len(rs) != 6 {
		t.Fatalf("rows %d, want 6: %+v", len(rs), rs)
	}

	_, err = st.AddTLSResults(ctx(), []store.TLSResult{{Day: "March", PolicyDomain: "x", PolicyType: "sts", Count: 1}}, 10)
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad day: %v", err)
	}

	// Report records.
	first := time.Unix(1740873600, 0)
	must(t, st.PutTLSReport(ctx(), store.TLSReport{Day: "2025-03-01", PolicyDomain: "example.net", State: store.TLSReportPending, Attempts: 1, FirstAttempt: first, LastError: "timeout"}))
	must(t, st.PutTLSReport(ctx(), store.TLSReport{Day: "2025-03-01", PolicyDomain: "example.net", State: store.TLSReportSent, Attempts: 2, FirstAttempt: first}))
	must(t, st.PutTLSReport(ctx(), store.TLSReport{Day: "2025-03-01", PolicyDomain: "a.example", State: store.TLSReportNone}))
	wantErr(t, st.PutTLSReport(ctx(), store.TLSReport{Day: "2025-03-01", PolicyDomain: "b.example", State: "bogus"}), store.ErrInvalid)
	reps, err := st.TLSReports(ctx(), "2025-03-01")
	must(t, err)
	if len(reps) != 2 || reps[0].PolicyDomain != "a.example" || !reps[0].FirstAttempt.IsZero() ||
		reps[1].State != store.TLSReportSent || reps[1].Attempts != 2 || !reps[1].FirstAttempt.Equal(first) || reps[1].LastError != "" {
		t.Fatalf("reports %+v", reps)
	}

	// Retention.
	n, err := st.DeleteTLSResults(ctx(), "2025-03-02")
	must(t, err)
	if n != 2 {
		t.Fatalf("deleted %d rows, want 2", n)
	}
	all, _ = st.TLSResults(ctx(), "", "2000-01-01", "2099-12-31")
	if len(all) != 7 || all[0].Day != "2025-03-02" {
		t.Fatalf("after delete %+v", all)
	}
	if reps, _ := st.TLSReports(ctx(), "2025-03-01"); len(reps) != 0 {
		t.Fatalf("reports after delete %+v", reps)
	}
}
