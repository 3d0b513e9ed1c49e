package manage

import (
	"context"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/account"
)

func TestSieveOps(t *testing.T) {
	ctx := context.Background()
	o := newOps(t)
	h, _ := account.HashPassword("pw")
	if _, err := o.AccountAdd(ctx, AccountArgs{Address: "a@example.org", PasswordHash: h, CreateDomain: true}); err != nil {
		t.Fatal(err)
	}
	acc := SieveArgs{Account: "A@example.org"}
	put := acc
	put.Name, put.Content = "main", "require \"fileinto\";\nfilein \"x\";\n"
	if _, err := o.SievePut(ctx, put); err == nil || !strings.Contains(err.Error(), "2:1: unknown command") {
		t.Fatalf("invalid script: %v", err)
	}
	put.Content, put.Activate = "require \"fileinto\";\nfileinto \"x\";\n", true
	info, err := o.SievePut(ctx, put)
	if err != nil || !info.Active || info.Account != "a@example.org" || info.Size != len(put.Content) {
		t.Fatalf("%+v %v", info, err)
	}
	put.Name, put.Content, put.Activate = "spare", "keep;", false
	if _, err := o.SievePut(ctx, put); err != nil {
		t.Fatal(err)
	}
	list, err := o.SieveList(ctx, acc)
	if err != nil || len(list) != 2 || list[0].Name != "main" || !list[0].Active || list[1].Active {
		t.Fatalf("%+v %v", list, err)
	}
	get := acc
	get.Name = "main"
	if g, err := o.SieveGet(ctx, get); err != nil || g.Content != "require \"fileinto\";\nfileinto \"x\";\n" {
		t.Fatalf("%+v %v", g, err)
	}
	if _, err := o.SieveDel(ctx, get); err == nil || !strings.Contains(err.Error(), "deactivate it first") {
		t.Fatalf("deleting the active script: %v", err)
	}
	act := acc
	act.Name = "spare"
	if _, err := o.SieveActivate(ctx, act); err != nil {
		t.Fatal(err)
	}
	act.Name = "nope"
	if _, err := o.SieveActivate(ctx, act); err == nil || !strings.Contains(err.Error(), `no sieve script "nope"`) {
		t.Fatalf("activate missing: %v", err)
	}
	if _, err := o.SieveDel(ctx, get); err != nil {
		t.Fatal(err)
	}
	if _, err := o.SieveActivate(ctx, acc); err != nil {
		t.Fatal(err)
	}
	list, _ = o.SieveList(ctx, acc)
	if len(list) != 1 || list[0].Active {
		t.Fatalf("after deactivate %+v", list)
	}

	// Global scripts.
	glob := SieveArgs{Global: true, Name: "before", Content: "require \"fileinto\"; if header :contains \"X-Spam\" \"Yes\" { fileinto \"Junk\"; }"}
	if _, err := o.SievePut(ctx, glob); err != nil {
		t.Fatal(err)
	}
	if _, err := o.SievePut(ctx, SieveArgs{Global: true, Name: "middle", Content: "keep;"}); err == nil {
		t.Fatal("global script with another name accepted")
	}
	if _, err := o.SievePut(ctx, SieveArgs{Global: true, Account: "a@example.org", Name: "before", Content: "keep;"}); err == nil {
		t.Fatal("account and --global accepted")
	}
	if _, err := o.SieveActivate(ctx, SieveArgs{Global: true, Name: "before"}); err == nil {
		t.Fatal("activating a global script accepted")
	}
	gl, err := o.SieveList(ctx, SieveArgs{Global: true})
	if err != nil || len(gl) != 1 || gl[0].Name != "before" || gl[0].Account != "" {
		t.Fatalf("%+v %v", gl, err)
	}
	if _, err := o.SieveList(ctx, SieveArgs{Account: "nobody@example.org"}); err == nil {
		t.Fatal("unknown account accepted")
	}
	if _, err := o.SieveDel(ctx, SieveArgs{Global: true, Name: "before"}); err != nil {
		t.Fatal(err)
	}
}
