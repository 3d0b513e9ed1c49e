package arc

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Verify validates the ARC chain of a message (RFC 8617 section 5.2). Chain
// failures are reported in the Result; the error is for unreadable messages
// and temporary DNS failures (wrapping ErrTemporary).
func Verify(ctx context.Context, msg io.Reader, lookup LookupTXT) (Result, error) {
	br := bufio.NewReader(msg)
	fields, err := readHeader(br)
	if err != nil {
		return Result{}, err
	}
	v := newChainValidator(fields)
	var sum []byte
	if spec := v.bodySpec(); spec != nil {
		h := sha256.New()
		if err := copyBody(br, []io.WriteCloser{newBodyCanonicalizer(h, spec.canon, spec.limit)}); err != nil {
			return Result{}, err
		}
		sum = h.Sum(nil)
	}
	return v.finish(ctx, lookup, sum)
}

type arcSet struct {
	aar, ams, as *field
	asTags       map[string]string
}

// chainValidator holds the state of a validation between reading the header
// and hashing the body.
type chainValidator struct {
	fields  []field
	sets    []*arcSet // index = instance; sets[0] unused
	maxSeen int       // highest instance claimed by any ARC field
	result  Result    // set once the outcome is known without crypto
	decided bool
	amsTags map[string]string // of the highest instance
	amsBody *bodySpec
	now     func() time.Time
}

type bodySpec struct {
	canon string
	limit int64
}

func (v *chainValidator) fail(format string, args ...any) {
	if !v.decided {
		v.result = Result{Status: StatusFail, Instance: v.maxSeen, Reason: fmt.Sprintf(format, args...)}
		v.decided = true
	}
}

// newChainValidator checks the structure of the chain: complete sets 1..N,
// no duplicates, N ≤ 50, cv values as RFC 8617 section 5.2 steps 2-4 say.
func newChainValidator(fields []field) *chainValidator {
	v := &chainValidator{fields: fields, now: time.Now}
	v.sets = make([]*arcSet, MaxInstance+1)
	found := false
	for i := range fields {
		f := &fields[i]
		if !strings.EqualFold(f.name, hdrAAR) && !strings.EqualFold(f.name, hdrAMS) && !strings.EqualFold(f.name, hdrAS) {
			continue
		}
		found = true
		n := instanceOf(f.name, f.value)
		if n == 0 {
			v.fail("%s without a valid instance", f.name)
			continue
		}
		v.maxSeen = max(v.maxSeen, n)
		if n > MaxInstance {
			v.fail("instance %d above %d", n, MaxInstance)
			continue
		}
		set := v.sets[n]
		if set == nil {
			set = &arcSet{}
			v.sets[n] = set
		}
		var p **field
		switch {
		case strings.EqualFold(f.name, hdrAAR):
			p = &set.aar
		case strings.EqualFold(f.name, hdrAMS):
			p = &set.ams
		default:
			p = &set.as
		}
		if *p != nil {
			v.fail("two %s with i=%d", f.name, n)
			continue
		}
		*p = f
	}
	if !found {
		v.result = Result{Status: StatusNone}
		v.decided = true
		return v
	}
	if v.decided {
		return v
	}
	n := v.maxSeen
	for i := 1; i <= n; i++ {
		s := v.sets[i]
		if s == nil || s.aar == nil || s.ams == nil || s.as == nil {
			v.fail("incomplete ARC set i=%d", i)
			return v
		}
		tags, err := parseTags(s.as.value)
		if err != nil {
			v.fail("ARC-Seal i=%d: %v", i, err)
			return v
		}
		s.asTags = tags
	}
	if cv := v.sets[n].asTags["cv"]; cv == string(StatusFail) {
		v.fail("ARC-Seal i=%d says cv=fail", n)
		return v
	}
	for i := 1; i <= n; i++ {
		cv := v.sets[i].asTags["cv"]
		if i == 1 && cv != string(StatusNone) || i > 1 && cv != string(StatusPass) {
			v.fail("ARC-Seal i=%d has cv=%q", i, cv)
			return v
		}
	}
	tags, err := parseTags(v.sets[n].ams.value)
	if err != nil {
		v.fail("ARC-Message-Signature i=%d: %v", n, err)
		return v
	}
	c := tags["c"]
	hc, bc, _ := strings.Cut(c, "/")
	if hc == "" {
		hc = canonSimple
	}
	if bc == "" {
		bc = canonSimple
	}
	if hc != canonSimple && hc != canonRelaxed || bc != canonSimple && bc != canonRelaxed {
		v.fail("ARC-Message-Signature i=%d: unknown canonicalization %q", n, c)
		return v
	}
	spec := &bodySpec{canon: bc, limit: -1}
	if l, ok := tags["l"]; ok {
		lim, err := strconv.ParseInt(l, 10, 64)
		if err != nil || lim < 0 {
			v.fail("ARC-Message-Signature i=%d: bad l=", n)
			return v
		}
		spec.limit = lim
	}
	v.amsTags = tags
	v.amsBody = spec
	return v
}

// bodySpec says how to hash the body for the newest ARC-Message-Signature;
// nil if the body does not matter (no chain, or a chain already failed).
func (v *chainValidator) bodySpec() *bodySpec {
	if v.decided {
		return nil
	}
	return v.amsBody
}

