package tlsutil

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func readLeaf(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("loading generated pair: %v", err)
	}
	return pair.Leaf
}

func TestEnsureSelfSignedGenerates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	certFile, keyFile, err := EnsureSelfSigned(dir, []string{"Mail.Example.COM.", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := readLeaf(t, certFile, keyFile)
	for _, name := range []string{"mail.example.com", "localhost", "127.0.0.1", "::1", "192.0.2.7"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	if leaf.Subject.CommonName != "mail.example.com" {
		t.Errorf("common name %q", leaf.Subject.CommonName)
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v, want ECDSA", leaf.PublicKeyAlgorithm)
	}
	if got := leaf.NotAfter.Sub(time.Now()); got < 300*24*time.Hour {
		t.Errorf("certificate valid for only %v", got)
	}
	// Self-signed: verifies against itself as root.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "mail.example.com", Roots: pool}); err != nil {
		t.Errorf("verify against itself: %v", err)
	}
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", dst.Mode().Perm())
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only the two files", names)
	}
}

func TestEnsureSelfSignedReuse(t *testing.T) {
	dir := t.TempDir()
	c1, k1, err := EnsureSelfSigned(dir, []string{"mail.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(c1)

	// Same names, or a subset: reused.
	for _, names := range [][]string{{"mail.example.com"}, {"MAIL.example.com"}, nil} {
		c2, k2, err := EnsureSelfSigned(dir, names)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := os.ReadFile(c2)
		if c1 != c2 || k1 != k2 || !bytes.Equal(before, after) {
			t.Errorf("names %v: certificate regenerated, want reuse", names)
		}
	}

	// A new name: regenerated, covering it.
	c3, k3, err := EnsureSelfSigned(dir, []string{"mx.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(c3); bytes.Equal(before, after) {
		t.Error("certificate not regenerated for a new host name")
	}
	if err := readLeaf(t, c3, k3).VerifyHostname("mx.example.net"); err != nil {
		t.Error(err)
	}
}

func TestEnsureSelfSignedRenewsExpiring(t *testing.T) {
	dir := t.TempDir()
	c1, _, err := EnsureSelfSigned(dir, []string{"mail.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(c1)
	// 340 days later the certificate has less than the renewal margin left.
	now = func() time.Time { return time.Now().Add(340 * 24 * time.Hour) }
	defer func() { now = time.Now }()
	c2, k2, err := EnsureSelfSigned(dir, []string{"mail.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(c2)
	if bytes.Equal(before, after) {
		t.Fatal("expiring certificate was reused")
	}
	if leaf := readLeaf(t, c2, k2); leaf.NotAfter.Before(time.Now().Add(600 * 24 * time.Hour)) {
		t.Errorf("renewed certificate expires %v", leaf.NotAfter)
	}
}

func TestEnsureSelfSignedRepairsBrokenFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(certFile, keyFile string)
	}{
		{"garbage cert", func(c, k string) { os.WriteFile(c, []byte("not a certificate"), 0o644) }},
		{"missing key", func(c, k string) { os.Remove(k) }},
		{"mismatched key", func(c, k string) {
			_, kpem, err := generate([]string{"x"}, nil)
			if err != nil {
				panic(err)
			}
			os.WriteFile(k, kpem, 0o600)
		}},
		{"empty cert", func(c, k string) { os.WriteFile(c, nil, 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, k, err := EnsureSelfSigned(dir, []string{"mail.example.com"})
			if err != nil {
				t.Fatal(err)
			}
			tc.mangle(c, k)
			c, k, err = EnsureSelfSigned(dir, []string{"mail.example.com"})
			if err != nil {
				t.Fatal(err)
			}
			readLeaf(t, c, k)
		})
	}
}

func TestEnsureSelfSignedUnwritableDir(t *testing.T) {
	// A path below a regular file cannot be created: an error, no panic.
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureSelfSigned(filepath.Join(f, "tls"), []string{"a.example"}); err == nil {
		t.Fatal("no error for an impossible directory")
	}
}

// pairFor writes a self-signed pair for names into dir/<base>.{crt,key}.
func pairFor(t *testing.T, dir, base string, names ...string) KeyPair {
	t.Helper()
	dns, ips := sanList(names)
	cpem, kpem, err := generate(dns, ips)
	if err != nil {
		t.Fatal(err)
	}
	p := KeyPair{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	writePair(t, p, cpem, kpem)
	return p
}

func writePair(t *testing.T, p KeyPair, cpem, kpem []byte) {
	t.Helper()
	if err := os.WriteFile(p.KeyFile, kpem, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.CertFile, cpem, 0o644); err != nil {
		t.Fatal(err)
	}
}

func cn(c *tls.Certificate) string {
	if c == nil {
		return "<nil>"
	}
	return c.Leaf.Subject.CommonName
}

func TestCertStoreSNISelection(t *testing.T) {
	dir := t.TempDir()
	def := pairFor(t, dir, "default", "default.example")
	org := pairFor(t, dir, "org", "mail.example.org")
	wild := pairFor(t, dir, "wild", "wild.example.org")
	netPair := pairFor(t, dir, "net", "mx.example.net", "imap.example.net")

	s, err := NewCertStore(def, []SNICert{
		{Names: []string{"mail.example.org"}, KeyPair: org},
		{Names: []string{"*.example.org"}, KeyPair: wild},
		{KeyPair: netPair}, // names taken from the certificate
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ sni, want string }{
		{"mail.example.org", "mail.example.org"}, // exact beats wildcard
		{"MAIL.Example.ORG.", "mail.example.org"},
		{"imap.example.org", "wild.example.org"},
		{"a.b.example.org", "default.example"}, // wildcard covers one label
		{"example.org", "default.example"},
		{"imap.example.net", "mx.example.net"},
		{"mx.example.net", "mx.example.net"},
		{"", "default.example"},
		{"unknown.test", "default.example"},
		{".", "default.example"},
	} {
		c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni})
		if err != nil {
			t.Fatalf("%q: %v", tc.sni, err)
		}
		if got := cn(c); got != tc.want {
			t.Errorf("SNI %q: got %s, want %s", tc.sni, got, tc.want)
		}
	}

	// Without a default pair, the first SNI certificate is the default.
	s2, err := NewCertStore(KeyPair{}, []SNICert{{Names: []string{"mail.example.org"}, KeyPair: org}, {KeyPair: netPair}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cn(s2.Certificate("other.test")); got != "mail.example.org" {
		t.Errorf("default without default pair: %s", got)
	}
}

func TestCertStoreBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := pairFor(t, dir, "good", "good.example")
	other := pairFor(t, dir, "other", "other.example")
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"), 0o644)
	for _, tc := range []struct {
		name  string
		def   KeyPair
		certs []SNICert
		want  string
	}{
		{"none", KeyPair{}, nil, "no certificate"},
		{"missing cert", KeyPair{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: good.KeyFile}, nil, "nope.crt"},
		{"missing key", KeyPair{CertFile: good.CertFile}, nil, "both"},
		{"garbage cert", KeyPair{CertFile: garbage, KeyFile: good.KeyFile}, nil, "garbage"},
		{"garbage key", KeyPair{CertFile: good.CertFile, KeyFile: garbage}, nil, "garbage"},
		{"mismatch", KeyPair{CertFile: good.CertFile, KeyFile: other.KeyFile}, nil, "does not match"},
		{"bad sni", good, []SNICert{{Names: []string{"x.example"}, KeyPair: KeyPair{CertFile: garbage, KeyFile: garbage}}}, "garbage"},
		{"empty file", KeyPair{CertFile: filepath.Join(dir, "empty"), KeyFile: good.KeyFile}, nil, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "empty file" {
				os.WriteFile(tc.def.CertFile, nil, 0o644)
			}
			s, err := NewCertStore(tc.def, tc.certs, nil)
			if err == nil {
				t.Fatalf("no error; store %v", s)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestCertStoreReloadKeepsOldOnError(t *testing.T) {
	dir := t.TempDir()
	def := pairFor(t, dir, "default", "one.example")
	s, err := NewCertStore(def, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(def.CertFile, []byte("half-written"), 0o644)
	if err := s.Reload(); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	if got := cn(s.Certificate("")); got != "one.example" {
		t.Fatalf("after failed reload serving %s, want the old certificate", got)
	}
	pairFor(t, dir, "default", "two.example")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := cn(s.Certificate("")); got != "two.example" {
		t.Fatalf("after reload serving %s", got)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor polls cond for up to 30 s (generous: the machine may be busy).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCertStoreWatchFiles(t *testing.T) {
	dir := t.TempDir()
	def := pairFor(t, dir, "default", "one.example")
	sni := pairFor(t, dir, "sni", "sni-one.example")
	var logs syncBuffer
	s, err := NewCertStore(def, []SNICert{{Names: []string{"mail.example.org"}, KeyPair: sni}}, slogTo(&logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.WatchFiles(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	// Replace the default certificate; mtime granularity may hide a change
	// of the same size within one tick, so bump the mtime explicitly.
	touchPair := func(p KeyPair, delta time.Duration) {
		future := time.Now().Add(delta)
		os.Chtimes(p.CertFile, future, future)
		os.Chtimes(p.KeyFile, future, future)
	}
	errCount := func() int { return strings.Count(logs.String(), "cannot be loaded") }
	pairFor(t, dir, "default", "two.example")
	touchPair(def, time.Second)
	waitFor(t, "default reload", func() bool { return cn(s.Certificate("")) == "two.example" })
	// The watcher may have seen the new key with the old certificate (the
	// files are written one after the other) and logged that pair as
	// broken; from now on both files are consistent.
	before := errCount()

	// A broken SNI file: logged, old certificates stay. It is renamed into
	// place with its final mtime set, so the watcher sees one change only.
	tmp := sni.CertFile + ".tmp"
	if err := os.WriteFile(tmp, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(tmp, future, future); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, sni.CertFile); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "error log", func() bool { return errCount() > before })
	if got := cn(s.Certificate("mail.example.org")); got != "sni-one.example" {
		t.Fatalf("after broken file serving %s", got)
	}
	// Not retried while unchanged: the error is logged once, however many
	// times the watcher looks (every 10ms).
	time.Sleep(100 * time.Millisecond)
	if n := errCount() - before; n != 1 {
		t.Errorf("error logged %d times for one change", n)
	}
	// Fixed: picked up.
	pairFor(t, dir, "sni", "sni-two.example")
	touchPair(sni, 3*time.Second)
	waitFor(t, "sni reload", func() bool { return cn(s.Certificate("mail.example.org")) == "sni-two.example" })
	if got := cn(s.Certificate("")); got != "two.example" {
		t.Errorf("default changed to %s", got)
	}
}

// recordingCache is a client session cache that remembers whether the
// server ever sent a session ticket.
type recordingCache struct {
	mu   sync.Mutex
	puts int
}

func (c *recordingCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (c *recordingCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs == nil {
		return
	}
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
}

// TestServerConfigHandshake runs real TLS 1.2 and 1.3 handshakes over
// loopback and checks SNI selection and that no session ticket is issued
// (Outlook/Office 365 fail STARTTLS otherwise, golang/go#70232).
func TestServerConfigHandshake(t *testing.T) {
	dir := t.TempDir()
	def := pairFor(t, dir, "default", "default.example")
	org := pairFor(t, dir, "org", "mail.example.org")
	s, err := NewCertStore(def, []SNICert{{Names: []string{"mail.example.org"}, KeyPair: org}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.ServerConfig()
	if !cfg.SessionTicketsDisabled || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("server config: tickets disabled %v, min version %x", cfg.SessionTicketsDisabled, cfg.MinVersion)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("hello\n"))
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	defer wg.Wait()
	defer ln.Close()

	for _, tc := range []struct {
		version uint16
		sni     string
		want    string
	}{
		{tls.VersionTLS13, "mail.example.org", "mail.example.org"},
		{tls.VersionTLS12, "mail.example.org", "mail.example.org"},
		{tls.VersionTLS13, "", "default.example"},
		{tls.VersionTLS12, "other.test", "default.example"},
	} {
		cache := &recordingCache{}
		conn, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		tc2 := tls.Client(conn, &tls.Config{
			ServerName:         tc.sni,
			InsecureSkipVerify: true, // self-signed; the served name is checked below
			MinVersion:         tc.version,
			MaxVersion:         tc.version,
			ClientSessionCache: cache,
		})
		// Reading the greeting makes the client process any post-handshake
		// NewSessionTicket message of TLS 1.3.
		buf := make([]byte, 6)
		if _, err := io.ReadFull(tc2, buf); err != nil {
			t.Fatalf("read: %v", err)
		}
		st := tc2.ConnectionState()
		if got := st.PeerCertificates[0].Subject.CommonName; got != tc.want {
			t.Errorf("version %x SNI %q: served %s, want %s", tc.version, tc.sni, got, tc.want)
		}
		tc2.Close()
		cache.mu.Lock()
		puts := cache.puts
		cache.mu.Unlock()
		if puts != 0 {
			t.Errorf("version %x: server sent a session ticket", tc.version)
		}
	}

	// Control: the same setup with tickets enabled does issue one, so the
	// check above can fail.
	cfg2 := s.ServerConfig()
	cfg2.SessionTicketsDisabled = false
	ln2, err := tls.Listen("tcp", "127.0.0.1:0", cfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		c, err := ln2.Accept()
		if err != nil {
			return
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("hello\n"))
		io.Copy(io.Discard, c)
		c.Close()
	}()
	cache := &recordingCache{}
	conn, err := tls.Dial("tcp", ln2.Addr().String(), &tls.Config{InsecureSkipVerify: true, ClientSessionCache: cache, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.puts == 0 {
		t.Error("control: no ticket even with tickets enabled; the ticket check proves nothing")
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestCertStoreUpdate(t *testing.T) {
	dir := t.TempDir()
	one := pairFor(t, dir, "one", "one.example")
	two := pairFor(t, dir, "two", "two.example")
	s, err := NewCertStore(one, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A broken new configuration changes nothing.
	if err := s.Update(KeyPair{CertFile: filepath.Join(dir, "nope"), KeyFile: two.KeyFile}, nil); err == nil {
		t.Fatal("update to a missing file succeeded")
	}
	if err := s.Update(KeyPair{}, nil); err == nil {
		t.Fatal("update to nothing succeeded")
	}
	if got := cn(s.Certificate("")); got != "one.example" {
		t.Fatalf("after failed update serving %s", got)
	}
	if err := s.Reload(); err != nil {
		t.Fatalf("reload after failed update: %v", err)
	}
	if err := s.Update(two, []SNICert{{Names: []string{"x.example"}, KeyPair: one}}); err != nil {
		t.Fatal(err)
	}
	if cn(s.Certificate("")) != "two.example" || cn(s.Certificate("x.example")) != "one.example" {
		t.Fatalf("after update: %s %s", cn(s.Certificate("")), cn(s.Certificate("x.example")))
	}
	// The watcher now follows the new files.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.WatchFiles(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	pairFor(t, dir, "two", "three.example")
	future := time.Now().Add(time.Second)
	os.Chtimes(two.CertFile, future, future)
	waitFor(t, "reload of the updated files", func() bool { return cn(s.Certificate("")) == "three.example" })
}
