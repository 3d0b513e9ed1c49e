package routing

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/store"
)

// dir is an in-memory Directory.
type dir struct {
	domains    []string
	accounts   []store.Account
	aliases    []store.Alias
	postmaster map[string]string
	reverse    []store.ReverseAlias
	fail       bool
}

var errStore = errors.New("store down")

func (d *dir) IsLocalDomain(dom string) (bool, error) {
	if d.fail {
		return false, errStore
	}
	return slices.Contains(d.domains, dom), nil
}

func (d *dir) Account(a string) (store.Account, bool, error) {
	for _, acc := range d.accounts {
		if strings.EqualFold(acc.Address, a) {
			return acc, true, nil
		}
	}
	return store.Account{}, false, nil
}

func (d *dir) Alias(a string) (store.Alias, bool, error) {
	for _, al := range d.aliases {
		if strings.EqualFold(al.Address, a) {
			return al, true, nil
		}
	}
	return store.Alias{}, false, nil
}

func (d *dir) ReverseAlias(a string) (store.ReverseAlias, bool, error) {
	for _, r := range d.reverse {
		if strings.EqualFold(r.Address, a) {
			return r, true, nil
		}
	}
	return store.ReverseAlias{}, false, nil
}

func (d *dir) Postmaster(dom string) (store.Account, bool, error) {
	if a, ok := d.postmaster[dom]; ok {
		return d.Account(a)
	}
	return store.Account{}, false, nil
}

func world() *dir {
	acc := func(id int64, a string) store.Account { return store.Account{ID: id, Address: a} }
	al := func(a string, targets ...string) store.Alias {
		return store.Alias{Address: a, Targets: targets, ForwardMode: "srs", DisabledAction: "drop"}
	}
	d := &dir{
		domains:  []string{"example.org", "example.com"},
		accounts: []store.Account{acc(1, "alice@example.org"), acc(2, "bob@example.org"), acc(3, "carol@example.com"), acc(4, "spam@example.org"), acc(5, "info+x@example.org")},
		aliases: []store.Alias{
			al("team@example.org", "alice@example.org", "bob@example.org", "team2@example.org"),
			al("team2@example.org", "carol@example.com", "alice@example.org"),
			al("fwd@example.org", "someone@gmail.example", "http:paperless"),
			al("loop1@example.org", "loop2@example.org", "alice@example.org"),
			al("loop2@example.org", "loop1@example.org"),
			al("ghost@example.org", "nobody@example.org"),
			al("@example.org", "spam@example.org"),
			al("sales@example.org", "bob@example.org"),
			{Address: "old@example.org", Disabled: true, DisabledAction: "drop"},
			{Address: "gone@example.org", Disabled: true, DisabledAction: "reject"},
			{Address: "shop-xyz-123@example.org", Targets: []string{"alice@example.org"}, Note: "shop", ForwardMode: "rewrite", OwnerAccountID: 1},
			al("nest@example.org", "old@example.org", "bob@example.org"),
			al("deep1@example.org", "deep2@example.org"),
		},
		postmaster: map[string]string{"example.com": "carol@example.com"},
	}
	return d
}

