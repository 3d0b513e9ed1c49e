package forward

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/routing"
	"github.com/mailstead/mailstead/internal/store"
)

// Store is what rewrite-mode forwarding needs from storage.
type Store interface {
	ReverseAlias(ctx context.Context, alias, contact, newAddress string) (store.ReverseAlias, error)
	GetAlias(ctx context.Context, address string) (store.Alias, error)
	GetAccountByID(ctx context.Context, id int64) (store.Account, error)
}

// Signer DKIM-signs a message for a domain (package dkim's *Keys).
type Signer interface {
	Sign(domain string, r io.Reader) (string, error)
}

// maxHeader bounds the header a rewrite reads.
const maxHeader = 256 << 10

// splitHeader returns the blob's header (including the blank line) and
// its length.
func splitHeader(blob store.Blob) ([]byte, error) {
	n := int64(maxHeader)
	if n > blob.Size() {
		n = blob.Size()
	}
	b := make([]byte, n)
	k, err := blob.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	b = b[:k]
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return b[:i+4], nil
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		return b[:i+2], nil
	}
	if int64(k) == blob.Size() {
		return b, nil // header only
	}
	return nil, fmt.Errorf("header larger than %d bytes", maxHeader)
}

// fields splits a header block into fields (with continuation lines),
// dropping the terminating blank line.
func fields(h []byte) [][]byte {
	var out [][]byte
	for _, line := range bytes.SplitAfter(h, []byte("\n")) {
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], line...)
			continue
		}
		out = append(out, append([]byte{}, line...))
	}
	return out
}

func fieldName(f []byte) string {
	i := bytes.IndexByte(f, ':')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(string(f[:i])))
}

// rebuild keeps the fields not named in drop (lower case, "arc-*" style
// prefixes allowed), then adds extra, with CRLF line ends.
func rebuild(h []byte, drop []string, extra ...string) []byte {
	var b bytes.Buffer
	for _, e := range extra {
		b.WriteString(e)
		b.WriteString("\r\n")
	}
outer:
	for _, f := range fields(h) {
		name := fieldName(f)
		for _, d := range drop {
			if name == d || (strings.HasSuffix(d, "*") && strings.HasPrefix(name, strings.TrimSuffix(d, "*"))) {
				continue outer
			}
		}
		b.Write(bytes.TrimRight(f, "\r\n"))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func newReverseAddress(domain string) string {
	var r [10]byte
	rand.Read(r[:])
	return "ra-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(r[:])) + "@" + domain
}

// firstFrom returns the first From address of a header and its display
// name (decoded).
func firstFrom(h []byte) (addr, name string) {
	v, ok := message.HeaderValue(h, "From")
	if !ok {
		return "", ""
	}
	for _, a := range message.ParseAddressList(v) {
		if a.Mailbox != "" && a.Host != "" && a.Host != message.MissingHost {
			return a.Mailbox + "@" + a.Host, message.DecodeHeaderValue(a.Name)
		}
	}
	return "", ""
}

// rewritten builds a queue entry carrying a message whose header was
// replaced: Prefix = DKIM signature + new header, Skip = old header.
func (f *Forwarder) rewritten(blob store.Blob, oldHeader, newHeader []byte, signDomain string) (store.QueueEntry, error) {
	body := io.NewSectionReader(blob, int64(len(oldHeader)), blob.Size()-int64(len(oldHeader)))
	prefix := newHeader
	if f.o.Signer != nil {
		sig, err := f.o.Signer.Sign(signDomain, io.MultiReader(bytes.NewReader(newHeader), body))
		if err == nil {
			prefix = append([]byte(sig), newHeader...)
		} else {
			f.o.Logger.Warn("rewrite: DKIM signing failed; sending unsigned", "domain", signDomain, "err", err)
		}
	}
	return store.QueueEntry{Prefix: prefix, Skip: int64(len(oldHeader))}, nil
}

// dropOnForward are the fields a rewrite removes: identities of the
// original sender that would break DMARC or leak past the reverse alias,
// and signatures the rewrite invalidates.
var dropOnForward = []string{"from", "sender", "reply-to", "return-path", "dkim-signature", "arc-*", "authentication-results"}

// rewriteForward sends mail for a rewrite-mode alias with From replaced
// by a reverse alias in the alias's domain, DKIM-signed by that domain,
// so DMARC aligns at the destination even for p=reject senders.
func (f *Forwarder) rewriteForward(ctx context.Context, env delivery.Envelope, blob store.Blob, e routing.External) (store.QueueEntry, error) {
	if f.o.Store == nil {
		return store.QueueEntry{}, errors.New("rewrite forwarding needs the store")
	}
	h, err := splitHeader(blob)
	if err != nil {
		return store.QueueEntry{}, err
	}
	contact, name := firstFrom(h)
	if contact == "" {
		contact = env.From
	}
	aliasDomain := domainOf(e.Alias)
	from := "<" + e.Alias + ">"
	if contact != "" {
		ra, err := f.o.Store.ReverseAlias(ctx, e.Alias, contact, newReverseAddress(aliasDomain))
		if err != nil {
			return store.QueueEntry{}, fmt.Errorf("reverse alias: %w", err)
		}
		display := strings.Replace(contact, "@", " at ", 1)
		if name != "" {
			display = name + " - " + display
		}
		from = mime.QEncoding.Encode("utf-8", display) + " <" + ra.Address + ">"
	}
	nh := rebuild(h, dropOnForward, "From: "+from, "X-Original-From: "+sanitize(contact))
	q, err := f.rewritten(blob, h, nh, aliasDomain)
	if err != nil {
		return q, err
	}
	// The envelope sender is the alias itself: bounces come back to it,
	// and SPF passes for our domain.
	q.From = e.Alias
	return q, nil
}

// allowedReply reports whether the sender of a message to a reverse
// alias is the alias's owner: an account that owns the alias, or one of
// the addresses the alias delivers to. With authentication results
// available, the sender's domain must also pass DMARC or SPF, so the
// check cannot be passed by forging MAIL FROM.
func (f *Forwarder) allowedReply(ctx context.Context, env delivery.Envelope, alias string) (bool, error) {
	if env.From == "" {
		return false, nil
	}
	al, err := f.o.Store.GetAlias(ctx, alias)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	owners := append([]string{}, al.Targets...)
	if al.OwnerAccountID != 0 {
		if acc, err := f.o.Store.GetAccountByID(ctx, al.OwnerAccountID); err == nil {
			owners = append(owners, acc.Address)
		}
	}
	ok := false
	for _, o := range owners {
		ok = ok || strings.EqualFold(o, env.From)
	}
	if !ok {
		return false, nil
	}
	if env.Account != nil {
		return true, nil
	}
	if a := env.Auth; a != nil && a.DMARC.Status != "pass" && a.SPF.Status != "pass" {
		return false, nil
	}
	return true, nil
}

// dropOnReply also removes the trace of the owner's own mail system, so
// the correspondent only ever sees the alias.
var dropOnReply = append([]string{"to", "cc", "received", "x-originating-ip", "user-agent", "x-mailer"}, dropOnForward...)

// rewriteReply sends the owner's reply to the correspondent as if from
// the alias.
func (f *Forwarder) rewriteReply(ctx context.Context, env delivery.Envelope, blob store.Blob, e routing.External) (store.QueueEntry, bool, error) {
	if f.o.Store == nil {
		return store.QueueEntry{}, false, errors.New("reverse aliases need the store")
	}
	ok, err := f.allowedReply(ctx, env, e.Alias)
	if err != nil || !ok {
		return store.QueueEntry{}, false, err
	}
	h, err := splitHeader(blob)
	if err != nil {
		return store.QueueEntry{}, false, err
	}
	nh := rebuild(h, dropOnReply, "From: <"+e.Alias+">", "To: <"+e.Address+">")
	q, err := f.rewritten(blob, h, nh, domainOf(e.Alias))
	if err != nil {
		return q, false, err
	}
	q.From = e.Alias
	return q, true, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
