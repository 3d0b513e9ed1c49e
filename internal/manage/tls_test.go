package manage

import (
	"context"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// TestQueueTLS: the recorded TLS results come back per day and domain,
// newest day first, filtered by domain and by the number of days.
func TestQueueTLS(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	rs := []store.TLSResult{
		{Day: "2026-11-23", PolicyDomain: "example.net", PolicyType: "no-policy-found", Count: 5},
		{Day: "2026-11-23", PolicyDomain: "example.net", PolicyType: "no-policy-found", ResultType: "certificate-expired", MXHost: "mx.example.net", ReceivingIP: "192.0.2.1", Count: 2},
		{Day: "2026-11-22", PolicyDomain: "example.net", PolicyType: "sts", PolicyString: []string{"version: STSv1", "mode: enforce"}, Count: 7},
		{Day: "2026-11-23", PolicyDomain: "other.example", PolicyType: "no-policy-found", ResultType: "starttls-not-supported", Count: 1},
		{Day: "2026-11-01", PolicyDomain: "example.net", PolicyType: "no-policy-found", Count: 100},
	}
	if _, err := st.AddTLSResults(ctx, rs, 100); err != nil {
		t.Fatal(err)
	}
	o := &QueueOps{St: st, Now: func() time.Time { return now }}

	got, err := o.TLS(ctx, TLSArgs{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Day != "2026-11-23" || got[len(got)-1].Day != "2026-11-22" {
		t.Fatalf("last 7 days: %+v", got)
	}
	for _, s := range got {
		if s.Day == "2026-11-23" && s.Domain == "example.net" {
			if s.Successful != 5 || s.Failed != 2 || s.ByResult["certificate-expired"] != 2 || len(s.Failures) != 1 || s.Failures[0].MXHost != "mx.example.net" {
				t.Errorf("example.net today: %+v", s)
			}
		}
	}
	got, err = o.TLS(ctx, TLSArgs{Domain: "Other.Example", Days: 1})
	if err != nil || len(got) != 1 || got[0].Domain != "other.example" || got[0].Failed != 1 {
		t.Fatalf("one domain, today: %+v %v", got, err)
	}
	got, err = o.TLS(ctx, TLSArgs{Days: 30})
	if err != nil || len(got) != 4 {
		t.Fatalf("30 days: %d summaries, %v", len(got), err)
	}
	for _, bad := range []TLSArgs{{Days: -1}, {Days: 1000}, {Domain: "not a domain"}} {
		if _, err := o.TLS(ctx, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
