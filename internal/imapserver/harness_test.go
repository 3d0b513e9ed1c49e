package imapserver

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// testAuth is a minimal real Authenticator for tests: it looks the account
// up in the store and compares the password with PasswordHash, which the
// tests set to "test:" + password. Test use only.
type testAuth struct{ st *sqlitestore.Store }

func (a testAuth) Authenticate(ctx context.Context, user, pass string, remote netip.Addr) (store.Account, error) {
	if user == "blocked@example.org" {
		return store.Account{}, account.ErrTooManyFailures
	}
	acct, err := a.st.GetAccount(ctx, user)
	if err != nil || acct.PasswordHash != "test:"+pass || !remote.IsLoopback() {
		return store.Account{}, fmt.Errorf("user %q: %w", user, account.ErrAuthFailed)
	}
	return acct, nil
}

type testEnv struct {
	t    testing.TB
	st   *sqlitestore.Store
	srv  *Server
	addr string
	acct store.Account
}

const testPass = "s3cret pass"

func newTestEnv(t testing.TB, tweak func(*Config)) *testEnv {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("IMAP_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.AddDomain(ctx, store.Domain{Name: "example.org"}); err != nil {
		t.Fatal(err)
	}
	acct, err := st.CreateAccount(ctx, store.Account{Address: "joe@example.org", Domain: "example.org", PasswordHash: "test:" + testPass})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Hostname:          "mail.example.org",
		Store:             st,
		Auth:              testAuth{st},
		AllowInsecureAuth: true,
		Logger:            logger,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	return &testEnv{t: t, st: st, srv: srv, addr: l.Addr().String(), acct: acct}
}

// deliver stores a message in the named mailbox of the test account, as
// SMTP delivery would.
func (e *testEnv) deliver(mailbox, msg string) store.Delivered {
	e.t.Helper()
	return e.deliverWith(mailbox, msg, 0, nil, time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC))
}

func (e *testEnv) deliverWith(mailbox, msg string, flags store.Flags, kws []string, date time.Time) store.Delivered {
	e.t.Helper()
	ctx := context.Background()
	data := []byte(strings.ReplaceAll(msg, "\n", "\r\n"))
	p, err := message.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		e.t.Fatal(err)
	}
	mb, err := e.st.GetMailbox(ctx, e.acct.ID, mailbox)
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := e.st.Deliver(ctx, store.Delivery{
		Blob:    bytes.NewReader(data),
		Summary: p.Encode(),
		Recipients: []store.Recipient{{
			AccountID: e.acct.ID, MailboxID: mb.ID,
			Prefix: []byte("Return-Path: <sender@example.com>\r\nDelivered-To: joe@example.org\r\n"),
			Flags:  flags, Keywords: kws,
			InternalDate: date,
		}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return d[0]
}

// client is a raw IMAP client for scripted sessions.
type client struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	n    int
	zw   *flate.Writer // after COMPRESS DEFLATE
	// timeout bounds the wait for each response line; 10 s when zero.
	timeout time.Duration
}

// compress switches the client to COMPRESS=DEFLATE; call it after the
// server's OK. Bytes the server sent after the OK, already in c.br, are
// compressed and go through the decompressor too.
func (c *client) compress() {
	c.br = bufio.NewReader(flate.NewReader(c.br))
	c.zw, _ = flate.NewWriter(c.conn, flate.BestSpeed)
}

func (e *testEnv) dial() *client {
	e.t.Helper()
	conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	c := &client{t: e.t, conn: conn, br: bufio.NewReader(conn)}
	g := c.readLine()
	if !strings.HasPrefix(g, "* OK [CAPABILITY ") {
		e.t.Fatalf("greeting: %q", g)
	}
	return c
}

func (e *testEnv) login() *client {
	c := e.dial()
	c.ok("LOGIN joe@example.org " + strconv.Quote(testPass))
	return c
}

var literalRE = regexp.MustCompile(`~?\{(\d+)\}$`)

// readLine reads one response line; literals are inlined as they are, so
// a line with literals is returned including their data.
func (c *client) readLine() string {
	c.t.Helper()
	timeout := c.timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	var b strings.Builder
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (got %q)", err, b.String()+l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		b.WriteString(l)
		m := literalRE.FindStringSubmatch(l)
		if m == nil {
			return b.String()
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.br, buf); err != nil {
			c.t.Fatalf("read literal: %v", err)
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

func (c *client) write(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if c.zw != nil {
		if _, err := io.WriteString(c.zw, s); err != nil {
			c.t.Fatal(err)
		}
		if err := c.zw.Flush(); err != nil {
			c.t.Fatal(err)
		}
		return
	}
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// run sends a command with a fresh tag and returns the untagged responses
// and the tagged completion line (without the tag).
func (c *client) run(cmd string) (untagged []string, done string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.write(tag + " " + cmd + "\r\n")
	for {
		l := c.readLine()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		untagged = append(untagged, l)
	}
}

// ok runs cmd and fails the test unless it completes with OK.
func (c *client) ok(cmd string) []string {
	c.t.Helper()
	u, d := c.run(cmd)
	if !strings.HasPrefix(d, "OK") {
		c.t.Fatalf("%s: %s (untagged %q)", cmd, d, u)
	}
	return u
}

// fail runs cmd and expects a completion starting with want (e.g. "NO [TRYCREATE]").
func (c *client) fail(cmd, want string) []string {
	c.t.Helper()
	u, d := c.run(cmd)
	if !strings.HasPrefix(d, want) {
		c.t.Fatalf("%s: got %q, want %q", cmd, d, want)
	}
	return u
}

// has fails unless some line contains want.
func has(t *testing.T, lines []string, want string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(l, want) {
			return
		}
	}
	t.Fatalf("no line contains %q in:\n%s", want, strings.Join(lines, "\n"))
}

func hasNot(t *testing.T, lines []string, unwanted string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(l, unwanted) {
			t.Fatalf("unexpected %q in:\n%s", unwanted, strings.Join(lines, "\n"))
		}
	}
}

func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mail.example.org"},
		DNSNames:     []string{"mail.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

const msgSimple = `From: Alice <alice@example.com>
To: joe@example.org
Subject: Hello invoice
Date: Tue, 5 Mar 2024 09:00:00 +0100
Message-ID: <m1@example.com>

Hello Joe, here is the invoice text.
`

const msgMultipart = `From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.com>
To: joe@example.org, Team: a@example.com, b@example.com;
Subject: =?UTF-8?B?UmVjaG51bmcgw5xiZXJzaWNodA==?=
Date: Wed, 6 Mar 2024 12:00:00 +0000
Message-ID: <m2@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe aus K=C3=B6ln
--outer
Content-Type: application/pdf; name="scan.pdf"
Content-Disposition: attachment; filename="scan.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcOkw7zDtsOfCg==
--outer--
`
