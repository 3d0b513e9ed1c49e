package smtpserver

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/account"
)

// proxyWrap wraps a listener as internal/server does for proxy = "v2":
// peers in trusted must send a v2 header within timeout, others are
// closed in Accept.
func proxyWrap(trusted netip.Prefix, timeout time.Duration) func(net.Listener) net.Listener {
	return func(l net.Listener) net.Listener {
		return &proxyproto.Listener{
			Listener:          l,
			ReadHeaderTimeout: timeout,
			ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
				if ap, err := netip.ParseAddrPort(o.Upstream.String()); err == nil && trusted.Contains(ap.Addr()) {
					return proxyproto.REQUIRE, nil
				}
				return proxyproto.REJECT, proxyproto.ErrInvalidUpstream
			},
			ValidateHeader: func(h *proxyproto.Header) error {
				if h.Version != 2 {
					return io.ErrUnexpectedEOF
				}
				return nil
			},
		}
	}
}

var loopback8 = netip.MustParsePrefix("127.0.0.0/8")

// proxyV2 is the v2 header a proxy sends for a client at src.
func proxyV2(t *testing.T, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), &net.TCPAddr{IP: net.IPv4(192, 0, 2, 254), Port: 25})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proxyLocal is a v2 LOCAL header, as HAProxy's health checks send.
func proxyLocal(t *testing.T) []byte {
	t.Helper()
	b, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialProxied connects, sends header and returns the raw connection.
func dialProxied(t *testing.T, addr string, header []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(header); err != nil {
		t.Fatal(err)
	}
	return c
}

func greeted(t *testing.T, c net.Conn) *client {
	t.Helper()
	cl := newClient(t, c)
	if r := cl.read(); r.code != 220 {
		t.Fatalf("greeting: %v", r)
	}
	return cl
}

// TestProxyClientAddress: the address from the PROXY header is the
// client's everywhere (Received header, log), in cleartext, after
// STARTTLS and with implicit TLS.
func TestProxyClientAddress(t *testing.T) {
	for _, tt := range []struct {
		name string
		role Role
		tls  string // "", "starttls", "implicit"
	}{
		{"mx cleartext", RoleMX, ""},
		{"mx starttls", RoleMX, "starttls"},
		{"submission starttls", RoleSubmission, "starttls"},
		{"submission implicit", RoleSubmission, "implicit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			e := newEnv(t, envOptions{role: tt.role, wrap: proxyWrap(loopback8, 3*time.Second), config: func(c *Config) {
				c.Logger = logs.logger()
				c.ImplicitTLS = tt.tls == "implicit"
			}})
			raw := dialProxied(t, e.addr, proxyV2(t, "192.0.2.10:40000"))
			var c *client
			if tt.tls == "implicit" {
				tc := tls.Client(raw, clientTLS())
				c = greeted(t, tc)
			} else {
				c = greeted(t, raw)
			}
			c.ehlo()
			if tt.tls == "starttls" {
				c.startTLS()
				c.ehlo()
			}
			from := "sender@remote.example"
			if tt.role == RoleSubmission {
				c.expect("235", "AUTH PLAIN %s", plainIR("", "bob@example.org", testPassword))
				from = "bob@example.org"
			}
			c.expect("250", "MAIL FROM:<%s>", from)
			c.expect("250", "RCPT TO:<alice@example.org>")
			msg := testMessage("proxied", "hi\r\n")
			if tt.role == RoleSubmission {
				msg = strings.Replace(msg, "Sender <sender@remote.example>", "bob@example.org", 1)
			}
			if r := c.data(msg); r.code != 250 {
				t.Fatalf("DATA: %v", r)
			}
			got, _ := e.inbox("alice@example.org")
			if len(got) != 1 || !strings.Contains(got[0], "Received: from client.example ([192.0.2.10])") {
				t.Fatalf("Received header does not name the proxied client:\n%.300q", got)
			}
			if !strings.Contains(logs.String(), "remote=192.0.2.10") || strings.Contains(logs.String(), "remote=127.0.0.1") {
				t.Errorf("log does not use the proxied address:\n%s", logs.String())
			}
		})
	}
}

