// Package routing decides where a message for one recipient address goes:
// to local accounts, to external addresses (forwarding), to HTTP targets,
// or nowhere (a disabled alias that drops). Its core, Resolve, is a pure
// function of the recipient and a Directory of accounts and aliases, so it
// can be tested exhaustively without a server.
//
// Precedence, per domain (the bugs of the stack we replace are the reason
// for each rule):
//
//  1. an account with exactly this address;
//  2. an alias with exactly this address (an address is never both: the
//     store refuses it);
//  3. the same two for the address without its subaddress (user+tag →
//     user), keeping the tag for sieve;
//  4. postmaster@ and abuse@, which every domain has (routed to the
//     postmaster account) even when no account or alias exists;
//  5. the domain's catch-all ("@domain"), which therefore never takes mail
//     for an address that exists.
//
// Aliases nest; expansion is depth-bounded and stops at cycles.
package routing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/store"
)

// Errors of Resolve.
var (
	ErrNotLocal = errors.New("recipient domain is not local")
	ErrUnknown  = errors.New("no such recipient")
	// ErrRejected is a disabled alias set to refuse (550).
	ErrRejected = errors.New("address disabled")
	// ErrNoTargets: an alias none of whose targets exists.
	ErrNoTargets = errors.New("alias has no deliverable targets")
)

// MaxDepth bounds alias nesting.
const MaxDepth = 10

// Directory answers lookups; errors are temporary store failures.
type Directory interface {
	IsLocalDomain(domain string) (bool, error)
	// Account looks up an account by address, case-insensitively.
	Account(addr string) (store.Account, bool, error)
	// Alias looks up an alias by address ("@domain" for the catch-all).
	Alias(addr string) (store.Alias, bool, error)
	// Postmaster returns the account for postmaster@/abuse@ of domain.
	Postmaster(domain string) (store.Account, bool, error)
	// ReverseAlias looks up a reverse alias of rewrite-mode forwarding.
	ReverseAlias(addr string) (store.ReverseAlias, bool, error)
}

// Local is a local delivery target.
type Local struct {
	Account store.Account
	// Detail is the subaddress tag of the original recipient.
	Detail string
	// Role marks postmaster/abuse fallback deliveries (exempt from quota).
	Role bool
}

// External is a forwarding target outside our domains.
type External struct {
	Address string
	// Mode is the alias's forwarding mode ("srs" or "rewrite").
	Mode string
	// Alias is the alias that forwards (for SRS/rewrite and logs).
	Alias string
	// Owner is the alias's owning account (0 if none).
	Owner int64
}

// Resolution is where one recipient's copy goes.
type Resolution struct {
	Local    []Local
	External []External
	HTTP     []string // webhook target names
	// Drop: accepted and discarded (disabled alias).
	Drop bool
	// Via lists the aliases expanded, in order (for logs).
	Via []string
	// Warnings are problems that did not stop delivery (missing targets,
	// cycles).
	Warnings []string
}

// Options tune Resolve.
type Options struct {
	// SubaddressDelimiters: each character splits user+tag.
	SubaddressDelimiters string
	// ReverseSRS decodes an SRS address we issued back to the original
	// sender (package srs); nil disables SRS bounce routing. A bounce to
	// a forged or expired SRS address is refused as unknown.
	ReverseSRS func(addr string) (string, error)
}

// ModeReply marks an External target reached through a reverse alias: a
// reply from the alias's owner to an outside correspondent, sent as if
// from the alias (the forwarder checks the sender is the owner).
const ModeReply = "reply"

// ModeSRSReverse marks an External target that returns a bounce to the
// original sender of mail we forwarded with SRS.
const ModeSRSReverse = "srs-reverse"

