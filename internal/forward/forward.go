// Package forward turns routing's forwarding targets into outbound queue
// entries: mail to an alias that points outside our domains, bounces
// returning to the original sender of mail we forwarded, and HTTP
// webhook hand-offs.
//
// Forwarding breaks SPF (we are not the sender domain's server), so the
// envelope sender is rewritten with SRS (package srs, compatible with
// postsrsd) and the message gets an ARC set (package arc) recording the
// authentication results we saw, so receivers that trust ARC can still
// accept mail whose DMARC would now fail. Mail from our own domains keeps
// its sender: its SPF passes anyway.
package forward

import (
	"context"
	"crypto/rsa"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/mailstead/mailstead/internal/arc"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dkim"
	"github.com/mailstead/mailstead/internal/routing"
	"github.com/mailstead/mailstead/internal/srs"
	"github.com/mailstead/mailstead/internal/store"
)

// Options configure a Forwarder.
type Options struct {
	// SRS rewrites the envelope sender of forwarded mail; nil keeps it.
	SRS *srs.SRS
	// Keys provide the ARC sealing key of the forwarding alias's domain
	// (an RSA key: ARC is defined for rsa-sha256 only); nil or no key: no
	// ARC set.
	Keys       *dkim.Keys
	AuthServID string
	// IsLocalDomain tells our domains (their senders need no SRS).
	IsLocalDomain func(ctx context.Context, domain string) (bool, error)
	// LookupTXT verifies earlier ARC sets (nil: the chain is not checked
	// and a new set says cv=none only when there is no earlier set).
	LookupTXT arc.LookupTXT
	// Store and Signer enable "rewrite" mode and reverse-alias replies.
	Store  Store
	Signer Signer
	Logger *slog.Logger
}

// Forwarder implements delivery.Forwarder.
type Forwarder struct{ o Options }

// New returns a Forwarder.
func New(o Options) *Forwarder {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{o: o}
}

var _ delivery.Forwarder = (*Forwarder)(nil)

func domainOf(a string) string { return strings.ToLower(a[strings.LastIndexByte(a, '@')+1:]) }

// sender returns the envelope sender for mail forwarded by alias.
func (f *Forwarder) sender(ctx context.Context, from string, ext routing.External) (string, error) {
	if ext.Mode == routing.ModeSRSReverse || from == "" || f.o.SRS == nil {
		return from, nil
	}
	if f.o.IsLocalDomain != nil {
		local, err := f.o.IsLocalDomain(ctx, domainOf(from))
		if err != nil {
			return "", err
		}
		if local {
			return from, nil
		}
	}
	return f.o.SRS.Forward(from, domainOf(ext.Alias))
}

// seal returns an ARC set for a message forwarded by an alias of domain,
// or nil when the domain has no RSA key.
func (f *Forwarder) seal(ctx context.Context, env delivery.Envelope, blob store.Blob, domain string) []byte {
	if f.o.Keys == nil {
		return nil
	}
	keys, err := f.o.Keys.Active(domain)
	if err != nil {
		return nil
	}
	var key *dkim.Key
	for _, k := range keys {
		if _, ok := k.Signer.(*rsa.PrivateKey); ok {
			key = k
		}
	}
	if key == nil {
		return nil
	}
	results := "none"
	if env.Auth != nil {
		h := env.Auth.Header(f.o.AuthServID)
		if _, v, ok := strings.Cut(h, ":"); ok {
			// The field body after "authserv-id;" (RFC 8617 4.1.1 AAR).
			v = strings.TrimSpace(v)
			if _, rest, ok := strings.Cut(v, ";"); ok {
				results = strings.Join(strings.Fields(rest), " ")
			}
		}
	}
	set, err := arc.Seal(ctx, io.NewSectionReader(blob, 0, blob.Size()), arc.SealOptions{
		AuthServID: f.o.AuthServID, AuthResults: results, Domain: domain, Selector: key.Selector, Key: key.Signer, LookupTXT: f.o.LookupTXT,
	})
	if err != nil {
		// Forwarding without ARC beats not forwarding.
		f.o.Logger.Warn("arc seal", "domain", domain, "err", err)
		return nil
	}
	return set.Header
}