// TestProxyAuthLimitPerClient: failed-auth limits count the proxied
// client, not the proxy every client shares.
func TestProxyAuthLimitPerClient(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission, wrap: proxyWrap(loopback8, 3*time.Second), auth: account.AuthOptions{MaxFailuresPerIP: 2}})
	login := func(src string) *client {
		c := greeted(t, dialProxied(t, e.addr, proxyV2(t, src)))
		c.ehlo()
		c.startTLS()
		c.ehlo()
		return c
	}
	bad := login("192.0.2.66:1000")
	for range 2 {
		bad.expect("535", "AUTH PLAIN %s", plainIR("", "alice@example.org", "guess"))
	}
	bad.expect("454 4.7.0", "AUTH PLAIN %s", plainIR("", "alice@example.org", testPassword))
	good := login("198.51.100.7:1000")
	good.expect("235", "AUTH PLAIN %s", plainIR("", "alice@example.org", testPassword))
}

// TestProxyGreetingPromptly: the banner follows the header at once, not
// after the header timeout (go-proxyproto's lazy read is forced first).
func TestProxyGreetingPromptly(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX, wrap: proxyWrap(loopback8, 10*time.Second)})
	start := time.Now()
	greeted(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.10:40000")))
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("greeting took %v", d)
	}
}

