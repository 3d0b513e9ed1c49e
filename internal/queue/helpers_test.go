package queue_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// testCA is a throwaway CA for the test servers' certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t testing.TB) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailstead test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) leaf(t testing.TB, names ...string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// received is one message a sink accepted.
type received struct {
	From  string
	To    []string
	Data  []byte
	Mail  smtp.MailOptions
	Rcpts []smtp.RcptOptions
	TLS   bool
}

// sink is an in-process SMTP server playing the remote MX or smarthost.
type sink struct {
	t    testing.TB
	srv  *smtp.Server
	addr string

	mu   sync.Mutex
	msgs []received
	// rcpt and data script replies: return nil to accept.
	rcpt func(to string) error
	data func(n int) error
	// user/pass require AUTH PLAIN when set.
	user, pass string
	// block, when set, is received from in DATA before reading it.
	block chan struct{}
	// inData, when set, is signalled when a DATA command arrives.
	inData chan struct{}
	dataN  int
	auths  int
	// dataEnded counts DATA commands that are over, accepted or not.
	dataEnded int
}

type sinkSession struct {
	s     *sink
	conn  *smtp.Conn
	authd bool
	cur   received
}

func (ss *sinkSession) AuthMechanisms() []string {
	if ss.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		ss.s.mu.Lock()
		ss.s.auths++
		ss.s.mu.Unlock()
		if username != ss.s.user || password != ss.s.pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		ss.authd = true
		return nil
	}), nil
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.user != "" && !ss.authd {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "auth required"}
	}
	ss.cur = received{From: from}
	if opts != nil {
		ss.cur.Mail = *opts
	}
	return nil
}

func (ss *sinkSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if f := ss.s.rcpt; f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	ss.cur.To = append(ss.cur.To, to)
	if opts != nil {
		ss.cur.Rcpts = append(ss.cur.Rcpts, *opts)
	}
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	defer func() {
		ss.s.mu.Lock()
		ss.s.dataEnded++
		ss.s.mu.Unlock()
	}()
	if ss.s.inData != nil {
		select {
		case ss.s.inData <- struct{}{}:
		default:
		}
	}
	if ss.s.block != nil {
		<-ss.s.block
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.dataN++
	n := ss.s.dataN
	ss.s.mu.Unlock()
	if f := ss.s.data; f != nil {
		if err := f(n); err != nil {
			return err
		}
	}
	_, ss.cur.TLS = ss.conn.TLSConnectionState()
	ss.cur.Data = b
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, ss.cur)
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        { ss.cur = received{} }
func (ss *sinkSession) Logout() error { return nil }

// newSink starts a sink on addr ("127.0.0.1:0"); cert enables STARTTLS
// (and implicit TLS when implicit is set).
func newSink(t testing.TB, addr string, cert *tls.Certificate, implicit bool) *sink {
	s := &sink{t: t}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	srv.EnableDSN = true
	srv.EnableSMTPUTF8 = true
	srv.MaxLineLength = 10000
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	var l net.Listener
	var err error
	if implicit {
		l, err = tls.Listen("tcp", addr, srv.TLSConfig)
	} else {
		l, err = net.Listen("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.srv, s.addr = srv, l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *sink) port() int { return l4port(s.addr) }

func l4port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n := 0
	for _, c := range p {
		n = n*10 + int(c-'0')
	}
	return n
}

func (s *sink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// env is a store with a local sender account, a submitter and a queue.
type env struct {
	t     testing.TB
	st    *sqlitestore.Store
	dir   string
	deliv *delivery.Deliverer
	sub   *delivery.Submitter
	alice store.Account
	logs  *syncBuffer
	log   *slog.Logger
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t testing.TB, dir string) *env {
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, dir: dir, logs: &syncBuffer{}}
	e.log = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	if err := st.AddDomain(ctx, store.Domain{Name: "example.org"}); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	e.alice, err = st.GetAccount(ctx, "alice@example.org")
	if errors.Is(err, store.ErrNotFound) {
		e.alice, err = st.CreateAccount(ctx, store.Account{Address: "alice@example.org", PasswordHash: "x"})
	}
	if err != nil {
		t.Fatal(err)
	}
	e.deliv = delivery.New(st, delivery.Options{TmpDir: t.TempDir()})
	e.sub = delivery.NewSubmitter(e.deliv, delivery.SubmitOptions{Logger: e.log})
	return e
}

const testMsg = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hello\r\nMessage-ID: <1@example.org>\r\n\r\nHello Bob.\r\n"

// submit queues testMsg from alice to rcpts (remote).
func (e *env) submit(rcpts ...delivery.RemoteRecipient) []int64 {
	e.t.Helper()
	return e.submitMsg(testMsg, delivery.DSNOptions{}, rcpts...)
}

func (e *env) submitMsg(msg string, dsn delivery.DSNOptions, rcpts ...delivery.RemoteRecipient) []int64 {
	e.t.Helper()
	out, err := e.sub.Submit(context.Background(), delivery.Envelope{From: "alice@example.org", Account: &e.alice}, rcpts, dsn, delivery.SpoolBytes([]byte(msg)))
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []int64
	for _, d := range out {
		if d.QueueID != 0 {
			ids = append(ids, d.QueueID)
		}
	}
	return ids
}

func rcpt(addrs ...string) []delivery.RemoteRecipient {
	var out []delivery.RemoteRecipient
	for _, a := range addrs {
		out = append(out, delivery.RemoteRecipient{Address: a})
	}
	return out
}

// runner starts a runner; the returned func stops it and waits.
func (e *env) runner(tr queue.Transport, mod func(*queue.Options)) func() {
	o := queue.Options{
		Transports:   map[string]queue.Transport{queue.TransportSMTP: tr, queue.TransportTLSReport: tr},
		Retry:        []time.Duration{50 * time.Millisecond},
		Hostname:     "mail.example.org",
		Injector:     e.sub,
		Wake:         e.st.QueueWake(),
		Logger:       e.log,
		DelayWarning: 0,
	}
	if mod != nil {
		mod(&o)
	}
	r := queue.New(e.st, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// waitFor polls cond for up to 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (e *env) queueLen() int {
	es, err := e.st.QueueList(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return len(es)
}

func (e *env) entry(id int64) (store.QueueEntry, bool) {
	q, err := e.st.QueueGet(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return q, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return q, true
}

// inbox returns alice's INBOX messages' contents.
func (e *env) inbox() []string {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.st.GetMailbox(ctx, e.alice.ID, "INBOX")
	if err != nil {
		e.t.Fatal(err)
	}
	metas, err := e.st.ListMessages(ctx, mb.ID)
	if err != nil {
		e.t.Fatal(err)
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
		b, _ := io.ReadAll(c.Reader())
		c.Close()
		out = append(out, string(b))
	}
	return out
}

func relayTo(s *sink, tlsMode string, ca *testCA) *queue.Relay {
	host, _, _ := net.SplitHostPort(s.addr)
	r := &queue.Relay{Host: host, Port: s.port(), TLS: tlsMode}
	if ca != nil {
		r.RootCAs = ca.pool
	}
	return r
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
