package managesieve

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSieveConnect drives the server with sieve-connect (Debian package
// sieve-connect), a real ManageSieve client: STARTTLS, SASL PLAIN, upload,
// list, activate, download, delete.
func TestSieveConnect(t *testing.T) {
	bin, err := exec.LookPath("sieve-connect")
	if err != nil {
		t.Skip("sieve-connect not installed")
	}
	e := newTestEnv(t, nil)
	host, port, _ := net.SplitHostPort(e.addr)
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		base := []string{"--nosrv", "--server", host, "--port", port, "--user", "joe@example.org",
			"--passwordfd", "0", "--notlsverify", "--noclearauth", "--authmech", "PLAIN"}
		cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
		cmd.Stdin = strings.NewReader(testPass + "\n")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sieve-connect %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	script := "require [\"fileinto\", \"vacation\"];\nif header :contains \"subject\" \"report\" {\n  fileinto \"Reports\";\n}\n"
	local := filepath.Join(dir, "filters.sieve")
	if err := os.WriteFile(local, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	run("--upload", "--localsieve", local, "--remotesieve", "filters")
	run("--activate", "--remotesieve", "filters")
	if out := run("--list"); !strings.Contains(out, "filters") {
		t.Errorf("list: %q", out)
	}
	sc, err := e.st.GetSieveScript(context.Background(), e.acct.ID, "filters")
	if err != nil || !sc.Active || sc.Content != script {
		t.Fatalf("stored %+v %v", sc, err)
	}
	down := filepath.Join(dir, "down.sieve")
	run("--download", "--remotesieve", "filters", "--localsieve", down)
	if b, _ := os.ReadFile(down); string(b) != script {
		t.Errorf("downloaded %q", b)
	}
	// An invalid script is refused with its position.
	bad := filepath.Join(dir, "bad.sieve")
	os.WriteFile(bad, []byte("require \"fileinto\";\nfilein \"x\";\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--nosrv", "--server", host, "--port", port, "--user", "joe@example.org",
		"--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN", "--upload", "--localsieve", bad, "--remotesieve", "bad")
	cmd.Stdin = strings.NewReader(testPass + "\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `2:1: unknown command`) {
		t.Errorf("bad upload: %v\n%s", err, out)
	}
	run("--deactivate")
	run("--delete", "--remotesieve", "filters")
	if list, _ := e.st.ListSieveScripts(context.Background(), e.acct.ID); len(list) != 0 {
		t.Errorf("after delete: %+v", list)
	}
}

// FuzzReadCommand feeds arbitrary bytes to the request reader.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n",
		"RENAMESCRIPT {1+}\r\na {1}\r\nb\r\n",
		"NOOP \"a\\\"b\\\\\"\r\n",
		"AUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n",
		"{99999999999+}\r\n",
		"X \"unterminated\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := &reader{br: bufio.NewReaderSize(strings.NewReader(in), 64), maxLine: 256, maxLiteral: 1024}
		for i := 0; i < 100; i++ {
			toks, err := r.readCommand()
			if err != nil {
				return
			}
			if len(toks) > maxArgs+1 {
				t.Fatalf("%d tokens", len(toks))
			}
		}
	})
}

func TestReadCommand(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n", "PUTSCRIPT|a|keep;"},
		{"RENAMESCRIPT {1+}\r\na {1}\r\nb\r\n", "RENAMESCRIPT|a|b"},
		{"noop \"a\\\"b\\\\\"\n", "noop|a\"b\\"},
		{"HAVESPACE \"x\" 1234\r\n", "HAVESPACE|x|1234"},
		{"\r\n", ""},
	} {
		r := &reader{br: bufio.NewReader(strings.NewReader(c.in)), maxLine: 256, maxLiteral: 1024}
		toks, err := r.readCommand()
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		var parts []string
		for _, tk := range toks {
			parts = append(parts, tk.s)
		}
		if got := strings.Join(parts, "|"); got != c.want {
			t.Errorf("%q: got %q want %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"X \"a\\n\"\r\n", "X \"open\r\n", "X {x}\r\n", "X {5} y\r\n", "X \"a\"b\r\n"} {
		r := &reader{br: bufio.NewReader(strings.NewReader(bad)), maxLine: 256, maxLiteral: 1024}
		if _, err := r.readCommand(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if q := quote("a\"b\\c"); q != `"a\"b\\c"` {
		t.Errorf("quote %s", q)
	}
	if q := quote("a\r\nb"); q != "{4}\r\na\r\nb" {
		t.Errorf("quote %q", q)
	}
}
