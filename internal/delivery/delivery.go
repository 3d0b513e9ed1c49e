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
	"github.com/mailstead/mailstead/internal/routing"
	"github.com/mailstead/mailstead/internal/sieve"
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
	// ErrForwardUnavailable: the address forwards (externally or to an
	// HTTP target) but no forwarder is configured; temporary (451), so
	// nothing is lost while forwarding is being set up.
	ErrForwardUnavailable = errors.New("forwarding is not available")
)

// Store is what delivery needs from storage.
type Store interface {
	GetDomain(ctx context.Context, name string) (store.Domain, error)
	GetAccount(ctx context.Context, address string) (store.Account, error)
	GetAlias(ctx context.Context, address string) (store.Alias, error)
	GetReverseAlias(ctx context.Context, address string) (store.ReverseAlias, error)
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
	// Forwarder queues mail for external and HTTP alias targets; nil
	// makes addresses that forward answer 451 (see ErrForwardUnavailable).
	Forwarder Forwarder
	// Sieve enables per-account and global sieve filtering (nil: none).
	Sieve SieveStore
	// VacationLog remembers vacation responses for the per-sender rate
	// limit (default: in memory).
	VacationLog sieve.ReplyLog
	// Replier sends vacation responses (nil: none are sent).
	Replier Replier
	// Hostname is used in sieve's environment and vacation Message-IDs.
	Hostname string
	// ReverseSRS decodes SRS addresses we issued (bounces to forwarded
	// mail go back to the original sender); nil disables.
	ReverseSRS func(addr string) (string, error)

	// rand is the DMARC pct= sampling source (tests).
	rand func(n int) int
}

// Deliverer delivers to local accounts.
type Deliverer struct {
	st   Store
	opts Options

	delivered   *prometheus.CounterVec
	sieve       *filterer // nil: no sieve filtering
	sieveErrors prometheus.Counter
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
	d.sieveErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailstead_sieve_errors_total",
		Help: "Sieve scripts that failed to load or run; the message went to INBOX.",
	})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(d.sieveErrors); err != nil {
			opts.Logger.Warn("register sieve metric", "err", err)
		}
	}
	if opts.Sieve != nil {
		d.sieve = &filterer{st: opts.Sieve, hostname: opts.Hostname, delims: opts.SubaddressDelimiter, cache: map[scriptKey]*sieve.Script{},
			responder: sieve.Responder{Log: opts.VacationLog, Hostname: opts.Hostname}}
		if d.sieve.responder.Log == nil {
			d.sieve.responder.Log = &sieve.MemoryReplyLog{}
		}
	}
	return d
}

// TmpDir is the spill directory for spools.
func (d *Deliverer) TmpDir() string { return d.opts.TmpDir }

// Target is a resolved recipient: where one RCPT TO's copy goes (package
// routing decides).
type Target struct {
	// Address is the recipient as given in RCPT TO, normalised.
	Address address.Address
	// Account is the first local target (the only one unless Address is
	// an alias); Detail and Role are its.
	Account store.Account
	// Detail is the subaddress tag ("tag" of user+tag), kept for sieve.
	Detail string
	// Role is set for postmaster@/abuse@ routed to a fallback account:
	// such mail (abuse reports, bounces about our own mail) is delivered
	// even over quota.
	Role bool
	// Local are all local accounts the address delivers to.
	Local []routing.Local
	// External and HTTP are forwarding targets, handed to the Forwarder.
	External []routing.External
	HTTP     []string
	// Drop: a disabled alias that accepts and discards.
	Drop bool
	// Via lists the aliases expanded (for logs).
	Via []string
}

