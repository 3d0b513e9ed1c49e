package smtpserver

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestPregreet(t *testing.T) {
	var logs logBuffer
	reg := prometheus.NewRegistry()
	// The rude client must get its EHLO in before the wait is over: long
	// enough that a busy machine cannot delay the write past it.
	const wait = time.Second
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) {
		c.PregreetWait = wait
		c.Logger = logs.logger()
		c.Metrics = NewMetrics(reg)
	}})

	// A client that talks first is refused.
	rude, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := newClient(t, rude)
	rc.write("EHLO spambot.example\r\n")
	got, err := rc.waitClosed(5 * time.Second)
	if err != nil || !strings.HasPrefix(got, "554 5.7.1 ") || strings.Contains(got, "220") {
		t.Fatalf("client talking first: got %q, %v", got, err)
	}

	// A patient client gets the banner after the wait and is served. (The
	// clock starts before the connection, so before the server's wait.)
	start := time.Now()
	c := dial(t, e.addr)
	if d := time.Since(start); d < wait {
		t.Errorf("banner after %v, before the pre-greet wait of %v", d, wait)
	}
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	if r := c.data(testMessage("patient", "x\r\n")); r.code != 250 {
		t.Fatal(r)
	}

	// Connect-and-close (a TCP health check): at most a debug line.
	cc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	cc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "client closed before the greeting") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range logs.above() {
		if !strings.Contains(l, "msg=delivered") && !strings.Contains(l, "talked before the greeting") {
			t.Errorf("unexpected log line: %s", l)
		}
	}
	if got := metricValue(t, reg, "mailstead_smtp_connections_total", map[string]string{"listener": "test", "outcome": "pregreet"}); got != 1 {
		t.Errorf("pregreet refusals = %v", got)
	}
}

// TestPregreetScope: no wait for exempt clients or submission.
func TestPregreetScope(t *testing.T) {
	for name, o := range map[string]envOptions{
		"exempt": {role: RoleMX, config: func(c *Config) {
			c.PregreetWait = 10 * time.Second
			c.Exempt = []netip.Prefix{loopback8}
		}},
		"submission": {role: RoleSubmission, config: func(c *Config) { c.PregreetWait = 10 * time.Second }},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, o)
			start := time.Now()
			dial(t, e.addr)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("banner after %v", d)
			}
		})
	}
}

func TestMaxErrorsCleartext(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) {
		c.MaxErrors = 3
		c.Metrics = NewMetrics(reg)
	}})
	c := dial(t, e.addr)
	c.expect("502", "MAIL FROM:<sender@remote.example>") // go-smtp's own reply: before EHLO
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("550 5.1.1", "RCPT TO:<nobody@example.org>") // ours
	c.expect("554 5.7.1", "RCPT TO:<someone@foreign.example>")
	c.write("RCPT TO:<nobody2@example.org>\r\n")
	got, err := c.waitClosed(5 * time.Second)
	if err != nil || !strings.HasPrefix(got, "421 4.7.0 "+testHostname+" Too many errors") || strings.Count(got, "\r\n") != 1 {
		t.Fatalf("error over the limit: got %q, %v", got, err)
	}
	waitMetric(t, reg, "mailstead_smtp_sessions_closed_total", map[string]string{"listener": "test", "reason": "too_many_errors"}, 1)
	waitMetric(t, reg, "mailstead_smtp_connections_active", map[string]string{"listener": "test"}, 0)
}

func TestMaxErrorsTLS(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) { c.MaxErrors = 3 }})
	c := dial(t, e.addr)
	c.expect("502", "RCPT TO:<alice@example.org>") // cleartext error: counted too
	c.ehlo()
	c.startTLS()
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	c.expect("550 5.1.1", "RCPT TO:<nobody@example.org>")
	c.expect("550 5.1.1", "RCPT TO:<nobody2@example.org>")
	c.expect("421 4.7.0", "RCPT TO:<nobody3@example.org>")
	if _, err := c.waitClosed(5 * time.Second); err != nil {
		t.Fatalf("not closed after the 421: %v", err)
	}
}