func TestResolve(t *testing.T) {
	tests := []struct {
		rcpt     string
		local    []int64 // account IDs
		detail   string
		external []string
		http     []string
		drop     bool
		role     bool
		err      error
		warn     string
	}{
		{rcpt: "alice@example.org", local: []int64{1}},
		{rcpt: "ALICE@Example.org", local: []int64{1}},
		{rcpt: "alice+news@example.org", local: []int64{1}, detail: "news"},
		// An account whose address contains the delimiter wins over its base.
		{rcpt: "info+x@example.org", local: []int64{5}},
		// Catch-all never steals mail from an existing address.
		{rcpt: "bob@example.org", local: []int64{2}},
		{rcpt: "whatever@example.org", local: []int64{4}},
		{rcpt: "bob+tag@example.org", local: []int64{2}, detail: "tag"},
		// Aliases nest and deduplicate.
		{rcpt: "team@example.org", local: []int64{1, 2, 3}},
		{rcpt: "team+x@example.org", local: []int64{1, 2, 3}, detail: "x"},
		{rcpt: "fwd@example.org", external: []string{"someone@gmail.example"}, http: []string{"paperless"}},
		{rcpt: "loop1@example.org", local: []int64{1}, warn: "alias loop"},
		{rcpt: "ghost@example.org", err: ErrNoTargets, warn: "does not exist"},
		{rcpt: "old@example.org", drop: true},
		{rcpt: "gone@example.org", err: ErrRejected},
		{rcpt: "nest@example.org", local: []int64{2}},
		{rcpt: "shop-xyz-123@example.org", local: []int64{1}},
		// postmaster/abuse exist everywhere; example.com has no catch-all.
		{rcpt: "postmaster@example.com", local: []int64{3}, role: true},
		{rcpt: "abuse@example.com", local: []int64{3}, role: true},
		{rcpt: "nobody@example.com", err: ErrUnknown},
		{rcpt: "someone@elsewhere.example", err: ErrNotLocal},
	}
	d := world()
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			a, err := address.Parse(tt.rcpt)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Resolve(d, a, Options{SubaddressDelimiters: "+"})
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v (res %+v)", err, tt.err, res)
			}
			var ids []int64
			for _, l := range res.Local {
				ids = append(ids, l.Account.ID)
				if l.Detail != tt.detail || l.Role != tt.role {
					t.Errorf("local %+v: detail %q role %v, want %q %v", l.Account.Address, l.Detail, l.Role, tt.detail, tt.role)
				}
			}
			slices.Sort(ids)
			if !slices.Equal(ids, tt.local) {
				t.Errorf("local %v, want %v", ids, tt.local)
			}
			var ext []string
			for _, e := range res.External {
				ext = append(ext, e.Address)
			}
			if !slices.Equal(ext, tt.external) || !slices.Equal(res.HTTP, tt.http) || res.Drop != tt.drop {
				t.Errorf("external %v http %v drop %v", ext, res.HTTP, res.Drop)
			}
			if tt.warn != "" && !strings.Contains(strings.Join(res.Warnings, ";"), tt.warn) {
				t.Errorf("warnings %v, want %q", res.Warnings, tt.warn)
			}
		})
	}
}