// Resolve resolves one recipient.
func Resolve(dir Directory, rcpt address.Address, opts Options) (Resolution, error) {
	var res Resolution
	local, err := dir.IsLocalDomain(rcpt.Domain)
	if err != nil {
		return res, err
	}
	if !local {
		return res, fmt.Errorf("%s: %w", rcpt, ErrNotLocal)
	}
	r := &resolver{dir: dir, res: &res, seen: map[string]bool{}}
	found, err := r.exact(rcpt.String(), "", 0)
	if err != nil || found {
		return res, r.finish(err)
	}
	if ra, ok, err := dir.ReverseAlias(rcpt.String()); err != nil {
		return res, err
	} else if ok {
		res.External = append(res.External, External{Address: ra.Contact, Mode: ModeReply, Alias: ra.Alias})
		return res, nil
	}
	if opts.ReverseSRS != nil && isSRS(rcpt.Local) {
		orig, err := opts.ReverseSRS(rcpt.String())
		if err != nil {
			return res, fmt.Errorf("%s: SRS address does not verify (%v): %w", rcpt, err, ErrUnknown)
		}
		res.External = append(res.External, External{Address: orig, Mode: ModeSRSReverse, Alias: rcpt.String()})
		return res, nil
	}
	if base, tag := rcpt.Base(opts.SubaddressDelimiters); tag != "" {
		found, err = r.exact(base.String(), tag, 0)
		if err != nil || found {
			return res, r.finish(err)
		}
	}
	if lp := strings.ToLower(rcpt.Local); lp == "postmaster" || lp == "abuse" {
		acc, ok, err := dir.Postmaster(rcpt.Domain)
		if err != nil {
			return res, err
		}
		if ok {
			res.Local = append(res.Local, Local{Account: acc, Role: true})
			return res, nil
		}
	}
	ca, ok, err := dir.Alias("@" + rcpt.Domain)
	if err != nil {
		return res, err
	}
	if ok {
		if err := r.alias(ca, "", 0); err != nil {
			return res, r.finish(err)
		}
		return res, r.finish(nil)
	}
	return res, fmt.Errorf("%s: %w", rcpt, ErrUnknown)
}

type resolver struct {
	dir  Directory
	res  *Resolution
	seen map[string]bool
}

func (r *resolver) finish(err error) error {
	if err != nil {
		return err
	}
	if !r.res.Drop && len(r.res.Local)+len(r.res.External)+len(r.res.HTTP) == 0 {
		return ErrNoTargets
	}
	return nil
}

// exact resolves an address that must be an account or alias itself.
func (r *resolver) exact(addr, detail string, depth int) (bool, error) {
	acc, ok, err := r.dir.Account(addr)
	if err != nil {
		return false, err
	}
	if ok {
		r.addLocal(Local{Account: acc, Detail: detail})
		return true, nil
	}
	al, ok, err := r.dir.Alias(addr)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, nil
	}
	return true, r.alias(al, detail, depth)
}

func (r *resolver) addLocal(l Local) {
	for _, x := range r.res.Local {
		if x.Account.ID == l.Account.ID {
			return
		}
	}
	r.res.Local = append(r.res.Local, l)
}

func (r *resolver) alias(al store.Alias, detail string, depth int) error {
	key := strings.ToLower(al.Address)
	if r.seen[key] {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("alias loop at %s", al.Address))
		return nil
	}
	r.seen[key] = true
	r.res.Via = append(r.res.Via, al.Address)
	if al.Disabled {
		if depth == 0 {
			if al.DisabledAction == "reject" {
				return fmt.Errorf("%s: %w", al.Address, ErrRejected)
			}
			r.res.Drop = true
		}
		// A disabled alias inside another expands to nothing.
		return nil
	}
	if depth >= MaxDepth {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("alias nesting deeper than %d at %s", MaxDepth, al.Address))
		return nil
	}
	for _, t := range al.Targets {
		if name, ok := strings.CutPrefix(t, "http:"); ok {
			if name != "" && !contains(r.res.HTTP, name) {
				r.res.HTTP = append(r.res.HTTP, name)
			}
			continue
		}
		ta, err := address.Parse(t)
		if err != nil {
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("alias %s: bad target %q", al.Address, t))
			continue
		}
		local, err := r.dir.IsLocalDomain(ta.Domain)
		if err != nil {
			return err
		}
		if !local {
			r.res.External = append(r.res.External, External{Address: ta.String(), Mode: al.ForwardMode, Alias: al.Address, Owner: al.OwnerAccountID})
			continue
		}
		found, err := r.exact(ta.String(), detail, depth+1)
		if err != nil {
			return err
		}
		if !found {
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("alias %s: target %s does not exist", al.Address, ta))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isSRS(local string) bool {
	return len(local) > 5 && (strings.EqualFold(local[:4], "SRS0") || strings.EqualFold(local[:4], "SRS1")) && strings.ContainsRune("=+-", rune(local[4]))
}