// TestGoSMTPErrorLimitRewritten: go-smtp's own limit (four unknown
// commands) ends with our 421 4.7.0 instead of its "500 5.5.1".
func TestGoSMTPErrorLimitRewritten(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	c := dial(t, e.addr)
	for range 3 {
		c.expect("50", "XYZZY")
	}
	c.write("XYZZY\r\n")
	got, err := c.waitClosed(5 * time.Second)
	if err != nil || !strings.HasPrefix(got, "50") || !strings.Contains(got, "\r\n421 4.7.0 ") || strings.Contains(got, "5.5.1") {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestMaxMessagesPerConnection(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) {
		c.MaxMessagesPerConn = 2
		c.Metrics = NewMetrics(reg)
	}})
	c := dial(t, e.addr)
	c.ehlo()
	for _, subj := range []string{"one", "two"} {
		c.expect("250", "MAIL FROM:<sender@remote.example>")
		c.expect("250", "RCPT TO:<alice@example.org>")
		if r := c.data(testMessage(subj, "x\r\n")); r.code != 250 {
			t.Fatal(r)
		}
	}
	c.expect("421 4.7.0", "MAIL FROM:<sender@remote.example>")
	if _, err := c.waitClosed(5 * time.Second); err != nil {
		t.Fatalf("not closed: %v", err)
	}
	if got, _ := e.inbox("alice@example.org"); len(got) != 2 {
		t.Fatalf("%d messages stored", len(got))
	}
	waitMetric(t, reg, "mailstead_smtp_sessions_closed_total", map[string]string{"listener": "test", "reason": "too_many_messages"}, 1)
	// A new connection may send again.
	c = dial(t, e.addr)
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
}

func TestConnectionRate(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) {
		c.ConnRatePerMinute = 2
		c.Metrics = NewMetrics(reg)
	}})
	for range 2 {
		c := dial(t, e.addr)
		c.expect("221", "QUIT")
	}
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	if r := cl.read(); !strings.HasPrefix(r.String(), "421 4.7.0") || !strings.Contains(r.msg, "per minute") {
		t.Fatalf("third connection in a minute: %v", r)
	}
	if got := metricValue(t, reg, "mailstead_smtp_connections_total", map[string]string{"listener": "test", "outcome": "refused_rate_limit"}); got != 1 {
		t.Errorf("rate refusals = %v", got)
	}
}

// TestExemptNetworks: exempt clients skip connection and session limits.
func TestExemptNetworks(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) {
		c.MaxConnsPerIP = 1
		c.ConnRatePerMinute = 1
		c.MaxErrors = 1
		c.MaxMessagesPerConn = 1
		c.Exempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}})
	c1 := dial(t, e.addr)
	c2 := dial(t, e.addr)
	c2.ehlo()
	for range 3 {
		c2.expect("50", "XYZZY")
		c2.expect("250", "RSET")
	}
	for range 2 {
		c2.expect("250", "MAIL FROM:<sender@remote.example>")
		c2.expect("250", "RSET")
	}
	c1.expect("221", "QUIT")
}

// waitMetric waits until a metric has a value (it may be updated just
// after the client sees the connection close).
func waitMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: the machine may be busy
	for {
		got := metricValue(t, reg, name, labels)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMaxErrorsImplicitTLS(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission, config: func(c *Config) {
		c.ImplicitTLS = true
		c.MaxErrors = 2
	}})
	c := dialTLS(t, e.addr)
	c.ehlo()
	for range 2 {
		c.expect("535 5.7.8", "AUTH PLAIN %s", plainIR("", "alice@example.org", "guess"))
	}
	c.expect("421 4.7.0", "AUTH PLAIN %s", plainIR("", "alice@example.org", "guess"))
	if _, err := c.waitClosed(5 * time.Second); err != nil {
		t.Fatalf("not closed after the 421: %v", err)
	}
}
