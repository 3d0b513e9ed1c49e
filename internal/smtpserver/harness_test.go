package smtpserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

const (
	testHostname = "mx.example.test"
	testPassword = "correct horse battery"
	testMaxBytes = 2 << 20
)

var (
	hashOnce sync.Once
	pwHash   string
	certOnce sync.Once
	testCert tls.Certificate
)

// passwordHash hashes testPassword once per test binary (argon2id is
// deliberately slow).
func passwordHash(t *testing.T) string {
	hashOnce.Do(func() {
		h, err := account.HashPassword(testPassword)
		if err != nil {
			panic(err)
		}
		pwHash = h
	})
	return pwHash
}

// serverTLS returns a server config with a fresh self-signed ECDSA
// certificate for testHostname and 127.0.0.1, tickets disabled as the
// real server configures it.
func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: testHostname},
			DNSNames:     []string{testHostname},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return &tls.Config{
		Certificates:           []tls.Certificate{testCert},
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true,
	}
}

func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: testHostname}
}

// env is a running server on a loopback port over a real SQLite store.
type env struct {
	t        *testing.T
	st       *sqlitestore.Store
	deliv    *delivery.Deliverer
	auth     *account.Authenticator
	authReg  *prometheus.Registry
	srv      *Server
	addr     string
	acc      map[string]store.Account
	serveErr chan error
	shutdown bool
}

