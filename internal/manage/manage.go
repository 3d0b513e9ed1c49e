// Package manage implements the administrative operations on mail data —
// domains and accounts now, aliases and more later — once, for every front
// end: the CLI (directly or through the control socket of a running
// server) and, later, the admin API and `apply`.
package manage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/control"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

// Ops runs operations against a store.
type Ops struct {
	St store.Store
	// DefaultQuota applies to new accounts that name none.
	DefaultQuota int64
}

// Register adds every operation to r.
func (o *Ops) Register(r *control.Registry) {
	control.Register(r, "domain.add", o.DomainAdd)
	control.Register(r, "domain.list", o.DomainList)
	control.Register(r, "domain.del", o.DomainDel)
	control.Register(r, "domain.set", o.DomainSet)
	control.Register(r, "account.add", o.AccountAdd)
	control.Register(r, "account.list", o.AccountList)
	control.Register(r, "account.show", o.AccountShow)
	control.Register(r, "account.passwd", o.AccountPasswd)
	control.Register(r, "account.del", o.AccountDel)
	control.Register(r, "account.quota", o.AccountQuota)
	o.registerAliases(r)
	o.registerSieve(r)
	o.registerApply(r)
	control.Register(r, "message.list", o.MessageList)
	control.Register(r, "message.cat", o.MessageCat)
}

// DomainArgs names a domain.
type DomainArgs struct {
	Name       string `json:"name"`
	Postmaster string `json:"postmaster,omitempty"`
	// DMARCReject/DMARCQuarantine: "reject", "junk", "accept" or "" (keep
	// the current setting; "default" resets it).
	DMARCReject     string `json:"dmarc_reject,omitempty"`
	DMARCQuarantine string `json:"dmarc_quarantine,omitempty"`
}

// DomainInfo describes a domain.
type DomainInfo struct {
	Name       string `json:"name"`
	Display    string `json:"display"` // U-label form
	Postmaster string `json:"postmaster,omitempty"`
	// DMARC failure handling for mail to this domain ("" = default).
	DMARCReject     string    `json:"dmarc_reject,omitempty"`
	DMARCQuarantine string    `json:"dmarc_quarantine,omitempty"`
	Accounts        int       `json:"accounts"`
	CreatedAt       time.Time `json:"created_at"`
}

func (o *Ops) DomainAdd(ctx context.Context, a DomainArgs) (DomainInfo, error) {
	d, err := address.Domain(a.Name)
	if err != nil {
		return DomainInfo{}, err
	}
	pm := ""
	if a.Postmaster != "" {
		p, err := address.Parse(a.Postmaster)
		if err != nil {
			return DomainInfo{}, fmt.Errorf("postmaster: %w", err)
		}
		pm = p.String()
	}
	rej, quar, err := dmarcActions(a.DMARCReject, a.DMARCQuarantine, "", "")
	if err != nil {
		return DomainInfo{}, err
	}
	if err := o.St.AddDomain(ctx, store.Domain{Name: d, Postmaster: pm, DMARCReject: rej, DMARCQuarantine: quar}); err != nil {
		if errors.Is(err, store.ErrExists) {
			return DomainInfo{}, fmt.Errorf("domain %s already exists", d)
		}
		return DomainInfo{}, err
	}
	return o.domainInfo(ctx, d)
}

func (o *Ops) domainInfo(ctx context.Context, name string) (DomainInfo, error) {
	d, err := o.St.GetDomain(ctx, name)
	if err != nil {
		return DomainInfo{}, err
	}
	accs, err := o.St.ListAccounts(ctx, name)
	if err != nil {
		return DomainInfo{}, err
	}
	return DomainInfo{Name: d.Name, Display: address.DisplayDomain(d.Name), Postmaster: d.Postmaster, DMARCReject: d.DMARCReject, DMARCQuarantine: d.DMARCQuarantine, Accounts: len(accs), CreatedAt: d.CreatedAt}, nil
}

