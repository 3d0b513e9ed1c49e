package manage

import (
	"context"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/apply"
	"github.com/mailstead/mailstead/internal/control"
)

// The apply operation is registered and survives the JSON round trip of
// the control channel (quota pointers, scripts, diagnostics with refs).
func TestApplyOp(t *testing.T) {
	ctx := context.Background()
	o := newOps(t)
	o.DefaultQuota = 1 << 20
	reg := control.NewRegistry()
	o.Register(reg)
	inv := control.Local{R: reg}
	zero := int64(0)
	req := apply.Request{State: apply.State{
		Domains:  []apply.Domain{{Name: "example.org"}},
		Accounts: []apply.Account{{Address: "joe@example.org", PasswordHash: "{SHA512-CRYPT}$6$saltsalt$8RWsOfwR6M6PpnoeQiEiWzNTPo1f0HjVYjDnLZhGx16aBFRkeqiHAzfXP/LgrOWMBMXqiU2pLrXsSOHNUyUm91", QuotaBytes: &zero, Sieve: &apply.Script{Name: "main", Content: "keep;\n"}}},
		Aliases:  []apply.Alias{{Address: "info@example.org", Targets: []string{"joe@example.org"}}},
	}}
	var res apply.Result
	if err := inv.Invoke(ctx, "apply", req, &res); err != nil || !res.Applied || len(res.Changes) != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	acc, err := o.AccountShow(ctx, AccountArgs{Address: "joe@example.org"})
	if err != nil || acc.QuotaBytes != 0 {
		t.Fatalf("quota 0 lost on the way: %+v %v", acc, err)
	}
	if err := inv.Invoke(ctx, "apply", req, &res); err != nil || len(res.Changes) != 0 {
		t.Fatalf("second apply: %+v %v", res, err)
	}
	req.State.Aliases = append(req.State.Aliases, apply.Alias{Address: "joe@example.org", Targets: []string{"x@example.net"}})
	if err := inv.Invoke(ctx, "apply", req, &res); err != nil || res.Applied || len(res.Diagnostics) != 1 ||
		res.Diagnostics[0].Ref != (apply.Ref{Kind: apply.KindAlias, Key: "joe@example.org", Field: "address"}) || !strings.Contains(res.Diagnostics[0].Msg, "both an account and an alias") {
		t.Fatalf("%+v %v", res, err)
	}
}