type envOptions struct {
	role   Role
	config func(*Config)
	auth   account.AuthOptions
	// wrap wraps the listening socket (a PROXY protocol listener).
	wrap func(net.Listener) net.Listener
	// deliv adjusts the delivery options (authentication checks).
	deliv func(*delivery.Options)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, acc: map[string]store.Account{}, serveErr: make(chan error, 1)}
	t.Cleanup(func() { st.Close() })
	if err := st.AddDomain(ctx, store.Domain{Name: "example.org"}); err != nil {
		t.Fatal(err)
	}
	hash := passwordHash(t)
	for _, a := range []store.Account{
		{Address: "alice@example.org"},
		{Address: "bob@example.org"},
		{Address: "jörg@example.org"},
		{Address: "full@example.org", QuotaBytes: 100},
		{Address: "small@example.org", QuotaBytes: 2000},
	} {
		a.PasswordHash = hash
		got, err := st.CreateAccount(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		e.acc[a.Address] = got
	}
	if _, err := st.Deliver(ctx, store.Delivery{
		Blob:       bytes.NewReader(bytes.Repeat([]byte("x"), 200)),
		Recipients: []store.Recipient{{AccountID: e.acc["full@example.org"].ID, IgnoreQuota: true}},
	}); err != nil {
		t.Fatal(err)
	}

	dopts := delivery.Options{SubaddressDelimiter: "+", TmpDir: t.TempDir()}
	if o.deliv != nil {
		o.deliv(&dopts)
	}
	e.deliv = delivery.New(st, dopts)
	ao := o.auth
	if ao.FailureDelay == 0 {
		ao.FailureDelay = time.Millisecond
	}
	if ao.MaxFailuresPerIP == 0 {
		ao.MaxFailuresPerIP = 100
	}
	e.authReg = prometheus.NewRegistry()
	ao.Registerer = e.authReg
	e.auth = account.NewAuthenticator(st, ao)

	cfg := Config{
		Name:                "test",
		Role:                o.role,
		Hostname:            testHostname,
		Deliverer:           e.deliv,
		Auth:                e.auth,
		TLSConfig:           serverTLS(t),
		MaxMessageBytes:     testMaxBytes,
		MaxLineLength:       64 << 10,
		CommandTimeout:      time.Minute, // generous: the machine may be loaded
		DataTimeout:         time.Minute,
		SubaddressDelimiter: "+",
	}
	if o.config != nil {
		o.config(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	if o.wrap != nil {
		l = o.wrap(l)
	}
	go func() { e.serveErr <- srv.Serve(l) }()
	t.Cleanup(func() {
		if e.shutdown {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-e.serveErr:
			// net.ErrClosed: Shutdown came before Serve started.
			if err != nil && !errors.Is(err, net.ErrClosed) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return e
}

// inbox returns the full content (prefix + blob) of every message in an
// account's INBOX, and the messages themselves.
func (e *env) inbox(address string) ([]string, []store.Message) {
	e.t.Helper()
	return e.mailbox(address, "INBOX")
}

// mailbox is inbox for any mailbox.
func (e *env) mailbox(address, name string) ([]string, []store.Message) {
	e.t.Helper()
	ctx := context.Background()
	acc := e.acc[address]
	mb, err := e.st.GetMailbox(ctx, acc.ID, name)
	if err != nil {
		e.t.Fatal(err)
	}
	metas, err := e.st.ListMessages(ctx, mb.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(metas) == 0 {
		return nil, nil
	}
	var uids []uint32
	for _, m := range metas {
		uids = append(uids, m.UID)
	}
	msgs, err := e.st.GetMessages(ctx, mb.ID, uids)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		c, err := store.OpenContent(ctx, e.st, m)
		if err != nil {
			e.t.Fatal(err)
		}
		b, err := io.ReadAll(c.Reader())
		c.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out, msgs
}

// authAttempts is the Authenticator's attempt counter summed over results.
func (e *env) authAttempts() float64 {
	e.t.Helper()
	mfs, err := e.authReg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "mailstead_auth_attempts_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// client is a raw SMTP conversation, for tests where exact replies matter.
type client struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

type smtpReply struct {
	code int
	msg  string // lines joined by "\n", without codes
}

func (r smtpReply) String() string { return fmt.Sprintf("%d %s", r.code, r.msg) }

func newClient(t *testing.T, c net.Conn) *client {
	c.SetDeadline(time.Now().Add(time.Minute))
	cl := &client{t: t, conn: c, tp: textproto.NewConn(c)}
	t.Cleanup(func() { c.Close() })
	return cl
}

// dial connects and reads the greeting.
func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	if r := cl.read(); r.code != 220 || !strings.HasPrefix(r.msg, testHostname+" ESMTP") {
		t.Fatalf("greeting: %v", r)
	}
	return cl
}

// dialTLS connects with implicit TLS and reads the greeting.
func dialTLS(t *testing.T, addr string) *client {
	t.Helper()
	c, err := tls.Dial("tcp", addr, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	if r := cl.read(); r.code != 220 {
		t.Fatalf("greeting: %v", r)
	}
	return cl
}

func (c *client) read() smtpReply {
	c.t.Helper()
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return smtpReply{code, msg}
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends one command line and returns the reply.
func (c *client) cmd(format string, args ...any) smtpReply {
	c.t.Helper()
	c.write(fmt.Sprintf(format, args...) + "\r\n")
	return c.read()
}

// expect sends a command and fails unless the reply starts with want
// (e.g. "250", "550 5.1.1").
func (c *client) expect(want string, format string, args ...any) smtpReply {
	c.t.Helper()
	r := c.cmd(format, args...)
	if !strings.HasPrefix(r.String(), want) {
		c.t.Fatalf("%s: got %q, want %q...", fmt.Sprintf(format, args...), r, want)
	}
	return r
}

// ehlo returns the advertised extensions, upper case.
func (c *client) ehlo() map[string]string {
	c.t.Helper()
	r := c.expect("250", "EHLO client.example")
	caps := map[string]string{}
	for _, line := range strings.Split(r.msg, "\n")[1:] {
		k, v, _ := strings.Cut(line, " ")
		caps[strings.ToUpper(k)] = v
	}
	return caps
}

func (c *client) startTLS() {
	c.t.Helper()
	c.expect("220", "STARTTLS")
	tc := tls.Client(c.conn, clientTLS())
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.tp = textproto.NewConn(tc)
}

// data sends DATA and the message (dot-stuffed here) and returns the
// final reply.
func (c *client) data(msg string) smtpReply {
	c.t.Helper()
	c.expect("354", "DATA")
	c.write(dotStuff(msg) + ".\r\n")
	return c.read()
}

func dotStuff(msg string) string {
	if !strings.HasSuffix(msg, "\r\n") {
		msg += "\r\n"
	}
	lines := strings.SplitAfter(msg, "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return strings.Join(lines, "")
}

// waitClosed reads until the server closes the connection and returns
// what it sent meanwhile.
func (c *client) waitClosed(d time.Duration) (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	var b bytes.Buffer
	_, err := io.Copy(&b, c.conn)
	if err == nil {
		return b.String(), nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return b.String(), err
	}
	return b.String(), nil // reset counts as closed
}

func plainIR(identity, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(identity + "\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func testMessage(subject, body string) string {
	return "From: Sender <sender@remote.example>\r\n" +
		"To: alice@example.org\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@remote.example>\r\n" +
		"\r\n" + body
}

func netDial(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }

// hasSubject reports whether a message with the given subject is in the
// account's INBOX. Safe to call from any goroutine.
func (e *env) hasSubject(address, subject string) bool {
	ctx := context.Background()
	mb, err := e.st.GetMailbox(ctx, e.acc[address].ID, "INBOX")
	if err != nil {
		return false
	}
	metas, err := e.st.ListMessages(ctx, mb.ID)
	if err != nil {
		return false
	}
	var uids []uint32
	for _, m := range metas {
		uids = append(uids, m.UID)
	}
	msgs, err := e.st.GetMessages(ctx, mb.ID, uids)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		c, err := store.OpenContent(ctx, e.st, m)
		if err != nil {
			return false
		}
		b, err := io.ReadAll(c.Reader())
		c.Close()
		if err == nil && strings.Contains(string(b), "\r\nSubject: "+subject+"\r\n") {
			return true
		}
	}
	return false
}

// sendOne sends one message with net/smtp's client on an open connection.
func sendOne(c *smtp.Client, from, to, msg string) error {
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return nil
}

// logBuffer collects a server's log lines (text format, debug and up).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// above returns the lines logged above debug level.
func (b *logBuffer) above() []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if l != "" && !strings.Contains(l, " level=DEBUG ") {
			out = append(out, l)
		}
	}
	return out
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
