package manage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/queue"
)

// TLSArgs select the TLS results `mailstead queue tls` shows: the last
// Days UTC days (today included) for one domain, or for all.
type TLSArgs struct {
	Domain string `json:"domain,omitempty"`
	Days   int    `json:"days,omitempty"`
}

// maxTLSDays bounds a query (the results are kept 14 days by default).
const maxTLSDays = 366

// TLS returns the per-domain TLS outcomes of direct delivery, per day
// (queue.TLSSummaries), newest day first.
func (o *QueueOps) TLS(ctx context.Context, a TLSArgs) ([]queue.TLSDomainSummary, error) {
	if a.Days == 0 {
		a.Days = 7
	}
	if a.Days < 1 || a.Days > maxTLSDays {
		return nil, fmt.Errorf("days must be 1 to %d, not %d", maxTLSDays, a.Days)
	}
	if a.Domain != "" {
		d, err := address.Domain(strings.TrimSpace(a.Domain))
		if err != nil {
			return nil, fmt.Errorf("domain %q: %w", a.Domain, err)
		}
		a.Domain = d
	}
	to := o.now().UTC()
	from := to.Add(-time.Duration(a.Days-1) * 24 * time.Hour)
	out, err := queue.TLSSummaries(ctx, o.St, a.Domain, from, to)
	if err != nil {
		return nil, err
	}
	// Newest day first, as an admin reads them.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
