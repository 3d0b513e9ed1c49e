package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
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
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial(t, in.Addr("submissions")) != 2002 {
		if time.Now().After(deadline) {
			t.Fatalf("new certificate not served after SIGHUP:\n%s", tail(in.Log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A config that no longer parses: the reload is refused, the server
	// keeps running with what it has.
	if err := os.WriteFile(in.Config, []byte(cfg+"\nbogus_key = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(in.PID(), syscall.SIGHUP)
	deadline = time.Now().Add(10 * time.Second)
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
