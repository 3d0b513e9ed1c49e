package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// TestDiagnostics checks that every problem of each fixture is reported,
// at its line and column. Fixtures that parse cleanly are planned against
// an empty store, so the merged-state rules (routing.Validate and apply's
// own) are placed too.
func TestDiagnostics(t *testing.T) {
	tests := []struct {
		file string
		want []string // "LINE:COL: error: text" (text is a substring)
	}{
		{"valid.toml", nil},
		{"syntax.toml", []string{"2:20: error: basic strings cannot have new lines"}},
		{"type.toml", []string{"3:12: error: account.disabled: expected a boolean, found a TOML string"}},
		{"unknown_key.toml", []string{
			"3:1: error: unknown key 'dmarc_rejct' in [[domain]] (did you mean 'dmarc_reject'?)",
			"8:1: error: unknown key 'mode' in [[alias]] (the forwarding mode is 'forward'",
			"10:1: error: unknown key 'colour' in [[alias]] (known keys: address, targets",
		}},
		{"bad_values.toml", []string{
			"3:3: error: fileinto needs 1 positional argument, found 0", // in bad.sieve
			"2:8: error: domain \"exa mple.org\": character ' '",
			"6:14: error: postmaster: address \"not-an-address\"",
			"7:16: error: dmarc_reject: \"bounce\" is not reject, junk, accept or default",
			"8:1: error: catch_all needs at least one target",
			"10:3: error: a [[domain]] needs a name",
			"13:11: error: address \"joe\": need local@domain",
			"17:17: error: password hash: unsupported password hash",
			"18:9: error: quota: invalid size unit \"parsecs\"",
			"23:17: error: give password_hash or password_file, not both",
			"24:9: error: quota: must be 0 (unlimited) or a positive size",
			"25:14: error: sieve_name without sieve_file",
			"29:17: error: password_file empty.hash is empty",
			"30:14: error: sieve_file: open testdata/missing.sieve",
			"37:3: error: an alias needs at least one target",
			"42:48: error: expected a string, found an integer",
			"47:11: error: forward: \"magic\" is not srs or rewrite",
			"48:12: error: disabled: \"bounce\" is not \"drop\"",
			"53:11: error: forward: \"magic\" is not srs or rewrite",
			"54:9: error: owner: address \"nobody\"",
		}},
		{"duplicates.toml", []string{
			"6:8: error: domain example.org is declared twice (first at line 2)",
			"13:11: error: account joe@example.org is declared twice (first at line 9)",
			"17:11: error: alias @example.org is declared twice (first at line 3)",
			"25:11: error: alias a@example.org is declared twice (first at line 21)",
		}},
		{"routing.toml", []string{
			"3:14: warning: domain example.org: postmaster boss@example.org is not an account",
			"4:14: warning: alias @example.org: target nobody@example.org does not exist in local domain example.org",
			"11:11: error: alias joe@example.org: is both an account and an alias",
			"16:12: error: alias a@example.org: alias loop: a@example.org → b@example.org → a@example.org",
			"20:12: warning: alias b@example.org: target missing@example.org does not exist",
			"21:9: error: alias b@example.org: owner ghost@example.org is not an account",
			"24:11: error: alias c@other.example: domain other.example is not a local domain",
			"28:11: error: account ann@nowhere.example: domain nowhere.example is not a local domain",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			name := "testdata/" + tc.file
			f, ds := Load(name)
			if f != nil && Errors(ds) == 0 {
				res, err := Run(context.Background(), newStore(t), Request{State: f.State, DryRun: true}, Options{})
				if err != nil {
					t.Fatal(err)
				}
				ds = append(ds, f.LocateAll(res.Diagnostics)...)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.String())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], name+":"+w) && !strings.Contains(got[i], ":"+w) {
					t.Errorf("diagnostic %d:\n got %s\nwant %s:%s", i, got[i], name, w)
				}
			}
		})
	}
}

// A sieve file's errors are placed in the script, naming the apply file's
// line.
func TestSieveFileError(t *testing.T) {
	_, ds := Load("testdata/bad_values.toml")
	for _, d := range ds {
		if d.File == "testdata/bad.sieve" {
			if d.Line != 3 || d.Col != 3 || !strings.Contains(d.Msg, "sieve script of testdata/bad_values.toml:35") {
				t.Fatalf("%s", d)
			}
			return
		}
	}
	t.Fatal("no diagnostic in bad.sieve")
}

