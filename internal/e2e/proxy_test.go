package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// proxyConfig has an MX listener behind PROXY v2 (trusting only
// 127.0.0.1, so other loopback addresses are untrusted peers), a plain MX
// listener next to it, submission on both kinds, and admin. Loopback is not
// exempt from the abuse limits, so they apply to the proxied addresses.
//
// The PROXY header timeout runs from when the server starts reading the
// header, which on a busy machine under the race detector can be a while
// after the client sent it; 1s keeps real clients from being timed out
// while header-less connections still end soon.
const proxyConfig = `
hostname = "mail.example.test"
data_dir = "data"
log_level = "debug"

[tls]
self_signed = true

[[listener]]
name = "mx-proxy"
protocol = "smtp"
address = "127.0.0.1:0"
proxy = "v2"
trusted_proxies = ["127.0.0.1/32"]
proxy_header_timeout = "1s"

[[listener]]
name = "mx"
protocol = "smtp"
address = "127.0.0.1:0"

[[listener]]
name = "sub-proxy"
protocol = "submission"
address = "127.0.0.1:0"
proxy = "v2"
trusted_proxies = ["127.0.0.1/32"]
proxy_header_timeout = "1s"

[[listener]]
name = "sub"
protocol = "submission"
address = "127.0.0.1:0"

[[listener]]
name = "admin"
protocol = "admin"
address = "127.0.0.1:0"

[limits]
auth_failure_delay = "100ms"
exempt_networks = []
pregreet_wait = "100ms"
`

// smtpConn is a raw SMTP conversation for exact reply checks.
type smtpConn struct {
	t  testing.TB
	c  net.Conn
	tp *textproto.Conn
}

// dialSMTP connects to addr (from local, if set), writes header (a PROXY
// header, if any) and returns the conversation before the greeting.
func dialSMTP(t testing.TB, addr string, local string, header []byte) (*smtpConn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	if header != nil {
		if _, err := c.Write(header); err != nil {
			c.Close()
			return nil, err
		}
	}
	return &smtpConn{t: t, c: c, tp: textproto.NewConn(c)}, nil
}

func (s *smtpConn) read() (string, error) {
	code, msg, err := s.tp.ReadResponse(0)
	if err != nil && code == 0 {
		return "", err
	}
	return fmt.Sprintf("%d %s", code, msg), nil
}

// cmd sends a line and returns the reply ("250 ...").
func (s *smtpConn) cmd(format string, args ...any) (string, error) {
	if err := s.tp.PrintfLine(format, args...); err != nil {
		return "", err
	}
	return s.read()
}

// expect is cmd returning an error unless the reply starts with want.
func (s *smtpConn) expect(want, format string, args ...any) error {
	r, err := s.cmd(format, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
	}
	if !strings.HasPrefix(r, want) {
		return fmt.Errorf("%s: got %q, want %q", fmt.Sprintf(format, args...), r, want)
	}
	return nil
}

func (s *smtpConn) startTLS() error {
	if err := s.expect("220", "STARTTLS"); err != nil {
		return err
	}
	tc := tls.Client(s.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return err
	}
	s.c, s.tp = tc, textproto.NewConn(tc)
	return nil
}

// closedSilently reports whether the server closes the connection within
// d without sending anything.
func (s *smtpConn) closedSilently(d time.Duration) error {
	s.c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(s.c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		return fmt.Errorf("not closed: %v (got %q)", err, b)
	}
	if len(b) > 0 {
		return fmt.Errorf("server sent %q", b)
	}
	return nil
}

func (s *smtpConn) Close() { s.c.Close() }