// TestProxyHealthChecks: a v2 LOCAL connection is served normally with
// the socket address; a trusted peer that sends no header is closed after
// the timeout without a reply; a connect-and-close and garbage instead of
// a header are dropped; an untrusted peer is closed at once. None of it
// logs above debug or counts as an error.
func TestProxyHealthChecks(t *testing.T) {
	var logs logBuffer
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{role: RoleMX, wrap: proxyWrap(loopback8, 300*time.Millisecond), config: func(c *Config) {
		c.Logger = logs.logger()
		c.Metrics = NewMetrics(reg)
		c.MaxConnsPerIP = 1 // LOCAL connections are the proxy's own: not limited
		c.MaxErrors = 1
		c.PregreetWait = 10 * time.Second                                 // not applied to health checks
		c.Exempt = []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")} // the real client below
	}})

	// LOCAL, twice at once: a full SMTP exchange like HAProxy's smtpchk.
	start := time.Now()
	l1 := greeted(t, dialProxied(t, e.addr, proxyLocal(t)))
	l2 := greeted(t, dialProxied(t, e.addr, proxyLocal(t)))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("health check greeting took %v: pre-greet wait applied", d)
	}
	for _, l := range []*client{l1, l2} {
		l.expect("250", "EHLO healthcheck.example")
		l.expect("221", "QUIT")
	}

	// A trusted peer without a header: closed after the timeout, silent.
	// The clock starts before the connection exists, so the server's
	// timer cannot have started earlier.
	start = time.Now()
	nohdr, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nohdr.Close()
	got, err := newClient(t, nohdr).waitClosed(30 * time.Second)
	if err != nil || got != "" {
		t.Fatalf("header-less connection: got %q, %v", got, err)
	}
	// Not before the 300ms timeout, and well before go-proxyproto's
	// default of 10s (which would mean the setting was ignored).
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("header-less connection closed after %v, want about the 300ms timeout", d)
	}

	// Connect and close, and SMTP without a header.
	cc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	cc.Close()
	junk, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	io.WriteString(junk, "EHLO x\r\n")
	if got, err := newClient(t, junk).waitClosed(5 * time.Second); err != nil || got != "" {
		t.Fatalf("connection without a PROXY header: got %q, %v", got, err)
	}

	// A real client through the proxy still works.
	c := greeted(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.10:40000")))
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	if r := c.data(testMessage("after checks", "x\r\n")); r.code != 250 {
		t.Fatal(r)
	}
	c.expect("221", "QUIT")
	c.waitClosed(5 * time.Second)

	if lines := logs.above(); len(lines) != 1 || !strings.Contains(lines[0], "msg=delivered") {
		t.Errorf("log lines above debug, want only the delivery:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(logs.String(), "PROXY LOCAL connection") {
		t.Error("LOCAL connection not logged at debug")
	}
	// The connect-and-close above is counted whenever its goroutine gets
	// to it, which nothing here waits for: wait for the counts.
	for _, tt := range []struct {
		outcome string
		want    float64
	}{{"health_check", 2}, {"served", 1}, {"proxy_header", 3}} {
		waitMetric(t, reg, "mailstead_smtp_connections_total", map[string]string{"listener": "test", "outcome": tt.outcome}, tt.want)
	}
	if got := metricValue(t, reg, "mailstead_smtp_sessions_closed_total", map[string]string{"listener": "test", "reason": "too_many_errors"}); got > 0 {
		t.Errorf("health checks counted as errors: %v", got)
	}
}

func TestProxyUntrustedPeer(t *testing.T) {
	var logs logBuffer
	// A header timeout far longer than any delay of a loaded machine: a
	// close before it shows the peer was refused at once, not timed out.
	const headerTimeout = time.Minute
	e := newEnv(t, envOptions{role: RoleMX, wrap: proxyWrap(netip.MustParsePrefix("192.0.2.0/24"), headerTimeout), config: func(c *Config) {
		c.Logger = logs.logger()
	}})
	c := dialProxied(t, e.addr, proxyV2(t, "198.51.100.1:1000"))
	if got, err := newClient(t, c).waitClosed(headerTimeout / 2); err != nil || got != "" {
		t.Fatalf("untrusted peer: got %q, %v (not closed within half the header timeout)", got, err)
	}
	if lines := logs.above(); len(lines) != 0 {
		t.Errorf("untrusted peer logged above debug: %v", lines)
	}
}

// TestProxyPerClientLimits: connection limits count proxied clients.
func TestProxyPerClientLimits(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX, wrap: proxyWrap(loopback8, 3*time.Second), config: func(c *Config) {
		c.MaxConnsPerIP = 1
		c.MaxConnsPerNet = 2
	}})
	a := greeted(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.1:1000")))
	refused := newClient(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.1:1001")))
	if r := refused.read(); !strings.HasPrefix(r.String(), "421 4.7.0") || !strings.Contains(r.msg, "address") {
		t.Fatalf("second connection of one client: %v", r)
	}
	greeted(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.2:1000")))
	net3 := newClient(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.3:1000")))
	if r := net3.read(); !strings.HasPrefix(r.String(), "421 4.7.0") || !strings.Contains(r.msg, "network") {
		t.Fatalf("third connection of one /24: %v", r)
	}
	greeted(t, dialProxied(t, e.addr, proxyV2(t, "198.51.100.1:1000")))
	a.expect("221", "QUIT")
	a.waitClosed(5 * time.Second)
	greeted(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.1:1002")))
}

// FuzzProxyHeader drives arbitrary bytes through go-proxyproto and our
// handling of its result: no panic, and a connection that is let through
// has a client address.
func FuzzProxyHeader(f *testing.F) {
	f.Add(proxyV2(&testing.T{}, "192.0.2.1:25"))
	f.Add(proxyLocal(&testing.T{}))
	f.Add([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 1000 25\r\nEHLO x\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("EHLO x\r\n"))
	f.Add([]byte{})
	s := &Server{cfg: Config{Name: "fuzz", Metrics: NewMetrics(nil)}, log: slogDiscard()}
	f.Fuzz(func(t *testing.T, in []byte) {
		srv, cl := net.Pipe()
		defer srv.Close()
		go func() {
			cl.Write(in)
			cl.Close()
		}()
		pc := proxyproto.NewConn(&pipeAddrs{srv}, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(time.Second))
		ip, local, ok := s.proxyHeader(pc)
		if ok && !ip.IsValid() {
			t.Fatalf("let through without an address (local %v)", local)
		}
	})
}

// pipeAddrs gives a net.Pipe end TCP addresses, as a socket has.
type pipeAddrs struct{ net.Conn }

func (p *pipeAddrs) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}
}
func (p *pipeAddrs) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
