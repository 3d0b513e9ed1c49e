package server

import (
	"context"
	"testing"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/manage"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// The per-domain DMARC failure handling set with `domain set` reaches
// delivery's policy hook.
func TestDomainPolicy(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ops := &manage.Ops{St: st}
	if _, err := ops.DomainAdd(ctx, manage.DomainArgs{Name: "example.org", DMARCReject: "junk"}); err != nil {
		t.Fatal(err)
	}
	pol := domainPolicy(st)
	if p := pol("example.org"); p.DMARCReject != delivery.ActionJunk || p.DMARCQuarantine != delivery.ActionDefault {
		t.Fatalf("after add: %+v", p)
	}
	if _, err := ops.DomainSet(ctx, manage.DomainArgs{Name: "example.org", DMARCReject: "default", DMARCQuarantine: "accept"}); err != nil {
		t.Fatal(err)
	}
	if p := pol("example.org"); p.DMARCReject != delivery.ActionDefault || p.DMARCQuarantine != delivery.ActionAccept {
		t.Fatalf("after set: %+v", p)
	}
	if _, err := ops.DomainSet(ctx, manage.DomainArgs{Name: "example.org", DMARCReject: "bounce"}); err == nil {
		t.Fatal("bad action accepted")
	}
	if p := pol("unknown.example"); p != (delivery.DomainPolicy{}) {
		t.Fatalf("unknown domain: %+v", p)
	}
}
