package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mailstead/mailstead/internal/mailauth"
	"github.com/mailstead/mailstead/internal/store"
)

// Errors of the inbound authentication checks, mapped by protocol layers
// to replies.
var (
	// ErrDMARCReject: the From domain's DMARC policy is reject, the
	// message failed it, and the recipients' domains honour that (550
	// 5.7.1 at DATA).
	ErrDMARCReject = errors.New("rejected by the From domain's DMARC policy")
	// ErrTemporary: the authentication verdict could not be reached
	// because DNS failed temporarily (451 4.7.0; the sender retries).
	ErrTemporary = errors.New("authentication checks failed temporarily")
	// ErrHeaderTooLarge: the message header is larger than
	// MaxHeaderBytes, too large to check (552 5.3.4 or 554 5.6.0).
	ErrHeaderTooLarge = errors.New("message header too large")
)

// MaxHeaderBytes bounds the header of a checked message (ours and the
// senders' fields together).
const MaxHeaderBytes = 1 << 20

// JunkMailbox is where messages the policy sends to Junk are delivered
// (the default Junk mailbox of every account; INBOX if the user removed
// it). They also get the $Junk keyword, which clients understand.
const JunkMailbox = "Junk"

// Action is what to do with a message that failed authentication, per
// recipient domain.
type Action int

const (
	// ActionDefault is the default for the case (see DomainPolicy).
	ActionDefault Action = iota
	// ActionReject refuses the message at DATA: 550 for a DMARC
	// failure, 451 for a temporary one.
	ActionReject
	// ActionJunk delivers into the Junk mailbox.
	ActionJunk
	// ActionAccept delivers normally; only the Authentication-Results
	// field tells.
	ActionAccept
)

// DomainPolicy is a recipient domain's choice of what to do with mail
// that fails the sender's DMARC policy.
type DomainPolicy struct {
	// DMARCReject applies to a DMARC failure where the From domain
	// publishes p=reject; default ActionReject.
	DMARCReject Action
	// DMARCQuarantine applies to p=quarantine failures (and p=reject
	// ones that pct= sampling lowered); default ActionJunk.
	DMARCQuarantine Action
	// TempError applies when DNS failures prevented a verdict
	// (mailauth.Result.Temporary); default ActionReject (451, retry).
	TempError Action
}

// Authenticate runs SPF, DKIM and DMARC on a message from the internet
// (no authenticated sender, a known client address outside
// TrustedNetworks) when Resolver and AuthServID are configured;
// otherwise it returns nil. Deliver calls it unless
// env.Auth is already set: a caller that needs the verdicts before
// delivery (spam scoring) calls it first and passes the result in
// env.Auth so the checks run once.
func (d *Deliverer) Authenticate(ctx context.Context, env Envelope, sp *Spool) *mailauth.Result {
	if d.opts.Resolver == nil || d.opts.AuthServID == "" || env.Account != nil || !env.RemoteIP.IsValid() {
		return nil
	}
	ip := env.RemoteIP.Unmap()
	for _, p := range d.opts.TrustedNetworks {
		if p.Contains(ip) {
			return nil
		}
	}
	res := mailauth.Verify(ctx, d.opts.Resolver, mailauth.Input{
		RemoteIP:   env.RemoteIP,
		Helo:       env.Helo,
		MailFrom:   env.From,
		Message:    sp,
		Size:       sp.Size(),
		AuthServID: d.opts.AuthServID,
		Rand:       d.opts.rand,
	})
	d.opts.Logger.Debug("authentication results", "ip", env.RemoteIP, "from", env.From,
		"spf", res.SPF.Status, "dmarc", res.DMARC.Status, "from_domain", res.DMARC.FromDomain, "policy", res.Policy)
	return &res
}

// action decides what happens to a message for one recipient domain.
func (d *Deliverer) action(res *mailauth.Result, domain string) Action {
	if !res.Temporary() && res.Policy != mailauth.ActionReject && res.Policy != mailauth.ActionQuarantine {
		// Nothing to decide: no store read for the common case.
		return ActionAccept
	}
	var pol DomainPolicy
	if d.opts.Policy != nil {
		pol = d.opts.Policy(domain)
	}
	pick := func(a, def Action) Action {
		if a == ActionDefault {
			return def
		}
		return a
	}
	switch {
	case res.Temporary():
		return pick(pol.TempError, ActionReject)
	case res.Policy == mailauth.ActionReject:
		return pick(pol.DMARCReject, ActionReject)
	case res.Policy == mailauth.ActionQuarantine:
		return pick(pol.DMARCQuarantine, ActionJunk)
	}
	return ActionAccept
}

// stripForged returns the message without header fields that could pass
// for our verdicts (see mailauth.StripForeignResults). The spool is the
// received bytes and stays as is; when something must go (rare), the
// returned blob is a new header followed by the spool's body, read in
// place.
func (d *Deliverer) stripForged(sp *Spool) (store.Blob, error) {
	hdr := sp.Header(MaxHeaderBytes + 1)
	end := headerEnd(hdr)
	if end < 0 {
		if int64(len(hdr)) < sp.Size() {
			return nil, fmt.Errorf("header over %d bytes: %w", MaxHeaderBytes, ErrHeaderTooLarge)
		}
		end = len(hdr) // the message is all header
	}
	fields := d.opts.StripFields
	if fields == nil {
		fields = mailauth.DefaultStripFields
	}
	out, n := mailauth.StripForeignResults(hdr[:end], d.opts.AuthServID, fields)
	if n == 0 {
		return sp, nil
	}
	d.opts.Logger.Info("removed forged verdict header fields", "count", n)
	return &splice{head: out, rest: sp, off: int64(end), size: int64(len(out)) + sp.Size() - int64(end)}, nil
}

// splice is a blob made of head followed by rest from offset off.
type splice struct {
	head []byte
	rest io.ReaderAt
	off  int64
	size int64
}

func (s *splice) Size() int64 { return s.size }

func (s *splice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	want := p
	if int64(len(want)) > s.size-off {
		want = want[:s.size-off]
	}
	n := 0
	if off < int64(len(s.head)) {
		n = copy(want, s.head[off:])
	}
	if n < len(want) {
		m, err := s.rest.ReadAt(want[n:], off+int64(n)-int64(len(s.head))+s.off)
		n += m
		if err != nil && !(err == io.EOF && n == len(want)) {
			return n, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
