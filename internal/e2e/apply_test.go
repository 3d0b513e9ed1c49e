package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/account"
)

// TestApply drives `mailstead apply` against the running binary: a file
// with an error changes nothing and names the line; a good file creates
// the domain, the account (which can then log in over IMAP) and an alias
// that mail over SMTP follows; the second apply changes nothing; --prune
// refuses to delete an account that holds mail.
func TestApply(t *testing.T) {
	in := New(t, "")
	py := Python(t)
	hash, err := account.HashPassword("joe-secret-1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "mail.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good := `[[domain]]
name = "example.test"

[[account]]
address = "joe@example.test"
password_hash = "` + hash + `"

[[alias]]
address = "info@example.test"
targets = ["joe@example.test"]
note = "on the website"
`
	// An alias that is also an account: refused with its line, nothing
	// applied.
	write(good + `
[[alias]]
address = "joe@example.test"
targets = ["info@example.test"]
`)
	out, err := in.CLI("", "apply", file)
	if err == nil || !strings.Contains(err.Error(), "mail.toml:14:") {
		t.Fatalf("bad file accepted or error without line: %v\n%s", err, out)
	}
	if out, _ := in.CLI("", "domain", "list"); strings.Contains(out, "example.test") {
		t.Fatalf("a refused apply changed the store:\n%s", out)
	}

	write(good)
	if out := in.MustCLI("", "apply", file, "--dry-run"); !strings.Contains(out, "would") {
		t.Fatalf("dry run: %s", out)
	}
	if out, _ := in.CLI("", "domain", "list"); strings.Contains(out, "example.test") {
		t.Fatalf("--dry-run changed the store:\n%s", out)
	}
	in.MustCLI("", "apply", file)
	if out := in.MustCLI("", "apply", file); !strings.Contains(out, "no changes") {
		t.Fatalf("second apply: %s", out)
	}

	// Mail to the alias lands in joe's INBOX; joe logs in with the
	// password whose hash the file carried.
	msg := []byte("From: a@sender.example\r\nTo: info@example.test\r\nSubject: via alias\r\n\r\nhello\r\n")
	if err := SendMail(in.Addr("smtp"), "a@sender.example", []string{"info@example.test"}, msg); err != nil {
		t.Fatalf("send to alias: %v", err)
	}
	script := `import imaplib, ssl, sys
c = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ssl._create_unverified_context(), timeout=30)
c.login("joe@example.test", "joe-secret-1")
typ, data = c.select("INBOX")
typ, data = c.search(None, 'SUBJECT "via alias"')
print("found", len(data[0].split()))
c.logout()
`
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := Run(t, time.Minute, "", py, "-c", script, in.Port("imaps"))
		if err == nil && strings.Contains(out, "found 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("imap: %v\n%s\n%s", err, out, tail(in.Log(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// --prune with joe missing from the file: joe holds mail, so the
	// apply fails and deletes nothing.
	write("[[domain]]\nname = \"example.test\"\n")
	out, err = in.CLI("", "apply", file, "--prune")
	if err == nil || !strings.Contains(err.Error()+out, "joe@example.test") {
		t.Fatalf("prune of an account with mail: %v\n%s", err, out)
	}
	if out := in.MustCLI("", "account", "list"); !strings.Contains(out, "joe@example.test") {
		t.Fatalf("account gone after a refused prune:\n%s", out)
	}
}
