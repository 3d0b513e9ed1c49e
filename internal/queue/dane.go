package queue

// DANE for SMTP (RFC 7672) in direct mode.
//
// DANE applies to an MX host when the domain's MX RRset (or, without MX
// records, the secure denial that makes the domain its own implicit MX)
// is DNSSEC-secure and the TLSA RRset at _25._tcp.<mx host> is secure
// too (RFC 7672 2.2). Per MX host:
//
//   - usable TLSA records (DANE-TA(2), DANE-EE(3)): STARTTLS is required
//     and the certificate is checked against the records only, never the
//     Web PKI; a host that does not offer STARTTLS or fails the handshake
//     is skipped (temporary failure), never used in plain text. DANE wins
//     over an MTA-STS policy for such a host (RFC 8461 2).
//   - secure TLSA records, none usable (PKIX-TA(0)/PKIX-EE(1) are
//     unusable for SMTP, RFC 7672 3.1.3, as are unknown parameters):
//     "mandatory unauthenticated TLS" (RFC 7672 2.2, Postfix's
//     "encrypt"), MTA-STS still applies.
//   - a secure denial, or an insecure answer: no DANE, as before.
//   - a failed TLSA lookup (SERVFAIL: a bogus answer, or a timeout): the
//     host is skipped, since the answer could have been usable records
//     (RFC 7672 2.2.1: no downgrade).
//
// The DNSSEC answers come from dnsresolver.DNSSEC, which trusts the AD
// bit of a local validating resolver. TLS reports are not delivered with
// DANE (their delivery must not depend on the policies they report on,
// RFC 8460 5.3), and relays (smarthosts, routes) never use DANE.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

// daneMode is what DANE decided for one MX host.
type daneMode int

const (
	daneNone    daneMode = iota // not applicable: delivery as without DANE
	daneVerify                  // usable secure TLSA: TLS required, authenticated by the records
	daneEncrypt                 // secure TLSA, none usable: TLS required, not authenticated
	daneFail                    // TLSA lookup failed: the host is not used
)

func (m daneMode) String() string {
	return [...]string{"none", "verify", "encrypt", "lookup-failed"}[m]
}

// daneHost is the DANE decision for one MX host.
type daneHost struct {
	mode   daneMode
	all    []dnsresolver.TLSA // the secure TLSA RRset (TLS report policy-string)
	usable []dnsresolver.TLSA
	err    error  // daneFail: the delivery error
	why    string // for the log
}

// Bounds of certificate chain checks against TLSA records.
const (
	maxDANEChain = 16 // certificates of a presented chain looked at
	maxDANEDepth = 8  // issuers walked up from the leaf
)

func tlsaName(host string) string { return "_25._tcp." + host }

// usableTLSA reports whether r can authenticate an SMTP server (RFC 7672
// 3.1): usage DANE-TA(2) or DANE-EE(3), selector 0 or 1, matching type
// 0, 1 or 2 with data of the digest's length.
func usableTLSA(r dnsresolver.TLSA) bool {
	if r.Usage != dnsresolver.UsageDANETA && r.Usage != dnsresolver.UsageDANEEE {
		return false
	}
	if r.Selector != dnsresolver.SelectorCert && r.Selector != dnsresolver.SelectorSPKI {
		return false
	}
	switch r.MatchingType {
	case dnsresolver.MatchFull:
		return len(r.Data) > 0
	case dnsresolver.MatchSHA256:
		return len(r.Data) == sha256.Size
	case dnsresolver.MatchSHA512:
		return len(r.Data) == sha512.Size
	}
	return false
}

func tlsaLines(rs []dnsresolver.TLSA) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

// daneLookup decides DANE for each of the hosts of a domain whose MX
// answer was secure, looking their TLSA records up concurrently (at most
// maxMXHosts).
func (t *SMTP) daneLookup(ctx context.Context, hosts []string) map[string]*daneHost {
	res := make([]*daneHost, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = t.daneHostLookup(ctx, h)
		}()
	}
	wg.Wait()
	out := make(map[string]*daneHost, len(hosts))
	for i, h := range hosts {
		out[h] = res[i]
	}
	return out
}

