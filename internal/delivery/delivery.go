// Package delivery turns an accepted message into stored mail: it resolves
// recipients to local accounts (with subaddressing and the postmaster@ and
// abuse@ addresses every domain has), checks the hop count, computes the
// cached MIME summary, builds each recipient's header prefix
// (Return-Path, Delivered-To) and hands one blob with all recipients to
// the store in a single durable Deliver.
//
// Every entry point that accepts mail (SMTP now; IMAP APPEND stores
// directly; the HTTP API later) delivers through here, so the rules are
// the same whichever way a message arrives.
package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/mailauth"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

// Errors, mapped by protocol layers to replies.
var (
	// ErrNotLocal: the recipient's domain is not one of ours (relay).
	ErrNotLocal = errors.New("recipient domain is not local")
	// ErrUnknownRecipient: local domain, no such address (550 5.1.1).
	ErrUnknownRecipient = errors.New("no such recipient")
	// ErrMailboxFull: the account is at its quota (452 4.2.2 at RCPT).
	ErrMailboxFull = errors.New("mailbox full")
	// ErrLoop: more Received headers than allowed (554 5.4.6).
	ErrLoop = errors.New("too many hops, mail loop suspected")
)

// Store is what delivery needs from storage.
type Store interface {
	GetDomain(ctx context.Context, name string) (store.Domain, error)
	GetAccount(ctx context.Context, address string) (store.Account, error)
	ListAccounts(ctx context.Context, domain string) ([]store.Account, error)
	Deliver(ctx context.Context, d store.Delivery) ([]store.Delivered, error)
}

// Options configure a Deliverer.
type Options struct {
	// SubaddressDelimiter splits user+tag; "" disables subaddressing.
	SubaddressDelimiter string
	// Postmaster is the account address receiving postmaster@ and abuse@
	// of domains that name none, and bare <postmaster>.
	Postmaster string
	// MaxReceived is the hop limit (default 50).
	MaxReceived int
	// TmpDir is where large messages spill while being received.
	TmpDir     string
	Logger     *slog.Logger
	Registerer prometheus.Registerer

	// Resolver, with AuthServID, enables SPF, DKIM and DMARC checks of
	// mail from the internet (see Authenticate); nil disables them.
	Resolver dnsresolver.Resolver
	// AuthServID is our authserv-id (the host name) in the
	// Authentication-Results field we add. When set, inbound fields
	// claiming it, and those named in StripFields, are removed from
	// every message delivered.
	AuthServID string
	// StripFields are more header fields removed from every message
	// (a trailing "*" matches a prefix, e.g. "X-Spam-*"); nil means
	// mailauth.DefaultStripFields. Only used with AuthServID.
	StripFields []string
	// Policy returns a recipient domain's DMARC handling; nil, or zero
	// fields, mean the defaults (see DomainPolicy).
	Policy func(domain string) DomainPolicy
	// TrustedNetworks are client networks whose mail is not checked,
	// like that of authenticated senders (in-cluster applications
	// sending as our own domains without AUTH).
	TrustedNetworks []netip.Prefix

	// rand is the DMARC pct= sampling source (tests).
	rand func(n int) int
}

// Deliverer delivers to local accounts.
type Deliverer struct {
	st   Store
	opts Options

	delivered *prometheus.CounterVec
}

// New returns a Deliverer.
func New(st Store, opts Options) *Deliverer {
	if opts.MaxReceived == 0 {
		opts.MaxReceived = 50
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Deliverer{st: st, opts: opts}
	d.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailstead_delivery_messages_total",
		Help: "Messages handed to local delivery, by result (delivered, junk: delivered to Junk for at least one recipient, failed, loop, dmarc_reject, auth_tempfail, header_too_large).",
	}, []string{"result"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(d.delivered); err != nil {
			opts.Logger.Warn("register delivery metric", "err", err)
		}
	}
	return d
}

// TmpDir is the spill directory for spools.
func (d *Deliverer) TmpDir() string { return d.opts.TmpDir }

// Target is a resolved local recipient.
type Target struct {
	// Address is the recipient as given in RCPT TO, normalised.
	Address address.Address
	Account store.Account
	// Detail is the subaddress tag ("tag" of user+tag), kept for sieve.
	Detail string
	// Role is set for postmaster@/abuse@ routed to a fallback account:
	// such mail (abuse reports, bounces about our own mail) is delivered
	// even over quota.
	Role bool
}

// IsLocalDomain reports whether domain (any form) is one of ours.
func (d *Deliverer) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	a, err := address.Domain(domain)
	if err != nil {
		return false, nil
	}
	if _, err := d.st.GetDomain(ctx, a); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Resolve maps an RCPT TO address to a local account. Errors: ErrNotLocal,