// Forwarder turns forwarding targets into outbound queue entries that are
// stored in the same transaction as the local copies (SRS or From
// rewriting, ARC sealing and webhook hand-off happen there).
type Forwarder interface {
	Forward(ctx context.Context, env Envelope, blob store.Blob, ext []routing.External, http []string) ([]store.QueueEntry, error)
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

// Resolve maps an RCPT TO address to its targets (package routing: exact
// account or alias, subaddress base, postmaster/abuse, catch-all).
// Errors: ErrNotLocal, ErrUnknownRecipient (also a disabled alias set to
// refuse, and an alias with no existing target), ErrMailboxFull,
// ErrForwardUnavailable, address.ErrInvalid, or a store error (temporary).
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
		l := routing.Local{Account: acc, Role: true}
		return Target{Address: address.Address{Local: "postmaster"}, Account: acc, Role: true, Local: []routing.Local{l}}, nil
	}
	addr, err := address.Parse(rcpt)
	if err != nil {
		return Target{}, err
	}
	res, err := routing.Resolve(storeDir{ctx: ctx, d: d}, addr, routing.Options{SubaddressDelimiters: d.opts.SubaddressDelimiter, ReverseSRS: d.opts.ReverseSRS})
	for _, w := range res.Warnings {
		d.opts.Logger.Warn("routing", "rcpt", addr.String(), "warning", w)
	}
	switch {
	case errors.Is(err, routing.ErrNotLocal):
		return Target{}, fmt.Errorf("%s: %w", addr, ErrNotLocal)
	case errors.Is(err, routing.ErrUnknown), errors.Is(err, routing.ErrNoTargets), errors.Is(err, routing.ErrRejected):
		return Target{}, fmt.Errorf("%s: %v: %w", addr, err, ErrUnknownRecipient)
	case err != nil:
		return Target{}, err
	}
	t := Target{Address: addr, External: res.External, HTTP: res.HTTP, Drop: res.Drop, Via: res.Via}
	if (len(t.External) > 0 || len(t.HTTP) > 0) && d.opts.Forwarder == nil {
		return Target{}, fmt.Errorf("%s: %w", addr, ErrForwardUnavailable)
	}
	// Accounts at their quota are refused when they are the only target;
	// inside an alias the others still get the message.
	full := 0
	for _, l := range res.Local {
		if !l.Role && l.Account.QuotaBytes > 0 && l.Account.UsedBytes >= l.Account.QuotaBytes {
			full++
			d.opts.Logger.Warn("recipient over quota", "rcpt", addr.String(), "account", l.Account.Address)
			continue
		}
		t.Local = append(t.Local, l)
	}
	if full > 0 && len(t.Local)+len(t.External)+len(t.HTTP) == 0 {
		return Target{}, fmt.Errorf("%s: %w", addr, ErrMailboxFull)
	}
	if len(t.Local) > 0 {
		t.Account, t.Detail, t.Role = t.Local[0].Account, t.Local[0].Detail, t.Local[0].Role
	}
	return t, nil
}

// storeDir is routing's view of the store for one lookup.
type storeDir struct {
	ctx context.Context
	d   *Deliverer
}

func (s storeDir) IsLocalDomain(domain string) (bool, error) { return s.d.IsLocalDomain(s.ctx, domain) }

func found[T any](v T, err error) (T, bool, error) {
	if errors.Is(err, store.ErrNotFound) {
		return v, false, nil
	}
	return v, err == nil, err
}

func (s storeDir) Account(a string) (store.Account, bool, error) {
	return found(s.d.st.GetAccount(s.ctx, a))
}

func (s storeDir) Alias(a string) (store.Alias, bool, error) { return found(s.d.st.GetAlias(s.ctx, a)) }

func (s storeDir) ReverseAlias(a string) (store.ReverseAlias, bool, error) {
	return found(s.d.st.GetReverseAlias(s.ctx, a))
}