func (t *SMTP) daneHostLookup(ctx context.Context, host string) *daneHost {
	if _, err := netip.ParseAddr(host); err == nil {
		return &daneHost{why: "MX host is an IP address"}
	}
	recs, secure, err := t.opts.DANE.LookupTLSA(ctx, tlsaName(host))
	switch {
	case err != nil && isNotFound(err) && secure:
		return &daneHost{why: "no TLSA records (DNSSEC-secure denial)"}
	case err != nil && isNotFound(err):
		return &daneHost{why: "no TLSA records (insecure denial)"}
	case err != nil:
		return &daneHost{mode: daneFail, why: err.Error(),
			err: tempErr("4.7.5", "DANE: lookup of the TLSA records of %s failed (%v); not delivering to it without them (RFC 7672 2.2.1)", host, err)}
	case !secure:
		return &daneHost{why: "TLSA records not DNSSEC-secure; ignored"}
	}
	dh := &daneHost{all: recs}
	for _, r := range recs {
		if usableTLSA(r) {
			dh.usable = append(dh.usable, r)
		}
	}
	if len(dh.usable) == 0 {
		dh.mode, dh.why = daneEncrypt, "secure TLSA records, none usable: TLS required, not authenticated"
	} else {
		dh.mode, dh.why = daneVerify, "secure usable TLSA records: TLS required, authenticated by them"
	}
	return dh
}

// authenticates reports whether dh makes DANE verify the host (and so
// override MTA-STS).
func (dh *daneHost) authenticates() bool { return dh != nil && dh.mode == daneVerify }

// daneApply turns the DANE decision for tg's host into target settings
// and logs it.
func (t *SMTP) daneApply(tg *target, dh *daneHost) {
	if dh == nil {
		return
	}
	t.log.Debug("dane", "domain", tg.domain, "mx", tg.host, "decision", dh.mode.String(), "reason", dh.why, "tlsa", len(dh.all))
	switch dh.mode {
	case daneVerify:
		tg.dane = dh.usable
		tg.verify, tg.stsTesting = false, false
		tg.policy = tlsPolicy{typ: PolicyTLSA, lines: tlsaLines(dh.all), domain: tg.policy.domain}
	case daneEncrypt:
		tg.requireTLS = true
		if tg.policy.typ != PolicySTS {
			tg.policy = tlsPolicy{typ: PolicyTLSA, lines: tlsaLines(dh.all), domain: tg.policy.domain}
		}
	}
}

// daneFailed logs and records a host skipped because its TLSA lookup
// failed.
func (t *SMTP) daneFailed(domain, host string, dh *daneHost) {
	t.log.Warn("dane: TLSA lookup failed; MX host skipped", "domain", domain, "mx", host, "err", dh.why)
	t.failures.WithLabelValues("dane").Inc()
	t.tlsrec.record(tlsSession{policy: tlsPolicy{typ: PolicyTLSA, domain: domain}, result: ResultDNSSECInvalid,
		reason: "tlsa lookup failed", mx: host})
}

// daneTLSConfig makes cfg check the server's chain against tg's TLSA
// records instead of the Web PKI.
func daneTLSConfig(cfg *tls.Config, tg target) {
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyDANE(cs.PeerCertificates, tg.dane, tg.host, time.Now())
	}
}

// daneError is a certificate chain that the TLSA records do not
// authenticate.
type daneError struct {
	result string // RFC 8460 result-type
	reason string
}

func (e *daneError) Error() string { return "DANE: " + e.reason }