// ErrUnknownRecipient, ErrMailboxFull, address.ErrInvalid, or a store
// error (temporary).
func (d *Deliverer) Resolve(ctx context.Context, rcpt string) (Target, error) {
	if strings.EqualFold(rcpt, "postmaster") {
		// RFC 5321 4.5.1: bare <postmaster> must be accepted.
		acc, err := d.postmaster(ctx, "")
		if errors.Is(err, store.ErrNotFound) {
			// No postmaster account configured: a permanent 550, not a
			// store error that protocol layers would answer with 451
			// forever.
			return Target{}, fmt.Errorf("postmaster: %w", ErrUnknownRecipient)
		}
		if err != nil {
			return Target{}, err
		}
		return Target{Address: address.Address{Local: "postmaster"}, Account: acc, Role: true}, nil
	}
	addr, err := address.Parse(rcpt)
	if err != nil {
		return Target{}, err
	}
	if _, err := d.st.GetDomain(ctx, addr.Domain); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Target{}, fmt.Errorf("%s: %w", addr, ErrNotLocal)
		}
		return Target{}, err
	}
	t := Target{Address: addr}
	acc, err := d.st.GetAccount(ctx, addr.String())
	if errors.Is(err, store.ErrNotFound) {
		if base, tag := addr.Base(d.opts.SubaddressDelimiter); tag != "" {
			t.Detail = tag
			acc, err = d.st.GetAccount(ctx, base.String())
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		lp := strings.ToLower(addr.Local)
		if lp == "postmaster" || lp == "abuse" {
			acc, err = d.postmaster(ctx, addr.Domain)
			t.Role = true
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return Target{}, fmt.Errorf("%s: %w", addr, ErrUnknownRecipient)
	}
	if err != nil {
		return Target{}, err
	}
	if !t.Role && acc.QuotaBytes > 0 && acc.UsedBytes >= acc.QuotaBytes {
		return Target{}, fmt.Errorf("%s: %w", addr, ErrMailboxFull)
	}
	t.Account = acc
	return t, nil
}

// postmaster finds the account for postmaster@/abuse@ of domain ("" for
// bare postmaster): the domain's configured one, the global one, or the
// domain's oldest account.
func (d *Deliverer) postmaster(ctx context.Context, domain string) (store.Account, error) {
	if domain != "" {
		dom, err := d.st.GetDomain(ctx, domain)
		if err != nil {
			return store.Account{}, err
		}
		if dom.Postmaster != "" {
			acc, err := d.st.GetAccount(ctx, dom.Postmaster)
			if err == nil || !errors.Is(err, store.ErrNotFound) {
				return acc, err
			}
			// The named account is gone: fall back like a domain that
			// names none, rather than refusing postmaster@ mail.
			d.opts.Logger.Warn("domain postmaster account does not exist", "domain", domain, "postmaster", dom.Postmaster)
		}
	}
	if d.opts.Postmaster != "" {
		acc, err := d.st.GetAccount(ctx, d.opts.Postmaster)
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return acc, err
		}
	}
	if domain == "" {
		return store.Account{}, fmt.Errorf("postmaster: %w", store.ErrNotFound)
	}
	accs, err := d.st.ListAccounts(ctx, domain)
	if err != nil {
		return store.Account{}, err
	}
	var oldest *store.Account
	for i := range accs {
		if oldest == nil || accs[i].ID < oldest.ID {
			oldest = &accs[i]
		}
	}
	if oldest == nil {
		return store.Account{}, fmt.Errorf("postmaster@%s: %w", domain, store.ErrNotFound)
	}
	return *oldest, nil
}

// Envelope is the SMTP envelope of a message.
type Envelope struct {
	From       string // "" for the null sender <>
	Recipients []Target

	// Where the message came from, for authentication checks (SPF, iprev)
	// and policy. RemoteIP is the client's address (from the PROXY header
	// when there is one); Helo its EHLO/HELO name.
	RemoteIP netip.Addr
	Helo     string
	// TLS is true when the message arrived over TLS.
	TLS bool
	// Account is set when the sender authenticated (submission); its mail
	// is not checked like mail from the internet.
	Account *store.Account
	// Auth holds the SPF/DKIM/DMARC verdicts for later stages (spam
	// scoring, sieve, rules). A caller that sets it (from Authenticate)
	// spares Deliver running the checks again; when nil, Deliver runs
	// them itself for mail from the internet.
	Auth *mailauth.Result
}

// CountReceived counts Received: header fields in a header block.
func CountReceived(header []byte) int {
	n := 0
	for _, line := range bytes.Split(header, []byte("\n")) {
		if len(line) >= 9 && bytes.EqualFold(line[:9], []byte("received:")) {
			n++
		}
	}
	return n
}

