package loadgen

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// testServer is a real SMTP server (go-smtp) whose backend records every
// message it accepts, so tests can check what arrived.
type testServer struct {
	addr    string
	accepts atomic.Int64

	// rejectRcpt and rejectData, if set, return an error (an
	// *smtp.SMTPError) to refuse a recipient or a message.
	rejectRcpt func(to string) error
	rejectData func(seq int) error
	// block, if set, makes Data wait until it is closed.
	block chan struct{}

	mu    sync.Mutex
	got   map[int][]received // by sequence number
	other []string           // messages without a parsable Message-ID
}

type received struct {
	size    int
	rcpt    string
	subject string
	tls     bool
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// startServer starts ts on 127.0.0.1:0. tlsConfig enables STARTTLS.
func startServer(t *testing.T, ts *testServer, tlsConfig *tls.Config) *testServer {
	t.Helper()
	ts.got = map[int][]received{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{ts: ts, conn: c}, nil
	}))
	s.Domain = "test.localhost"
	s.TLSConfig = tlsConfig
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.MaxMessageBytes = 1 << 20
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	go s.Serve(countingListener{l, &ts.accepts})
	t.Cleanup(func() { s.Close() })
	if ts.block != nil {
		// Registered after s.Close, so it runs first: release blocked
		// sessions before closing the server.
		t.Cleanup(func() { close(ts.block) })
	}
	return ts
}

// refusedAddr returns a loopback address that refuses connections: its
// port is bound by a socket that never listens, held until the test ends.
// (A port that was merely free a moment ago may meanwhile be taken by a
// listener of a test running in parallel.)
func refusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

type testSession struct {
	ts   *testServer
	conn *smtp.Conn
	rcpt []string
}

func (s *testSession) Reset()        { s.rcpt = nil }
func (s *testSession) Logout() error { return nil }
func (s *testSession) Mail(from string, opts *smtp.MailOptions) error {
	s.rcpt = nil
	return nil
}