// Forward implements delivery.Forwarder: one queue entry per (envelope
// sender, destination domain); one per webhook target.
func (f *Forwarder) Forward(ctx context.Context, env delivery.Envelope, blob store.Blob, ext []routing.External, http []string) ([]store.QueueEntry, error) {
	type key struct{ from, dest, sealDomain string }
	groups := map[key]*store.QueueEntry{}
	seals := map[string][]byte{}
	var out []store.QueueEntry
	for _, e := range ext {
		switch {
		case e.Mode == "rewrite":
			q, err := f.rewriteForward(ctx, env, blob, e)
			if err != nil {
				return nil, fmt.Errorf("forward to %s: %w", e.Address, err)
			}
			q.Transport, q.Destination = "smtp", domainOf(e.Address)
			q.Recipients = []store.QueueRecipient{{Address: e.Address}}
			out = append(out, q)
			f.o.Logger.Info("forwarding", "alias", e.Alias, "to", e.Address, "mode", e.Mode, "from", env.From, "envelope_from", q.From)
			continue
		case e.Mode == routing.ModeReply:
			q, ok, err := f.rewriteReply(ctx, env, blob, e)
			if err != nil {
				return nil, fmt.Errorf("reply to %s: %w", e.Address, err)
			}
			if !ok {
				// Accept and drop, as a 5xx would tell a forger which
				// reverse aliases exist.
				f.o.Logger.Warn("reverse alias used by someone who does not own its alias; dropped", "alias", e.Alias, "from", env.From)
				continue
			}
			q.Transport, q.Destination = "smtp", domainOf(e.Address)
			q.Recipients = []store.QueueRecipient{{Address: e.Address}}
			out = append(out, q)
			f.o.Logger.Info("forwarding", "alias", e.Alias, "to", e.Address, "mode", e.Mode, "from", env.From)
			continue
		}
		from, err := f.sender(ctx, env.From, e)
		if err != nil {
			return nil, fmt.Errorf("forward to %s: %w", e.Address, err)
		}
		sealDomain := ""
		if e.Mode != routing.ModeSRSReverse && e.Alias != "" {
			sealDomain = domainOf(e.Alias)
			if _, ok := seals[sealDomain]; !ok {
				seals[sealDomain] = f.seal(ctx, env, blob, sealDomain)
			}
		}
		k := key{from, domainOf(e.Address), sealDomain}
		q := groups[k]
		if q == nil {
			q = &store.QueueEntry{From: from, Transport: "smtp", Destination: k.dest, Prefix: seals[sealDomain]}
			groups[k] = q
		}
		dup := false
		for _, r := range q.Recipients {
			dup = dup || strings.EqualFold(r.Address, e.Address)
		}
		if !dup {
			q.Recipients = append(q.Recipients, store.QueueRecipient{Address: e.Address})
		}
		f.o.Logger.Info("forwarding", "alias", e.Alias, "to", e.Address, "mode", e.Mode, "from", env.From, "envelope_from", from, "arc", len(q.Prefix) > 0)
	}
	for _, q := range groups {
		out = append(out, *q)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Destination != out[j].Destination {
			return out[i].Destination < out[j].Destination
		}
		return out[i].From < out[j].From
	})
	seen := map[string]bool{}
	for _, name := range http {
		if seen[name] {
			continue
		}
		seen[name] = true
		q := store.QueueEntry{From: env.From, Transport: "http", Destination: name}
		for _, t := range env.Recipients {
			for _, h := range t.HTTP {
				if h == name {
					q.Recipients = append(q.Recipients, store.QueueRecipient{Address: t.Address.String()})
				}
			}
		}
		if len(q.Recipients) == 0 {
			q.Recipients = []store.QueueRecipient{{Address: name}}
		}
		out = append(out, q)
	}
	return out, nil
}
