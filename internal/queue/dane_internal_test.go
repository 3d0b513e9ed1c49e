package queue

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

// certOpts describe one test certificate.
type certOpts struct {
	name      string // subject CN and, for a leaf, DNS name
	ca        bool
	expired   bool
	parent    *x509.Certificate // nil: self-signed
	parentKey crypto.Signer
	key       crypto.Signer // nil: a new P-256 key
}

var serial int64

func mkCert(t *testing.T, o certOpts) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := o.key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	serial++
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: o.name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
	}
	if o.expired {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-72*time.Hour), now.Add(-24*time.Hour)
	}
	if o.ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames = []string{o.name}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	parent, parentKey := o.parent, o.parentKey
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// rec makes a TLSA record for c.
func rec(usage, sel, mt uint8, c *x509.Certificate) dnsresolver.TLSA {
	data := c.Raw
	if sel == 1 {
		data = c.RawSubjectPublicKeyInfo
	}
	switch mt {
	case 1:
		h := sha256.Sum256(data)
		data = h[:]
	case 2:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return dnsresolver.TLSA{Usage: usage, Selector: sel, MatchingType: mt, Data: append([]byte(nil), data...)}
}

func TestUsableTLSA(t *testing.T) {
	h256, h512 := make([]byte, 32), make([]byte, 64)
	tests := []struct {
		r    dnsresolver.TLSA
		want bool
	}{
		{dnsresolver.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: h256}, true},
		{dnsresolver.TLSA{Usage: 3, Selector: 0, MatchingType: 2, Data: h512}, true},
		{dnsresolver.TLSA{Usage: 2, Selector: 1, MatchingType: 0, Data: []byte{1}}, true},
		{dnsresolver.TLSA{Usage: 2, Selector: 0, MatchingType: 1, Data: h256}, true},
		{dnsresolver.TLSA{Usage: 0, Selector: 1, MatchingType: 1, Data: h256}, false}, // PKIX-TA: unusable for SMTP
		{dnsresolver.TLSA{Usage: 1, Selector: 1, MatchingType: 1, Data: h256}, false}, // PKIX-EE
		{dnsresolver.TLSA{Usage: 4, Selector: 1, MatchingType: 1, Data: h256}, false},
		{dnsresolver.TLSA{Usage: 3, Selector: 2, MatchingType: 1, Data: h256}, false},
		{dnsresolver.TLSA{Usage: 3, Selector: 1, MatchingType: 3, Data: h256}, false},
		{dnsresolver.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: h512}, false}, // wrong digest length
		{dnsresolver.TLSA{Usage: 3, Selector: 1, MatchingType: 2, Data: h256}, false},
		{dnsresolver.TLSA{Usage: 3, Selector: 1, MatchingType: 0, Data: nil}, false},
	}
	for _, tt := range tests {
		if got := usableTLSA(tt.r); got != tt.want {
			t.Errorf("usableTLSA(%d %d %d, %d bytes) = %v", tt.r.Usage, tt.r.Selector, tt.r.MatchingType, len(tt.r.Data), got)
		}
	}
}

