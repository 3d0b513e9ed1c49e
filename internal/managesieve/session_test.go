package managesieve

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-crypt/crypt/algorithm/shacrypt"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

const testPass = "s3cret pass"

type testEnv struct {
	t    *testing.T
	st   *sqlitestore.Store
	srv  *Server
	addr string
	acct store.Account
	tls  *tls.Config
}

func selfSigned(t *testing.T) *tls.Config {
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
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// cheapHash is a SHA512-CRYPT hash (as imported from docker-mailserver)
// with few rounds: argon2id under the race detector makes every login
// take seconds, and tests log in often.
func cheapHash(t *testing.T, pass string) string {
	t.Helper()
	h, err := shacrypt.New(shacrypt.WithSHA512(), shacrypt.WithIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.Hash(pass)
	if err != nil {
		t.Fatal(err)
	}
	return "{SHA512-CRYPT}" + d.Encode()
}

func newTestEnv(t *testing.T, tweak func(*Config)) *testEnv {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("MANAGESIEVE_TEST_LOG") != "" {
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
	hash := cheapHash(t, testPass)
	acct, err := st.CreateAccount(ctx, store.Account{Address: "joe@example.org", Domain: "example.org", PasswordHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	auth := account.NewAuthenticator(st, account.AuthOptions{FailureDelay: time.Millisecond, MaxFailuresPerIP: 1000})
	tc := selfSigned(t)
	cfg := Config{Hostname: "mail.example.org", Store: st, Auth: auth, TLSConfig: tc, Logger: logger}
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
		if n := srv.panics.Load(); n != 0 {
			t.Errorf("%d session panics", n)
		}
	})
	return &testEnv{t: t, st: st, srv: srv, addr: l.Addr().String(), acct: acct, tls: tc}
}

// client is a raw ManageSieve connection.
type client struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func (e *testEnv) dial() *client {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	cl := &client{t: e.t, conn: c, br: bufio.NewReader(c)}
	return cl
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// response reads lines up to and including the final OK, NO or BYE line,
// expanding literals, and returns them joined with "\n".
func (c *client) response() string {
	c.t.Helper()
	var lines []string
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (after %q)", err, lines)
		}
		l = strings.TrimSuffix(l, "\r\n")
		if strings.HasPrefix(l, "{") && strings.HasSuffix(l, "}") {
			var n int
			fmt.Sscanf(l, "{%d}", &n)
			buf := make([]byte, n)
			if _, err := io.ReadFull(c.br, buf); err != nil {
				c.t.Fatal(err)
			}
			l = "{" + string(buf) + "}"
		}
		lines = append(lines, l)
		if strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "NO") || strings.HasPrefix(l, "BYE") {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *client) cmd(s string) string {
	c.t.Helper()
	c.send(s + "\r\n")
	return c.response()
}

func (c *client) expect(s, prefix string) string {
	c.t.Helper()
	got := c.cmd(s)
	last := got[strings.LastIndexByte(got, '\n')+1:]
	if !strings.HasPrefix(last, prefix) {
		c.t.Fatalf("%q: got %q, want prefix %q", s, got, prefix)
	}
	return got
}

func (c *client) startTLS() {
	c.t.Helper()
	c.expect("STARTTLS", "OK")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
	c.br = bufio.NewReader(tc)
	caps := c.response()
	if !strings.Contains(caps, `"SASL" "PLAIN"`) || strings.Contains(caps, "STARTTLS") {
		c.t.Fatalf("caps after TLS: %s", caps)
	}
}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func lit(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

func TestSession(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.dial()
	greet := c.response()
	for _, want := range []string{`"IMPLEMENTATION" "mailstead"`, `"SASL" ""`, `"STARTTLS"`, `"VERSION" "1.0"`, `"SIEVE" "body `, "vacation", "OK "} {
		if !strings.Contains(greet, want) {
			t.Fatalf("greeting lacks %q:\n%s", want, greet)
		}
	}
	c.expect(`AUTHENTICATE "PLAIN" "`+plain("joe@example.org", testPass)+`"`, "NO (ENCRYPT-NEEDED)")
	c.expect(`LISTSCRIPTS`, `NO "Authenticate first"`)
	c.startTLS()
	c.expect(`AUTHENTICATE "PLAIN" "`+plain("joe@example.org", "wrong")+`"`, `NO "Authentication failed"`)
	c.expect(`AUTHENTICATE "DIGEST-MD5"`, "NO")
	// Without initial response: the server asks with an empty challenge.
	c.send(`AUTHENTICATE "PLAIN"` + "\r\n")
	if l, _ := c.br.ReadString('\n'); l != "\"\"\r\n" {
		t.Fatalf("challenge %q", l)
	}
	c.expect(lit(plain("joe@example.org", testPass)), "OK")
	c.expect("CAPABILITY", "OK")
	if caps := c.cmd("CAPABILITY"); !strings.Contains(caps, `"OWNER" "joe@example.org"`) {
		t.Errorf("caps: %s", caps)
	}
	c.expect(`AUTHENTICATE "PLAIN" ""`, `NO "Already authenticated"`)

	c.expect(`HAVESPACE "main" 100`, "OK")
	c.expect(`HAVESPACE "main" 99999999`, "NO (QUOTA/MAXSIZE)")
	c.expect(`HAVESPACE "a/b" 1`, `NO "invalid character '/' in script name"`)
	got := c.expect(`PUTSCRIPT "main" `+lit("require \"fileinto\";\r\nif header :contains \"subject\" \"x\" {\r\n  filein \"y\";\r\n}\r\n"), "NO")
	if !strings.Contains(got, `3:3: unknown command \"filein\"`) {
		t.Errorf("putscript error: %s", got)
	}
	script := "require \"fileinto\";\r\nif header :contains \"subject\" \"x\" {\r\n  fileinto \"y\";\r\n}\r\n"
	c.expect(`PUTSCRIPT "main" `+lit(script), "OK")
	c.expect(`PUTSCRIPT "other" "keep;"`, "OK")
	if got := c.expect("LISTSCRIPTS", "OK"); !strings.HasPrefix(got, "\"main\"\n\"other\"\nOK") {
		t.Errorf("list: %q", got)
	}
	c.expect(`SETACTIVE "nope"`, "NO (NONEXISTENT)")
	c.expect(`SETACTIVE "main"`, "OK")
	if got := c.expect("LISTSCRIPTS", "OK"); !strings.HasPrefix(got, "\"main\" ACTIVE\n\"other\"\nOK") {
		t.Errorf("list: %q", got)
	}
	if got := c.expect(`GETSCRIPT "main"`, "OK"); !strings.HasPrefix(got, "{"+script+"}\n") {
		t.Errorf("getscript: %q", got)
	}
	c.expect(`GETSCRIPT "nope"`, "NO (NONEXISTENT)")
	c.expect(`DELETESCRIPT "main"`, "NO (ACTIVE)")
	c.expect(`RENAMESCRIPT "main" "other"`, "NO (ALREADYEXISTS)")
	c.expect(`RENAMESCRIPT "nope" "x"`, "NO (NONEXISTENT)")
	c.expect(`RENAMESCRIPT "main" {7+}`+"\r\nfilters", "OK")
	if got := c.expect("LISTSCRIPTS", "OK"); !strings.HasPrefix(got, "\"filters\" ACTIVE\n\"other\"\nOK") {
		t.Errorf("list after rename: %q", got)
	}
	sc, err := e.st.GetSieveScript(context.Background(), e.acct.ID, "filters")
	if err != nil || !sc.Active || sc.Content != script {
		t.Errorf("stored %+v %v", sc, err)
	}
	c.expect(`CHECKSCRIPT "keep;"`, "OK")
	if got := c.expect(`CHECKSCRIPT "keep; \"x\";"`, "NO"); !strings.Contains(got, `1:7: expected a command, found string`) {
		t.Errorf("checkscript: %q", got)
	}
	if got := c.expect(`NOOP "abc"`, "OK"); got != `OK (TAG "abc") "Done"` {
		t.Errorf("noop: %q", got)
	}
	c.expect(`SETACTIVE ""`, "OK")
	c.expect(`DELETESCRIPT "filters"`, "OK")
	c.expect(`GETSCRIPT "filters"`, "NO (NONEXISTENT)")
	c.expect(`BOGUS`, `NO "Unknown command BOGUS"`)
	c.expect(`PUTSCRIPT "x"`, `NO "2 arguments expected"`)
	c.expect(`PUTSCRIPT "x" "a\q"`, `NO "invalid escape in quoted string"`)
	c.expect("UNAUTHENTICATE", "OK")
	c.expect("LISTSCRIPTS", "NO")
	c.expect("LOGOUT", "OK")
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after logout: %v", err)
	}
	// Global scripts (account 0) are out of reach: the user only sees
	// their own.
	if list, _ := e.st.ListSieveScripts(context.Background(), 0); len(list) != 0 {
		t.Errorf("global scripts touched: %v", list)
	}
}

func TestInsecureAuthAndLimits(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.AllowInsecureAuth = true
		c.TLSConfig = nil
		c.MaxScripts = 2
		c.MaxScriptSize = 100
		c.MaxAuthFailures = 2
	})
	c := e.dial()
	greet := c.response()
	if !strings.Contains(greet, `"SASL" "PLAIN"`) || strings.Contains(greet, "STARTTLS") {
		t.Fatalf("greeting: %s", greet)
	}
	c.expect("STARTTLS", `NO "STARTTLS is not available"`)
	c.expect(`AUTHENTICATE "PLAIN" "`+plain("joe@example.org", testPass)+`"`, "OK")
	c.expect(`PUTSCRIPT "a" "keep;"`, "OK")
	c.expect(`PUTSCRIPT "b" "keep;"`, "OK")
	c.expect(`PUTSCRIPT "c" "keep;"`, "NO (QUOTA/MAXSCRIPTS)")
	c.expect(`PUTSCRIPT "a" "discard;"`, "OK") // replacing is fine
	c.expect(`PUTSCRIPT "a" `+lit(strings.Repeat("#", 101)), "NO (QUOTA/MAXSIZE)")
	c.expect(`HAVESPACE "c" 10`, "NO (QUOTA/MAXSCRIPTS)")

	// Failed authentications end the session.
	c2 := e.dial()
	c2.response()
	c2.expect(`AUTHENTICATE "PLAIN" "`+plain("joe@example.org", "x")+`"`, "NO")
	c2.expect(`AUTHENTICATE "PLAIN" "`+plain("joe@example.org", "y")+`"`, "BYE")
	// Aborted authentication.
	c3 := e.dial()
	c3.response()
	c3.send(`AUTHENTICATE "PLAIN"` + "\r\n")
	c3.br.ReadString('\n')
	c3.expect(`"*"`, `NO "Authentication aborted"`)
	c3.expect(`AUTHENTICATE "PLAIN" "`+base64.StdEncoding.EncodeToString([]byte("other\x00joe@example.org\x00"+testPass))+`"`, "NO")
}

func TestProtocolErrors(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxLine = 200 })
	// Over-long line: BYE.
	c := e.dial()
	c.response()
	c.expect("NOOP \""+strings.Repeat("x", 300)+"\"", "BYE")
	// Literal larger than allowed: BYE.
	c = e.dial()
	c.response()
	c.expect(fmt.Sprintf("CHECKSCRIPT {%d+}", 5<<20), "BYE")
	// Commands pipelined after STARTTLS: BYE.
	c = e.dial()
	c.response()
	c.expect("STARTTLS\r\nNOOP", "BYE")
	// Garbage ends the session eventually.
	c = e.dial()
	c.response()
	for i := 0; i < maxBadCommands; i++ {
		c.expect("XYZZY", "NO")
	}
	c.expect("XYZZY", "BYE")
	// Empty lines are ignored.
	c = e.dial()
	c.response()
	c.send("\r\n\r\n")
	c.expect("NOOP", "OK")
}

func TestIdleAndShutdown(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	c := e.dial()
	c.response()
	if got := c.response(); got != `BYE "Idle timeout"` {
		t.Fatalf("idle: %q", got)
	}
	e2 := newTestEnv(t, nil)
	c = e2.dial()
	c.response()
	c.expect("NOOP", "OK")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go e2.srv.Shutdown(ctx)
	if got := c.response(); got != `BYE "Server shutting down"` {
		t.Fatalf("shutdown: %q", got)
	}
}

func TestImplicitTLS(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.ImplicitTLS = true })
	conn, err := tls.Dial("tcp", e.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn, br: bufio.NewReader(conn)}
	greet := c.response()
	if !strings.Contains(greet, `"SASL" "PLAIN"`) || strings.Contains(greet, "STARTTLS") {
		t.Fatalf("greeting: %s", greet)
	}
	c.expect(`AUTHENTICATE "PLAIN" "`+plain("joe@example.org", testPass)+`"`, "OK")
}