// Deliver stores the spooled message for every recipient, durably, in one
// store transaction. Recipients resolving to the same account get one
// copy.
//
// Mail from the internet is checked first (SPF, DKIM, DMARC; see
// Authenticate) and gets an Authentication-Results field in each
// recipient's prefix; header fields forging our verdicts are removed.
// The From domain's DMARC policy is applied per recipient domain (see
// DomainPolicy): ErrDMARCReject or ErrTemporary when every recipient
// refuses the message; recipients whose domain would refuse it while
// others accept get it in Junk (one DATA reply covers all recipients).
// Role recipients (postmaster@, abuse@) never refuse: they get Junk.
func (d *Deliverer) Deliver(ctx context.Context, env Envelope, sp *Spool) ([]store.Delivered, error) {
	if n := CountReceived(sp.Header(256 << 10)); n > d.opts.MaxReceived {
		d.delivered.WithLabelValues("loop").Inc()
		return nil, fmt.Errorf("%d Received headers, limit %d: %w", n, d.opts.MaxReceived, ErrLoop)
	}
	var blob store.Blob = sp
	if d.opts.AuthServID != "" {
		b, err := d.stripForged(sp)
		if err != nil {
			if errors.Is(err, ErrHeaderTooLarge) {
				d.delivered.WithLabelValues("header_too_large").Inc()
			} else {
				d.delivered.WithLabelValues("failed").Inc()
			}
			return nil, err
		}
		blob = b
	}
	auth := env.Auth
	if auth == nil {
		// Verified on the message as received: a signature may cover
		// fields that stripping removes.
		auth = d.Authenticate(ctx, env, sp)
	}
	var authField []byte
	actions := make([]Action, len(env.Recipients))
	if auth != nil {
		authField = []byte(auth.Header(d.opts.AuthServID))
		refused := 0
		for i, t := range env.Recipients {
			actions[i] = d.action(auth, t.Address.Domain)
			if actions[i] == ActionReject {
				if t.Role {
					actions[i] = ActionJunk
				} else {
					refused++
				}
			}
		}
		if refused == len(env.Recipients) && refused > 0 {
			if auth.Temporary() {
				d.delivered.WithLabelValues("auth_tempfail").Inc()
				return nil, fmt.Errorf("SPF %s, DMARC %s for %s: %w", auth.SPF.Status, auth.DMARC.Status, auth.DMARC.FromDomain, ErrTemporary)
			}
			d.delivered.WithLabelValues("dmarc_reject").Inc()
			d.opts.Logger.Info("rejected by DMARC policy", "from_domain", auth.DMARC.FromDomain, "ip", env.RemoteIP, "mail_from", env.From)
			return nil, fmt.Errorf("From domain %s: %w", auth.DMARC.FromDomain, ErrDMARCReject)
		}
	}
	var summary []byte
	if p, err := message.Parse(blob, blob.Size()); err == nil {
		summary = p.Encode()
	} else {
		// Parsing is best-effort: IMAP parses lazily when no summary is
		// cached. Only an I/O error lands here.
		d.opts.Logger.Warn("summarise message", "err", err)
	}
	seen := map[int64]bool{}
	var rcpts []store.Recipient
	junk := false
	for i, t := range env.Recipients {
		if seen[t.Account.ID] {
			continue
		}
		seen[t.Account.ID] = true
		r := store.Recipient{
			AccountID:   t.Account.ID,
			Prefix:      append(Prefix(env.From, t.Address.String()), authField...),
			IgnoreQuota: t.Role,
		}
		if actions[i] == ActionJunk || actions[i] == ActionReject {
			r.MailboxName = JunkMailbox
			r.Keywords = []string{"$Junk"}
			junk = true
		}
		rcpts = append(rcpts, r)
	}
	out, err := d.st.Deliver(ctx, store.Delivery{Blob: blob, Summary: summary, Recipients: rcpts})
	if err != nil {
		d.delivered.WithLabelValues("failed").Inc()
		return nil, err
	}
	if junk {
		d.delivered.WithLabelValues("junk").Inc()
	} else {
		d.delivered.WithLabelValues("delivered").Inc()
	}
	return out, nil
}

// Prefix is the per-recipient header block stored before the shared blob.
func Prefix(from, rcpt string) []byte {
	var b bytes.Buffer
	b.WriteString("Return-Path: <")
	b.WriteString(sanitize(from))
	b.WriteString(">\r\nDelivered-To: ")
	b.WriteString(sanitize(rcpt))
	b.WriteString("\r\n")
	return b.Bytes()
}

// sanitize keeps a header value on one line whatever the envelope held.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, s)
}
