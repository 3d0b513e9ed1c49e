package spam

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rspamdConf is a minimal Rspamd configuration: one normal worker on a
// loopback port, only our test rules (testdata/rspamd/rules.lua), no
// Redis, and a DNS server address nobody answers on, so that nothing
// leaves the machine.
const rspamdConf = `lua = "%[1]s";
options {
  pidfile = "%[2]s/rspamd.pid";
  dbdir = "%[2]s/db";
  filters = "";
  dns {
    nameserver = ["127.0.0.1:9"];
    timeout = 0.2s;
    retransmits = 1;
  }
  check_all_filters = true;
}
logging {
  type = "console";
  level = "warning";
}
worker "normal" {
  bind_socket = "%[3]s";
  count = 1;
  task_timeout = 8s;
}
actions {
  reject = 15;
  rewrite_subject = 10;
  add_header = 6;
  greylist = 4;
}
`

// startRspamd runs a real Rspamd (Debian package "rspamd") for the test
// and returns its base URL. Without the binary the test is skipped, but
// fails under CI=true, where .ci/run installs it.
func startRspamd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("rspamd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("rspamd is not installed (apt-get install rspamd); CI must run this test")
		}
		t.Skip("rspamd is not installed (apt-get install rspamd)")
	}
	if testing.Short() {
		t.Skip("starting rspamd takes seconds")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs(filepath.Join("testdata", "rspamd", "rules.lua"))
	if err != nil {
		t.Fatal(err)
	}
	// A free loopback port: bind one, note it, free it for Rspamd. The
	// address is one of its own in 127/8, where no other test's listener
	// (they use 127.0.0.1) can take the port in the meantime.
	ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conf := filepath.Join(dir, "rspamd.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, rspamdConf, rules, dir, addr), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", "-c", conf}
	if os.Geteuid() == 0 {
		// Rspamd refuses to run as root unless told to.
		args = append(args, "-u", "root", "-g", "root")
	}
	logf, err := os.Create(filepath.Join(dir, "rspamd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	// Its own process group, so its workers can be stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	dumpLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "rspamd.log"))
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(b)
	}
	base := "http://" + addr
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := hc.Get(base + "/ping")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), "pong") {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("rspamd exited during start-up:\n%s", dumpLog())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("rspamd not ready after 90s:\n%s", dumpLog())
		}
	}
}

func TestRealRspamd(t *testing.T) {
	url := startRspamd(t)
	cfg := DefaultConfig()
	cfg.Hostname = "mx.ours.example.net"
	cfg.Rspamd = RspamdConfig{URL: url, Timeout: 15 * time.Second, PassAll: true}
	c := newChecker(t, cfg, newZone(t))
	conn := c.CheckConnection(bg, netip.MustParseAddr("192.0.2.10"), "mail.example.org")

	check := func(subject, from, user string) Verdict {
		msg := strings.NewReader("From: a@example.org\r\nTo: b@example.com\r\nSubject: " + subject +
			"\r\nMessage-ID: <x@example.org>\r\nDate: Mon, 23 Nov 2026 03:00:00 +0000\r\n\r\nhello\r\n")
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		defer cancel()
		return c.CheckMessage(ctx, MessageInput{Conn: conn, MailFrom: from, User: user, QueueID: "Q42",
			Rcpts: []string{"b@example.com", "c@example.com"}, Message: msg, Size: msg.Size()})
	}
	tests := []struct {
		subject string
		action  Action
		score   float64
		reply   string
	}{
		{"plain", Accept, 0, ""},
		{"score-7", Junk, 7, ""},
		{"score-12", Junk, 12, ""},
		{"score-5", Defer, 5, "451 4.7.1 Greylisted, try again later"},
		{"softreject", Defer, 0, "451 4.7.1 Try again later, test"},
		{"score-20", Reject, 20, "550 5.7.1 Message rejected as spam"},
		{"prereject", Reject, 0, "550 5.7.1 Custom reject text"},
	}
	for _, tc := range tests {
		v := check(tc.subject, "a@example.org", "")
		if v.RspamdErr != nil || v.Source != "rspamd" {
			t.Fatalf("%s: source %s err %v", tc.subject, v.Source, v.RspamdErr)
		}
		var reply string
		if v.Reply != nil {
			reply = v.Reply.String()
		}
		if v.Action != tc.action || v.Score != tc.score || reply != tc.reply || v.Required != 15 {
			t.Errorf("%s: %s score %g required %g reply %q, want %s %g %q", tc.subject, v.Action, v.Score, v.Required, reply, tc.action, tc.score, tc.reply)
		}
	}

	// The envelope arrives as Rspamd understands it.
	envelope := func(v Verdict) []string {
		for _, s := range v.Symbols {
			if s.Name == "MS_ENVELOPE" {
				return strings.Split(s.Detail, ", ")
			}
		}
		t.Fatalf("no MS_ENVELOPE symbol in %+v", v.Symbols)
		return nil
	}
	got := envelope(check("plain", "a@example.org", "bob"))
	want := []string{"ip=192.0.2.10", "helo=mail.example.org", "hostname=mail.example.org", "user=bob", "qid=Q42",
		"from=a@example.org", "rcpt=b@example.com", "rcpt=c@example.com"}
	if !slices.Equal(got, want) {
		t.Errorf("envelope seen by rspamd:\n got %q\nwant %q", got, want)
	}
	// "<>" is Rspamd's null sender: an empty address, not a missing one.
	got = envelope(check("plain", "", ""))
	if !slices.Contains(got, "from=") || !slices.Contains(got, "user=nil") {
		t.Errorf("null sender seen by rspamd as %q", got)
	}
}
