// Package mailauth checks who really sent an incoming message: SPF for the
// envelope sender (RFC 7208), DKIM signatures (RFC 6376) and DMARC for
// the From header's domain (RFC 7489), with the policy the From domain's
// owner asks receivers to apply. The verdicts are structured data for
// later stages (delivery policy, sieve, rules) and are written into one
// Authentication-Results header field (RFC 8601).
//
// All DNS goes through a dnsresolver.Resolver. A lookup that fails
// temporarily gives "temperror", never a pass; Result.Temporary tells
// the SMTP layer to answer 451 so the sender retries.
package mailauth

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
)

// Status is an authentication result value (RFC 8601 2.7).
type Status string

const (
	None      Status = "none"
	Pass      Status = "pass"
	Fail      Status = "fail"
	SoftFail  Status = "softfail"
	Neutral   Status = "neutral"
	TempError Status = "temperror"
	PermError Status = "permerror"
	Policy    Status = "policy"
)

// Action is what the From domain's DMARC policy asks for (p=/sp=).
type Action string

const (
	ActionNone       Action = "none"
	ActionQuarantine Action = "quarantine"
	ActionReject     Action = "reject"
)

// Input is what Verify checks.
type Input struct {
	// RemoteIP is the SMTP client's address.
	RemoteIP netip.Addr
	// Helo is the EHLO/HELO name the client gave.
	Helo string
	// MailFrom is the envelope sender, "" for the null sender <>.
	MailFrom string
	// Message is the message as received (header and body); required.
	Message io.ReaderAt
	Size    int64
	// AuthServID is our authserv-id (the host name), used in the
	// Authentication-Results field.
	AuthServID string

	// Rand returns a number in [0, n) for the DMARC pct= sampling; nil
	// means math/rand. Tests inject a fixed source.
	Rand func(n int) int
	// Timeout bounds the whole verification (default DefaultTimeout).
	Timeout time.Duration
	// MaxSignatures bounds the DKIM signatures verified (default
	// DefaultMaxSignatures); more are ignored.
	MaxSignatures int
}

// Defaults for Input.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultMaxSignatures = 8
)

// SPF is the SPF verdict for the envelope sender.
type SPF struct {
	Status Status
	// Identity is "mailfrom" or, for the null sender, "helo" (RFC 7208
	// 2.4); "" when there was nothing to check.
	Identity string
	// Domain is the domain checked: MAIL FROM's, or the HELO name.
	Domain   string
	MailFrom string
	Helo     string
	// Reason is a short explanation for errors.
	Reason string
}

// DKIM is the verdict for one DKIM-Signature field, in header order.
type DKIM struct {
	Status     Status
	Domain     string // d=, lower case
	Selector   string // s=
	Identifier string // i= (AUID)
	Algorithm  string // a=
	// B is the start of the signature (b=), to tell signatures apart in
	// Authentication-Results (RFC 6008).
	B      string
	Reason string
}

// DMARC is the DMARC verdict for the From header's domain.
type DMARC struct {
	Status Status
	// FromDomain is the RFC5322.From domain evaluated (with several
	// From domains, the one that decided the result).
	FromDomain string
	// RecordDomain is where the policy record was found: FromDomain or
	// its organisational domain; "" without a record.
	RecordDomain string
	// Published is the policy that applies to FromDomain (p=, or sp=
	// for a subdomain covered by its organisational domain's record).
	Published Action
	// Percent is the pct= value (100 when absent).
	Percent int
	// StrictSPF and StrictDKIM are aspf=s and adkim=s.
	StrictSPF, StrictDKIM bool
	// SPFAligned and DKIMAligned say which identifier gave the pass.
	SPFAligned, DKIMAligned bool
	Reason                  string
}

// Result is the outcome of Verify.
type Result struct {
	SPF   SPF
	DKIM  []DKIM
	DMARC DMARC
	// Policy is what the From domain's owner asks us to do with this
	// message: none for a pass, no record or errors; for a DMARC fail
	// the published policy, lowered one step when pct= sampling leaves
	// the message out (RFC 7489 6.6.4).
	Policy Action
	// Others are results of other methods (iprev, DNSBL, ...) that later
	// stages add, written into the same Authentication-Results field.
	Others []Method
}

// Method is a result of another authentication method, for the
// Authentication-Results field, e.g. {Name: "iprev", Status: Pass,
// Props: [][2]string{{"policy.iprev", "127.0.0.1"}}}.
type Method struct {
	Name   string
	Status Status
	Reason string
	Props  [][2]string
}

// Temporary reports whether the verdict could not be reached because of
// a temporary (DNS) failure and the message should be refused with a
// 4xx so that it is retried: DMARC is temperror, or SPF is temperror and
// DMARC reached no decision either (no record, or an invalid one: the
// SPF verdict is all there is). A DMARC pass or fail is a decision that
// an SPF temperror cannot change (evaluateDMARC already makes DMARC
// temperror when an aligned SPF or DKIM temperror could have made it
// pass), and a DKIM temperror alone is not temporary.
func (r Result) Temporary() bool {
	switch r.DMARC.Status {
	case TempError:
		return true
	case Pass, Fail:
		return false
	}
	return r.SPF.Status == TempError
}

// Verify checks SPF, DKIM and DMARC for a message. It always returns a
// result: failures to look something up become temperror/permerror
// verdicts, never errors or passes.
func Verify(ctx context.Context, r dnsresolver.Resolver, in Input) Result {
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// An unreadable spool is our problem: nothing can be decided now,
	// and the sender should retry.
	hdr, readErr := readHeader(in.Message, in.Size)
	froms, fromErr := fromDomains(hdr)

	// The three look-up phases are independent: run them side by side so
	// a slow DNS server costs one timeout, not three.
	var res Result
	var records []dmarcLookup
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		res.SPF = checkSPF(ctx, r, in)
	}()
	go func() {
		defer wg.Done()
		if readErr != nil {
			res.DKIM = []DKIM{{Status: TempError, Reason: "message unreadable"}}
			return
		}
		res.DKIM = verifyDKIM(ctx, r, hdr, in)
	}()
	go func() {
		defer wg.Done()
		if readErr == nil && fromErr == nil {
			records = lookupDMARC(ctx, r, froms)
		}
	}()
	wg.Wait()

	rnd := in.Rand
	if rnd == nil {
		rnd = rand.IntN
	}
	if readErr != nil {
		res.DMARC = DMARC{Status: TempError, Reason: "message unreadable"}
	} else {
		res.DMARC = evaluateDMARC(froms, fromErr, records, res.SPF, res.DKIM)
	}
	res.Policy = applyPolicy(res.DMARC, rnd)
	return res
}

// maxHeader bounds the header read for From and DKIM-Signature parsing.
const maxHeader = 1 << 20

// readHeader returns the message header (through the blank line).
func readHeader(r io.ReaderAt, size int64) ([]byte, error) {
	n := size
	if n > maxHeader {
		n = maxHeader
	}
	b := make([]byte, n)
	k, err := r.ReadAt(b, 0)
	if k < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if i := headerEnd(b); i >= 0 {
		return b[:i], nil
	}
	return b, nil
}

// headerEnd returns the offset just past the first empty line (LF or
// CRLF) of b, or -1.
func headerEnd(b []byte) int {
	off := 0
	for off < len(b) {
		switch {
		case b[off] == '\n':
			return off + 1
		case b[off] == '\r' && off+1 < len(b) && b[off+1] == '\n':
			return off + 2
		}
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	return -1
}
