package queue

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// TestTLSSuccessesKeepFailureDetails: successful sessions are only summed
// in a report (RFC 8460 total-successful-session-count), so they must not
// use up the per-domain row bound that keeps failure details. A big
// provider's MX pool (many receiving IPs) made 150 success rows, after
// which the one real failure lost its receiving-mx-hostname and IP.
func TestTLSSuccessesKeepFailureDetails(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }
	rec := newTLSRecorder(st, slog.New(slog.DiscardHandler), now, nil)
	pol := tlsPolicy{typ: PolicyNoPolicyFound, domain: "example.net"}
	for i := range 150 {
		rec.record(tlsSession{policy: pol, mx: "mx.example.net", rip: fmt.Sprintf("192.0.2.%d", i), sip: "198.51.100.1"})
		if err := rec.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	rec.record(tlsSession{policy: pol, result: ResultSTARTTLSNotSupported, mx: "mx2.example.net", rip: "203.0.113.9", sip: "198.51.100.1"})
	if err := rec.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs, err := st.TLSResults(context.Background(), "example.net", "2026-11-22", "2026-11-22")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.ResultType == ResultSTARTTLSNotSupported {
			if r.MXHost != "mx2.example.net" || r.ReceivingIP != "203.0.113.9" {
				t.Fatalf("failure detail lost to success rows: %+v (%d rows)", r, len(rs))
			}
			return
		}
	}
	t.Fatal("failure not recorded")
}
