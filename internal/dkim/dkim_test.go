package dkim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

const testMessage = "From: Alice <alice@example.com>\r\n" +
	"To: bob@example.net\r\n" +
	"Subject: test  of   dkim\r\n" +
	"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n" +
	"Message-ID: <1@example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"List-Unsubscribe: <https://example.com/u/1>\r\n" +
	"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
	"X-Not-Signed: 1\r\n" +
	"\r\n" +
	"Hello Bob,   \r\n" +
	"\r\n" +
	"this is a test.\r\n\r\n\r\n"

func TestKeys(t *testing.T) {
	k := Open(t.TempDir(), nil)
	if _, err := k.Active("example.com"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no keys: %v", err)
	}
	rsaKey, err := k.Generate("Example.COM", "s1", AlgoRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if rsaKey.Algo != "rsa" || rsaKey.Bits != 2048 || rsaKey.Domain != "example.com" {
		t.Fatalf("%+v", rsaKey)
	}
	fi, err := os.Stat(filepath.Join(k.Dir(), "example.com", "s1.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	if _, err := k.Generate("example.com", "s1", AlgoEd25519); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite: %v", err)
	}
	for _, bad := range [][2]string{{"../etc", "s"}, {"example.com", "../x"}, {"example.com", ""}, {"example.com", "a/b"}} {
		if _, err := k.Generate(bad[0], bad[1], ""); !errors.Is(err, ErrBadName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := k.Generate("example.com", "e1", AlgoEd25519); err != nil {
		t.Fatal(err)
	}
	act, err := k.Active("example.com")
	if err != nil || len(act) != 2 {
		t.Fatalf("active: %v %v (want the RSA and the Ed25519 key)", act, err)
	}
	k2 := Open(k.Dir(), map[string]string{"example.com": "s1"})
	if act, _ := k2.Active("example.com"); len(act) != 1 || act[0].Selector != "s1" {
		t.Fatalf("configured selector: %+v", act)
	}
	k3 := Open(k.Dir(), map[string]string{"example.com": "missing"})
	if _, err := k3.Active("example.com"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("configured selector without key: %v", err)
	}
	txt, err := rsaKey.TXT()
	if err != nil || !strings.HasPrefix(txt, "v=DKIM1; k=rsa; p=MIIB") {
		t.Fatalf("TXT %q %v", txt, err)
	}
}

func TestImport(t *testing.T) {
	k := Open(t.TempDir(), nil)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	pkcs8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for sel, data := range map[string][]byte{"opendkim": pkcs1, "rspamd": pkcs8} {
		key, err := k.Import("example.com", sel, data)
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		if !key.Signer.Public().(*rsa.PublicKey).Equal(&priv.PublicKey) {
			t.Fatalf("%s: imported a different key", sel)
		}
	}
	small, err := os.ReadFile("testdata/rsa512.pem") // openssl genrsa -traditional 512
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Import("example.com", "small", small); !errors.Is(err, ErrBadKey) {
		t.Fatalf("512-bit key: %v", err)
	}
	if _, err := k.Import("example.com", "junk", []byte("not a key")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("junk: %v", err)
	}
	if _, err := k.Import("example.com", "enc", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("encrypted: %v", err)
	}
}

func TestHeaderKeys(t *testing.T) {
	got := strings.Join(HeaderKeys([]byte(testMessage[:strings.Index(testMessage, "\r\n\r\n")+2])), ":")
	want := "From:From:To:Subject:Date:Message-ID:MIME-Version:Content-Type:List-Unsubscribe:List-Unsubscribe-Post"
	if got != want {
		t.Fatalf("h= %s\nwant %s", got, want)
	}
}

// signed signs testMessage with every active key of k and returns the
// signed message and a zone for the verifiers.
func signed(t *testing.T, k *Keys, msg string) ([]byte, map[string]string) {
	sig, err := k.Sign("example.com", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	zone := map[string]string{}
	keys, _ := k.List("example.com")
	for _, key := range keys {
		txt, _ := key.TXT()
		zone[key.Selector+"._domainkey.example.com"] = txt
	}
	return []byte(sig + msg), zone
}

func goVerify(t *testing.T, msg []byte, zone map[string]string) []error {
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), &msgdkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if v, ok := zone[strings.TrimSuffix(name, ".")]; ok {
			return []string{v}, nil
		}
		return nil, fmt.Errorf("no record %s", name)
	}})
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, v := range vs {
		errs = append(errs, v.Err)
	}
	return errs
}