func (o *Ops) DomainList(ctx context.Context, _ struct{}) ([]DomainInfo, error) {
	ds, err := o.St.ListDomains(ctx)
	if err != nil {
		return nil, err
	}
	out := []DomainInfo{}
	for _, d := range ds {
		info, err := o.domainInfo(ctx, d.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func (o *Ops) DomainDel(ctx context.Context, a DomainArgs) (struct{}, error) {
	d, err := address.Domain(a.Name)
	if err != nil {
		return struct{}{}, err
	}
	err = o.St.DeleteDomain(ctx, d)
	if errors.Is(err, store.ErrMailboxInUse) {
		return struct{}{}, fmt.Errorf("domain %s still has accounts: delete them first", d)
	}
	if errors.Is(err, store.ErrNotFound) {
		return struct{}{}, fmt.Errorf("no domain %s", d)
	}
	return struct{}{}, err
}

// AccountArgs are the arguments of the account operations.
type AccountArgs struct {
	Address string `json:"address"`
	// PasswordHash is computed by the caller (the CLI hashes, so the
	// plain password never leaves its process) or imported.
	PasswordHash string `json:"password_hash,omitempty"`
	QuotaBytes   *int64 `json:"quota_bytes,omitempty"`
	CreateDomain bool   `json:"create_domain,omitempty"`
}

// AccountInfo describes an account. No password hash: it is not for
// display.
type AccountInfo struct {
	ID         int64         `json:"id"`
	Address    string        `json:"address"`
	Domain     string        `json:"domain"`
	QuotaBytes int64         `json:"quota_bytes"`
	UsedBytes  int64         `json:"used_bytes"`
	Disabled   bool          `json:"disabled"`
	CreatedAt  time.Time     `json:"created_at"`
	Mailboxes  []MailboxInfo `json:"mailboxes,omitempty"`
}

// MailboxInfo summarises a mailbox for `account show`.
type MailboxInfo struct {
	Name     string `json:"name"`
	Role     string `json:"role,omitempty"`
	Messages uint32 `json:"messages"`
	Unseen   uint32 `json:"unseen"`
	Size     int64  `json:"size"`
}

func info(a store.Account) AccountInfo {
	return AccountInfo{ID: a.ID, Address: a.Address, Domain: a.Domain, QuotaBytes: a.QuotaBytes, UsedBytes: a.UsedBytes, Disabled: a.Disabled, CreatedAt: a.CreatedAt}
}

func parseAccount(s string) (address.Address, error) {
	a, err := address.Parse(strings.TrimSpace(s))
	if err != nil {
		return a, err
	}
	return a, nil
}

func (o *Ops) AccountAdd(ctx context.Context, a AccountArgs) (AccountInfo, error) {
	addr, err := parseAccount(a.Address)
	if err != nil {
		return AccountInfo{}, err
	}
	if a.PasswordHash == "" {
		return AccountInfo{}, errors.New("a password (hash) is required")
	}
	if _, err := account.NormalizeHash(a.PasswordHash); err != nil {
		return AccountInfo{}, err
	}
	if _, err := o.St.GetDomain(ctx, addr.Domain); errors.Is(err, store.ErrNotFound) {
		if !a.CreateDomain {
			return AccountInfo{}, fmt.Errorf("%s is not a local domain: add it with `mailstead domain add %s` (or pass --create-domain)", addr.Domain, addr.Domain)
		}
		if err := o.St.AddDomain(ctx, store.Domain{Name: addr.Domain}); err != nil && !errors.Is(err, store.ErrExists) {
			return AccountInfo{}, err
		}
	} else if err != nil {
		return AccountInfo{}, err
	}
	quota := o.DefaultQuota
	if a.QuotaBytes != nil {
		quota = *a.QuotaBytes
	}
	acc, err := o.St.CreateAccount(ctx, store.Account{Address: addr.String(), Domain: addr.Domain, PasswordHash: a.PasswordHash, QuotaBytes: quota})
	if errors.Is(err, store.ErrExists) {
		return AccountInfo{}, fmt.Errorf("account %s already exists", addr)
	}
	if err != nil {
		return AccountInfo{}, err
	}
	return info(acc), nil
}

func (o *Ops) get(ctx context.Context, s string) (store.Account, error) {
	addr, err := parseAccount(s)
	if err != nil {
		return store.Account{}, err
	}
	acc, err := o.St.GetAccount(ctx, addr.String())
	if errors.Is(err, store.ErrNotFound) {
		return acc, fmt.Errorf("no account %s", addr)
	}
	return acc, err
}

func (o *Ops) AccountList(ctx context.Context, a DomainArgs) ([]AccountInfo, error) {
	dom := ""
	if a.Name != "" {
		d, err := address.Domain(a.Name)
		if err != nil {
			return nil, err
		}
		dom = d
	}
	accs, err := o.St.ListAccounts(ctx, dom)
	if err != nil {
		return nil, err
	}
	out := []AccountInfo{}
	for _, a := range accs {
		out = append(out, info(a))
	}
	return out, nil
}

func (o *Ops) AccountShow(ctx context.Context, a AccountArgs) (AccountInfo, error) {
	acc, err := o.get(ctx, a.Address)
	if err != nil {
		return AccountInfo{}, err
	}
	out := info(acc)
	mbs, err := o.St.ListMailboxes(ctx, acc.ID)
	if err != nil {
		return out, err
	}
	for _, m := range mbs {
		st, err := o.St.MailboxStatus(ctx, m.ID)
		if err != nil {
			return out, err
		}
		out.Mailboxes = append(out.Mailboxes, MailboxInfo{Name: m.Name, Role: m.Role, Messages: st.Messages, Unseen: st.Unseen, Size: st.Size})
	}
	return out, nil
}

func (o *Ops) AccountPasswd(ctx context.Context, a AccountArgs) (struct{}, error) {
	acc, err := o.get(ctx, a.Address)
	if err != nil {
		return struct{}{}, err
	}
	if _, err := account.NormalizeHash(a.PasswordHash); err != nil {
		return struct{}{}, err
	}
	acc.PasswordHash = a.PasswordHash
	return struct{}{}, o.St.UpdateAccount(ctx, acc)
}

func (o *Ops) AccountQuota(ctx context.Context, a AccountArgs) (AccountInfo, error) {
	acc, err := o.get(ctx, a.Address)
	if err != nil {
		return AccountInfo{}, err
	}
	if a.QuotaBytes == nil || *a.QuotaBytes < 0 {
		return AccountInfo{}, errors.New("quota must be 0 (unlimited) or a positive size")
	}
	acc.QuotaBytes = *a.QuotaBytes
	if err := o.St.UpdateAccount(ctx, acc); err != nil {
		return AccountInfo{}, err
	}
	return info(acc), nil
}

func (o *Ops) AccountDel(ctx context.Context, a AccountArgs) (struct{}, error) {
	acc, err := o.get(ctx, a.Address)
	if err != nil {
		return struct{}{}, err
	}
	return struct{}{}, o.St.DeleteAccount(ctx, acc.ID)
}

// MessageArgs select messages of an account's mailbox.
type MessageArgs struct {
	Address string `json:"address"`
	Mailbox string `json:"mailbox"`
	UID     uint32 `json:"uid,omitempty"`
}

// MessageInfo is one line of `message list`.
type MessageInfo struct {
	UID          uint32    `json:"uid"`
	Size         int64     `json:"size"`
	Flags        []string  `json:"flags,omitempty"`
	InternalDate time.Time `json:"internal_date"`
	Subject      string    `json:"subject,omitempty"`
	MessageID    string    `json:"message_id,omitempty"`
}

func (o *Ops) mailbox(ctx context.Context, a MessageArgs) (store.Mailbox, error) {
	acc, err := o.get(ctx, a.Address)
	if err != nil {
		return store.Mailbox{}, err
	}
	name := a.Mailbox
	if name == "" {
		name = "INBOX"
	}
	mb, err := o.St.GetMailbox(ctx, acc.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return mb, fmt.Errorf("%s has no mailbox %q", acc.Address, name)
	}
	return mb, err
}

// MessageList lists a mailbox's messages with their subject.
func (o *Ops) MessageList(ctx context.Context, a MessageArgs) ([]MessageInfo, error) {
	mb, err := o.mailbox(ctx, a)
	if err != nil {
		return nil, err
	}
	metas, err := o.St.ListMessages(ctx, mb.ID)
	if err != nil {
		return nil, err
	}
	uids := make([]uint32, len(metas))
	for i, m := range metas {
		uids[i] = m.UID
	}
	msgs, err := o.St.GetMessages(ctx, mb.ID, uids)
	if err != nil {
		return nil, err
	}
	out := []MessageInfo{}
	for _, m := range msgs {
		mi := MessageInfo{UID: m.UID, Size: m.Size, Flags: append(m.Flags.Names(), m.Keywords...), InternalDate: m.InternalDate}
		if p, err := message.Decode(m.Summary); err == nil && p != nil && p.Envelope != nil {
			mi.Subject = message.DecodeHeaderValue(p.Envelope.Subject)
			mi.MessageID = p.Envelope.MessageID
		}
		out = append(out, mi)
	}
	return out, nil
}

// MessageContent is a message's raw bytes.
type MessageContent struct {
	Raw []byte `json:"raw"`
}

// MessageCat returns one message's bytes exactly as stored.
func (o *Ops) MessageCat(ctx context.Context, a MessageArgs) (MessageContent, error) {
	mb, err := o.mailbox(ctx, a)
	if err != nil {
		return MessageContent{}, err
	}
	msgs, err := o.St.GetMessages(ctx, mb.ID, []uint32{a.UID})
	if err != nil {
		return MessageContent{}, err
	}
	if len(msgs) == 0 {
		return MessageContent{}, fmt.Errorf("no message with UID %d in %s", a.UID, mb.Name)
	}
	c, err := store.OpenContent(ctx, o.St, msgs[0])
	if err != nil {
		return MessageContent{}, err
	}
	defer c.Close()
	raw, err := io.ReadAll(c.Reader())
	return MessageContent{Raw: raw}, err
}

// dmarcActions validates and merges DMARC action arguments with the
// current values.
func dmarcActions(rej, quar, curRej, curQuar string) (string, string, error) {
	pick := func(v, cur, what string) (string, error) {
		switch v {
		case "":
			return cur, nil
		case "default":
			return "", nil
		case "reject", "junk", "accept":
			return v, nil
		}
		return "", fmt.Errorf("%s: %q is not reject, junk, accept or default", what, v)
	}
	r, err := pick(rej, curRej, "DMARC reject action")
	if err != nil {
		return "", "", err
	}
	q, err := pick(quar, curQuar, "DMARC quarantine action")
	return r, q, err
}

// DomainSet changes a domain's postmaster and DMARC failure handling.
func (o *Ops) DomainSet(ctx context.Context, a DomainArgs) (DomainInfo, error) {
	name, err := address.Domain(a.Name)
	if err != nil {
		return DomainInfo{}, err
	}
	d, err := o.St.GetDomain(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return DomainInfo{}, fmt.Errorf("no domain %s", name)
	}
	if err != nil {
		return DomainInfo{}, err
	}
	if a.Postmaster != "" {
		p, err := address.Parse(a.Postmaster)
		if err != nil {
			return DomainInfo{}, fmt.Errorf("postmaster: %w", err)
		}
		d.Postmaster = p.String()
	}
	if d.DMARCReject, d.DMARCQuarantine, err = dmarcActions(a.DMARCReject, a.DMARCQuarantine, d.DMARCReject, d.DMARCQuarantine); err != nil {
		return DomainInfo{}, err
	}
	if err := o.St.UpdateDomain(ctx, d); err != nil {
		return DomainInfo{}, err
	}
	return o.domainInfo(ctx, name)
}
