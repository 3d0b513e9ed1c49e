// Package arc adds Authenticated Received Chain sets (RFC 8617) to messages
// we forward, so that receivers that trust us can see the authentication
// results we computed before forwarding broke SPF (and perhaps DKIM).
//
// Seal validates the chain already on the message (to choose cv=none, pass
// or fail) and returns the three header fields of the next ARC set, ready to
// be prepended to the message unchanged: ARC-Seal, ARC-Message-Signature and
// ARC-Authentication-Results, in that order from the top.
//
// Signing uses relaxed/relaxed canonicalization and rsa-sha256 (RFC 8617
// defines no other algorithm). Ed25519 keys are accepted and produce
// ed25519-sha256 (RFC 8463) sets, but receivers that follow RFC 8617 strictly,
// dkimpy among them, reject those: prefer an RSA key for ARC. Verification
// accepts both.
package arc

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Header field names.
const (
	hdrAAR = "ARC-Authentication-Results"
	hdrAMS = "ARC-Message-Signature"
	hdrAS  = "ARC-Seal"
)

// MaxInstance is the highest ARC instance allowed (RFC 8617 section 4.2.1).
const MaxInstance = 50

// Status is an ARC chain validation status, the cv= of an ARC-Seal.
type Status string

const (
	StatusNone Status = "none"
	StatusPass Status = "pass"
	StatusFail Status = "fail"
)

// LookupTXT returns the TXT records of a name, each record's strings
// concatenated, like net.Resolver.LookupTXT. An error that is a *net.DNSError
// with IsNotFound set is permanent; any other error is taken as temporary.
type LookupTXT func(ctx context.Context, name string) ([]string, error)

// ErrTemporary wraps failures to validate an existing chain that may succeed
// later (DNS timeouts). Seal returns it rather than stamp cv=fail for good.
var ErrTemporary = errors.New("arc: temporary failure")

// ErrTooManySets is returned by Seal when the message already carries the
// maximum number of ARC sets (or claims an instance beyond it).
var ErrTooManySets = errors.New("arc: no room for another ARC set")

// DefaultSignedHeaders are signed by the ARC-Message-Signature, each as many
// times as it occurs in the message (From at least once). They are the
// fields that carry meaning to the recipient; trace and ARC fields are left
// out, as RFC 8617 section 4.1.2 requires for ARC-Seal.
var DefaultSignedHeaders = []string{
	"From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-ID",
	"Content-Description", "Resent-Date", "Resent-From", "Resent-Sender",
	"Resent-To", "Resent-Cc", "Resent-Message-ID", "In-Reply-To", "References",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post",
	"List-Owner", "List-Archive", "List-Unsubscribe-Post", "DKIM-Signature",
}

// SealOptions say who seals and what we found.
type SealOptions struct {
	// AuthServID is our authserv-id, as in our Authentication-Results.
	AuthServID string
	// AuthResults are the results we computed for the message, e.g.
	// "spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org".
	// A leading "authserv-id;" (or a whole "Authentication-Results:"
	// field) is accepted and removed. Empty means "none".
	AuthResults string
	// Domain and Selector locate our public key: Selector._domainkey.Domain.
	Domain   string
	Selector string
	// Key signs; *rsa.PrivateKey (recommended) or ed25519.PrivateKey.
	Key crypto.Signer
	// SignedHeaders overrides DefaultSignedHeaders.
	SignedHeaders []string
	// LookupTXT fetches the keys of the ARC sets already on the message.
	// Nil means the existing chain cannot be checked and is sealed as
	// cv=fail (a message without ARC sets needs no lookups).
	LookupTXT LookupTXT
	// Chain, when set, is the validation of the chain as the message was
	// received (from Verify), for messages changed since, e.g. by rewriting
	// From: validating the changed message would fail. Nil validates the
	// message given to Seal.
	Chain *Result
	// Now is the clock for t=; nil means time.Now.
	Now func() time.Time
}

// Set is a computed ARC set.
type Set struct {
	Instance int
	// Chain is the validation of the chain as received; its Status is the
	// cv= of the new ARC-Seal.
	Chain Result
	// Header holds ARC-Seal, ARC-Message-Signature and
	// ARC-Authentication-Results, in that order, each ending in CRLF and
	// folded at 78 columns, to be put in front of the message as it is.
	Header []byte
}

