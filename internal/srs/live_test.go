package srs

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const postsrsdBin = "/usr/sbin/postsrsd"

// tcpTable is a client for postsrsd 1.x's Postfix tcp_table endpoint.
type tcpTable struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *tcpTable) get(t *testing.T, key string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		if ch := key[i]; ch <= ' ' || ch >= 0x7f || ch == '%' {
			fmt.Fprintf(&b, "%%%02x", ch)
		} else {
			b.WriteByte(ch)
		}
	}
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "get %s\n", b.String()); err != nil {
		t.Fatal(err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(line, "\n")
}

// freePort returns a port that was free on ip a moment ago.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPostsrsd runs the real daemon in the foreground on loopback.
//
// postsrsd takes port numbers, not sockets, so the ports are picked free
// and then handed over. To keep other tests' listeners (on 127.0.0.1) from
// taking them in between, it listens on an address of its own in 127/8;
// should the ports be taken all the same, postsrsd exits and is started
// again on new ones.
func startPostsrsd(t *testing.T, secretFile string) (fwd, rev *tcpTable) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		fwd, rev, err := tryPostsrsd(t, secretFile)
		if err == nil {
			return fwd, rev
		}
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; trying other ports", attempt, err)
	}
}

func tryPostsrsd(t *testing.T, secretFile string) (fwd, rev *tcpTable, err error) {
	t.Helper()
	ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
	fport, rport := freePort(t, ip), freePort(t, ip)
	for fport == rport {
		rport = freePort(t, ip)
	}
	cmd := exec.Command(postsrsdBin, "-s", secretFile, "-d", "example.com", "-l", ip, "-4",
		"-f", fmt.Sprint(fport), "-r", fmt.Sprint(rport), "-t", "30")
	var stderr syncBuilder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var conns []net.Conn
	stop := func() {
		for _, c := range conns {
			c.Close()
		}
		cmd.Process.Kill()
		<-exited
	}
	// Bounded: 30 s of 50 ms steps.
	dial := func(port int) (*tcpTable, error) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			select {
			case <-exited:
				return nil, fmt.Errorf("postsrsd exited: %s", stderr.String())
			default:
			}
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, fmt.Sprint(port)), 5*time.Second)
			if err == nil {
				conns = append(conns, c)
				return &tcpTable{conn: c, r: bufio.NewReader(c)}, nil
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("postsrsd did not listen on %s:%d: %s", ip, port, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if fwd, err = dial(fport); err == nil {
		rev, err = dial(rport)
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	t.Cleanup(stop)
	return fwd, rev, nil
}

// syncBuilder is a strings.Builder safe for a process's output and the
// test reading it at the same time.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuilder) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuilder) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestPostsrsdLive compares Forward and Reverse with the real postsrsd on
// random addresses (differential test). It needs Debian's postsrsd package;
// the recorded vectors in TestPostsrsdVectors cover machines without it.
func TestPostsrsdLive(t *testing.T) {
	if _, err := os.Stat(postsrsdBin); err != nil {
		t.Skipf("postsrsd not installed (apt-get install postsrsd): %v", err)
	}
	secretFile := filepath.Join(t.TempDir(), "postsrsd.secret")
	if err := os.WriteFile(secretFile, []byte("live-new-secret\nlive-old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fwd, rev := startPostsrsd(t, secretFile)
	secrets, err := LoadSecrets(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	s := newSRS(t, secrets, Options{})
	oldOnly := newSRS(t, secrets[1:], Options{})

	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 5321))
	word := func(chars string, min, max int) string {
		n := min + rnd.IntN(max-min+1)
		b := make([]byte, n)
		for i := range b {
			b[i] = chars[rnd.IntN(len(chars))]
		}
		return string(b)
	}
	const localChars = "abcxyzABCXYZ0189.-+_=/"
	const hostChars = "abcxyzABCXYZ0189-"
	host := func() string {
		switch rnd.IntN(8) {
		case 0:
			return "EXAMPLE.com"
		default:
			return word(hostChars, 1, 12) + "." + word("abcXYZ", 2, 4)
		}
	}
	sender := func() string {
		local := word(localChars, 1, 20)
		switch rnd.IntN(6) {
		case 0:
			local = "SRS0" + string("=+-"[rnd.IntN(3)]) + local
		case 1:
			local = "srs1" + string("=+-"[rnd.IntN(3)]) + word("abcXYZ/+", 4, 4) + "=" + host() + "==" + local
		}
		return local + "@" + host()
	}
	mutate := func(a string) string {
		b := []byte(a)
		switch rnd.IntN(4) {
		case 0:
			return strings.ToLower(a)
		case 1:
			return strings.ToUpper(a)
		case 2:
			i := rnd.IntN(len(b))
			b[i] = localChars[rnd.IntN(len(localChars))]
			return string(b)
		default:
			return a[:1+rnd.IntN(len(a)-1)]
		}
	}
	// check compares our answer with postsrsd's reply.
	check := func(op, in, reply, got string, err error) {
		t.Helper()
		code, msg, _ := strings.Cut(reply, " ")
		if code == "200" {
			if err != nil || got != msg {
				t.Errorf("%s %q = %q, %v; postsrsd %q", op, in, got, err, msg)
			}
			return
		}
		want, known := postsrsdErrors[msg]
		switch {
		case !known:
			t.Errorf("%s %q: unmapped postsrsd reply %q", op, in, reply)
		case want == nil:
			if err != nil || got != in {
				t.Errorf("%s %q = %q, %v; postsrsd left it unchanged", op, in, got, err)
			}
		case errors.Is(err, want):
		case errors.Is(err, ErrSyntax) && strings.Contains(err.Error(), "empty host or user"):
			// Deliberately stricter than libsrs2.
		case len(in) == 4 && err != nil:
			// A bare "SRS0" or "SRS1": libsrs2's strchr(separators, x[4])
			// matches the terminating NUL and it then parses past the end
			// of the string (its answer varies); both refuse it.
		default:
			t.Errorf("%s %q = %q, %v; postsrsd %q", op, in, got, err, reply)
		}
	}

	for i := 0; i < 500; i++ {
		in := sender()
		out, err := s.Forward(in, "example.com")
		check("forward", in, fwd.get(t, in), out, err)
		if err != nil || !IsSRS(out) {
			continue
		}
		for _, addr := range []string{out, mutate(out), mutate(out)} {
			got, err := s.Reverse(addr)
			check("reverse", addr, rev.get(t, addr), got, err)
		}
		// Issued with the old secret: still verifies (rotation).
		if old, err := oldOnly.Forward(in, "example.com"); err == nil && IsSRS(old) {
			got, err := s.Reverse(old)
			check("reverse", old, rev.get(t, old), got, err)
		}
	}
	if !time.Now().UTC().Truncate(24 * time.Hour).Equal(today) {
		t.Skip("crossed midnight UTC while comparing; timestamps may differ")
	}
}