func (s storeDir) Postmaster(domain string) (store.Account, bool, error) {
	return found(s.d.postmaster(s.ctx, domain))
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
	// SpamHeaders are header fields of the spam check (X-Spam-Score,
	// X-Spam-Status, X-Spam-Flag; CRLF line ends, folded and sanitised
	// by package spam), added to every recipient's copy after the
	// Authentication-Results field.
	SpamHeaders []byte
	// SpamJunk delivers every local recipient's copy to the Junk
	// mailbox with the $Junk keyword, like a DMARC quarantine.
	SpamJunk bool
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
// The spam verdict comes in the envelope: SpamHeaders are added to each
// copy and SpamJunk sends every copy to Junk.
func (d *Deliverer) Deliver(ctx context.Context, env Envelope, sp *Spool) ([]store.Delivered, error) {
	return d.deliver(ctx, env, sp, nil)
}

// deliver is Deliver with extra queue entries (the Submitter's remote
// recipients) built from the parsed message and the blob as stored, and
// committed in the same transaction.
func (d *Deliverer) deliver(ctx context.Context, env Envelope, sp *Spool, extra func(*message.Part, store.Blob) ([]store.QueueEntry, error)) ([]store.Delivered, error) {
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
	var parsed *message.Part
	if p, err := message.Parse(blob, blob.Size()); err == nil {
		summary = p.Encode()
		parsed = p
	} else {
		// Parsing is best-effort: IMAP parses lazily when no summary is
		// cached. Only an I/O error lands here.
		d.opts.Logger.Warn("summarise message", "err", err)
	}
	seen := map[int64]bool{}
	var rcpts []store.Recipient
	var ext []routing.External
	var http []string
	var rejects []string
	var replies []*sieve.Reply
	var edited []store.Delivery // copies with a script-edited header
	junk := false
	for i, t := range env.Recipients {
		ext = append(ext, t.External...)
		http = append(http, t.HTTP...)
		for _, l := range targetLocals(t) {
			if seen[l.Account.ID] {
				continue
			}
			seen[l.Account.ID] = true
			prefix := append(Prefix(env.From, t.Address.String()), authField...)
			r := store.Recipient{
				AccountID:   l.Account.ID,
				Prefix:      append(prefix, env.SpamHeaders...),
				IgnoreQuota: l.Role,
			}
			isJunk := env.SpamJunk || actions[i] == ActionJunk || actions[i] == ActionReject
			if isJunk {
				r.MailboxName = JunkMailbox
				r.Keywords = []string{"$Junk"}
				junk = true
			}
			// The account's sieve scripts decide where its copy goes;
			// without scripts it is r.
			if f, ok := d.filter(ctx, env, t, l, blob, parsed, auth, r, isJunk); ok {
				rcpts = append(rcpts, f.recipients...)
				if f.edited != nil {
					edited = append(edited, *f.edited)
				}
				ext = append(ext, f.redirects...)
				if f.reject != "" {
					rejects = append(rejects, f.reject)
				}
				if f.reply != nil {
					replies = append(replies, f.reply)
				}
				continue
			}
			rcpts = append(rcpts, r)
		}
	}
	// Every local recipient's script rejected the message and nothing
	// else wants it: refuse it at DATA (ereject semantics; the sender's
	// server bounces). When others do get it, the rejecting scripts'
	// copies are simply not stored.
	if len(rejects) > 0 && len(rcpts)+len(edited) == 0 && len(ext)+len(http) == 0 {
		d.delivered.WithLabelValues("sieve_reject").Inc()
		return nil, fmt.Errorf("%s: %w", rejects[0], ErrSieveReject)
	}
	stored := false
	defer func() {
		if d.opts.Replier == nil || !stored {
			return
		}
		for _, rp := range replies {
			// Best effort after the message itself is safe; a lost
			// vacation notice loses no mail.
			if err := d.opts.Replier.Inject(context.WithoutCancel(ctx), rp.MailFrom, []string{rp.To}, rp.Data); err != nil {
				d.opts.Logger.Warn("sieve: sending vacation response", "to", rp.To, "err", err)
			}
		}
	}()
	var queue []store.QueueEntry
	if len(ext)+len(http) > 0 {
		if d.opts.Forwarder == nil {
			return nil, ErrForwardUnavailable
		}
		q, err := d.opts.Forwarder.Forward(ctx, env, blob, ext, http)
		if err != nil {
			d.delivered.WithLabelValues("failed").Inc()
			return nil, fmt.Errorf("forward: %w", err)
		}
		queue = q
	}
	if extra != nil {
		q, err := extra(parsed, blob)
		if err != nil {
			d.delivered.WithLabelValues("failed").Inc()
			return nil, err
		}
		queue = append(queue, q...)
	}
	if len(rcpts)+len(queue)+len(edited) == 0 {
		// Every recipient was a disabled alias that drops its mail, or
		// a script discarded it.
		d.delivered.WithLabelValues("dropped").Inc()
		stored = true
		return nil, nil
	}
	// Copies whose header a script rewrote are separate blobs, stored
	// first: if the main delivery then fails, the client retries and
	// only these few copies can arrive twice (never none).
	var out []store.Delivered
	for _, ed := range edited {
		o, err := d.st.Deliver(ctx, ed)
		if err != nil {
			d.delivered.WithLabelValues("failed").Inc()
			return nil, err
		}
		out = append(out, o...)
	}
	if len(rcpts)+len(queue) > 0 {
		o, err := d.st.Deliver(ctx, store.Delivery{Blob: blob, Summary: summary, Recipients: rcpts, Queue: queue})
		if err != nil {
			d.delivered.WithLabelValues("failed").Inc()
			return nil, err
		}
		out = append(out, o...)
	}
	stored = true
	if junk {
		d.delivered.WithLabelValues("junk").Inc()
	} else {
		d.delivered.WithLabelValues("delivered").Inc()
	}
	return out, nil
}

// targetLocals returns a target's local accounts (Local, or Account for
// targets built without routing).
func targetLocals(t Target) []routing.Local {
	if len(t.Local) > 0 || t.Drop || t.Account.ID == 0 {
		return t.Local
	}
	return []routing.Local{{Account: t.Account, Detail: t.Detail, Role: t.Role}}
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
