package apply

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/store"
)

const testHash = "{SHA512-CRYPT}$6$saltsalt$8RWsOfwR6M6PpnoeQiEiWzNTPo1f0HjVYjDnLZhGx16aBFRkeqiHAzfXP/LgrOWMBMXqiU2pLrXsSOHNUyUm91"

// otherHash is a second valid hash (bcrypt).
const otherHash = "$2y$10$abcdefghijklmnopqrstuuJ1pBm3EwqSmkGb3BdYB5jfBqR8cR6VS"

func changeStrings(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

func mustRun(t *testing.T, st Store, req Request, opts Options) Result {
	t.Helper()
	res, err := Run(context.Background(), st, req, opts)
	if err != nil {
		t.Fatal(err)
	}
	if Errors(res.Diagnostics) > 0 || res.Failed != "" {
		t.Fatalf("diagnostics %v, failed %q", res.Diagnostics, res.Failed)
	}
	return res
}

func deliver(t *testing.T, st store.Store, addr string) {
	t.Helper()
	ctx := context.Background()
	acc, err := st.GetAccount(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte("From: a@example.net\r\nSubject: hi\r\n\r\nbody\r\n")
	if _, err := st.Deliver(ctx, store.Delivery{Blob: bytes.NewReader(raw), Recipients: []store.Recipient{{AccountID: acc.ID, MailboxName: "INBOX"}}}); err != nil {
		t.Fatal(err)
	}
}

// The valid fixture applied to an empty store creates everything it
// describes; a dry run before changes nothing, and a second apply
// changes nothing.
func TestApplyValidIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	f, ds := Load("testdata/valid.toml")
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	opts := Options{DefaultQuota: 1 << 30}

	dry := mustRun(t, st, Request{State: f.State, DryRun: true}, opts)
	if dry.Applied || len(dry.Changes) != 11 {
		t.Fatalf("dry run: %+v", changeStrings(dry.Changes))
	}
	if ds, _ := st.ListDomains(ctx); len(ds) != 0 {
		t.Fatalf("dry run changed the store: %+v", ds)
	}

	res := mustRun(t, st, Request{State: f.State}, opts)
	if !res.Applied || res.Done != 11 || strings.Join(changeStrings(res.Changes), "\n") != strings.Join(changeStrings(dry.Changes), "\n") {
		t.Fatalf("apply: %+v", res)
	}
	d, err := st.GetDomain(ctx, "example.org")
	if err != nil || d.Postmaster != "joe@example.org" || d.DMARCReject != "junk" || d.DMARCQuarantine != "accept" {
		t.Fatalf("domain %+v %v", d, err)
	}
	joe, err := st.GetAccount(ctx, "joe@example.org")
	if err != nil || joe.QuotaBytes != 5e9 || joe.PasswordHash != testHash || joe.Disabled {
		t.Fatalf("joe %+v %v", joe, err)
	}
	anna, err := st.GetAccount(ctx, "anna@xn--bcher-kva.example")
	if err != nil || anna.QuotaBytes != 1<<30 || !anna.Disabled {
		t.Fatalf("anna %+v %v", anna, err)
	}
	info, err := st.GetAlias(ctx, "info@example.org")
	if err != nil || info.ForwardMode != "rewrite" || info.Note != "given to the shop" || info.OwnerAccountID != joe.ID || len(info.Targets) != 2 {
		t.Fatalf("info %+v %v", info, err)
	}
	old, err := st.GetAlias(ctx, "old@example.org")
	if err != nil || !old.Disabled || old.DisabledAction != "reject" {
		t.Fatalf("old %+v %v", old, err)
	}
	if ca, err := st.GetAlias(ctx, "@example.org"); err != nil || ca.Targets[0] != "spam@example.org" {
		t.Fatalf("catch-all %+v %v", ca, err)
	}
	scripts, _ := st.ListSieveScripts(ctx, joe.ID)
	if len(scripts) != 1 || scripts[0].Name != DefaultSieveName || !scripts[0].Active {
		t.Fatalf("scripts %+v", scripts)
	}
	if g, _ := st.ListSieveScripts(ctx, 0); len(g) != 1 || g[0].Name != "before" {
		t.Fatalf("global %+v", g)
	}

	again := mustRun(t, st, Request{State: f.State}, opts)
	if len(again.Changes) != 0 || !again.Applied {
		t.Fatalf("second apply: %v", changeStrings(again.Changes))
	}
	// With Prune too: the file names everything in the store.
	if again := mustRun(t, st, Request{State: f.State, Prune: true}, opts); len(again.Changes) != 0 {
		t.Fatalf("prune after apply: %v", changeStrings(again.Changes))
	}
}

func baseState() State {
	q := int64(1 << 20)
	return State{
		Domains: []Domain{{Name: "example.org", DMARCReject: "junk"}},
		Accounts: []Account{
			{Address: "joe@example.org", PasswordHash: testHash, QuotaBytes: &q},
			{Address: "ann@example.org", PasswordHash: testHash, Sieve: &Script{Name: "main", Content: "keep;\n"}},
		},
		Aliases: []Alias{
			{Address: "info@example.org", Targets: []string{"joe@example.org"}, Note: "n1"},
			{Address: "shop@example.org", Targets: []string{"ann@example.org"}, Owner: "ann@example.org"},
			{Address: "old@example.org", Targets: []string{"ann@example.org"}},
		},
	}
}

// Changes to objects in the file become updates, field by field; the
// password is never shown.
func TestPlanUpdates(t *testing.T) {
	st := newStore(t)
	mustRun(t, st, Request{State: baseState()}, Options{})

	s := baseState()
	q := int64(5 << 20)
	s.Domains[0].DMARCReject = ""
	s.Domains[0].Postmaster = "joe@example.org"
	s.Accounts[0].QuotaBytes = &q
	s.Accounts[0].PasswordHash = otherHash
	s.Accounts[1].PasswordHash = "" // leave the password alone
	s.Accounts[1].Disabled = true
	s.Accounts[1].Sieve.Content = "discard;\n"
	s.Aliases[0].Targets = []string{"joe@example.org", "ann@example.org"}
	s.Aliases[0].Note = "n2"
	s.Aliases[0].ForwardMode = "rewrite"
	s.Aliases[1].Owner = ""
	s.Aliases[2].DisabledAction = "reject"
	want := []string{
		"update domain example.org: postmaster (default) → joe@example.org, dmarc_reject junk → (default)",
		"update account joe@example.org: password, quota 1MiB → 5MiB",
		"update account ann@example.org: disabled",
		"update alias info@example.org: targets joe@example.org → joe@example.org, ann@example.org, forward srs → rewrite, note",
		"update alias shop@example.org: owner ann@example.org → (none)",
		"update alias old@example.org: disabled (reject)",
		`update sieve ann@example.org: script "main" updated`,
	}
	res := mustRun(t, st, Request{State: s, DryRun: true}, Options{})
	if got := changeStrings(res.Changes); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	mustRun(t, st, Request{State: s}, Options{})
	ctx := context.Background()
	joe, _ := st.GetAccount(ctx, "joe@example.org")
	ann, _ := st.GetAccount(ctx, "ann@example.org")
	if joe.PasswordHash != otherHash || joe.QuotaBytes != q || ann.PasswordHash != testHash || !ann.Disabled {
		t.Fatalf("joe %+v ann %+v", joe, ann)
	}
	if again := mustRun(t, st, Request{State: s}, Options{}); len(again.Changes) != 0 {
		t.Fatalf("not idempotent: %v", changeStrings(again.Changes))
	}
	// Enabling again, and a script made inactive by its user is
	// activated again.
	if err := st.ActivateSieveScript(ctx, ann.ID, ""); err != nil {
		t.Fatal(err)
	}
	s.Aliases[2].DisabledAction = ""
	res = mustRun(t, st, Request{State: s}, Options{})
	if got := strings.Join(changeStrings(res.Changes), "\n"); got != "update alias old@example.org: enabled\nupdate sieve ann@example.org: script \"main\" activated" {
		t.Fatalf("%s", got)
	}
}

// Without Prune, what the file does not name stays; with it, it goes —
// except an account that holds mail, which fails the whole apply.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	full := baseState()
	full.Domains = append(full.Domains, Domain{Name: "gone.example"})
	full.Accounts = append(full.Accounts, Account{Address: "empty@gone.example", PasswordHash: testHash}, Account{Address: "full@example.org", PasswordHash: testHash})
	full.GlobalSieve = []Script{{Name: "after", Content: "keep;\n"}}
	mustRun(t, st, Request{State: full}, Options{})
	deliver(t, st, "full@example.org")

	s := baseState()
	s.Aliases = s.Aliases[:2] // old@ is not named any more
	if res := mustRun(t, st, Request{State: s}, Options{}); len(res.Changes) != 0 {
		t.Fatalf("without prune: %v", changeStrings(res.Changes))
	}

	res, err := Run(ctx, st, Request{State: s, Prune: true, Source: "mail.toml"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if Errors(res.Diagnostics) != 1 || res.Applied || !strings.Contains(res.Diagnostics[0].Msg, "account full@example.org is not in mail.toml but its mailboxes hold 1 messages; apply never deletes mail") {
		t.Fatalf("%+v", res)
	}
	if _, err := st.GetAlias(ctx, "old@example.org"); err != nil {
		t.Fatalf("a failed plan changed the store: %v", err)
	}

	s.Accounts = append(s.Accounts, Account{Address: "full@example.org"}) // kept, password unchanged
	res = mustRun(t, st, Request{State: s, Prune: true}, Options{})
	want := []string{
		"delete alias old@example.org",
		"delete account empty@gone.example: no mail in its mailboxes",
		"delete sieve global/after",
		"delete domain gone.example",
	}
	if got := changeStrings(res.Changes); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("prune:\n%s", strings.Join(got, "\n"))
	}
	if _, err := st.GetDomain(ctx, "gone.example"); err == nil {
		t.Fatal("domain not deleted")
	}
	if again := mustRun(t, st, Request{State: s, Prune: true}, Options{}); len(again.Changes) != 0 {
		t.Fatalf("not idempotent: %v", changeStrings(again.Changes))
	}
}

// An address can move from alias to account in one apply with Prune:
// the alias goes first.
func TestAliasBecomesAccount(t *testing.T) {
	st := newStore(t)
	mustRun(t, st, Request{State: baseState()}, Options{})
	s := baseState()
	s.Aliases = s.Aliases[:2]
	s.Accounts = append(s.Accounts, Account{Address: "old@example.org", PasswordHash: testHash})
	// Without Prune the alias stays, and the address would be both.
	res, err := Run(context.Background(), st, Request{State: s}, Options{})
	if err != nil || Errors(res.Diagnostics) != 1 || !strings.Contains(res.Diagnostics[0].Msg, "is both an account and an alias") || res.Diagnostics[0].Ref != (Ref{Kind: KindAccount, Key: "old@example.org", Field: "address"}) {
		t.Fatalf("%+v %v", res, err)
	}
	res = mustRun(t, st, Request{State: s, Prune: true}, Options{})
	if got := strings.Join(changeStrings(res.Changes), "\n"); got != "delete alias old@example.org\ncreate account old@example.org: quota unlimited" {
		t.Fatalf("%s", got)
	}
}

// Problems of aliases the file does not name are not blamed on it when
// they were there before; new ones it causes are errors.
func TestStoreOnlyProblems(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	mustRun(t, st, Request{State: baseState()}, Options{})
	if _, err := st.AddAlias(ctx, store.Alias{Address: "stale@example.org", Targets: []string{"nobody@example.org"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddAlias(ctx, store.Alias{Address: "x@example.org", Targets: []string{"y@example.org"}}); err != nil {
		t.Fatal(err)
	}
	s := baseState()
	res := mustRun(t, st, Request{State: s, Source: "mail.toml"}, Options{})
	var msgs []string
	for _, d := range res.Diagnostics {
		msgs = append(msgs, d.String())
	}
	if len(msgs) != 2 || !strings.Contains(msgs[0], "warning: alias stale@example.org (in the store, not in mail.toml): target nobody@example.org does not exist") {
		t.Fatalf("%q", msgs)
	}
	// y → x closes a loop through the store's x.
	s.Aliases = append(s.Aliases, Alias{Address: "y@example.org", Targets: []string{"x@example.org"}})
	res, err := Run(ctx, st, Request{State: s}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range res.Diagnostics {
		if d.Error && strings.Contains(d.Msg, "alias loop") {
			found = true
		}
	}
	if !found || res.Applied {
		t.Fatalf("%+v", res)
	}
}

// The state is checked again where it is applied: a client of the
// control socket may send anything.
func TestRunChecksState(t *testing.T) {
	st := newStore(t)
	s := State{
		Domains:  []Domain{{Name: "example.org"}},
		Accounts: []Account{{Address: "joe@example.org", PasswordHash: "plain"}, {Address: "new@example.org"}},
		Aliases:  []Alias{{Address: "a@example.org", Targets: []string{"bad address"}}},
	}
	res, err := Run(context.Background(), st, Request{State: s}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{
		{Kind: KindAccount, Key: "joe@example.org", Field: "password_hash"},
		{Kind: KindAlias, Key: "a@example.org", Field: "targets[0]"},
		{Kind: KindAccount, Key: "new@example.org", Field: "address"},
	}
	if Errors(res.Diagnostics) != len(want) || res.Applied {
		t.Fatalf("%+v", res)
	}
	for i, r := range want {
		if res.Diagnostics[i].Ref != r {
			t.Errorf("%d: %+v, want %+v", i, res.Diagnostics[i], r)
		}
	}
	if ds, _ := st.ListDomains(context.Background()); len(ds) != 0 {
		t.Fatal("store changed")
	}
}
