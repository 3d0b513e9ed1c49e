package mailauth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/message"
)

// maxFromDomains bounds the distinct From domains evaluated; a message
// naming more fails DMARC outright (RFC 7489 6.6.1 lets receivers reject
// such messages; evaluating only some would let a forger hide the domain
// that matters behind others).
const maxFromDomains = 5

var (
	errNoFrom      = errors.New("no From address")
	errTooManyFrom = errors.New("too many From domains")
)

// fromDomains returns the distinct domains (A-label, lower case) of the
// addresses in the From header fields of hdr. RFC 5322 allows exactly one
// field, usually with one address; several are evaluated each (RFC 7489
// 6.6.1).
func fromDomains(hdr []byte) ([]string, error) {
	vals := message.HeaderValues(hdr, "From")
	var out []string
	for _, v := range vals {
		for _, a := range message.ParseAddressList(v) {
			if a.GroupEnd || a.Host == "" {
				// Group end and group start (IMAP ENVELOPE style).
				continue
			}
			if a.Host == message.MissingHost {
				return nil, fmt.Errorf("From address %q has no domain", a.Mailbox)
			}
			d, err := address.Domain(a.Host)
			if err != nil || strings.HasPrefix(d, "[") {
				return nil, fmt.Errorf("From domain %q not usable", a.Host)
			}
			dup := false
			for _, o := range out {
				if o == d {
					dup = true
					break
				}
			}
			if dup {
				continue
			}
			if len(out) == maxFromDomains {
				return out, errTooManyFrom
			}
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, errNoFrom
	}
	return out, nil
}

// record is a parsed DMARC policy record (RFC 7489 6.3).
type record struct {
	p, sp                 Action // sp "" when absent or invalid
	strictSPF, strictDKIM bool
	pct                   int
}

// maxRecordLen bounds a DMARC record parsed.
const maxRecordLen = 4096

// isDMARCRecord reports whether a TXT string is a DMARC record: it must
// start with the v=DMARC1 tag (RFC 7489 6.6.3 step 3).
func isDMARCRecord(txt string) bool {
	tag, rest, ok := strings.Cut(txt, "=")
	if !ok || strings.TrimRight(tag, " \t") != "v" {
		return false
	}
	rest = strings.TrimLeft(rest, " \t")
	v, _, _ := strings.Cut(rest, ";")
	return strings.TrimRight(v, " \t") == "DMARC1"
}

// parseRecord parses a DMARC record. As RFC 7489 6.3 asks, unknown tags
// and invalid values of optional tags are ignored (defaults apply); a
// missing or invalid p= is an error (no policy can be applied).
func parseRecord(txt string) (record, error) {
	rec := record{pct: 100}
	if len(txt) > maxRecordLen {
		return rec, errors.New("record too long")
	}
	if !isDMARCRecord(txt) {
		return rec, errors.New("not a DMARC1 record")
	}
	hasP := false
	for i, tv := range strings.Split(txt, ";") {
		if i == 0 {
			continue // v=DMARC1
		}
		t, v, ok := strings.Cut(tv, "=")
		if !ok {
			continue
		}
		t = strings.ToLower(strings.TrimSpace(t))
		v = strings.TrimSpace(v)
		switch t {
		case "p":
			a, ok := parseAction(v)
			if !ok {
				return rec, fmt.Errorf("invalid p=%q", v)
			}
			rec.p, hasP = a, true
		case "sp":
			if a, ok := parseAction(v); ok {
				rec.sp = a
			}
		case "adkim":
			rec.strictDKIM = strings.EqualFold(v, "s")
		case "aspf":
			rec.strictSPF = strings.EqualFold(v, "s")
		case "pct":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 100 {
				rec.pct = n
			}
		}
	}
	if !hasP {
		return rec, errors.New("no p= tag")
	}
	return rec, nil
}

func parseAction(v string) (Action, bool) {
	switch strings.ToLower(v) {
	case "none":
		return ActionNone, true
	case "quarantine":
		return ActionQuarantine, true
	case "reject":
		return ActionReject, true
	}
	return "", false
}

// orgDomain is the organisational domain of d (RFC 7489 3.2): the public
// suffix plus one label, or d itself when d is a public suffix.
func orgDomain(d string) string {
	o, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return o
}

// dmarcLookup is the policy discovery outcome for one From domain.
type dmarcLookup struct {
	from      string
	recDomain string // where rec was found
	rec       record
	status    Status // "" when a record was found, else None/TempError/PermError
	reason    string
}

// lookupDMARC discovers the policy of each From domain: at the domain
// itself, then at its organisational domain (RFC 7489 6.6.3).
func lookupDMARC(ctx context.Context, r dnsresolver.Resolver, froms []string) []dmarcLookup {
	out := make([]dmarcLookup, 0, len(froms))
	for _, from := range froms {
		l := dmarcLookup{from: from}
		l.rec, l.status, l.reason = fetchRecord(ctx, r, from)
		l.recDomain = from
		// Only an absent record sends discovery on to the organisational
		// domain; several records end it (step 5).
		if org := orgDomain(from); l.status == None && l.reason == reasonNoRecord && org != from {
			l.rec, l.status, l.reason = fetchRecord(ctx, r, org)
			l.recDomain = org
		}
		out = append(out, l)
	}
	return out
}

const reasonNoRecord = "no DMARC record"

func fetchRecord(ctx context.Context, r dnsresolver.Resolver, domain string) (record, Status, string) {
	txts, err := r.LookupTXT(ctx, "_dmarc."+domain)
	if err != nil {
		if dnsresolver.IsNotFound(err) {
			return record{}, None, reasonNoRecord
		}
		// Timeouts, SERVFAIL and anything unrecognised: the policy is
		// unknown, which must not read as "no policy".
		return record{}, TempError, errReason(err)
	}
	var recs []string
	for _, t := range txts {
		if isDMARCRecord(t) {
			recs = append(recs, t)
		}
	}
	switch len(recs) {
	case 0:
		return record{}, None, reasonNoRecord
	case 1:
	default:
		// RFC 7489 6.6.3 step 5: several records, no DMARC processing.
		return record{}, None, "multiple DMARC records"
	}
	rec, err := parseRecord(recs[0])
	if err != nil {
		return record{}, PermError, "DMARC record: " + err.Error()
	}
	return rec, "", ""
}

func aligned(id, from string, strict bool) bool {
	if id == "" {
		return false
	}
	if strict {
		return id == from
	}
	return orgDomain(id) == orgDomain(from)
}

// evaluateOne computes the DMARC result for one From domain.
func evaluateOne(l dmarcLookup, s SPF, dkims []DKIM) DMARC {
	d := DMARC{FromDomain: l.from}
	if l.status != "" {
		d.Status, d.Reason = l.status, l.reason
		return d
	}
	d.RecordDomain = l.recDomain
	d.Published = l.rec.p
	if l.recDomain != l.from && l.rec.sp != "" {
		d.Published = l.rec.sp
	}
	d.Percent = l.rec.pct
	d.StrictSPF, d.StrictDKIM = l.rec.strictSPF, l.rec.strictDKIM

	// A temporary failure only matters if the identifier could have
	// given an aligned pass.
	temp := false
	if aligned(s.Domain, l.from, d.StrictSPF) {
		switch s.Status {
		case Pass:
			d.SPFAligned = true
		case TempError:
			temp = true
		}
	}
	for _, k := range dkims {
		if aligned(k.Domain, l.from, d.StrictDKIM) {
			switch k.Status {
			case Pass:
				d.DKIMAligned = true
			case TempError:
				temp = true
			}
		}
	}
	switch {
	case d.SPFAligned || d.DKIMAligned:
		d.Status = Pass
	case temp:
		d.Status, d.Reason = TempError, "aligned identifier unverifiable"
	default:
		d.Status = Fail
	}
	return d
}

// severity orders per-domain results; the most severe one is the
// message's result.
func severity(d DMARC) int {
	switch d.Status {
	case TempError:
		return 6
	case Fail:
		switch d.Published {
		case ActionReject:
			return 5
		case ActionQuarantine:
			return 4
		}
		return 3
	case PermError:
		return 2
	case None:
		return 1
	}
	return 0 // pass
}

// evaluateDMARC combines the From domains' results.
func evaluateDMARC(froms []string, fromErr error, lookups []dmarcLookup, s SPF, dkims []DKIM) DMARC {
	if errors.Is(fromErr, errTooManyFrom) {
		return DMARC{Status: Fail, Published: ActionQuarantine, Percent: 100, Reason: fromErr.Error()}
	}
	if fromErr != nil {
		return DMARC{Status: PermError, Reason: fromErr.Error()}
	}
	var worst DMARC
	for i, l := range lookups {
		d := evaluateOne(l, s, dkims)
		if i == 0 || severity(d) > severity(worst) {
			worst = d
		}
	}
	if len(froms) > 1 && worst.Reason == "" {
		worst.Reason = "multiple From domains"
	}
	return worst
}

// applyPolicy returns what to do with a message given its DMARC result:
// the published policy for a fail, lowered one step when pct= sampling
// leaves the message out (RFC 7489 6.6.4).
func applyPolicy(d DMARC, rnd func(int) int) Action {
	if d.Status != Fail {
		return ActionNone
	}
	p := d.Published
	if d.Percent < 100 && rnd(100) >= d.Percent {
		switch p {
		case ActionReject:
			p = ActionQuarantine
		case ActionQuarantine:
			p = ActionNone
		}
	}
	if p == "" {
		p = ActionNone
	}
	return p
}
