package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"

	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type msgInfo struct {
	UID     uint32 `json:"uid"`
	Size    int64  `json:"size"`
	Subject string `json:"subject"`
}

func listMessages(t *testing.T, in *Instance, addr, mailbox string) []msgInfo {
	t.Helper()
	out := in.MustCLI("", "--json", "message", "list", addr, mailbox)
	var ms []msgInfo
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("message list output %q: %v", out, err)
	}
	return ms
}

func TestSMTPWithRealClients(t *testing.T) {
	py := Python(t)
	swaks := Need(t, "swaks")
	in := New(t, "")
	in.AddAccount("alice@example.test", "alice-secret")
	host, port, _ := net.SplitHostPort(in.Addr("smtp"))

	out, err := Run(t, 2*time.Minute, "", py, "testdata/smtplib_send.py", host, port)
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("smtplib: %v\n%s\nserver log:\n%s", err, out, tail(in.Log(), 30))
	}
	out, err = Run(t, time.Minute, "", swaks, "--server", in.Addr("smtp"), "-tls", "--from", "sender@example.net",
		"--to", "Alice@EXAMPLE.test", "--header", "Subject: via swaks", "--body", "hello from swaks")
	if err != nil || !strings.Contains(out, "250 2.0.0") {
		t.Fatalf("swaks: %v\n%s", err, out)
	}

	ms := listMessages(t, in, "alice@example.test", "INBOX")
	want := []string{"Grüße aus Köln", "big", "longline", "via swaks"}
	if len(ms) != len(want) {
		t.Fatalf("stored %d messages, want %d: %+v", len(ms), len(want), ms)
	}
	for i, w := range want {
		if ms[i].Subject != w {
			t.Errorf("message %d subject %q, want %q", i+1, ms[i].Subject, w)
		}
	}
	if ms[1].Size < 10_000_000 {
		t.Errorf("big message stored with %d bytes", ms[1].Size)
	}
	raw := in.MustCLI("", "message", "cat", "alice@example.test", "INBOX", "3")
	if !strings.Contains(raw, strings.Repeat("y", 50_000)+"\r\nend\r\n") {
		t.Errorf("long line not stored intact")
	}
	raw = in.MustCLI("", "message", "cat", "alice@example.test", "INBOX", "1")
	for _, w := range []string{"Return-Path: <jörg@example.net>\r\n", "Delivered-To: alice@example.test\r\n", "by mail.example.test (mailstead) with UTF8SMTP id ", "Schöne Grüße"} {
		if !strings.Contains(raw, w) {
			t.Errorf("stored message lacks %q:\n%s", w, raw)
		}
	}
	raw = in.MustCLI("", "message", "cat", "alice@example.test", "INBOX", "4")
	if !strings.Contains(raw, "with ESMTPS id") || !strings.Contains(raw, "using TLS") {
		t.Errorf("STARTTLS delivery not recorded in Received:\n%s", raw)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestCrashSafety delivers a stream of messages from several connections,
// kills the server with SIGKILL in the middle, restarts it, and checks that
// every message that got its 250 is there, intact, and nothing else
// half-stored is visible.
func TestCrashSafety(t *testing.T) {
	in := New(t, "")
	in.AddAccount("crash@example.test", "pw")
	addr := in.Addr("smtp")

	var mu sync.Mutex
	acked := map[string][32]byte{} // subject → body hash
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				subj := fmt.Sprintf("crash-%d-%d", w, i)
				body := fmt.Sprintf("Subject: %s\r\n\r\n%s\r\n", subj, strings.Repeat(subj+" ", 200))
				if err := SendMail(addr, "s@example.net", []string{"crash@example.test"}, []byte(body)); err != nil {
					return // the server died under us: expected
				}
				mu.Lock()
				acked[subj] = sha256.Sum256([]byte(body))
				mu.Unlock()
			}
		}(w)
	}
	// Let some mail flow, then pull the plug.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	in.Kill()
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatalf("nothing delivered before the kill:\n%s", tail(in.Log(), 20))
	}
	in.Start()
	ms := listMessages(t, in, "crash@example.test", "INBOX")
	stored := map[string]uint32{}
	for _, m := range ms {
		stored[m.Subject] = m.UID
	}
	for subj := range acked {
		if _, ok := stored[subj]; !ok {
			t.Errorf("acknowledged message %s lost", subj)
		}
	}
	// Stored messages are complete: their body is what was sent. The last
	// ones, written as the kill came, are the likeliest to be torn; check
	// them and a spread of the rest (each check is a CLI call).
	var check []msgInfo
	for i, m := range ms {
		if i >= len(ms)-12 || i%25 == 0 {
			check = append(check, m)
		}
	}
	for _, m := range check {
		raw := in.MustCLI("", "message", "cat", "crash@example.test", "INBOX", fmt.Sprint(m.UID))
		i := strings.Index(raw, "Subject: ")
		if i < 0 {
			t.Fatalf("message %d has no Subject", m.UID)
		}
		body := raw[i:]
		if !strings.HasSuffix(body, strings.Repeat(m.Subject+" ", 200)+"\r\n") {
			t.Errorf("message %d (%s) is truncated", m.UID, m.Subject)
		}
		if h, ok := acked[m.Subject]; ok && h != sha256.Sum256([]byte(body)) {
			t.Errorf("message %s differs from what was sent", m.Subject)
		}
	}
	t.Logf("%d acknowledged before SIGKILL, %d stored after restart", len(acked), len(ms))
}

