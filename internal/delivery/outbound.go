package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
)

// Signer signs outgoing mail with DKIM (package dkim's *Keys). Sign
// returns the DKIM-Signature header field(s), or an error; a domain
// without a key is an error that SubmitOptions.IsNoKey recognises.
type Signer interface {
	Sign(domain string, r io.Reader) (string, error)
}

// SubmitOptions configure a Submitter.
type SubmitOptions struct {
	// Signer signs mail queued for remote recipients; nil disables DKIM.
	Signer Signer
	// IsNoKey reports whether a Signer error only means "this domain has
	// no key" (mail goes out unsigned) rather than a failure (logged,
	// and the mail goes out unsigned too: refusing it would be worse).
	IsNoKey func(error) bool
	Logger  *slog.Logger
}

// Submitter puts mail for remote recipients into the outbound queue,
// together with any local delivery of the same message, in one store
// transaction: the submitter's 250 means both are durable.
type Submitter struct {
	d    *Deliverer
	opts SubmitOptions
	log  *slog.Logger
}

// NewSubmitter returns a Submitter using d for local recipients.
func NewSubmitter(d *Deliverer, opts SubmitOptions) *Submitter {
	if opts.Logger == nil {
		opts.Logger = d.opts.Logger
	}
	return &Submitter{d: d, opts: opts, log: opts.Logger}
}

// RemoteRecipient is a recipient outside our domains, with its DSN
// parameters from RCPT TO (RFC 3461).
type RemoteRecipient struct {
	Address string
	Notify  []string // NEVER, or SUCCESS/FAILURE/DELAY
	ORCPT   string   // "rfc822;addr"
}

// DSNOptions are the message's DSN parameters from MAIL FROM.
type DSNOptions struct {
	Ret   string // FULL or HDRS
	EnvID string
}

// Submit delivers sp to env's local recipients and queues it for the
// remote ones, one queue entry per destination domain, DKIM-signed for the
// domain of the From header when that domain has a key. Errors: ErrLoop,
// address.ErrInvalid for a bad remote address, store errors.
func (s *Submitter) Submit(ctx context.Context, env Envelope, remote []RemoteRecipient, dsn DSNOptions, sp *Spool) ([]store.Delivered, error) {
	return s.submit(ctx, env, remote, dsn, sp, queue.TransportSMTP)
}

// submit is Submit with the queue entries' transport: TLS reports use
// their own (queue.TransportTLSReport), which only this server's reporter
// can choose.
func (s *Submitter) submit(ctx context.Context, env Envelope, remote []RemoteRecipient, dsn DSNOptions, sp *Spool, transport string) ([]store.Delivered, error) {
	byDomain := map[string][]store.QueueRecipient{}
	seenRemote := map[string]bool{}
	for _, r := range remote {
		a, err := address.Parse(r.Address)
		if err != nil {
			return nil, fmt.Errorf("remote recipient %q: %w", r.Address, err)
		}
		if seenRemote[a.Key()] {
			continue
		}
		seenRemote[a.Key()] = true
		byDomain[a.Domain] = append(byDomain[a.Domain], store.QueueRecipient{Address: a.String(), Notify: r.Notify, ORCPT: r.ORCPT})
	}
	// Local recipients take exactly the path of any delivery (hop limit,
	// sieve, forwarding); the remote ones join the same transaction as
	// queue entries, signed over the blob as stored.
	return s.d.deliver(ctx, env, sp, func(parsed *message.Part, blob store.Blob) ([]store.QueueEntry, error) {
		if len(byDomain) == 0 {
			return nil, nil
		}
		prefix := s.sign(env, parsed, blob)
		domains := make([]string, 0, len(byDomain))
		for dom := range byDomain {
			domains = append(domains, dom)
		}
		sort.Strings(domains)
		var accountID int64
		if env.Account != nil {
			accountID = env.Account.ID
		}
		ret := strings.ToUpper(dsn.Ret)
		if ret != "FULL" && ret != "HDRS" {
			ret = ""
		}
		var entries []store.QueueEntry
		for _, dom := range domains {
			entries = append(entries, store.QueueEntry{
				Prefix: prefix, From: env.From, Transport: transport, Destination: dom,
				Recipients: byDomain[dom], DSNRet: ret, DSNEnvID: dsn.EnvID, AccountID: accountID,
			})
		}
		return entries, nil
	})
}

// sign returns the DKIM-Signature for the message, or nil. The signing
// domain is the From header's (what DMARC aligns with), else the envelope
// sender's.
func (s *Submitter) sign(env Envelope, parsed *message.Part, sp store.Blob) []byte {
	if s.opts.Signer == nil {
		return nil
	}
	var domains []string
	if parsed != nil && parsed.Envelope != nil {
		for _, a := range parsed.Envelope.From {
			if a.Host != "" {
				domains = append(domains, strings.ToLower(a.Host))
				break
			}
		}
	}
	if i := strings.LastIndexByte(env.From, '@'); i >= 0 {
		domains = append(domains, strings.ToLower(env.From[i+1:]))
	}
	for _, dom := range domains {
		sig, err := s.opts.Signer.Sign(dom, queue.NewCRLFReader(io.NewSectionReader(sp, 0, sp.Size())))
		if err == nil {
			return []byte(sig)
		}
		if s.opts.IsNoKey != nil && s.opts.IsNoKey(err) {
			continue
		}
		s.log.Error("dkim signing failed; sending unsigned", "domain", dom, "err", err)
		return nil
	}
	return nil
}

// Inject delivers a message generated here (a DSN from the queue) to
// rcpts: local ones into their mailboxes, remote ones through the queue.
// It implements queue.Injector.
func (s *Submitter) Inject(ctx context.Context, from string, rcpts []string, msg []byte) error {
	return s.inject(ctx, from, rcpts, msg, queue.TransportSMTP)
}

// InjectTLSReport is Inject for the RFC 8460 reports of package queue:
// their queue entries carry queue.TransportTLSReport, so the SMTP
// transport delivers them despite TLS failures and does not report on
// them (RFC 8460 5.3). A header in the message cannot do that: anyone
// could write it into mail that is forwarded.
func (s *Submitter) InjectTLSReport(ctx context.Context, from string, rcpts []string, msg []byte) error {
	return s.inject(ctx, from, rcpts, msg, queue.TransportTLSReport)
}

func (s *Submitter) inject(ctx context.Context, from string, rcpts []string, msg []byte, transport string) error {
	sp := SpoolBytes(msg)
	env := Envelope{From: from}
	var remote []RemoteRecipient
	for _, rc := range rcpts {
		t, err := s.d.Resolve(ctx, rc)
		switch {
		case err == nil:
			env.Recipients = append(env.Recipients, t)
		case errors.Is(err, ErrNotLocal):
			remote = append(remote, RemoteRecipient{Address: rc})
		case errors.Is(err, ErrUnknownRecipient), errors.Is(err, address.ErrInvalid):
			// The sender's address no longer exists here: nobody to
			// tell. Dropping is what RFC 3461 6.2 allows for an
			// undeliverable DSN.
			s.log.Info("dropping generated message to a recipient that does not exist", "rcpt", rc, "err", err)
		default:
			return err
		}
	}
	_, err := s.submit(ctx, env, remote, DSNOptions{}, sp, transport)
	return err
}
