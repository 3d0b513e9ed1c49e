package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func writeCert(t *testing.T, dir string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "mail.example.test"},
		DNSNames:     []string{"mail.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Write to temporary names and rename, as certbot-style tools do.
	for name, block := range map[string]*pem.Block{"cert.pem": {Type: "CERTIFICATE", Bytes: der}, "key.pem": {Type: "EC PRIVATE KEY", Bytes: kb}} {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestSIGHUPReloadsCertificates replaces the certificate files and sends
// SIGHUP: new connections get the new certificate, the process stays up,
// and a broken config on reload keeps the running one.
func TestSIGHUPReloadsCertificates(t *testing.T) {
	certDir := t.TempDir()
	writeCert(t, certDir, 1001)
	cfg := strings.Replace(DefaultConfig, "[tls]\nself_signed = true", "[tls]\ncert_file = \""+filepath.Join(certDir, "cert.pem")+"\"\nkey_file = \""+filepath.Join(certDir, "key.pem")+"\"", 1)
	in := New(t, cfg)
	if got := servedSerial(t, in.Addr("imaps")); got != 1001 {
		t.Fatalf("serial %d before reload", got)
	}
	writeCert(t, certDir, 2002)
	if err := syscall.Kill(in.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for servedSerial(t, in.Addr("submissions")) != 2002 {
		if time.Now().After(deadline) {
			t.Fatalf("new certificate not served 30s after SIGHUP:\n%s", tail(in.Log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A config that no longer parses: the reload is refused, the server
	// keeps running with what it has.
	if err := os.WriteFile(in.Config, []byte(cfg+"\nbogus_key = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(in.PID(), syscall.SIGHUP)
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(in.Log(), "keeping the running configuration") {
		if time.Now().After(deadline) {
			t.Fatalf("bad config on reload not reported:\n%s", tail(in.Log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !in.Running() || servedSerial(t, in.Addr("imaps")) != 2002 {
		t.Fatal("server not serving after a bad reload")
	}
	if !strings.Contains(in.Log(), "bogus_key") {
		t.Error("reload error does not name the bad key")
	}
}

// TestSIGHUPReloadsSpam: Rspamd switched on in the file takes effect on
// the running binary's MX listener after SIGHUP, without a restart, and
// a restart-only change in the same file is named in the log.
func TestSIGHUPReloadsSpam(t *testing.T) {
	var checks atomic.Int64
	rspamd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		checks.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"is_skipped":false,"score":20.0,"required_score":15.0,"action":"reject","symbols":{"MS_TEST_REJECT":{"name":"MS_TEST_REJECT","score":20.0}},"messages":{}}`)
	}))
	defer rspamd.Close()
	// Loopback is exempt from the spam checks by default (as Postfix's
	// mynetworks); this test's client must be checked.
	cfg := strings.Replace(DefaultConfig, "[limits]\n", "[limits]\nexempt_networks = []\n", 1)
	in := New(t, cfg)
	in.AddAccount("user@example.test", "secret-password-1")
	msg := []byte("From: a@sender.example\r\nTo: user@example.test\r\nSubject: hi\r\n\r\nhello\r\n")
	if err := SendMail(in.Addr("smtp"), "a@sender.example", []string{"user@example.test"}, msg); err != nil {
		t.Fatalf("before reload: %v", err)
	}
	next := cfg + "max_recipients = 50\n[spam]\nrspamd_url = \"" + rspamd.URL + "\"\n"
	if err := os.WriteFile(in.Config, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(in.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(in.Log(), "spam checks reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("spam checks not reloaded:\n%s", tail(in.Log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := SendMail(in.Addr("smtp"), "a@sender.example", []string{"user@example.test"}, msg)
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 550 {
		t.Fatalf("after reload: %v, want 550 from the Rspamd verdict:\n%s", err, tail(in.Log(), 20))
	}
	if checks.Load() == 0 {
		t.Error("Rspamd was never asked")
	}
	if !strings.Contains(in.Log(), "take effect after a restart") || !strings.Contains(in.Log(), "[limits]") {
		t.Errorf("restart-only change not named:\n%s", tail(in.Log(), 20))
	}
	if !in.Running() {
		t.Fatal("server stopped")
	}
}
