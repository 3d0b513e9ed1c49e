package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestSieveCLI(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	d := "--data=" + data
	if _, e, code := runCLI(t, "pw\n", d, "account", "add", "joe@example.org", "--password-stdin", "--create-domain"); code != 0 {
		t.Fatalf("account add: %s", e)
	}
	good := filepath.Join(dir, "good.sieve")
	bad := filepath.Join(dir, "bad.sieve")
	os.WriteFile(good, []byte("require \"fileinto\";\nif header :contains \"subject\" \"x\" { fileinto \"X\"; }\n"), 0o600)
	os.WriteFile(bad, []byte("require \"fileinto\";\n\n  fileinto;\n"), 0o600)

	out, _, code := runCLI(t, "", "sieve", "check", good)
	if code != 0 || out != good+": OK\n" {
		t.Fatalf("check good: %d %q", code, out)
	}
	_, e, code := runCLI(t, "", "sieve", "check", good, bad)
	if code == 0 || !strings.Contains(e, bad+":3:3: fileinto needs 1 positional argument, found 0") {
		t.Fatalf("check bad: %d %q", code, e)
	}
	if _, e, code := runCLI(t, "", d, "sieve", "put", "joe@example.org", "main", bad); code == 0 || !strings.Contains(e, ":3:3:") {
		t.Fatalf("put bad: %d %q", code, e)
	}
	if out, e, code := runCLI(t, "", d, "sieve", "put", "joe@example.org", "main", good); code != 0 || !strings.Contains(out, `"main" stored for joe@example.org`) {
		t.Fatalf("put: %d %q %q", code, out, e)
	}
	if out, e, code := runCLI(t, "keep;\n", d, "sieve", "put", "--activate", "joe@example.org", "spare", "-"); code != 0 || !strings.Contains(out, "(active)") {
		t.Fatalf("put stdin: %d %q %q", code, out, e)
	}
	if out, e, code := runCLI(t, "", d, "sieve", "activate", "joe@example.org", "main"); code != 0 || !strings.Contains(out, "active for joe@example.org") {
		t.Fatalf("activate: %d %q %q", code, out, e)
	}
	out, _, _ = runCLI(t, "", d, "sieve", "list", "joe@example.org")
	if !strings.Contains(out, "main") || !strings.Contains(out, "yes") || !strings.Contains(out, "spare") {
		t.Fatalf("list: %q", out)
	}
	if out, _, code := runCLI(t, "", d, "sieve", "get", "joe@example.org", "main"); code != 0 || !strings.Contains(out, `fileinto "X"`) {
		t.Fatalf("get: %q", out)
	}
	if _, e, code := runCLI(t, "", d, "sieve", "del", "joe@example.org", "main"); code == 0 || !strings.Contains(e, "deactivate it first") {
		t.Fatalf("del active: %q", e)
	}
	if _, e, code := runCLI(t, "", d, "sieve", "activate", "--none", "joe@example.org"); code != 0 {
		t.Fatalf("deactivate: %q", e)
	}
	if _, e, code := runCLI(t, "", d, "sieve", "del", "joe@example.org", "main"); code != 0 {
		t.Fatalf("del: %q", e)
	}
	// Global scripts.
	if out, e, code := runCLI(t, "", d, "sieve", "put", "--global", "before", good); code != 0 || !strings.Contains(out, "stored for global") {
		t.Fatalf("put global: %d %q %q", code, out, e)
	}
	if out, _, _ := runCLI(t, "", d, "--json", "sieve", "list", "--global"); !strings.Contains(out, `"name": "before"`) {
		t.Fatalf("list global: %q", out)
	}
	if _, e, code := runCLI(t, "", d, "sieve", "put", "--global", "other", good); code == 0 || !strings.Contains(e, `"before" or "after"`) {
		t.Fatalf("put global other: %q", e)
	}
	if _, e, code := runCLI(t, "", d, "sieve", "get", "joe@example.org"); code == 0 || !strings.Contains(e, "expected ACCOUNT NAME") {
		t.Fatalf("get without name: %q", e)
	}
}