// Result is the outcome of validating an ARC chain.
type Result struct {
	Status   Status
	Instance int    // highest instance found; 0 without ARC sets
	Reason   string // why the chain failed
}

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$`)
	arcMethod  = regexp.MustCompile(`(?i)(?:^|;)\s*arc\s*=`)
	fieldNameR = regexp.MustCompile(`^[!-9;-~]+$`)
)

// Seal reads the message (header and body; nothing is kept but the header)
// and returns the next ARC set. The message must be final: anything changed
// in the signed header fields or the body afterwards breaks the set.
func Seal(ctx context.Context, msg io.Reader, opts SealOptions) (*Set, error) {
	algo, err := checkSealOptions(&opts)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(msg)
	fields, err := readHeader(br)
	if err != nil {
		return nil, err
	}

	v := newChainValidator(fields)
	v.now = opts.Now
	ourBody := sha256.New()
	bodies := []io.WriteCloser{newBodyCanonicalizer(ourBody, canonRelaxed, -1)}
	var theirBody hash.Hash
	if spec := v.bodySpec(); spec != nil && opts.Chain == nil {
		theirBody = sha256.New()
		bodies = append(bodies, newBodyCanonicalizer(theirBody, spec.canon, spec.limit))
	}
	if err := copyBody(br, bodies); err != nil {
		return nil, err
	}
	var theirSum []byte
	if theirBody != nil {
		theirSum = theirBody.Sum(nil)
	}
	var chain Result
	switch {
	case opts.Chain == nil:
		chain, err = v.finish(ctx, opts.LookupTXT, theirSum)
		if err != nil {
			return nil, err
		}
	case v.decided:
		// No chain, or a broken one: the structure speaks for itself.
		chain = v.result
		if chain.Status == StatusNone && opts.Chain.Status != StatusNone {
			return nil, fmt.Errorf("arc: chain result %q given for a message without ARC sets", opts.Chain.Status)
		}
	default:
		chain = Result{Status: opts.Chain.Status, Instance: v.maxSeen, Reason: opts.Chain.Reason}
		if chain.Status != StatusPass {
			chain.Status = StatusFail
			if chain.Reason == "" {
				chain.Reason = "chain did not validate on receipt"
			}
		}
	}

	instance := chain.Instance + 1
	if v.maxSeen >= MaxInstance || instance > MaxInstance {
		return nil, fmt.Errorf("%w: highest instance is %d", ErrTooManySets, max(v.maxSeen, chain.Instance))
	}
	cv := chain.Status
	now := opts.Now()

	// ARC-Authentication-Results.
	results := normalizeResults(opts.AuthResults, opts.AuthServID)
	if instance > 1 && !arcMethod.MatchString(results) {
		results += "; arc=" + string(cv)
	}
	aarValue := " i=" + strconv.Itoa(instance) + "; " + opts.AuthServID + "; " + results
	aar := fold(hdrAAR, aarValue)
	aarValue = aar[len(hdrAAR)+1 : len(aar)-2] // as emitted, folded

	// ARC-Message-Signature.
	var hnames []string
	counts := map[string]int{}
	for _, f := range fields {
		counts[strings.ToLower(f.name)]++
	}
	seen := map[string]bool{}
	for _, h := range opts.SignedHeaders {
		lh := strings.ToLower(h)
		if seen[lh] {
			continue
		}
		seen[lh] = true
		n := counts[lh]
		if lh == "from" && n == 0 {
			n = 1
		}
		for range n {
			hnames = append(hnames, lh)
		}
	}
	t := strconv.FormatInt(now.Unix(), 10)
	amsTags := []string{
		"i=" + strconv.Itoa(instance) + ";",
		"a=" + algo + ";",
		"c=relaxed/relaxed;",
		"d=" + opts.Domain + ";",
		"s=" + opts.Selector + ";",
		"t=" + t + ";",
		"h=" + strings.Join(hnames, ":") + ";",
		"bh=" + base64.StdEncoding.EncodeToString(ourBody.Sum(nil)) + ";",
	}
	amsUnsigned := foldTags(hdrAMS, amsTags)
	hh := sha256.New()
	for _, f := range pickHeaders(fields, hnames) {
		io.WriteString(hh, relaxedHeader(f.name, f.value))
	}
	io.WriteString(hh, strings.TrimSuffix(relaxedHeader(hdrAMS, amsUnsigned), "\r\n"))
	sig, err := sign(opts.Key, hh.Sum(nil))
	if err != nil {
		return nil, err
	}
	ams := hdrAMS + ":" + amsUnsigned + foldB(hdrAMS, amsUnsigned, sig) + "\r\n"

	// ARC-Seal over the sets in instance order (only ours when the chain
	// failed, RFC 8617 section 5.1.2), ours last with b= empty.
	asTags := []string{
		"i=" + strconv.Itoa(instance) + ";",
		"a=" + algo + ";",
		"t=" + t + ";",
		"cv=" + string(cv) + ";",
		"d=" + opts.Domain + ";",
		"s=" + opts.Selector + ";",
	}
	asUnsigned := foldTags(hdrAS, asTags)
	sh := sha256.New()
	if cv != StatusFail {
		for i := 1; i < instance; i++ {
			set := v.sets[i]
			for _, f := range []*field{set.aar, set.ams, set.as} {
				io.WriteString(sh, relaxedHeader(f.name, f.value))
			}
		}
	}
	io.WriteString(sh, relaxedHeader(hdrAAR, aarValue))
	io.WriteString(sh, relaxedHeader(hdrAMS, ams[len(hdrAMS)+1:len(ams)-2]))
	io.WriteString(sh, strings.TrimSuffix(relaxedHeader(hdrAS, asUnsigned), "\r\n"))
	sig, err = sign(opts.Key, sh.Sum(nil))
	if err != nil {
		return nil, err
	}
	as := hdrAS + ":" + asUnsigned + foldB(hdrAS, asUnsigned, sig) + "\r\n"

	return &Set{
		Instance: instance,
		Chain:    chain,
		Header:   []byte(as + ams + aar),
	}, nil
}

func checkSealOptions(o *SealOptions) (algo string, err error) {
	if o.AuthServID == "" || strings.ContainsAny(o.AuthServID, ";\"()") || strings.IndexFunc(o.AuthServID, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return "", fmt.Errorf("arc: invalid authserv-id %q", o.AuthServID)
	}
	if !nameRE.MatchString(o.Domain) || len(o.Domain) > 253 {
		return "", fmt.Errorf("arc: invalid signing domain %q", o.Domain)
	}
	if !nameRE.MatchString(o.Selector) || len(o.Selector) > 253 {
		return "", fmt.Errorf("arc: invalid selector %q", o.Selector)
	}
	switch k := o.Key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("arc: RSA key of %d bits is too short", k.N.BitLen())
		}
		algo = "rsa-sha256"
	case ed25519.PrivateKey:
		algo = "ed25519-sha256"
	case nil:
		return "", errors.New("arc: no signing key")
	default:
		switch o.Key.Public().(type) {
		case *rsa.PublicKey:
			algo = "rsa-sha256"
		case ed25519.PublicKey:
			algo = "ed25519-sha256"
		default:
			return "", fmt.Errorf("arc: unsupported key type %T", o.Key)
		}
	}
	if o.SignedHeaders == nil {
		o.SignedHeaders = DefaultSignedHeaders
	}
	from := false
	for _, h := range o.SignedHeaders {
		lh := strings.ToLower(h)
		if !fieldNameR.MatchString(h) {
			return "", fmt.Errorf("arc: invalid header field name %q", h)
		}
		if lh == "arc-seal" {
			return "", errors.New("arc: ARC-Message-Signature must not sign ARC-Seal")
		}
		if lh == "from" {
			from = true
		}
	}
	if !from {
		return "", errors.New("arc: From must be signed")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return algo, nil
}

// normalizeResults turns the caller's results into one line without the
// authserv-id.
func normalizeResults(s, authServID string) string {
	// Control characters become spaces, then folding and runs of white
	// space collapse: no CR or LF can reach the header.
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) >= len("authentication-results:") && strings.EqualFold(s[:len("authentication-results:")], "authentication-results:") {
		s = strings.TrimSpace(s[len("authentication-results:"):])
	}
	if id, rest, ok := strings.Cut(s, ";"); ok && strings.EqualFold(strings.TrimSpace(id), authServID) {
		s = strings.TrimSpace(rest)
	} else if strings.EqualFold(s, authServID) {
		s = ""
	}
	if s == "" {
		return "none"
	}
	return s
}

// sign signs a SHA-256 digest: PKCS #1 v1.5 for RSA, Ed25519 over the
// digest for Ed25519 (RFC 8463 section 3).
func sign(key crypto.Signer, digest []byte) (string, error) {
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		opts = crypto.Hash(0)
	}
	sig, err := key.Sign(rand.Reader, digest, opts)
	if err != nil {
		return "", fmt.Errorf("arc: signing: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// pickHeaders selects the fields named in h the DKIM way (RFC 6376 section
// 5.4.2): each occurrence of a name takes the next field of that name going
// up from the bottom; a name with no field left signs nothing.
func pickHeaders(fields []field, h []string) []field {
	below := map[string]int{} // search starts below this index
	var out []field
	for _, name := range h {
		name = strings.ToLower(strings.Trim(name, " \t\r\n"))
		i, ok := below[name]
		if !ok {
			i = len(fields)
		}
		for i--; i >= 0 && !strings.EqualFold(fields[i].name, name); i-- {
		}
		if i < 0 {
			below[name] = 0
			continue
		}
		out = append(out, fields[i])
		below[name] = i
	}
	return out
}

// copyBody streams the body into every canonicalizer.
func copyBody(r io.Reader, ws []io.WriteCloser) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			for _, w := range ws {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return fmt.Errorf("arc: hashing body: %w", werr)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("arc: reading body: %w", err)
		}
	}
	for _, w := range ws {
		if err := w.Close(); err != nil {
			return fmt.Errorf("arc: hashing body: %w", err)
		}
	}
	return nil
}

const foldWidth = 78

// fold folds "Name:value" at spaces so that lines stay within 78 columns
// where possible; it returns the complete field with CRLF.
func fold(name, value string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(':')
	col := len(name) + 1
	words := strings.Split(strings.TrimPrefix(value, " "), " ")
	for i, w := range words {
		if i > 0 && col+1+len(w) > foldWidth {
			b.WriteString("\r\n\t")
			col = 1
		} else {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}

// foldTags lays out tag=value; items for a signature field, ending with
// " b=" (the signature is added by foldB). The h= list is split after
// colons when it does not fit. The result is the field value (after the
// colon), with folding.
func foldTags(name string, tags []string) string {
	var b strings.Builder
	col := len(name) + 1
	put := func(s string, sep string) {
		if col+len(sep)+len(s) > foldWidth && col > 1 {
			b.WriteString("\r\n\t")
			col = 1
		} else {
			b.WriteString(sep)
			col += len(sep)
		}
		b.WriteString(s)
		col += len(s)
	}
	for _, tag := range append(tags, "b=") {
		if strings.HasPrefix(tag, "h=") && col+1+len(tag) > foldWidth {
			parts := strings.SplitAfter(tag, ":")
			put(parts[0], " ")
			for _, p := range parts[1:] {
				put(p, "")
			}
			continue
		}
		put(tag, " ")
	}
	return b.String()
}

// foldB returns the base64 signature folded to continue the value unsigned
// of field name (which ends with "b=").
func foldB(name, unsigned, sig string) string {
	col := len(name) + 1 + len(unsigned)
	if i := strings.LastIndex(unsigned, "\n"); i >= 0 {
		col = len(unsigned) - i
	}
	var b strings.Builder
	for len(sig) > 0 {
		room := foldWidth - col
		if room < 8 {
			b.WriteString("\r\n\t")
			col = 1
			continue
		}
		n := min(room, len(sig))
		b.WriteString(sig[:n])
		sig = sig[n:]
		col += n
	}
	return b.String()
}