func TestResolveExternalModes(t *testing.T) {
	d := world()
	d.aliases = append(d.aliases, store.Alias{Address: "rw@example.org", Targets: []string{"x@gmail.example"}, ForwardMode: "rewrite", OwnerAccountID: 2})
	res, err := Resolve(d, address.Address{Local: "rw", Domain: "example.org"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.External) != 1 || res.External[0].Mode != "rewrite" || res.External[0].Owner != 2 || res.External[0].Alias != "rw@example.org" {
		t.Fatalf("%+v", res.External)
	}
}

func TestResolveDepthBound(t *testing.T) {
	d := &dir{domains: []string{"example.org"}, accounts: []store.Account{{ID: 1, Address: "end@example.org"}}}
	const n = MaxDepth + 5
	for i := 0; i < n; i++ {
		target := "a" + string(rune('a'+i+1)) + "@example.org"
		if i == n-1 {
			target = "end@example.org"
		}
		d.aliases = append(d.aliases, store.Alias{Address: "a" + string(rune('a'+i)) + "@example.org", Targets: []string{target}})
	}
	res, err := Resolve(d, address.Address{Local: "aa", Domain: "example.org"}, Options{})
	if !errors.Is(err, ErrNoTargets) || !strings.Contains(strings.Join(res.Warnings, ";"), "deeper than") {
		t.Fatalf("err %v warnings %v", err, res.Warnings)
	}
	// Within the bound it resolves.
	res, err = Resolve(d, address.Address{Local: string([]byte{'a', byte('a' + n - MaxDepth + 1)}), Domain: "example.org"}, Options{})
	if err != nil || len(res.Local) != 1 {
		t.Fatalf("within bound: %v %+v", err, res)
	}
}

func TestResolveStoreError(t *testing.T) {
	d := world()
	d.fail = true
	if _, err := Resolve(d, address.Address{Local: "a", Domain: "example.org"}, Options{}); !errors.Is(err, errStore) {
		t.Fatalf("err %v", err)
	}
}

func TestValidate(t *testing.T) {
	d := world()
	d.aliases = append(d.aliases, store.Alias{Address: "alice@example.org", Targets: []string{"bob@example.org"}}, store.Alias{Address: "x@foreign.example", Targets: []string{"bob@example.org"}}, store.Alias{Address: "bad@example.org", Targets: []string{"not an address"}})
	probs := Validate(d.domains, d.accounts, d.aliases)
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"error: alice@example.org: is both an account and an alias",
		"error: x@foreign.example: domain foreign.example is not a local domain",
		"error: loop1@example.org: alias loop: loop1@example.org → loop2@example.org → loop1@example.org",
		"warning: ghost@example.org: target nobody@example.org does not exist",
		`error: bad@example.org: target "not an address" is not an address`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	// The loop is reported once, not once per member.
	if strings.Count(all, "alias loop") != 1 {
		t.Errorf("loop reported %d times:\n%s", strings.Count(all, "alias loop"), all)
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"alice@example.org", "team+x@example.org", "loop1@example.org", "@example.org", "postmaster@example.com"} {
		f.Add(s)
	}
	d := world()
	f.Fuzz(func(t *testing.T, s string) {
		a, err := address.Parse(s)
		if err != nil {
			return
		}
		res, err := Resolve(d, a, Options{SubaddressDelimiters: "+-"})
		if err == nil && !res.Drop && len(res.Local)+len(res.External)+len(res.HTTP) == 0 {
			t.Fatalf("%s: success with no targets", s)
		}
	})
}

func TestResolveSRSBounce(t *testing.T) {
	d := world()
	rev := func(a string) (string, error) {
		if strings.HasPrefix(strings.ToLower(a), "srs0=good") {
			return "orig@sender.example", nil
		}
		return "", errors.New("hash invalid")
	}
	res, err := Resolve(d, address.Address{Local: "SRS0=good=TT=sender.example=orig", Domain: "example.org"}, Options{ReverseSRS: rev})
	if err != nil || len(res.External) != 1 || res.External[0].Address != "orig@sender.example" || res.External[0].Mode != ModeSRSReverse {
		t.Fatalf("%v %+v", err, res)
	}
	// A forged SRS address is refused, not taken by the catch-all.
	if _, err := Resolve(d, address.Address{Local: "SRS0=bad=TT=x.example=y", Domain: "example.org"}, Options{ReverseSRS: rev}); !errors.Is(err, ErrUnknown) {
		t.Fatalf("forged: %v", err)
	}
	// Without SRS configured, such an address is an ordinary one.
	if res, err := Resolve(d, address.Address{Local: "SRS0=bad=TT=x.example=y", Domain: "example.org"}, Options{}); err != nil || len(res.Local) != 1 {
		t.Fatalf("no srs: %v %+v", err, res)
	}
}

func TestResolveReverseAlias(t *testing.T) {
	d := world()
	d.reverse = []store.ReverseAlias{{Address: "ra-xyz@example.org", Alias: "shop-xyz-123@example.org", Contact: "sales@store.example"}}
	res, err := Resolve(d, address.Address{Local: "RA-xyz", Domain: "example.org"}, Options{})
	if err != nil || len(res.External) != 1 || res.External[0].Address != "sales@store.example" || res.External[0].Mode != ModeReply || res.External[0].Alias != "shop-xyz-123@example.org" {
		t.Fatalf("%v %+v", err, res)
	}
}
