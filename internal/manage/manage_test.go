package manage

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

func newOps(t *testing.T) *Ops {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Ops{St: st}
}

func TestAccountsAndDomains(t *testing.T) {
	ctx := context.Background()
	o := newOps(t)
	h, _ := account.HashPassword("pw")
	if _, err := o.AccountAdd(ctx, AccountArgs{Address: "a@bücher.example", PasswordHash: h}); err == nil || !strings.Contains(err.Error(), "domain add") {
		t.Fatalf("account in unknown domain: %v", err)
	}
	a, err := o.AccountAdd(ctx, AccountArgs{Address: "a@bücher.example", PasswordHash: h, CreateDomain: true})
	if err != nil || a.Domain != "xn--bcher-kva.example" {
		t.Fatalf("%+v %v", a, err)
	}
	ds, _ := o.DomainList(ctx, struct{}{})
	if len(ds) != 1 || ds[0].Display != "bücher.example" || ds[0].Accounts != 1 {
		t.Fatalf("%+v", ds)
	}
	if _, err := o.AccountAdd(ctx, AccountArgs{Address: "b@bücher.example", PasswordHash: "plaintext"}); err == nil {
		t.Fatal("unusable hash accepted")
	}
	show, err := o.AccountShow(ctx, AccountArgs{Address: "A@xn--bcher-kva.example"})
	if err != nil || len(show.Mailboxes) != 6 {
		t.Fatalf("%+v %v", show, err)
	}
	q := int64(5 << 20)
	if r, err := o.AccountQuota(ctx, AccountArgs{Address: "a@bücher.example", QuotaBytes: &q}); err != nil || r.QuotaBytes != q {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := o.DomainDel(ctx, DomainArgs{Name: "bücher.example"}); err == nil || !strings.Contains(err.Error(), "still has accounts") {
		t.Fatalf("domain with accounts deleted: %v", err)
	}
	if _, err := o.AccountDel(ctx, AccountArgs{Address: "a@bücher.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.DomainDel(ctx, DomainArgs{Name: "bücher.example"}); err != nil {
		t.Fatal(err)
	}
}

func TestAliases(t *testing.T) {
	ctx := context.Background()
	o := newOps(t)
	h, _ := account.HashPassword("pw")
	if _, err := o.AccountAdd(ctx, AccountArgs{Address: "alice@example.org", PasswordHash: h, CreateDomain: true}); err != nil {
		t.Fatal(err)
	}
	r, err := o.AliasAdd(ctx, AliasArgs{Address: "team@example.org", Targets: []string{"alice@example.org, ghost@example.org", "x@elsewhere.example", "http:paperless"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Alias.Targets) != 4 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "ghost@example.org does not exist") {
		t.Fatalf("%+v", r)
	}
	if _, err := o.AliasAdd(ctx, AliasArgs{Address: "alice@example.org", Targets: []string{"x@elsewhere.example"}}); err == nil || !strings.Contains(err.Error(), "both an account and an alias") {
		t.Fatalf("alias over account: %v", err)
	}
	if _, err := o.AliasAdd(ctx, AliasArgs{Address: "l1@example.org", Targets: []string{"l2@example.org"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.AliasAdd(ctx, AliasArgs{Address: "l2@example.org", Targets: []string{"l1@example.org"}}); err == nil || !strings.Contains(err.Error(), "alias loop") {
		t.Fatalf("loop accepted: %v", err)
	}
	if _, err := o.AliasAdd(ctx, AliasArgs{Address: "@example.org", Targets: []string{"alice@example.org"}}); err != nil {
		t.Fatal(err)
	}
	g, err := o.AliasGenerate(ctx, AliasArgs{Account: "alice@example.org", Note: "shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-z]+-[a-z]+-[0-9]{3}@example\.org$`).MatchString(g.Alias.Address) || g.Alias.Owner != "alice@example.org" || g.Alias.Note != "shop.example" {
		t.Fatalf("generated %+v", g.Alias)
	}
	if a, err := o.AliasDisable(ctx, AliasArgs{Address: "team@example.org", DisabledAction: "reject"}); err != nil || !a.Disabled || a.DisabledAction != "reject" {
		t.Fatalf("%+v %v", a, err)
	}
	if a, err := o.AliasEnable(ctx, AliasArgs{Address: "team@example.org"}); err != nil || a.Disabled {
		t.Fatalf("%+v %v", a, err)
	}
	list, _ := o.AliasList(ctx, DomainArgs{Name: "example.org"})
	if len(list) != 4 {
		t.Fatalf("%d aliases", len(list))
	}
	probs, _ := o.AliasCheck(ctx, struct{}{})
	if len(probs) != 2 { // ghost target, l1 → missing l2
		t.Fatalf("check: %v", probs)
	}
	if _, err := o.AliasDel(ctx, AliasArgs{Address: "team@example.org"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.AliasDel(ctx, AliasArgs{Address: "team@example.org"}); err == nil {
		t.Fatal("deleted twice")
	}
}