func v2Header(t testing.TB, src string) []byte {
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), &net.TCPAddr{IP: net.IPv4(192, 0, 2, 254), Port: 25})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func v2Local(t testing.TB) []byte {
	b, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendVia runs one SMTP transaction on a fresh connection.
func sendVia(t testing.TB, addr, local string, header []byte, from, to, subject string) error {
	c, err := dialSMTP(t, addr, local, header)
	if err != nil {
		return err
	}
	defer c.Close()
	if r, err := c.read(); err != nil || !strings.HasPrefix(r, "220 ") {
		return fmt.Errorf("greeting %q: %v", r, err)
	}
	for _, step := range [][2]string{
		{"250", "EHLO client.example.net"},
		{"250", "MAIL FROM:<" + from + ">"},
		{"250", "RCPT TO:<" + to + ">"},
		{"354", "DATA"},
	} {
		if err := c.expect(step[0], "%s", step[1]); err != nil {
			return err
		}
	}
	if err := c.expect("250", "Subject: %s\r\n\r\nhello\r\n.", subject); err != nil {
		return err
	}
	return c.expect("221", "QUIT")
}

// logLevels counts the server's log lines per level and returns the
// lines above debug.
func logLevels(log string) (map[string]int, []string) {
	n := map[string]int{}
	var above []string
	for _, l := range strings.Split(log, "\n") {
		i := strings.Index(l, "level=")
		if i < 0 {
			continue
		}
		lv, _, _ := strings.Cut(l[i+len("level="):], " ")
		n[lv]++
		if lv != "DEBUG" {
			above = append(above, l)
		}
	}
	return n, above
}

// unexpectedLines are lines above debug other than startup, shutdown and
// delivery lines.
func unexpectedLines(above []string) []string {
	var out []string
	for _, l := range above {
		switch {
		case strings.Contains(l, "msg=delivered"), strings.Contains(l, "msg=listening"),
			strings.Contains(l, "msg=\"mailstead started\""), strings.Contains(l, "level=INFO") && !strings.Contains(l, "listener="),
			strings.Contains(l, "env=MAILSTEAD_TEST_DNS_ZONE"): // the harness's DNS, warned about at start
		default:
			out = append(out, l)
		}
	}
	return out
}

func metric(t testing.TB, in *Instance, line string) string {
	t.Helper()
	resp, err := http.Get("http://" + in.Addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), line+" ") {
			return strings.TrimPrefix(sc.Text(), line+" ")
		}
	}
	return "0"
}

