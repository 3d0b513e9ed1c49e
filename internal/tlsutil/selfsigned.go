// Package tlsutil provides the server's certificates: a self-signed one
// generated on first start, and a CertStore that serves certificates by SNI
// name and reloads them when their files change.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names of the generated certificate inside the directory given to
// EnsureSelfSigned.
const (
	SelfSignedCertFile = "selfsigned-cert.pem"
	SelfSignedKeyFile  = "selfsigned-key.pem"
)

// selfSignedLifetime is how long a generated certificate is valid, and
// renewBefore how long before expiry it is replaced on start. A year keeps
// clients that pin an accepted self-signed certificate working for a while;
// the margin makes sure a server restarted now and then never serves an
// expired one.
const (
	selfSignedLifetime = 365 * 24 * time.Hour
	renewBefore        = 30 * 24 * time.Hour
)

// now is replaced in tests.
var now = time.Now

// EnsureSelfSigned returns the paths of a self-signed certificate and key in
// dir, generating them when they are missing, unreadable, expire within 30
// days, or do not cover all of hostnames. The certificate uses ECDSA P-256
// and names hostnames plus localhost, 127.0.0.1 and ::1, so that local tests
// can verify it. The key is written with mode 0600; both files are fsynced
// and renamed into place, and the directory fsynced, so a crash leaves
// either the old pair, the new pair, or a mismatch that the next start
// detects and repairs.
func EnsureSelfSigned(dir string, hostnames []string) (certFile, keyFile string, err error) {
	certFile = filepath.Join(dir, SelfSignedCertFile)
	keyFile = filepath.Join(dir, SelfSignedKeyFile)
	dnsNames, ips := sanList(hostnames)

	if usable(certFile, keyFile, dnsNames, ips) {
		return certFile, keyFile, nil
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("creating certificate directory: %w", err)
	}
	certPEM, keyPEM, err := generate(dnsNames, ips)
	if err != nil {
		return "", "", err
	}
	// Key first: a crash between the two renames leaves a new key with the
	// old certificate, which usable() rejects on the next start.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("writing self-signed key: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("writing self-signed certificate: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", "", fmt.Errorf("syncing certificate directory: %w", err)
	}
	return certFile, keyFile, nil
}

// sanList splits names into DNS names and IP addresses, adds the loopback
// names, lower-cases and de-duplicates. The first DNS name becomes the
// subject common name.
func sanList(hostnames []string) ([]string, []netip.Addr) {
	var dns []string
	var ips []netip.Addr
	seenDNS := map[string]bool{}
	seenIP := map[netip.Addr]bool{}
	for _, h := range append(append([]string(nil), hostnames...), "localhost", "127.0.0.1", "::1") {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" {
			continue
		}
		if a, err := netip.ParseAddr(h); err == nil {
			a = a.Unmap().WithZone("")
			if !seenIP[a] {
				seenIP[a] = true
				ips = append(ips, a)
			}
			continue
		}
		if !seenDNS[h] {
			seenDNS[h] = true
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// usable reports whether the pair exists, loads, matches, is not close to
// expiry, and covers every wanted name.
func usable(certFile, keyFile string, dnsNames []string, ips []netip.Addr) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return false
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return false
		}
	}
	t := now()
	if t.Before(leaf.NotBefore) || t.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	for _, n := range dnsNames {
		if !contains(leaf.DNSNames, n) {
			return false
		}
	}
	for _, a := range ips {
		found := false
		for _, ip := range leaf.IPAddresses {
			if b, ok := netip.AddrFromSlice(ip); ok && b.Unmap() == a {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// generate creates a P-256 key and a self-signed server certificate.
func generate(dnsNames []string, ips []netip.Addr) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generating serial: %w", err)
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: dnsNames[0], Organization: []string{"mailstead self-signed"}},
		NotBefore:             t.Add(-time.Hour), // tolerate clients with a slow clock
		NotAfter:              t.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
	}
	for _, a := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// writeFileAtomic writes data to a temporary file in the same directory with
// the given mode, fsyncs it and renames it over name. The caller syncs the
// directory.
func writeFileAtomic(name string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file 0600 already; Chmod sets the final mode
	// explicitly so the umask cannot widen or narrow it.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