// finish verifies the newest ARC-Message-Signature (with the body hash it
// asked for) and every ARC-Seal.
func (v *chainValidator) finish(ctx context.Context, lookup LookupTXT, bodySum []byte) (Result, error) {
	if v.decided {
		return v.result, nil
	}
	n := v.maxSeen
	if lookup == nil {
		v.fail("no DNS lookup to fetch keys with")
		return v.result, nil
	}
	keys := &keyCache{lookup: lookup, keys: map[string]*keyEntry{}}

	// The newest ARC-Message-Signature (older ones may have been broken by
	// later hops legitimately).
	ams := v.sets[n].ams
	tags := v.amsTags
	for _, t := range []string{"i", "a", "b", "bh", "d", "h", "s"} {
		if _, ok := tags[t]; !ok {
			v.fail("ARC-Message-Signature i=%d lacks %s=", n, t)
			return v.result, nil
		}
	}
	if x, ok := tags["x"]; ok {
		if exp, err := strconv.ParseInt(x, 10, 64); err != nil || v.now().Unix() > exp {
			v.fail("ARC-Message-Signature i=%d expired", n)
			return v.result, nil
		}
	}
	bh, err := base64.StdEncoding.DecodeString(stripSpace(tags["bh"]))
	if err != nil || string(bh) != string(bodySum) {
		v.fail("ARC-Message-Signature i=%d: body hash mismatch", n)
		return v.result, nil
	}
	var hnames []string
	for _, h := range strings.Split(tags["h"], ":") {
		h = strings.ToLower(strings.Trim(h, " \t\r\n"))
		if h == "arc-seal" {
			v.fail("ARC-Message-Signature i=%d signs ARC-Seal", n)
			return v.result, nil
		}
		hnames = append(hnames, h)
	}
	hc, _, _ := strings.Cut(tags["c"], "/")
	if hc == "" {
		hc = canonSimple
	}
	hh := sha256.New()
	for _, f := range pickHeaders(v.fields, hnames) {
		io.WriteString(hh, canonHeader(hc, f))
	}
	self := field{name: ams.name, value: withoutB(ams.value)}
	self.raw = []byte(self.name + ":" + self.value + "\r\n")
	io.WriteString(hh, strings.TrimSuffix(canonHeader(hc, self), "\r\n"))
	if ok, err := v.checkSig(ctx, keys, tags, hh); err != nil {
		return Result{}, err
	} else if !ok {
		v.fail("ARC-Message-Signature i=%d: signature does not verify", n)
		return v.result, nil
	}

	// Every ARC-Seal, newest first.
	for k := n; k >= 1; k-- {
		tags := v.sets[k].asTags
		for _, t := range []string{"i", "a", "b", "cv", "d", "s"} {
			if _, ok := tags[t]; !ok {
				v.fail("ARC-Seal i=%d lacks %s=", k, t)
				return v.result, nil
			}
		}
		if _, ok := tags["h"]; ok {
			v.fail("ARC-Seal i=%d has h=", k)
			return v.result, nil
		}
		sh := sha256.New()
		for j := 1; j <= k; j++ {
			s := v.sets[j]
			io.WriteString(sh, relaxedHeader(s.aar.name, s.aar.value))
			io.WriteString(sh, relaxedHeader(s.ams.name, s.ams.value))
			if j < k {
				io.WriteString(sh, relaxedHeader(s.as.name, s.as.value))
			}
		}
		io.WriteString(sh, strings.TrimSuffix(relaxedHeader(v.sets[k].as.name, withoutB(v.sets[k].as.value)), "\r\n"))
		if ok, err := v.checkSig(ctx, keys, tags, sh); err != nil {
			return Result{}, err
		} else if !ok {
			v.fail("ARC-Seal i=%d: signature does not verify", k)
			return v.result, nil
		}
	}
	return Result{Status: StatusPass, Instance: n}, nil
}

// checkSig verifies b= over the hashed data with the key at s._domainkey.d.
func (v *chainValidator) checkSig(ctx context.Context, keys *keyCache, tags map[string]string, h hash.Hash) (bool, error) {
	var alg string
	switch tags["a"] {
	case "rsa-sha256":
		alg = "rsa"
	case "ed25519-sha256":
		alg = "ed25519"
	default:
		return false, nil
	}
	d, s := tags["d"], tags["s"]
	if !nameRE.MatchString(d) || !nameRE.MatchString(s) {
		return false, nil
	}
	sig, err := base64.StdEncoding.DecodeString(stripSpace(tags["b"]))
	if err != nil {
		return false, nil
	}
	key, err := keys.get(ctx, s+"._domainkey."+d)
	if err != nil {
		return false, err
	}
	if key == nil || key.alg != alg {
		return false, nil
	}
	digest := h.Sum(nil)
	switch k := key.key.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil, nil
	case ed25519.PublicKey:
		return ed25519.Verify(k, digest, sig), nil
	}
	return false, nil
}

// maxLookups bounds the DNS queries of one validation: two keys per set.
const maxLookups = 2 * MaxInstance

type keyEntry struct {
	key *publicKey
}

type keyCache struct {
	lookup  LookupTXT
	keys    map[string]*keyEntry
	lookups int
}

// get returns the key published at name, nil if there is no usable one, or
// an error wrapping ErrTemporary.
func (c *keyCache) get(ctx context.Context, name string) (*publicKey, error) {
	if e, ok := c.keys[name]; ok {
		return e.key, nil
	}
	if c.lookups >= maxLookups {
		return nil, nil
	}
	c.lookups++
	txts, err := c.lookup(ctx, name)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			c.keys[name] = &keyEntry{}
			return nil, nil
		}
		return nil, fmt.Errorf("%w: looking up %s: %v", ErrTemporary, name, err)
	}
	e := &keyEntry{}
	for _, txt := range txts {
		if k, err := parseKeyRecord(txt); err == nil {
			e.key = k
			break
		}
	}
	c.keys[name] = e
	return e.key, nil
}