func TestLifecycle(t *testing.T) {
	in := New(t, "")
	// A second server on the same data directory is refused.
	out, err := Run(t, 30*time.Second, "", Binary(t), "--config", in.Config, "serve")
	if err == nil || !strings.Contains(out, "in use by another mailstead process") {
		t.Fatalf("second start: %v\n%s", err, out)
	}
	// The CLI works through the control socket while the server runs, and
	// the change is visible at once.
	in.AddAccount("bob@example.test", "bob-pw")
	if err := SendMail(in.Addr("smtp"), "a@example.net", []string{"bob@example.test"}, []byte("Subject: hi\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(in.Log(), `op=account.add ok=true`) {
		t.Error("account add did not go through the control socket")
	}
	// Admin endpoints.
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": `"ready":true`, "/metrics": `mailstead_smtp_messages_total{listener="smtp",result="accepted"} 1`} {
		resp, err := http.Get("http://" + in.Addr("admin") + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	// SIGTERM waits for a session in the middle of a transaction to end
	// (up to the shutdown timeout), and the message sent in it is kept.
	c, err := net.Dial("tcp", in.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	readReply := func() string {
		var last string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			last = l
			if len(l) < 4 || l[3] != '-' {
				return last
			}
		}
	}
	readReply()
	fmt.Fprintf(c, "EHLO x\r\n")
	readReply()
	fmt.Fprintf(c, "MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	readReply()
	readReply()
	readReply()
	done := make(chan struct{})
	go func() { in.Stop(); close(done) }()
	// Send the message only once the server is draining (it logs that
	// on SIGTERM), so that it is the drain that lets it through.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(in.Log(), `msg="shutting down"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown logged 30s after SIGTERM:\n%s", tail(in.Log(), 10))
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(c, "Subject: during shutdown\r\n\r\nstill delivered\r\n.\r\n")
	if r := readReply(); !strings.HasPrefix(r, "250") {
		t.Fatalf("message during drain: %q", r)
	}
	fmt.Fprintf(c, "QUIT\r\n")
	<-done
	if !strings.Contains(in.Log(), "mailstead stopped") {
		t.Errorf("no clean stop in log:\n%s", tail(in.Log(), 10))
	}
	in.Start()
	ms := listMessages(t, in, "bob@example.test", "INBOX")
	if len(ms) != 2 || ms[1].Subject != "during shutdown" {
		t.Fatalf("after restart: %+v", ms)
	}
	// Ready file is removed on stop and rewritten on start.
	if _, err := os.Stat(filepath.Join(in.Dir, "ready.json")); err != nil {
		t.Fatal(err)
	}
}