func (s *testSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.ts.rejectRcpt != nil {
		if err := s.ts.rejectRcpt(to); err != nil {
			return err
		}
	}
	s.rcpt = append(s.rcpt, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.ts.block != nil {
		<-s.ts.block
		return &smtp.SMTPError{Code: 421, Message: "shutting down"}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "unparsable message"}
	}
	id := msg.Header.Get("Message-ID")
	num, _, _ := strings.Cut(strings.TrimPrefix(id, "<"), ".")
	seq, err := strconv.Atoi(num)
	if err != nil {
		s.ts.mu.Lock()
		s.ts.other = append(s.ts.other, id)
		s.ts.mu.Unlock()
		return nil
	}
	if s.ts.rejectData != nil {
		if err := s.ts.rejectData(seq); err != nil {
			return err
		}
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	s.ts.got[seq] = append(s.ts.got[seq], received{
		size:    len(data),
		rcpt:    strings.Join(s.rcpt, ","),
		subject: msg.Header.Get("Subject"),
		tls:     isTLS,
	})
	return nil
}

// testCert makes a self-signed certificate for 127.0.0.1 and localhost.
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestRunDelivers(t *testing.T) {
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{testCert(t)}}
	tests := []struct {
		name      string
		n, c      int
		size      int
		perConn   int
		startTLS  bool
		noPipe    bool
		to        []string
		wantConns int // 0: don't check exactly
	}{
		{name: "c1", n: 50, c: 1, size: 4096, wantConns: 1},
		{name: "c8", n: 200, c: 8, size: 2048, wantConns: 8},
		{name: "c1-perconn", n: 50, c: 1, size: 1000, perConn: 7, wantConns: 8},
		{name: "c8-perconn", n: 100, c: 8, size: 4096, perConn: 3},
		{name: "starttls-c1", n: 20, c: 1, size: 4096, startTLS: true, wantConns: 1},
		{name: "starttls-c4-perconn", n: 40, c: 4, size: 8192, perConn: 5, startTLS: true},
		{name: "lockstep", n: 30, c: 2, size: 3000, noPipe: true, wantConns: 2},
		{name: "rotate", n: 30, c: 3, size: 500, to: []string{"a@test.localhost", "bb@test.localhost", "ccc@test.localhost"}},
		{name: "tiny", n: 5, c: 1, size: 1},
		{name: "large", n: 3, c: 3, size: 300_000, wantConns: 3},
		{name: "c-above-n", n: 3, c: 8, size: 100, wantConns: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var srvTLS *tls.Config
			if tc.startTLS {
				srvTLS = tlsConfig
			}
			ts := startServer(t, &testServer{}, srvTLS)
			to := tc.to
			if to == nil {
				to = []string{"rcpt@test.localhost"}
			}
			cfg := Config{
				Addr:         ts.addr,
				Messages:     tc.n,
				Concurrency:  tc.c,
				Size:         tc.size,
				From:         "bench@test.localhost",
				To:           to,
				PerConn:      tc.perConn,
				StartTLS:     tc.startTLS,
				NoPipelining: tc.noPipe,
				IOTimeout:    10 * time.Second,
				Timeout:      30 * time.Second,
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			t.Log(res)
			if res.Messages != tc.n || res.Attempted != tc.n || res.ErrorCount() != 0 {
				t.Fatalf("messages %d attempted %d errors %v %v, want %d clean", res.Messages, res.Attempted, res.Errors, res.FirstErrors, tc.n)
			}
			if got := ts.accepts.Load(); int(got) != res.Connections {
				t.Errorf("server accepted %d connections, result says %d", got, res.Connections)
			}
			if tc.wantConns != 0 && res.Connections != tc.wantConns {
				t.Errorf("connections %d, want %d", res.Connections, tc.wantConns)
			}
			if tc.perConn > 0 {
				if min := (tc.n + tc.perConn - 1) / tc.perConn; res.Connections < min {
					t.Errorf("connections %d, want at least %d with %d per connection", res.Connections, min, tc.perConn)
				}
			}
			if !(0 < res.P50 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) {
				t.Errorf("latencies not ordered: %v %v %v %v", res.P50, res.P90, res.P99, res.Max)
			}
			if res.Rate <= 0 {
				t.Errorf("rate %v", res.Rate)
			}

			ts.mu.Lock()
			defer ts.mu.Unlock()
			if len(ts.other) != 0 {
				t.Errorf("messages without our Message-ID: %q", ts.other)
			}
			var total int64
			for seq := 1; seq <= tc.n; seq++ {
				got := ts.got[seq]
				if len(got) != 1 {
					t.Errorf("message %d arrived %d times", seq, len(got))
					continue
				}
				r := got[0]
				total += int64(r.size)
				if tc.size >= 400 && r.size != tc.size {
					t.Errorf("message %d is %d bytes, want %d", seq, r.size, tc.size)
				}
				if want := to[(seq-1)%len(to)]; r.rcpt != want {
					t.Errorf("message %d to %q, want %q", seq, r.rcpt, want)
				}
				if want := fmt.Sprintf("mailstead-bench %s %0*d/%d", res.RunID, len(strconv.Itoa(tc.n)), seq, tc.n); r.subject != want {
					t.Errorf("message %d subject %q", seq, r.subject)
				}
				if r.tls != tc.startTLS {
					t.Errorf("message %d tls %v, want %v", seq, r.tls, tc.startTLS)
				}
			}
			if len(ts.got) != tc.n {
				t.Errorf("server has %d distinct messages, want %d", len(ts.got), tc.n)
			}
			if total != res.Bytes {
				t.Errorf("server got %d bytes, result says %d", total, res.Bytes)
			}
		})
	}
}