func TestVerifyDANE(t *testing.T) {
	const host = "mx.example.net"
	root, rootKey := mkCert(t, certOpts{name: "Root", ca: true})
	oldRoot, oldRootKey := mkCert(t, certOpts{name: "Old Root", ca: true, expired: true})
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edRoot, _ := mkCert(t, certOpts{name: "Ed Root", ca: true, key: edKey})
	inter, interKey := mkCert(t, certOpts{name: "Inter", ca: true, parent: root, parentKey: rootKey})
	// impostor has the intermediate's name but another key.
	impostor, _ := mkCert(t, certOpts{name: "Inter", ca: true, parent: root, parentKey: rootKey})
	leaf, _ := mkCert(t, certOpts{name: host, parent: inter, parentKey: interKey})
	other, _ := mkCert(t, certOpts{name: host, parent: inter, parentKey: interKey})
	expLeaf, _ := mkCert(t, certOpts{name: host, expired: true, parent: inter, parentKey: interKey})
	wrongName, _ := mkCert(t, certOpts{name: "other.example.net", parent: inter, parentKey: interKey})
	oldLeaf, _ := mkCert(t, certOpts{name: host, parent: oldRoot, parentKey: oldRootKey})
	edLeaf, _ := mkCert(t, certOpts{name: host, parent: edRoot, parentKey: edKey})
	selfSigned, _ := mkCert(t, certOpts{name: host})

	chain := func(cs ...*x509.Certificate) []*x509.Certificate { return cs }
	recs := func(rs ...dnsresolver.TLSA) []dnsresolver.TLSA { return rs }
	full := chain(leaf, inter, root)
	tests := []struct {
		name   string
		chain  []*x509.Certificate
		recs   []dnsresolver.TLSA
		result string // "" ok, else the RFC 8460 result type
	}{
		{"EE cert full", full, recs(rec(3, 0, 0, leaf)), ""},
		{"EE cert sha256", full, recs(rec(3, 0, 1, leaf)), ""},
		{"EE cert sha512", full, recs(rec(3, 0, 2, leaf)), ""},
		{"EE spki full", full, recs(rec(3, 1, 0, leaf)), ""},
		{"EE spki sha256", chain(leaf), recs(rec(3, 1, 1, leaf)), ""},
		{"EE spki sha512", full, recs(rec(3, 1, 2, leaf)), ""},
		{"EE self-signed", chain(selfSigned), recs(rec(3, 1, 1, selfSigned)), ""},
		{"EE ignores name", chain(wrongName), recs(rec(3, 1, 1, wrongName)), ""},
		{"EE ignores dates", chain(expLeaf, inter), recs(rec(3, 1, 1, expLeaf)), ""},
		{"EE other cert", full, recs(rec(3, 1, 1, other)), ResultTLSAInvalid},
		{"EE record of the CA", full, recs(rec(3, 1, 1, root)), ResultTLSAInvalid},
		{"EE one of several", full, recs(rec(3, 1, 1, other), rec(3, 0, 1, leaf)), ""},
		{"TA root cert", full, recs(rec(2, 0, 1, root)), ""},
		{"TA root spki sha512", full, recs(rec(2, 1, 2, root)), ""},
		{"TA intermediate", chain(leaf, inter), recs(rec(2, 1, 1, inter)), ""},
		{"TA out of order", chain(leaf, root, inter), recs(rec(2, 0, 1, root)), ""},
		{"TA not presented", chain(leaf, inter), recs(rec(2, 0, 1, root)), ResultTLSAInvalid},
		{"TA bare key", chain(leaf, inter), recs(rec(2, 1, 0, root)), ""},
		{"TA bare ed25519 key", chain(edLeaf), recs(rec(2, 1, 0, edRoot)), ""},
		{"TA bare key of another", chain(leaf, inter), recs(rec(2, 1, 0, edRoot)), ResultTLSAInvalid},
		{"TA wrong name", chain(wrongName, inter, root), recs(rec(2, 0, 1, root)), ResultCertificateHostMismatch},
		{"TA expired leaf", chain(expLeaf, inter, root), recs(rec(2, 0, 1, root)), ResultCertificateExpired},
		{"TA expired anchor", chain(oldLeaf, oldRoot), recs(rec(2, 0, 1, oldRoot)), ""},
		{"TA matching only the leaf", full, recs(rec(2, 0, 1, leaf)), ResultTLSAInvalid},
		{"TA impostor intermediate", chain(leaf, impostor, root), recs(rec(2, 0, 1, root)), ResultTLSAInvalid},
		{"TA then EE", full, recs(rec(2, 0, 1, root), rec(3, 1, 1, other)), ""},
		{"PKIX-EE unusable", full, recs(rec(1, 1, 1, leaf)), ResultTLSAInvalid},
		{"PKIX-TA unusable", full, recs(rec(0, 0, 1, root)), ResultTLSAInvalid},
		{"short digest", full, recs(dnsresolver.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: rec(3, 1, 1, leaf).Data[:31]}), ResultTLSAInvalid},
		{"unknown matching type", full, recs(dnsresolver.TLSA{Usage: 3, Selector: 1, MatchingType: 9, Data: rec(3, 1, 1, leaf).Data}), ResultTLSAInvalid},
		{"unknown selector", full, recs(dnsresolver.TLSA{Usage: 3, Selector: 7, MatchingType: 1, Data: rec(3, 1, 1, leaf).Data}), ResultTLSAInvalid},
		{"no certificate", nil, recs(rec(3, 1, 1, leaf)), ResultTLSAInvalid},
		{"no records", full, nil, ResultTLSAInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyDANE(tt.chain, tt.recs, host, time.Now())
			if tt.result == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("verified, want %s", tt.result)
			}
			if got, _ := TLSResultType(fmt.Errorf("handshake: %w", err)); got != tt.result {
				t.Fatalf("result %s (%v), want %s", got, err, tt.result)
			}
		})
	}
}

// TestVerifyDANEBounded feeds a long chain of unrelated certificates: the
// walk must stop within its bounds and fail.
func TestVerifyDANEBounded(t *testing.T) {
	root, rootKey := mkCert(t, certOpts{name: "Root", ca: true})
	var chain []*x509.Certificate
	parent, parentKey := root, crypto.Signer(rootKey)
	var issuers []*x509.Certificate
	for i := 0; i < 20; i++ {
		c, k := mkCert(t, certOpts{name: fmt.Sprintf("CA %d", i), ca: true, parent: parent, parentKey: parentKey})
		issuers = append(issuers, c)
		parent, parentKey = c, k
	}
	leaf, _ := mkCert(t, certOpts{name: "mx.example.net", parent: parent, parentKey: parentKey})
	chain = append(chain, leaf)
	for i := len(issuers) - 1; i >= 0; i-- {
		chain = append(chain, issuers[i])
	}
	chain = append(chain, root)
	err := verifyDANE(chain, []dnsresolver.TLSA{rec(2, 0, 1, root)}, "mx.example.net", time.Now())
	if err == nil {
		t.Fatal("a trust anchor beyond the depth bound was accepted")
	}
	// Within the bound, the same construction verifies.
	if err := verifyDANE(chain, []dnsresolver.TLSA{rec(2, 0, 1, issuers[len(issuers)-4])}, "mx.example.net", time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestTLSNote(t *testing.T) {
	if got := tlsNote("TLS 1.3", true); got != " (TLS 1.3, dane)" {
		t.Errorf("dane note %q", got)
	}
	if got := tlsNote("TLS 1.3", false); got != " (TLS 1.3)" {
		t.Errorf("note %q", got)
	}
	if got := tlsNote("", false); got != "" {
		t.Errorf("plain note %q", got)
	}
}
