package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/control"
	"github.com/mailstead/mailstead/internal/manage"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

const applyHash = "{SHA512-CRYPT}$6$saltsalt$8RWsOfwR6M6PpnoeQiEiWzNTPo1f0HjVYjDnLZhGx16aBFRkeqiHAzfXP/LgrOWMBMXqiU2pLrXsSOHNUyUm91"

// writeApplyFiles writes an apply file with its password and sieve files.
func writeApplyFiles(t *testing.T, dir string) string {
	t.Helper()
	files := map[string]string{
		"joe.hash":  applyHash + "\n",
		"joe.sieve": "require \"fileinto\";\nif header :contains \"subject\" \"[spam]\" { fileinto \"Junk\"; }\n",
		"mail.toml": `[[domain]]
name = "example.org"
dmarc_reject = "junk"
catch_all = "joe@example.org"

[[account]]
address = "joe@example.org"
password_file = "joe.hash"
quota = "1GB"
sieve_file = "joe.sieve"

[[alias]]
address = "info@example.org"
targets = ["joe@example.org", "someone@example.net"]
forward = "rewrite"
note = "website"
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "mail.toml")
}

func TestApplyCLI(t *testing.T) {
	dir := t.TempDir()
	d := "--data=" + filepath.Join(dir, "data")
	file := writeApplyFiles(t, dir)

	out, e, code := runCLI(t, "", d, "apply", "--dry-run", file)
	if code != 0 || !strings.Contains(out, "would create domain example.org\n") || !strings.Contains(out, "dry run: 5 changes planned; nothing changed") {
		t.Fatalf("dry run: %d %q %q", code, out, e)
	}
	if out, _, _ := runCLI(t, "", d, "account", "list"); strings.Contains(out, "joe@") {
		t.Fatalf("dry run created an account: %q", out)
	}
	out, e, code = runCLI(t, "", d, "apply", file)
	if code != 0 || !strings.Contains(out, "create alias info@example.org: → joe@example.org, someone@example.net, forward rewrite\n") || !strings.Contains(out, "5 changes applied") {
		t.Fatalf("apply: %d %q %q", code, out, e)
	}
	if out, _, _ := runCLI(t, "", d, "alias", "list"); !strings.Contains(out, "rewrite") || !strings.Contains(out, "website") {
		t.Fatalf("alias list: %q", out)
	}
	out, e, code = runCLI(t, "", d, "apply", file)
	if code != 0 || out != "no changes: the store already matches "+file+"\n" || e != "" {
		t.Fatalf("second apply: %d %q %q", code, out, e)
	}

	// An account made by hand is left alone, and pruned once empty.
	if _, e, code := runCLI(t, "pw\n", d, "account", "add", "extra@example.org", "--password-stdin"); code != 0 {
		t.Fatal(e)
	}
	if out, _, code := runCLI(t, "", d, "apply", file); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("without prune: %q", out)
	}
	if out, e, code := runCLI(t, "", d, "--json", "apply", "--prune", "--dry-run", file); code != 0 || !strings.Contains(out, `"action": "delete"`) || !strings.Contains(out, `"key": "extra@example.org"`) {
		t.Fatalf("prune json: %d %q %q", code, out, e)
	}
	if out, e, code := runCLI(t, "", d, "apply", "--prune", file); code != 0 || !strings.Contains(out, "delete account extra@example.org: no mail in its mailboxes") {
		t.Fatalf("prune: %d %q %q", code, out, e)
	}

	// Problems are reported at their line, and fail the apply.
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[alias]]\naddress = \"joe@example.org\"\ntargets = \"x@example.net\"\n\n[[alias]]\naddress = \"a@example.org\"\ntargets = [\"a@example.org\"]\n"), 0o600)
	_, e, code = runCLI(t, "", d, "apply", bad)
	if code != 1 || !strings.Contains(e, bad+":2:11: error: alias joe@example.org: is both an account and an alias") ||
		!strings.Contains(e, bad+":7:12: error: alias a@example.org: alias loop: a@example.org → a@example.org") || !strings.Contains(e, "2 errors; nothing changed") {
		t.Fatalf("bad: %d %q", code, e)
	}
	os.WriteFile(bad, []byte("[[alias]]\naddres = \"joe@example.org\"\n"), 0o600)
	if _, e, code := runCLI(t, "", d, "apply", bad); code != 1 || !strings.Contains(e, bad+":2:1: error: unknown key 'addres' in [[alias]] (did you mean 'address'?)") {
		t.Fatalf("unknown key: %d %q", code, e)
	}
	if _, e, code := runCLI(t, "", d, "apply", filepath.Join(dir, "missing.toml")); code != 1 || !strings.Contains(e, "no such file") {
		t.Fatalf("missing file: %d %q", code, e)
	}
}

// With a server running, apply goes through its control socket.
func TestApplyCLIThroughServer(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(data, "store"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := control.NewRegistry()
	(&manage.Ops{St: st}).Register(reg)
	srv := &control.Server{R: reg}
	if err := srv.Listen(filepath.Join(data, control.SocketName)); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background())
	defer srv.Close()

	file := writeApplyFiles(t, dir)
	d := "--data=" + data
	if out, e, code := runCLI(t, "", d, "apply", file); code != 0 || !strings.Contains(out, "5 changes applied") {
		t.Fatalf("apply: %d %q %q", code, out, e)
	}
	if a, err := st.GetAlias(context.Background(), "info@example.org"); err != nil || a.ForwardMode != "rewrite" {
		t.Fatalf("%+v %v", a, err)
	}
	if out, e, code := runCLI(t, "", d, "apply", file); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("second apply: %d %q %q", code, out, e)
	}
}