// verifyDANE checks a server's certificate chain (leaf first) against
// usable TLSA records for host (RFC 7672 3.1, RFC 7671 5):
//
//   - DANE-EE(3): the leaf matches; its name and validity dates are not
//     checked (RFC 7672 3.1.1): the record is the authentication.
//   - DANE-TA(2): a chain from the leaf through the presented
//     certificates ends at a certificate (or, for "2 1 0", a public key)
//     that matches; the leaf must be valid for host (RFC 7672 3.2.2,
//     3.2.3) and the leaf and intermediates within their validity dates.
//     The trust anchor's own dates are not checked: the DNS vouches for
//     it, as a root store would.
func verifyDANE(chain []*x509.Certificate, recs []dnsresolver.TLSA, host string, now time.Time) error {
	if len(chain) == 0 {
		return &daneError{result: ResultTLSAInvalid, reason: "no server certificate"}
	}
	if len(chain) > maxDANEChain {
		chain = chain[:maxDANEChain]
	}
	var ta []dnsresolver.TLSA
	for _, r := range recs {
		switch {
		case !usableTLSA(r):
		case r.Usage == dnsresolver.UsageDANEEE:
			if tlsaMatch(r, chain[0]) {
				return nil
			}
		default:
			ta = append(ta, r)
		}
	}
	if len(ta) == 0 {
		return &daneError{result: ResultTLSAInvalid, reason: "certificate does not match the DANE-EE TLSA records"}
	}
	return verifyDANETA(chain, ta, host, now)
}

func verifyDANETA(chain []*x509.Certificate, ta []dnsresolver.TLSA, host string, now time.Time) error {
	leaf := chain[0]
	anchored := false
	var dateErr error
	used := make([]bool, len(chain))
	used[0] = true
	cur := leaf
walk:
	for depth := 0; depth < maxDANEDepth; depth++ {
		if outsideDates(cur, now) {
			dateErr = &daneError{result: ResultCertificateExpired, reason: "certificate in the chain outside its validity period"}
		}
		// A bare trust anchor key ("2 1 0") need not be in the chain.
		for _, r := range ta {
			if r.Selector == dnsresolver.SelectorSPKI && r.MatchingType == dnsresolver.MatchFull && signedByKey(cur, r.Data) {
				anchored = true
				break walk
			}
		}
		next := -1
		for i, c := range chain {
			if !used[i] && bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		cur = chain[next]
		for _, r := range ta {
			if tlsaMatch(r, cur) {
				anchored = true
				break walk
			}
		}
	}
	if !anchored {
		return &daneError{result: ResultTLSAInvalid, reason: "no certificate in the chain matches the DANE-TA TLSA records"}
	}
	if dateErr != nil {
		return dateErr
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return &daneError{result: ResultCertificateHostMismatch, reason: "certificate is not valid for " + host + " (DANE-TA)"}
	}
	return nil
}

func outsideDates(c *x509.Certificate, now time.Time) bool {
	return now.Before(c.NotBefore) || now.After(c.NotAfter)
}

// tlsaMatch reports whether c matches r's selector and matching type.
func tlsaMatch(r dnsresolver.TLSA, c *x509.Certificate) bool {
	var data []byte
	switch r.Selector {
	case dnsresolver.SelectorCert:
		data = c.Raw
	case dnsresolver.SelectorSPKI:
		data = c.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case dnsresolver.MatchFull:
		return bytes.Equal(data, r.Data)
	case dnsresolver.MatchSHA256:
		h := sha256.Sum256(data)
		return bytes.Equal(h[:], r.Data)
	case dnsresolver.MatchSHA512:
		h := sha512.Sum512(data)
		return bytes.Equal(h[:], r.Data)
	}
	return false
}

// signedByKey reports whether c is signed by the key of a DER
// SubjectPublicKeyInfo.
func signedByKey(c *x509.Certificate, spki []byte) bool {
	pk, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return false
	}
	var alg x509.PublicKeyAlgorithm
	switch pk.(type) {
	case *rsa.PublicKey:
		alg = x509.RSA
	case *ecdsa.PublicKey:
		alg = x509.ECDSA
	case ed25519.PublicKey:
		alg = x509.Ed25519
	default:
		return false
	}
	// A stand-in issuer certificate carrying only the key: the DNS
	// record is the trust anchor, with no name or constraints.
	issuer := &x509.Certificate{Version: 3, BasicConstraintsValid: true, IsCA: true, PublicKey: pk, PublicKeyAlgorithm: alg}
	return c.CheckSignatureFrom(issuer) == nil
}

// daneRequired says why a host that does not offer STARTTLS gets no mail.
func daneRequired(host string) string {
	return fmt.Sprintf("the DNSSEC-signed TLSA records of %s require TLS (DANE)", host)
}