func TestParseValid(t *testing.T) {
	f, ds := Load("testdata/valid.toml")
	if len(ds) > 0 {
		t.Fatalf("%v", ds)
	}
	s := f.State
	if len(s.Domains) != 2 || s.Domains[1].Name != "xn--bcher-kva.example" || s.Domains[0].DMARCReject != "junk" || s.Domains[0].DMARCQuarantine != "accept" || s.Domains[0].Postmaster != "joe@example.org" {
		t.Fatalf("domains %+v", s.Domains)
	}
	if len(s.Accounts) != 3 {
		t.Fatalf("accounts %+v", s.Accounts)
	}
	joe, spam, anna := s.Accounts[0], s.Accounts[1], s.Accounts[2]
	if *joe.QuotaBytes != 5e9 || joe.Sieve == nil || joe.Sieve.Name != DefaultSieveName || !strings.Contains(joe.Sieve.Content, "fileinto") {
		t.Fatalf("joe %+v", joe)
	}
	if *spam.QuotaBytes != 0 || !strings.HasPrefix(spam.PasswordHash, "{SHA512-CRYPT}$6$") || strings.Contains(spam.PasswordHash, "\n") {
		t.Fatalf("spam %+v", spam)
	}
	if anna.Address != "anna@xn--bcher-kva.example" || !anna.Disabled || anna.QuotaBytes != nil {
		t.Fatalf("anna %+v", anna)
	}
	want := []Alias{
		{Address: "@example.org", Targets: []string{"spam@example.org"}},
		{Address: "info@example.org", Targets: []string{"joe@example.org", "someone@elsewhere.example"}, ForwardMode: "rewrite", Note: "given to the shop", Owner: "joe@example.org"},
		{Address: "old@example.org", DisabledAction: "reject"},
		{Address: "hook@example.org", Targets: []string{"http:ingest"}},
	}
	if fmt.Sprint(s.Aliases) != fmt.Sprint(want) {
		t.Fatalf("aliases\n got %+v\nwant %+v", s.Aliases, want)
	}
	if len(s.GlobalSieve) != 1 || s.GlobalSieve[0].Name != "before" {
		t.Fatalf("global sieve %+v", s.GlobalSieve)
	}
}

func TestParseLimits(t *testing.T) {
	_, ds := Parse("big.toml", make([]byte, MaxFileSize+1), nil)
	if Errors(ds) != 1 || !strings.Contains(ds[0].Msg, "larger than") {
		t.Fatalf("%v", ds)
	}
	// Inline tables in arrays are placed too.
	_, ds = Parse("inline.toml", []byte("alias = [\n  {address = \"a@example.org\", targets = \"b@example.org\"},\n  {address = \"x\", targets = \"b@example.org\"},\n]\n"), nil)
	if len(ds) != 1 || ds[0].Line != 3 || ds[0].Col != 14 {
		t.Fatalf("%v", ds)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "[[domain]]\nname = \"example.org\"\ncatch_all = [\"a@example.org\"]\n", "[[alias]]\naddress=\"@x\"\ntargets=[1,{a=2}]\ndisabled=3\n", "[[account]]\naddress=\"a@b\"\nquota=\"1KB\"\npassword_file=\"x\"\nsieve_file=\"y\"\n", "alias = [{address = \"a@b\", targets = [\"c@d\"]}]"} {
		f.Add([]byte(s))
	}
	read := func(string, int64) ([]byte, error) { return nil, errors.New("no files in the fuzzer") }
	f.Fuzz(func(t *testing.T, data []byte) {
		file, ds := Parse("fuzz.toml", data, read)
		if file == nil && Errors(ds) == 0 {
			t.Fatal("no file and no error")
		}
		if file != nil {
			file.LocateAll([]Diagnostic{{Ref: Ref{Kind: KindAlias, Key: "@x", Field: "targets[0]"}}})
		}
	})
}

func newStore(t *testing.T) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