func ready(t testing.TB, in *Instance) bool {
	resp, err := http.Get("http://" + in.Addr("admin") + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && strings.Contains(string(b), `"ready":true`)
}

// TestProxyHealthCheckStorm is the proof the old stack failed: 1,000
// health checks (PROXY v2 LOCAL with an SMTP exchange, LOCAL and close,
// plain connect-and-close, header-less connections from the trusted proxy)
// while 20 real clients deliver through PROXY v2 and one through the plain
// listener. Every real session must succeed, the server stays responsive,
// and the health checks leave no log lines above debug.
func TestProxyHealthCheckStorm(t *testing.T) {
	in := New(t, proxyConfig)
	in.AddAccount("alice@example.test", "pw")
	proxied := in.Addr("mx-proxy")
	start := time.Now()

	// Each real session delivers at least minPerSession messages and goes
	// on until the health checks are over (at most maxPerSession).
	const checks, sessions, minPerSession, maxPerSession, workers = 1000, 20, 3, 40, 16
	var kinds [4]atomic.Int64 // local+smtp, local+close, connect+close, no header
	var checkErrs []string
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(checkErrs) < 20 {
			checkErrs = append(checkErrs, fmt.Sprintf(format, args...))
		}
	}
	localHdr := v2Local(t)
	var next atomic.Int64
	var wg, checkWG sync.WaitGroup
	var checksDone atomic.Bool
	for range workers {
		checkWG.Add(1)
		go func() {
			defer checkWG.Done()
			for {
				i := next.Add(1) - 1
				if i >= checks {
					return
				}
				switch {
				case i%10 == 0: // trusted peer, no header: closed after 1s
					kinds[3].Add(1)
					c, err := dialSMTP(t, proxied, "", nil)
					if err != nil {
						fail("dial: %v", err)
						continue
					}
					if err := c.closedSilently(30 * time.Second); err != nil {
						fail("header-less: %v", err)
					}
					c.Close()
				case i%2 == 0: // HAProxy smtpchk: LOCAL, banner, EHLO, QUIT
					kinds[0].Add(1)
					c, err := dialSMTP(t, proxied, "", localHdr)
					if err != nil {
						fail("dial: %v", err)
						continue
					}
					if r, err := c.read(); err != nil || !strings.HasPrefix(r, "220 ") {
						fail("LOCAL greeting %q: %v", r, err)
					} else if err := c.expect("250", "EHLO haproxy.example"); err != nil {
						fail("LOCAL: %v", err)
					} else if err := c.expect("221", "QUIT"); err != nil {
						fail("LOCAL: %v", err)
					}
					c.Close()
				case i%5 == 1: // LOCAL, then gone
					kinds[1].Add(1)
					c, err := dialSMTP(t, proxied, "", localHdr)
					if err != nil {
						fail("dial: %v", err)
						continue
					}
					c.Close()
				default: // plain TCP connect-and-close
					kinds[2].Add(1)
					c, err := dialSMTP(t, proxied, "", nil)
					if err != nil {
						fail("dial: %v", err)
						continue
					}
					c.Close()
				}
			}
		}()
	}

	var checksTook time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		checkWG.Wait()
		checksTook = time.Since(start)
		checksDone.Store(true)
	}()

	// The real sessions, in flight while the checks run.
	var sent atomic.Int64
	var slowest atomic.Int64
	errs := make(chan error, sessions*maxPerSession+1)
	for s := range sessions {
		hdr := v2Header(t, fmt.Sprintf("192.0.2.%d:%d", s+1, 40000+s))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := 0; m < maxPerSession && (m < minPerSession || !checksDone.Load()); m++ {
				t0 := time.Now()
				err := sendVia(t, proxied, "", hdr, "sender@example.net", "alice@example.test", fmt.Sprintf("storm %d-%d", s, m))
				for d := int64(time.Since(t0)); ; {
					old := slowest.Load()
					if d <= old || slowest.CompareAndSwap(old, d) {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("session %d message %d: %w", s, m, err)
				} else {
					sent.Add(1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := sendVia(t, in.Addr("mx"), "", nil, "sender@example.net", "alice@example.test", "plain listener"); err != nil {
			errs <- fmt.Errorf("plain listener: %w", err)
		}
	}()
	wg.Wait()
	close(errs)
	elapsed := time.Since(start)
	for err := range errs {
		t.Error(err)
	}
	for _, e := range checkErrs {
		t.Errorf("health check: %s", e)
	}
	if !ready(t, in) {
		t.Error("/readyz not ready after the storm")
	}
	// A stalled server shows as failed real sessions (each has a minute
	// for its transaction); how long the slowest one took depends on the
	// machine and is only logged below.

	ms := listMessages(t, in, "alice@example.test", "INBOX")
	if int64(len(ms)) != sent.Load()+1 {
		t.Errorf("%d messages stored, want %d", len(ms), sent.Load()+1)
	}
	var uid uint32
	for _, m := range ms {
		if strings.HasPrefix(m.Subject, "storm ") {
			uid = m.UID
			break
		}
	}
	raw := in.MustCLI("", "message", "cat", "alice@example.test", "INBOX", fmt.Sprint(uid))
	if !strings.Contains(raw, "([192.0.2.") {
		t.Errorf("Received header does not show the proxied client:\n%.400s", raw)
	}
	healthy := metric(t, in, `mailstead_smtp_connections_total{listener="mx-proxy",outcome="health_check"}`)
	dropped := metric(t, in, `mailstead_smtp_connections_total{listener="mx-proxy",outcome="proxy_header"}`)
	served := metric(t, in, `mailstead_smtp_connections_total{listener="mx-proxy",outcome="served"}`)
	if want := fmt.Sprint(kinds[0].Load() + kinds[1].Load()); healthy != want {
		t.Errorf("health_check connections %s, want %s", healthy, want)
	}
	if want := fmt.Sprint(kinds[2].Load() + kinds[3].Load()); dropped != want {
		t.Errorf("connections without a header %s, want %s", dropped, want)
	}
	if want := fmt.Sprint(sent.Load()); served != want {
		t.Errorf("served %s, want %s", served, want)
	}

	counts, above := logLevels(in.Log())
	if bad := unexpectedLines(above); len(bad) > 0 {
		t.Errorf("%d unexpected log lines above debug, e.g.:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
	t.Logf("%d health checks (LOCAL+SMTP %d, LOCAL+close %d, connect+close %d, header-less %d) in %v, while %d clients delivered %d messages (one connection each) through PROXY v2, plus 1 on the plain listener; all done in %v; slowest session %v; log lines by level %v",
		checks, kinds[0].Load(), kinds[1].Load(), kinds[2].Load(), kinds[3].Load(), checksTook.Round(time.Millisecond), sessions, sent.Load(), elapsed.Round(time.Millisecond), time.Duration(slowest.Load()).Round(time.Millisecond), counts)
}

// TestProxyListenerBasics: untrusted peers and header-less trusted peers
// are dropped without a reply; submission over STARTTLS through PROXY
// sees the proxied address (auth limits included).
func TestProxyListenerBasics(t *testing.T) {
	in := New(t, proxyConfig)
	in.AddAccount("alice@example.test", "pw")

	// Untrusted peer (127.0.0.5 is loopback but not in trusted_proxies),
	// even with a well-formed header: closed at once.
	c, err := dialSMTP(t, in.Addr("mx-proxy"), "127.0.0.5", v2Header(t, "192.0.2.1:1000"))
	if err != nil {
		t.Fatal(err)
	}
	// (With a valid header, only the peer check can have refused it, not
	// the header timeout.)
	if err := c.closedSilently(30 * time.Second); err != nil {
		t.Errorf("untrusted peer: %v", err)
	}
	c.Close()

	// A trusted peer that sends nothing: closed after the 1s timeout.
	// The clock starts before the connection exists, so the server's
	// timer cannot have started earlier.
	start := time.Now()
	c, err = dialSMTP(t, in.Addr("mx-proxy"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.closedSilently(30 * time.Second); err != nil {
		t.Errorf("header-less trusted peer: %v", err)
	}
	// Not before the configured timeout, and well before go-proxyproto's
	// default of 10s (which would mean the setting was ignored).
	if d := time.Since(start); d < time.Second || d >= 5*time.Second {
		t.Errorf("header-less trusted peer closed after %v, want after the configured 1s", d)
	}
	c.Close()

	// Submission through PROXY: the Received header names the client.
	s, err := dialSMTP(t, in.Addr("sub-proxy"), "", v2Header(t, "198.51.100.20:5555"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, err := s.read(); err != nil || !strings.HasPrefix(r, "220") {
		t.Fatalf("greeting %q %v", r, err)
	}
	for _, step := range []func() error{
		func() error { return s.expect("250", "EHLO laptop") },
		s.startTLS,
		func() error { return s.expect("250", "EHLO laptop") },
		func() error { return s.expect("235", "AUTH PLAIN %s", plain("alice@example.test", "pw")) },
		func() error { return s.expect("250", "MAIL FROM:<alice@example.test>") },
		func() error { return s.expect("250", "RCPT TO:<alice@example.test>") },
		func() error { return s.expect("354", "DATA") },
		func() error {
			return s.expect("250", "From: alice@example.test\r\nSubject: submitted via proxy\r\n\r\nhi\r\n.")
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	raw := in.MustCLI("", "message", "cat", "alice@example.test", "INBOX", "1")
	for _, want := range []string{"from laptop ([198.51.100.20])", "with ESMTPSA id", "Message-ID: <", "Date: "} {
		if !strings.Contains(raw, want) {
			t.Errorf("submitted message lacks %q:\n%.500s", want, raw)
		}
	}
	_, above := logLevels(in.Log())
	if bad := unexpectedLines(above); len(bad) > 0 {
		for _, l := range bad {
			// Only the submission's own lines are expected.
			if !strings.Contains(l, "remote=198.51.100.20") {
				t.Errorf("unexpected log line: %s", l)
			}
		}
	}
}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

// inheritableListener binds a loopback TCP port (port 0: the kernel picks
// a free one) for a child process, which gets the socket as fd 3 through
// ExtraFiles. Handing over the bound socket, rather than a port number
// that was free a moment ago, leaves no window in which a test running in
// parallel could take the port.
func inheritableListener(t testing.TB) (addr string, f *os.File) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() // f holds its own descriptor of the socket
	f, err = l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return l.Addr().String(), f
}

// haproxyStat returns a server's row of HAProxy's "show stat" by column
// name, check_status without the mark of a check in progress.
func haproxyStat(sock, backend, server string) (map[string]string, error) {
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) < 2 {
		return nil, fmt.Errorf("show stat: %v: %q", err, b)
	}
	for _, rec := range recs[1:] {
		if len(rec) > 1 && rec[0] == backend && rec[1] == server {
			m := map[string]string{}
			for i, k := range recs[0] {
				if i < len(rec) {
					m[k] = rec[i]
				}
			}
			// "* L7OK": the last check said L7OK and the next one is in
			// progress (with checks every 100ms, often the case).
			m["check_status"] = strings.TrimPrefix(m["check_status"], "* ")
			return m, nil
		}
	}
	return nil, fmt.Errorf("no row %s/%s", backend, server)
}

// TestHAProxy puts a real HAProxy in front of the binary, as deployed:
// send-proxy-v2 with SMTP health checks every 100ms.
func TestHAProxy(t *testing.T) {
	haproxy := Need(t, "haproxy")
	in := New(t, proxyConfig)
	in.AddAccount("alice@example.test", "pw")
	dir := t.TempDir()
	sock := filepath.Join(dir, "haproxy.sock")
	front, frontFile := inheritableListener(t)
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 10s
frontend smtp
    bind fd@3
    default_backend mx
backend mx
    option smtpchk EHLO haproxy.example.test
    server mailstead %s send-proxy-v2 check inter 100ms fall 2 rise 1
`, sock, in.Addr("mx-proxy"))
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var hlog strings.Builder
	var hmu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, haproxy, "-db", "-f", cfgFile)
	cmd.Stdout = writerFunc(func(p []byte) { hmu.Lock(); hlog.Write(p); hmu.Unlock() })
	cmd.Stderr = cmd.Stdout
	cmd.ExtraFiles = []*os.File{frontFile} // fd 3: the frontend's socket
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	frontFile.Close() // HAProxy has it now
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	haproxyLog := func() string { hmu.Lock(); defer hmu.Unlock(); return hlog.String() }

	// Wait until HAProxy has checked the server and found it up.
	var st map[string]string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		st, err = haproxyStat(sock, "mx", "mailstead")
		if err == nil && st["status"] == "UP" && st["check_status"] == "L7OK" {
			break
		}
		select {
		case <-done:
			t.Fatalf("haproxy exited:\n%s", haproxyLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not UP with L7OK: %v %v\nhaproxy:\n%s\nmailstead:\n%s", st, err, haproxyLog(), tail(in.Log(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Mail from 127.0.0.2 through HAProxy: the real client address is
	// recorded.
	if err := sendVia(t, front, "127.0.0.2", nil, "sender@example.net", "alice@example.test", "through haproxy"); err != nil {
		t.Fatalf("through haproxy: %v\nmailstead:\n%s", err, tail(in.Log(), 20))
	}
	raw := in.MustCLI("", "message", "cat", "alice@example.test", "INBOX", "1")
	if !strings.Contains(raw, "Received: from client.example.net ([127.0.0.2])") {
		t.Errorf("Received header lacks the real client address:\n%.400s", raw)
	}
	if !strings.Contains(in.Log(), "msg=delivered") || !strings.Contains(in.Log(), "remote=127.0.0.2") {
		t.Error("delivery not logged with the real client address")
	}

	// Let the health checks run a while (100ms interval): until the
	// server has answered at least 10 of them.
	var nchecks int
	deadline = time.Now().Add(30 * time.Second)
	for {
		checks := metric(t, in, `mailstead_smtp_connections_total{listener="mx-proxy",outcome="health_check"}`)
		fmt.Sscan(checks, &nchecks)
		if nchecks >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d health checks seen as PROXY LOCAL after 30s\nhaproxy:\n%s", nchecks, haproxyLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, err := haproxyStat(sock, "mx", "mailstead")
	if err != nil {
		t.Fatal(err)
	}
	if st["status"] != "UP" || st["check_status"] != "L7OK" || st["chkfail"] != "0" || st["chkdown"] != "0" {
		t.Errorf("haproxy server state: status %s check %s chkfail %s chkdown %s", st["status"], st["check_status"], st["chkfail"], st["chkdown"])
	}
	if !ready(t, in) {
		t.Error("/readyz not ready")
	}

	// An untrusted peer is refused; a header-less trusted peer times out.
	c, err := dialSMTP(t, in.Addr("mx-proxy"), "127.0.0.3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.closedSilently(30 * time.Second); err != nil {
		t.Errorf("untrusted peer: %v", err)
	}
	c.Close()
	c, err = dialSMTP(t, in.Addr("mx-proxy"), "127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.closedSilently(30 * time.Second); err != nil {
		t.Errorf("header-less trusted peer: %v", err)
	}
	c.Close()

	_, above := logLevels(in.Log())
	if bad := unexpectedLines(above); len(bad) > 0 {
		t.Errorf("unexpected log lines above debug:\n%s", strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
	if strings.Contains(haproxyLog(), "DOWN") {
		t.Errorf("haproxy saw the server down:\n%s", haproxyLog())
	}
	if os.Getenv("MS_DUMP_LOG") != "" {
		t.Log(in.Log())
	}
	t.Logf("%d HAProxy health checks answered as PROXY LOCAL; haproxy: status %s, check %s, chkfail %s", nchecks, st["status"], st["check_status"], st["chkfail"])
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }
