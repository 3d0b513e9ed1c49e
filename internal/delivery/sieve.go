package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mailstead/mailstead/internal/mailauth"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/routing"
	"github.com/mailstead/mailstead/internal/sieve"
	"github.com/mailstead/mailstead/internal/store"
)

// ErrSieveReject: every recipient's sieve script rejected the message
// (550 5.7.1 with the script's reason).
var ErrSieveReject = errors.New("rejected by the recipient's filter")

// SieveStore is what filtering needs from storage.
type SieveStore interface {
	ListSieveScripts(ctx context.Context, accountID int64) ([]store.SieveScript, error)
	GetSieveScript(ctx context.Context, accountID int64, name string) (store.SieveScript, error)
	GetMailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error)
}

// Replier sends a generated message (vacation response) through the
// normal outbound path.
type Replier interface {
	Inject(ctx context.Context, from string, rcpts []string, msg []byte) error
}

// filterer runs the global "before" script, the account's active script
// and the global "after" script for each local recipient.
type filterer struct {
	st        SieveStore
	hostname  string
	delims    string
	responder sieve.Responder

	mu    sync.Mutex
	cache map[scriptKey]*sieve.Script
}

type scriptKey struct {
	account int64
	name    string
	updated int64
}

// maxCachedScripts bounds the parsed-script cache.
const maxCachedScripts = 1000

func (f *filterer) parse(sc store.SieveScript) (*sieve.Script, error) {
	k := scriptKey{sc.AccountID, sc.Name, sc.UpdatedAt.UnixNano()}
	f.mu.Lock()
	s, ok := f.cache[k]
	f.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := sieve.Parse(sc.Content)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if len(f.cache) >= maxCachedScripts {
		clear(f.cache)
	}
	f.cache[k] = s
	f.mu.Unlock()
	return s, nil
}

// scripts returns the scripts that apply to an account, in order.
func (f *filterer) scripts(ctx context.Context, accountID int64) ([]*sieve.Script, error) {
	var out []*sieve.Script
	add := func(sc store.SieveScript) error {
		s, err := f.parse(sc)
		if err != nil {
			return fmt.Errorf("script %q of account %d: %w", sc.Name, sc.AccountID, err)
		}
		out = append(out, s)
		return nil
	}
	global := func(name string) error {
		sc, err := f.st.GetSieveScript(ctx, 0, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return add(sc)
	}
	if err := global("before"); err != nil {
		return nil, err
	}
	list, err := f.st.ListSieveScripts(ctx, accountID)
	if err != nil {
		return nil, err
	}
	for _, sc := range list {
		if sc.Active {
			if err := add(sc); err != nil {
				return nil, err
			}
		}
	}
	if err := global("after"); err != nil {
		return nil, err
	}
	return out, nil
}

func sieveEnvelope(env Envelope, t Target, auth *mailauth.Result) sieve.Envelope {
	se := sieve.Envelope{From: env.From, To: t.Address.String()}
	if env.RemoteIP.IsValid() {
		se.RemoteIP = env.RemoteIP.String()
	}
	if env.Account != nil {
		se.Auth = env.Account.Address
	}
	if auth != nil {
		se.SPF = string(auth.SPF.Status)
		se.DMARC = string(auth.DMARC.Status)
		se.DMARCPolicy = string(auth.Policy)
		for _, d := range auth.DKIM {
			if d.Status == mailauth.Pass {
				se.DKIM = "pass"
				se.DKIMDomains = append(se.DKIMDomains, d.Domain)
			} else if se.DKIM == "" {
				se.DKIM = string(d.Status)
			}
		}
	}
	return se
}

// filtered is what a recipient's scripts decided, in delivery terms.
type filtered struct {
	recipients []store.Recipient
	// edited, when the scripts' editheader did more than add fields, is a
	// delivery of its own: the rewritten message to this account's
	// mailboxes (recipients is then empty).
	edited    *store.Delivery
	redirects []routing.External
	reject    string // non-empty: the script rejected the message
	reply     *sieve.Reply
}

// sieveRecipient is the store recipient for one of a script's
// deliveries: base's prefix after the fields the script added, into Junk
// when the implicit keep meets a junk verdict.
func (d *Deliverer) sieveRecipient(del sieve.Delivery, l routing.Local, base store.Recipient, added []byte, junk bool) store.Recipient {
	r := del.Recipient(l.Account.ID)
	r.Prefix = append(append([]byte{}, added...), base.Prefix...)
	r.IgnoreQuota = base.IgnoreQuota
	if junk && del.Implicit {
		r.MailboxName = JunkMailbox
		r.Keywords = append(r.Keywords, "$Junk")
	}
	return r
}

// filter runs the scripts for one local target. With no scripts it
// returns ok=false and the caller delivers as usual. A script error never
// loses mail: the result is then the implicit keep into INBOX.
func (d *Deliverer) filter(ctx context.Context, env Envelope, t Target, l routing.Local, blob store.Blob, part *message.Part, auth *mailauth.Result, base store.Recipient, junk bool) (filtered, bool) {
	var out filtered
	if d.sieve == nil {
		return out, false
	}
	log := d.opts.Logger.With("account", l.Account.Address, "rcpt", t.Address.String())
	scripts, err := d.sieve.scripts(ctx, l.Account.ID)
	if err != nil {
		log.Error("sieve: loading scripts failed; delivering to INBOX", "err", err)
		d.sieveErrors.Inc()
		return out, false
	}
	if len(scripts) == 0 {
		return out, false
	}
	msg, err := sieve.NewMessage(blob, blob.Size(), part)
	if err != nil {
		log.Error("sieve: reading message failed; delivering to INBOX", "err", err)
		d.sieveErrors.Inc()
		return out, false
	}
	senv := sieveEnvelope(env, t, auth)
	res, err := sieve.RunSequence(ctx, scripts, msg, senv, sieve.Options{
		Hostname:         d.sieve.hostname,
		SubaddressDelims: d.sieve.delims,
		MailboxExists: func(name string) bool {
			_, err := d.sieve.st.GetMailbox(ctx, l.Account.ID, name)
			return err == nil
		},
	})
	if err != nil {
		// res is the implicit keep: nothing is lost.
		log.Warn("sieve: script failed; delivering to INBOX", "err", err)
		d.sieveErrors.Inc()
	}
	added, ok := res.AddedPrefix()
	if !ok {
		// deleteheader or addheader :last: this account's copies get a
		// blob of their own with the edited header; the shared blob
		// stays as it arrived for everyone else.
		edited := msg.WithHeader(res.Header)
		var summary []byte
		if p, err := message.Parse(edited, edited.Size()); err == nil {
			summary = p.Encode()
		}
		ed := &store.Delivery{Blob: edited, Summary: summary}
		for _, del := range res.Deliveries {
			ed.Recipients = append(ed.Recipients, d.sieveRecipient(del, l, base, nil, junk))
		}
		if len(ed.Recipients) > 0 {
			out.edited = ed
		}
	} else {
		for _, del := range res.Deliveries {
			out.recipients = append(out.recipients, d.sieveRecipient(del, l, base, added, junk))
		}
	}
	for _, rd := range res.Redirects {
		out.redirects = append(out.redirects, routing.External{Address: rd.Address, Mode: "srs", Alias: t.Address.String(), Owner: l.Account.ID})
	}
	if res.Reject != nil {
		out.reject = res.Reject.Reason
		if out.reject == "" {
			out.reject = "rejected by the recipient's filter"
		}
	}
	if res.Vacation != nil {
		own := []string{l.Account.Address, t.Address.String()}
		reply, why, err := d.sieve.responder.Respond(ctx, l.Account.ID, res.Vacation, msg.Header(), senv, own)
		switch {
		case err != nil:
			log.Warn("sieve: vacation", "err", err)
		case reply == nil:
			log.Debug("sieve: no vacation response", "reason", why)
		default:
			out.reply = reply
		}
	}
	log.Info("sieve", "result", strings.ReplaceAll(res.String(), "\n", "; "))
	return out, true
}