// TestRunRejections checks that refused messages are counted as errors by
// reply code, not as successes, and that the session recovers (RSET) and
// carries on, with and without pipelining.
func TestRunRejections(t *testing.T) {
	to := []string{"ok@test.localhost", "busy@test.localhost", "nobody@test.localhost"}
	const n = 90
	for _, noPipe := range []bool{false, true} {
		for _, c := range []int{1, 4} {
			t.Run(fmt.Sprintf("nopipe=%v/c=%d", noPipe, c), func(t *testing.T) {
				ts := startServer(t, &testServer{
					rejectRcpt: func(to string) error {
						switch {
						case strings.HasPrefix(to, "busy@"):
							return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
						case strings.HasPrefix(to, "nobody@"):
							return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
						}
						return nil
					},
					rejectData: func(seq int) error {
						if seq%5 == 0 {
							return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "queue full"}
						}
						return nil
					},
				}, nil)
				// Expected outcome per message.
				want := map[string]int{}
				wantOK := 0
				for seq := 1; seq <= n; seq++ {
					switch {
					case seq%3 == 2:
						want["451"]++
					case seq%3 == 0:
						want["550"]++
					case seq%5 == 0:
						want["451"]++
					default:
						wantOK++
					}
				}
				res, err := Run(context.Background(), Config{
					Addr: ts.addr, Messages: n, Concurrency: c, Size: 1500,
					From: "bench@test.localhost", To: to, NoPipelining: noPipe,
					IOTimeout: 10 * time.Second, Timeout: 30 * time.Second,
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Log(res)
				if res.Messages != wantOK {
					t.Errorf("messages %d, want %d", res.Messages, wantOK)
				}
				if fmt.Sprint(res.Errors) != fmt.Sprint(want) {
					t.Errorf("errors %v, want %v (first: %v)", res.Errors, want, res.FirstErrors)
				}
				// Rejections must not have broken the sessions.
				if res.Connections != c {
					t.Errorf("connections %d, want %d", res.Connections, c)
				}
				ts.mu.Lock()
				defer ts.mu.Unlock()
				if len(ts.got) != wantOK {
					t.Errorf("server stored %d messages, want %d", len(ts.got), wantOK)
				}
				for seq, got := range ts.got {
					if seq%3 != 1 || seq%5 == 0 || len(got) != 1 {
						t.Errorf("message %d stored %d times, should have been refused", seq, len(got))
					}
				}
			})
		}
	}
}

// TestRunTimeouts checks that a server that stops answering cannot hold the
// run beyond its bounds.
func TestRunTimeouts(t *testing.T) {
	t.Run("io-timeout", func(t *testing.T) {
		ts := startServer(t, &testServer{block: make(chan struct{})}, nil)
		// The I/O timeout must also cover connecting, the greeting and
		// EHLO, which on a loaded machine under -race can take a while:
		// a dial that timed out would break the connection count below.
		cfg := Config{
			Addr: ts.addr, Messages: 3, Concurrency: 1, Size: 500,
			From: "a@test.localhost", To: []string{"b@test.localhost"},
			IOTimeout: time.Second, Timeout: 2 * time.Minute,
		}
		start := time.Now()
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Messages != 0 || res.Errors["timeout"] != 3 {
			t.Errorf("got %v, want 3 timeouts", res)
		}
		// Each message timed out on its own connection.
		if res.Connections != 3 {
			t.Errorf("connections %d, want 3", res.Connections)
		}
		// One after the other, each waited for its reply until the I/O
		// timeout (and not, say, for the overall timeout).
		if d := time.Since(start); d < 3*cfg.IOTimeout {
			t.Errorf("took %v, less than 3 I/O timeouts of %v", d, cfg.IOTimeout)
		}
	})
	t.Run("overall-timeout", func(t *testing.T) {
		ts := startServer(t, &testServer{block: make(chan struct{})}, nil)
		// The server never answers DATA, so only the overall timeout can
		// end the run before the (much longer) I/O timeout. It is long
		// enough for all four workers to connect and start a transaction
		// on a loaded machine.
		cfg := Config{
			Addr: ts.addr, Messages: 1000, Concurrency: 4, Size: 500,
			From: "a@test.localhost", To: []string{"b@test.localhost"},
			IOTimeout: 2 * time.Minute, Timeout: time.Second,
		}
		start := time.Now()
		res, err := Run(context.Background(), cfg)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d < cfg.Timeout || d >= cfg.IOTimeout {
			t.Errorf("took %v, want the overall timeout of %v to end it, not the I/O timeout of %v", d, cfg.Timeout, cfg.IOTimeout)
		}
		if res.Messages != 0 || res.Attempted != 4 || res.Errors["canceled"] != 4 {
			t.Errorf("got %v (%v), want 4 canceled of 4 attempted", res, res.Errors)
		}
	})
	t.Run("refused", func(t *testing.T) {
		// A port with nothing listening: every message fails to dial, and
		// the run still ends.
		addr := refusedAddr(t)
		res, err := Run(context.Background(), Config{
			Addr: addr, Messages: 20, Concurrency: 2,
			From: "a@test.localhost", To: []string{"b@test.localhost"},
			IOTimeout: time.Second, Timeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors["dial"] != 20 || res.Messages != 0 {
			t.Errorf("got %v, want 20 dial errors", res.Errors)
		}
	})
}

func TestStartTLSNotOffered(t *testing.T) {
	ts := startServer(t, &testServer{}, nil)
	res, err := Run(context.Background(), Config{
		Addr: ts.addr, Messages: 2, Concurrency: 1,
		From: "a@test.localhost", To: []string{"b@test.localhost"}, StartTLS: true,
		Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["tls"] != 2 || res.Messages != 0 {
		t.Errorf("got %v, want 2 tls errors", res.Errors)
	}
}

func TestResolveLoopback(t *testing.T) {
	tests := []struct {
		addr    string
		want    string // "" when an error is expected
		notLoop bool   // the error is ErrNotLoopback
	}{
		{"127.0.0.1:25", "127.0.0.1:25", false},
		{"127.3.4.5:2525", "127.3.4.5:2525", false},
		{"[::1]:25", "[::1]:25", false},
		{"[::ffff:127.0.0.1]:25", "127.0.0.1:25", false},
		{"10.1.2.3:25", "", true},
		{"192.0.2.1:25", "", true},
		{"[2001:db8::1]:25", "", true},
		{"[::ffff:10.0.0.1]:25", "", true},
		{"0.0.0.0:25", "", true},
		{"[::]:25", "", true},
		{":25", "", true},
		{"127.0.0.1", "", false},
		{"127.0.0.1:0", "", false},
		{"127.0.0.1:smtp", "", false},
		{"127.0.0.1:65536", "", false},
	}
	for _, tc := range tests {
		got, err := ResolveLoopback(context.Background(), tc.addr)
		if tc.want != "" {
			if err != nil || got != tc.want {
				t.Errorf("%q: got %q, %v; want %q", tc.addr, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q: got %q, want error", tc.addr, got)
		} else if errors.Is(err, ErrNotLoopback) != tc.notLoop {
			t.Errorf("%q: error %v, ErrNotLoopback %v", tc.addr, err, tc.notLoop)
		}
	}

	// localhost comes from /etc/hosts; whatever it maps to must be loopback.
	if got, err := ResolveLoopback(context.Background(), "localhost:25"); err != nil {
		t.Errorf("localhost: %v", err)
	} else if ap, err := netipAddrPort(got); err != nil || !ap.IsLoopback() {
		t.Errorf("localhost resolved to %q", got)
	}

	// Run refuses before connecting.
	_, err := Run(context.Background(), Config{
		Addr: "192.0.2.1:25", Messages: 1, Concurrency: 1,
		From: "a@test.localhost", To: []string{"b@test.localhost"},
	})
	if !errors.Is(err, ErrNotLoopback) {
		t.Errorf("Run to 192.0.2.1: %v, want ErrNotLoopback", err)
	}
}

func netipAddrPort(s string) (interface{ IsLoopback() bool }, error) {
	h, _, err := net.SplitHostPort(s)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(h)
	if ip == nil {
		return nil, fmt.Errorf("not an IP: %q", h)
	}
	return ip, nil
}

func TestConfigValidation(t *testing.T) {
	base := Config{Addr: "127.0.0.1:1", Messages: 1, Concurrency: 1, From: "a@b", To: []string{"c@d"}}
	bad := map[string]func(*Config){
		"zero messages":    func(c *Config) { c.Messages = 0 },
		"zero conns":       func(c *Config) { c.Concurrency = 0 },
		"huge conns":       func(c *Config) { c.Concurrency = MaxConcurrency + 1 },
		"negative size":    func(c *Config) { c.Size = -1 },
		"huge size":        func(c *Config) { c.Size = MaxSize + 1 },
		"no recipients":    func(c *Config) { c.To = nil },
		"crlf in from":     func(c *Config) { c.From = "a@b>\r\nRCPT TO:<x@y" },
		"space in to":      func(c *Config) { c.To = []string{"a b@c"} },
		"empty from":       func(c *Config) { c.From = "" },
		"negative perconn": func(c *Config) { c.PerConn = -1 },
		"bad run id":       func(c *Config) { c.RunID = "a b" },
	}
	for name, mod := range bad {
		cfg := base
		mod(&cfg)
		if _, err := Run(context.Background(), cfg); err == nil || strings.Contains(err.Error(), "stopped") {
			t.Errorf("%s: err %v, want validation error", name, err)
		}
	}
}

func TestBuildMessage(t *testing.T) {
	for _, line := range corpusLines {
		if len(line) < 40 || len(line) > maxLineLen || line[0] == '.' {
			t.Fatalf("corpus line %q: must be 40..%d chars, not starting with '.'", line, maxLineLen)
		}
	}
	to := []string{"x@y.example", "longer.recipient@y.example"}
	b := newBuilder("run1", "from@y.example", to, 0, 12345)
	now := time.Date(2026, 3, 1, 9, 5, 3, 0, time.UTC)
	seqs := []int{1, 2, 99, 12345}
	hdr := map[int]int{} // header-only length by seq
	for _, seq := range seqs {
		hdr[seq] = len(b.build(seq, now).data) // size 0: header only
	}
	sizes := []int{0, 1, 1024, 4096, 65536, 1<<20 + 7}
	for s := hdr[1] - 5; s < hdr[1]+400; s++ {
		sizes = append(sizes, s)
	}
	for _, size := range sizes {
		b.size = size
		for _, seq := range seqs {
			m := b.build(seq, now)
			want := max(size, hdr[seq])
			if size == hdr[seq]+1 {
				want = hdr[seq] // a 1-byte body cannot be a line
			}
			if len(m.data) != want {
				t.Fatalf("size %d seq %d: got %d bytes, want %d", size, seq, len(m.data), want)
			}
			checkWire(t, m.data)
			if m.to != to[(seq-1)%2] {
				t.Fatalf("seq %d to %q", seq, m.to)
			}
		}
	}
	m := b.build(7, time.Now())
	if !bytes.Contains(m.data, []byte("Subject: mailstead-bench run1 00007/12345\r\n")) ||
		!bytes.Contains(m.data, []byte("Message-ID: <"+MessageID("run1", 7)+">\r\n")) {
		t.Errorf("header:\n%s", m.data[:200])
	}
	if _, err := mail.ReadMessage(bytes.NewReader(m.data)); err != nil {
		t.Errorf("not a valid message: %v", err)
	}
}

// checkWire verifies data is CRLF text that needs no dot-stuffing, with
// body lines of at most maxLineLen characters.
func checkWire(t *testing.T, data []byte) {
	t.Helper()
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		t.Fatalf("message does not end in CRLF")
	}
	lines := bytes.Split(data[:len(data)-2], []byte("\r\n"))
	inBody := false
	for _, l := range lines {
		if bytes.ContainsAny(l, "\r\n") {
			t.Fatalf("bare CR or LF in %q", l)
		}
		if len(l) > 0 && l[0] == '.' {
			t.Fatalf("line starts with a dot: %q", l)
		}
		if inBody && len(l) > maxLineLen {
			t.Fatalf("body line of %d chars", len(l))
		}
		if len(l) == 0 {
			inBody = true
		}
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i))
	}
	tests := []struct {
		vals []time.Duration
		p    int
		want time.Duration
	}{
		{nil, 50, 0},
		{v[:1], 50, 1},
		{v[:1], 99, 1},
		{v, 50, 50},
		{v, 90, 90},
		{v, 99, 99},
		{v, 100, 100},
		{v[:10], 99, 10},
		{v[:10], 50, 5},
		{v[:3], 50, 2},
	}
	for _, tc := range tests {
		if got := percentile(tc.vals, tc.p); got != tc.want {
			t.Errorf("p%d of %d values: %v, want %v", tc.p, len(tc.vals), got, tc.want)
		}
	}
}

func TestResultFormats(t *testing.T) {
	r := Result{
		RunID: "abc", Requested: 10, Concurrency: 2, Size: 4096, Attempted: 10, Messages: 8,
		Errors:   map[string]int{"451": 1, "io": 1},
		Duration: 2 * time.Second, Rate: 4, P50: 1500 * time.Microsecond, P90: 2 * time.Millisecond,
		P99: 3 * time.Millisecond, Max: 4 * time.Millisecond, Connections: 3, RSSBefore: 10 << 20, RSSAfter: 12 << 20,
	}
	s := r.String()
	for _, want := range []string{"sent=8/10", "c=2", "errors=2 (451:1,io:1)", "rate=4.0/s", "p50=1.5ms", "p99=3ms", "rss=10.0MiB->12.0MiB"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, missing %q", s, want)
		}
	}
	if strings.Contains(s, "\n") {
		t.Errorf("String() has a newline: %q", s)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"messages": 8.0, "rate": 4.0, "p50_ms": 1.5, "duration_s": 2.0, "rss_after_bytes": float64(12 << 20)} {
		if m[k] != want {
			t.Errorf("json %s = %v, want %v (%s)", k, m[k], want, data)
		}
	}
	if e, _ := m["errors"].(map[string]any); e["451"] != 1.0 {
		t.Errorf("json errors %v", m["errors"])
	}
}

func TestReadRSS(t *testing.T) {
	v, err := parseVmRSS([]byte("Name:\tx\nVmPeak:\t 100 kB\nVmRSS:\t   2048 kB\nThreads: 1\n"))
	if err != nil || v != 2048*1024 {
		t.Errorf("parse: %d, %v", v, err)
	}
	for _, bad := range []string{"Name: x\n", "VmRSS: 12 MB\n", "VmRSS: x kB\n", "VmRSS:\n"} {
		if _, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// Our own process has an RSS.
	if v, err := ReadRSS(os.Getpid()); err != nil || v <= 0 {
		t.Errorf("own RSS: %d, %v", v, err)
	}
	if _, err := ReadRSS(0); err == nil {
		t.Error("pid 0: no error")
	}
}

// BenchmarkRun measures the client together with an in-process go-smtp
// server, as a check that the load tool itself is not the bottleneck.
func BenchmarkRun(b *testing.B) {
	for _, c := range []int{1, 16} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			ts := &testServer{got: map[int][]received{}}
			s := smtp.NewServer(smtp.BackendFunc(func(conn *smtp.Conn) (smtp.Session, error) {
				return &testSession{ts: ts, conn: conn}, nil
			}))
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go s.Serve(l)
			defer s.Close()
			b.ResetTimer()
			res, err := Run(context.Background(), Config{
				Addr: l.Addr().String(), Messages: max(b.N, c), Concurrency: c, Size: 4096,
				From: "a@test.localhost", To: []string{"b@test.localhost"}, Timeout: time.Minute,
			})
			if err != nil || res.ErrorCount() != 0 {
				b.Fatalf("%v %v", err, res.Errors)
			}
			b.ReportMetric(res.Rate, "msgs/s")
			b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
		})
	}
}