func TestSignVerify(t *testing.T) {
	k := Open(t.TempDir(), nil)
	for _, a := range [][2]string{{"rsa1", AlgoRSA2048}, {"ed1", AlgoEd25519}} {
		if _, err := k.Generate("example.com", a[0], a[1]); err != nil {
			t.Fatal(err)
		}
	}
	msg, zone := signed(t, k, testMessage)
	if n := bytes.Count(msg, []byte("DKIM-Signature:")); n != 2 {
		t.Fatalf("%d signatures, want RSA and Ed25519", n)
	}
	for i, err := range goVerify(t, msg, zone) {
		if err != nil {
			t.Errorf("signature %d: %v", i, err)
		}
	}
	// Relaxed canonicalisation survives whitespace changes in transit.
	relaxed := bytes.Replace(msg, []byte("Subject: test  of   dkim"), []byte("Subject:  test of dkim"), 1)
	for i, err := range goVerify(t, relaxed, zone) {
		if err != nil {
			t.Errorf("relaxed, signature %d: %v", i, err)
		}
	}
	// A second From added in transit breaks the signature (oversigning).
	added := bytes.Replace(msg, []byte("To: bob"), []byte("From: mallory@evil.example\r\nTo: bob"), 1)
	for i, err := range goVerify(t, added, zone) {
		if err == nil {
			t.Errorf("signature %d verifies with an added From", i)
		}
	}
}

// TestDkimpy verifies our signatures with dkimpy (python3-dkim), an
// independent implementation, against a fake zone.
func TestDkimpy(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim, nacl").Run(); err != nil {
		t.Skip("python3-dkim (and python3-nacl) not installed")
	}
	k := Open(t.TempDir(), nil)
	for _, a := range [][2]string{{"rsa1", AlgoRSA2048}, {"ed1", AlgoEd25519}} {
		if _, err := k.Generate("example.com", a[0], a[1]); err != nil {
			t.Fatal(err)
		}
	}
	msg, zone := signed(t, k, testMessage)
	run := func(msg []byte) string {
		dir := t.TempDir()
		mf, zf := filepath.Join(dir, "msg"), filepath.Join(dir, "zone")
		os.WriteFile(mf, msg, 0o600)
		var z strings.Builder
		for name, txt := range zone {
			fmt.Fprintf(&z, "%s\t%s\n", name, txt)
		}
		os.WriteFile(zf, []byte(z.String()), 0o600)
		out, err := exec.CommandContext(context.Background(), py, "testdata/verify.py", mf, zf).CombinedOutput()
		if err != nil {
			t.Fatalf("dkimpy: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run(msg)
	if strings.Count(out, "pass example.com") != 2 || strings.Contains(out, "fail") {
		t.Fatalf("dkimpy:\n%s", out)
	}
	tampered := bytes.Replace(msg, []byte("this is a test."), []byte("this is a lie."), 1)
	if out := run(tampered); strings.Contains(out, "pass") {
		t.Fatalf("dkimpy passes a tampered body:\n%s", out)
	}
}

// TestOpenDKIM verifies with OpenDKIM's test mode (package opendkim),
// which reads public keys from a file instead of DNS.
func TestOpenDKIM(t *testing.T) {
	bin, err := exec.LookPath("opendkim")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/opendkim"); err2 != nil {
			t.Skip("opendkim not installed")
		}
		bin = "/usr/sbin/opendkim"
	}
	k := Open(t.TempDir(), nil)
	if _, err := k.Generate("example.com", "rsa1", AlgoRSA2048); err != nil {
		t.Fatal(err)
	}
	msg, zone := signed(t, k, testMessage)
	run := func(msg []byte) (string, error) {
		dir := t.TempDir()
		var z strings.Builder
		for name, txt := range zone {
			fmt.Fprintf(&z, "%s %s\n", name, txt)
		}
		keys := filepath.Join(dir, "keys")
		os.WriteFile(keys, []byte(z.String()), 0o600)
		conf := filepath.Join(dir, "opendkim.conf")
		os.WriteFile(conf, []byte("Mode v\nTestPublicKeys "+keys+"\nSyslog no\nAlwaysAddARHeader yes\nAuthservID test\n"), 0o600)
		mf := filepath.Join(dir, "msg")
		os.WriteFile(mf, msg, 0o600)
		out, err := exec.Command(bin, "-x", conf, "-t", mf, "-vvv").CombinedOutput()
		return string(out), err
	}
	out, err := run(msg)
	if err != nil || !strings.Contains(out, "verification (s=rsa1, d=example.com, 2048-bit key) succeeded") {
		t.Fatalf("opendkim: %v\n%s", err, out)
	}
	tampered := bytes.Replace(msg, []byte("Subject: test"), []byte("Subject: pest"), 1)
	if out, _ := run(tampered); strings.Contains(out, "succeeded") {
		t.Fatalf("opendkim passes a tampered header:\n%s", out)
	}
}

func FuzzSign(f *testing.F) {
	k := Open(f.TempDir(), nil)
	if _, err := k.Generate("example.com", "ed", AlgoEd25519); err != nil {
		f.Fatal(err)
	}
	key, _ := k.Active("example.com")
	f.Add([]byte(testMessage))
	f.Add([]byte("From: a\n\nbody"))
	f.Add([]byte("no header at all"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		HeaderKeys(msg)
		SignWith(key[0], bytes.NewReader(msg)) // must not panic or hang
	})
}
