package imapserver

import (
	"bytes"
	"compress/flate"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func TestCompress(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.CompressRelease = time.Second })
	for i := 0; i < 30; i++ {
		e.deliver("INBOX", msgMultipart)
	}
	held := func() float64 {
		var m dto.Metric
		if err := e.srv.metrics.compressors.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}

	c := e.dial()
	c.fail("COMPRESS DEFLATE", "BAD") // not before authentication
	c.ok("LOGIN joe@example.org " + `"` + testPass + `"`)
	has(t, c.ok("CAPABILITY"), " COMPRESS=DEFLATE")
	c.fail("COMPRESS GZIP", "BAD")
	c.ok("COMPRESS DEFLATE")
	c.compress()

	u := c.ok("SELECT INBOX")
	has(t, u, "* 30 EXISTS")
	if h := held(); h != 1 {
		t.Fatalf("a busy session holds %v compressors", h)
	}
	// A large response: many literals through the compressor.
	u = c.ok("FETCH 1:* (BODY.PEEK[] ENVELOPE)")
	if len(u) != 30 || !strings.Contains(u[29], "Gr=C3=BC=C3=9Fe aus K=C3=B6ln") {
		t.Fatalf("FETCH: %d responses, last %.200q", len(u), u[len(u)-1])
	}
	c.fail("COMPRESS DEFLATE", "NO [COMPRESSIONACTIVE]")

	// Waiting for the next command, the session gives its compressor
	// back after CompressRelease; the next response takes one again.
	waitFor(t, "compressor released", func() bool { return held() == 0 })
	has(t, c.ok("FETCH 1 (UID)"), "* 1 FETCH (UID 1)")

	// In IDLE the compressor goes back at once, and each report takes
	// it only while it is written.
	c.write("i IDLE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatal(l)
	}
	waitFor(t, "compressor released in IDLE", func() bool { return held() == 0 })
	e.deliver("INBOX", msgSimple)
	if l := c.readLine(); l != "* 31 EXISTS" {
		t.Fatalf("IDLE: %q", l)
	}
	c.readLine() // RECENT
	waitFor(t, "compressor released after report", func() bool { return held() == 0 })
	c.write("DONE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "i OK") {
		t.Fatal(l)
	}
	u = c.ok("LOGOUT")
	has(t, u, "* BYE")
	waitFor(t, "compressor released on logout", func() bool { return held() == 0 })
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting: %s", what)
}

// A client may send compressed data right behind the COMPRESS command,
// before it has read the OK; the server must not lose it.
func TestCompressPipelined(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)
	c := e.login()
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.DefaultCompression)
	io.WriteString(zw, "b SELECT INBOX\r\nc FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
	zw.Flush()
	c.write("a COMPRESS DEFLATE\r\n" + z.String())
	if l := c.readLine(); !strings.HasPrefix(l, "a OK") {
		t.Fatal(l)
	}
	c.compress()
	c.zw = zw
	zw.Reset(c.conn) // continue the client's stream on the connection
	for l := c.readLine(); !strings.HasPrefix(l, "b OK"); l = c.readLine() {
	}
	l := c.readLine()
	if !strings.Contains(l, "Subject: Hello invoice") {
		t.Fatalf("got %q", l)
	}
	has(t, c.ok("NOOP"), "c OK")
}

// Garbage instead of deflate data ends the session; it must not take
// the server down.
func TestCompressCorrupt(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.login()
	c.ok("COMPRESS DEFLATE")
	c.write("\xff\xff\xff\xff this is not deflate\r\n")
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("expected the connection to be closed")
	}
	if e.srv.panics.Load() != 0 {
		t.Fatal("server panicked")
	}
}

// A COMPRESS session driven by python's zlib, the way most clients
// (built on zlib) do it: raw deflate, sync flush after each command.
func TestCompressPythonZlib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required in CI")
		}
		t.Skip("python3 not installed")
	}
	e := newTestEnv(t, func(c *Config) { c.CompressRelease = 100 * time.Millisecond })
	e.deliver("INBOX", msgSimple)
	e.deliver("INBOX", msgMultipart)
	host, port, _ := net.SplitHostPort(e.addr)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/compress_session.py", host, port, "joe@example.org", testPass).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python zlib session: %v\n%s", err, out)
	}
}
