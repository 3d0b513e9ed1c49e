// Package e2e holds the end-to-end tests: they build the real mailstead
// binary once, start it on loopback with port 0 listeners and a temporary
// data directory, read the bound ports from the ready file, and talk to it
// with real clients (python3 smtplib/imaplib, swaks, curl, mbsync, ...).
//
// A missing external tool skips its test locally but fails it when
// CI=true, so CI cannot pass by silently testing nothing.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/mailstead once per test process (with -race when the
// tests run with it, so the server is checked too).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailstead-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mailstead")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/mailstead")...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Need returns the path of an external tool, skipping the test when it is
// missing locally and failing it under CI=true.
func Need(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI but not installed (.ci/run installs it)", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

// Python returns Debian's python3 (whose apt-installed modules import),
// not whatever python3 comes first on PATH.
func Python(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return Need(t, "python3")
}

// Instance is one running server.
type Instance struct {
	t       testing.TB
	Dir     string // holds mailstead.toml, data/, ready.json, server.log
	Config  string
	DataDir string
	cmd     *exec.Cmd
	log     *os.File
	Addrs   map[string]string
	done    chan struct{}
}

// DefaultConfig has one listener of every implemented protocol on port 0.
const DefaultConfig = `
hostname = "mail.example.test"
data_dir = "data"
log_level = "debug"

[tls]
self_signed = true

[[listener]]
name = "smtp"
protocol = "smtp"
address = "127.0.0.1:0"

[[listener]]
name = "submission"
protocol = "submission"
address = "127.0.0.1:0"

[[listener]]
name = "submissions"
protocol = "submissions"
address = "127.0.0.1:0"

[[listener]]
name = "imap"
protocol = "imap"
address = "127.0.0.1:0"

[[listener]]
name = "imaps"
protocol = "imaps"
address = "127.0.0.1:0"

[[listener]]
name = "managesieve"
protocol = "managesieve"
address = "127.0.0.1:0"

[[listener]]
name = "admin"
protocol = "admin"
address = "127.0.0.1:0"

[limits]
auth_failure_delay = "100ms"
`

// New writes config (DefaultConfig when empty) into a temp dir and starts
// the server.
func New(t testing.TB, config string) *Instance {
	t.Helper()
	if config == "" {
		config = DefaultConfig
	}
	dir := t.TempDir()
	in := &Instance{t: t, Dir: dir, Config: filepath.Join(dir, "mailstead.toml"), DataDir: filepath.Join(dir, "data")}
	if err := os.WriteFile(in.Config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	in.Start()
	t.Cleanup(in.Stop)
	return in
}

// Start starts (or restarts) the server and waits for the ready file.
func (in *Instance) Start() {
	t := in.t
	t.Helper()
	ready := filepath.Join(in.Dir, "ready.json")
	os.Remove(ready)
	logf, err := os.OpenFile(filepath.Join(in.Dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	in.log = logf
	cmd := exec.Command(Binary(t), "--config", in.Config, "serve", "--ready-file", ready, "--shutdown-timeout", "5s")
	cmd.Dir = in.Dir
	// DNS from a zone file, never the network: a slow resolver on a
	// loaded machine would otherwise turn SPF/DMARC checks into 451s.
	zone := in.ZoneFile()
	if _, err := os.Stat(zone); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(zone, []byte("; no records: every name is NXDOMAIN\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd.Env = append(os.Environ(), "MAILSTEAD_TEST_DNS_ZONE="+zone)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.cmd = cmd
	in.done = make(chan struct{})
	go func() { cmd.Wait(); close(in.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(ready)
		if err == nil {
			var r struct {
				Listeners map[string]string `json:"listeners"`
			}
			if json.Unmarshal(b, &r) == nil {
				in.Addrs = r.Listeners
				return
			}
		}
		select {
		case <-in.done:
			t.Fatalf("server exited during start:\n%s", in.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 60s:\n%s", in.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ZoneFile is the DNS zone the server answers from (see
// cli.TestDNSZoneEnv); a test may write records into it before Start.
func (in *Instance) ZoneFile() string { return filepath.Join(in.Dir, "dns.zone") }

// Addr returns the bound address of a listener.
func (in *Instance) Addr(name string) string {
	a, ok := in.Addrs[name]
	if !ok {
		in.t.Fatalf("no listener %q in %v", name, in.Addrs)
	}
	return a
}

// Port returns the port of a listener.
func (in *Instance) Port(name string) string {
	a := in.Addr(name)
	return a[strings.LastIndexByte(a, ':')+1:]
}

// Log returns the server log so far.
func (in *Instance) Log() string {
	b, _ := os.ReadFile(filepath.Join(in.Dir, "server.log"))
	return string(b)
}

// PID of the running server.
func (in *Instance) PID() int { return in.cmd.Process.Pid }

// Running reports whether the process is alive.
func (in *Instance) Running() bool {
	select {
	case <-in.done:
		return false
	default:
		return in.cmd != nil
	}
}

// Stop sends SIGTERM and waits (then SIGKILL after 60 s: the server
// drains for up to its 5 s shutdown timeout, but a loaded machine under
// the race detector may need a good while longer to get there).
func (in *Instance) Stop() {
	if in.cmd == nil || !in.Running() {
		return
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(60 * time.Second):
		in.cmd.Process.Kill()
		<-in.done
		in.t.Errorf("server did not stop within 60s of SIGTERM")
	}
	in.log.Close()
}

// Kill sends SIGKILL and waits.
func (in *Instance) Kill() {
	in.cmd.Process.Kill()
	<-in.done
	in.log.Close()
}

// CLI runs the mailstead CLI against this instance's config and returns
// stdout; stdin may be empty.
func (in *Instance) CLI(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(in.t), append([]string{"--config", in.Config}, args...)...)
	cmd.Dir = in.Dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

// MustCLI is CLI that fails the test on error.
func (in *Instance) MustCLI(stdin string, args ...string) string {
	in.t.Helper()
	out, err := in.CLI(stdin, args...)
	if err != nil {
		in.t.Fatalf("mailstead %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// AddAccount creates an account (and its domain) with a password.
func (in *Instance) AddAccount(addr, password string) {
	in.t.Helper()
	in.MustCLI(password+"\n", "account", "add", addr, "--create-domain", "--password-stdin")
}

// Run runs a command with a timeout and returns combined output.
func Run(t testing.TB, timeout time.Duration, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// SendMail delivers one message over plain SMTP (no STARTTLS), as an MX
// peer that does not insist on TLS would.
func SendMail(addr, from string, to []string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
