package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/manage"
)

type domainCmd struct {
	Add  domainAddCmd  `cmd:"" help:"Add a local domain."`
	Set  domainSetCmd  `cmd:"" help:"Change a domain's postmaster or DMARC failure handling."`
	List domainListCmd `cmd:"" help:"List local domains."`
	Del  domainDelCmd  `cmd:"" help:"Delete a domain that has no accounts left."`
}

type domainAddCmd struct {
	Name       string `arg:"" help:"Domain name (Unicode or IDNA form)."`
	Postmaster string `help:"Account that receives postmaster@ and abuse@ of this domain (default: the global postmaster, else the domain's first account)."`
	dmarcFlags
}

// dmarcFlags choose what happens to mail for a domain that fails the
// sender's DMARC policy.
type dmarcFlags struct {
	DMARCReject     string `name:"dmarc-reject" help:"Mail failing a p=reject DMARC policy: reject (550, default), junk, accept, or default."`
	DMARCQuarantine string `name:"dmarc-quarantine" help:"Mail failing a p=quarantine DMARC policy: junk (default), reject, accept, or default."`
}

func (c *domainAddCmd) Run(g *globals) error {
	var d manage.DomainInfo
	if err := g.run("domain.add", manage.DomainArgs{Name: c.Name, Postmaster: c.Postmaster, DMARCReject: c.DMARCReject, DMARCQuarantine: c.DMARCQuarantine}, &d); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(d)
	}
	fmt.Fprintf(g.stdout, "domain %s added\n", d.Display)
	return nil
}

type domainSetCmd struct {
	Name       string `arg:""`
	Postmaster string `help:"Account that receives postmaster@ and abuse@ of this domain."`
	dmarcFlags
}

func (c *domainSetCmd) Run(g *globals) error {
	var d manage.DomainInfo
	if err := g.run("domain.set", manage.DomainArgs{Name: c.Name, Postmaster: c.Postmaster, DMARCReject: c.DMARCReject, DMARCQuarantine: c.DMARCQuarantine}, &d); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(d)
	}
	orDefault := func(s, def string) string {
		if s == "" {
			return def + " (default)"
		}
		return s
	}
	fmt.Fprintf(g.stdout, "domain %s: postmaster %s, DMARC p=reject failures: %s, p=quarantine failures: %s\n", d.Display, orDefault(d.Postmaster, "oldest account"), orDefault(d.DMARCReject, "reject"), orDefault(d.DMARCQuarantine, "junk"))
	return nil
}

type domainListCmd struct{}

func (c *domainListCmd) Run(g *globals) error {
	var ds []manage.DomainInfo
	if err := g.run("domain.list", struct{}{}, &ds); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(ds)
	}
	var rows [][]string
	for _, d := range ds {
		rows = append(rows, []string{d.Display, strconv.Itoa(d.Accounts), d.Postmaster})
	}
	g.table("DOMAIN\tACCOUNTS\tPOSTMASTER", rows)
	return nil
}

type domainDelCmd struct {
	Name string `arg:""`
}

func (c *domainDelCmd) Run(g *globals) error {
	if err := g.run("domain.del", manage.DomainArgs{Name: c.Name}, nil); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "domain %s deleted\n", c.Name)
	return nil
}

type accountCmd struct {
	Add    accountAddCmd    `cmd:"" help:"Create an account (with INBOX, Sent, Drafts, Trash, Junk, Archive)."`
	List   accountListCmd   `cmd:"" help:"List accounts."`
	Show   accountShowCmd   `cmd:"" help:"Show an account and its mailboxes."`
	Passwd accountPasswdCmd `cmd:"" help:"Set an account's password."`
	Quota  accountQuotaCmd  `cmd:"" help:"Set an account's storage quota (0 = unlimited)."`
	Del    accountDelCmd    `cmd:"" help:"Delete an account and all its mail."`
}

type accountAddCmd struct {
	Address string `arg:"" help:"The account's address, which is also its login."`
	passwordSource
	Quota        string `help:"Storage quota, e.g. 5GB (default: accounts.default_quota)."`
	CreateDomain bool   `help:"Add the address's domain if it is not local yet."`
}

func parseQuota(s string) (*int64, error) {
	if s == "" {
		return nil, nil
	}
	q, err := config.ParseSize(s)
	if err != nil {
		return nil, fmt.Errorf("quota: %w", err)
	}
	v := int64(q)
	return &v, nil
}

func (c *accountAddCmd) Run(g *globals) error {
	q, err := parseQuota(c.Quota)
	if err != nil {
		return err
	}
	h, err := c.hash(g)
	if err != nil {
		return err
	}
	var a manage.AccountInfo
	if err := g.run("account.add", manage.AccountArgs{Address: c.Address, PasswordHash: h, QuotaBytes: q, CreateDomain: c.CreateDomain}, &a); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(a)
	}
	fmt.Fprintf(g.stdout, "account %s created\n", a.Address)
	return nil
}

type accountListCmd struct {
	Domain string `arg:"" optional:"" help:"Only this domain's accounts."`
}

func quotaString(q int64) string {
	if q == 0 {
		return "unlimited"
	}
	return config.Size(q).String()
}

func (c *accountListCmd) Run(g *globals) error {
	var as []manage.AccountInfo
	if err := g.run("account.list", manage.DomainArgs{Name: c.Domain}, &as); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(as)
	}
	var rows [][]string
	for _, a := range as {
		rows = append(rows, []string{a.Address, config.Size(a.UsedBytes).String(), quotaString(a.QuotaBytes)})
	}
	g.table("ACCOUNT\tUSED\tQUOTA", rows)
	return nil
}

type accountShowCmd struct {
	Address string `arg:""`
}

func (c *accountShowCmd) Run(g *globals) error {
	var a manage.AccountInfo
	if err := g.run("account.show", manage.AccountArgs{Address: c.Address}, &a); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(a)
	}
	fmt.Fprintf(g.stdout, "account:  %s\ncreated:  %s\nused:     %s of %s\n\n", a.Address, a.CreatedAt.Format("2006-01-02 15:04:05 MST"), config.Size(a.UsedBytes), quotaString(a.QuotaBytes))
	var rows [][]string
	for _, m := range a.Mailboxes {
		rows = append(rows, []string{m.Name, m.Role, strconv.Itoa(int(m.Messages)), strconv.Itoa(int(m.Unseen)), config.Size(m.Size).String()})
	}
	g.table("MAILBOX\tROLE\tMESSAGES\tUNSEEN\tSIZE", rows)
	return nil
}

type accountPasswdCmd struct {
	Address string `arg:""`
	passwordSource
}

func (c *accountPasswdCmd) Run(g *globals) error {
	h, err := c.hash(g)
	if err != nil {
		return err
	}
	if err := g.run("account.passwd", manage.AccountArgs{Address: c.Address, PasswordHash: h}, nil); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "password of %s changed\n", c.Address)
	return nil
}

type accountQuotaCmd struct {
	Address string `arg:""`
	Quota   string `arg:"" help:"e.g. 5GB, 500MB; 0 = unlimited."`
}

func (c *accountQuotaCmd) Run(g *globals) error {
	q, err := parseQuota(c.Quota)
	if err != nil {
		return err
	}
	var a manage.AccountInfo
	if err := g.run("account.quota", manage.AccountArgs{Address: c.Address, QuotaBytes: q}, &a); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "quota of %s: %s\n", a.Address, quotaString(a.QuotaBytes))
	return nil
}

type accountDelCmd struct {
	Address string `arg:""`
	Yes     bool   `help:"Really delete the account and all its mail."`
}

func (c *accountDelCmd) Run(g *globals) error {
	if !c.Yes {
		return fmt.Errorf("this deletes %s and all its mail: repeat with --yes", c.Address)
	}
	if err := g.run("account.del", manage.AccountArgs{Address: c.Address}, nil); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "account %s deleted\n", c.Address)
	return nil
}

type messageCmd struct {
	List messageListCmd `cmd:"" help:"List the messages of a mailbox."`
	Cat  messageCatCmd  `cmd:"" help:"Print a message exactly as stored."`
}

type messageListCmd struct {
	Address string `arg:""`
	Mailbox string `arg:"" optional:"" default:"INBOX"`
}

func (c *messageListCmd) Run(g *globals) error {
	var ms []manage.MessageInfo
	if err := g.run("message.list", manage.MessageArgs{Address: c.Address, Mailbox: c.Mailbox}, &ms); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(ms)
	}
	var rows [][]string
	for _, m := range ms {
		rows = append(rows, []string{strconv.FormatUint(uint64(m.UID), 10), strconv.FormatInt(m.Size, 10), m.InternalDate.Format("2006-01-02 15:04"), strings.Join(m.Flags, " "), m.Subject})
	}
	g.table("UID\tSIZE\tDATE\tFLAGS\tSUBJECT", rows)
	return nil
}

type messageCatCmd struct {
	Address string `arg:""`
	Mailbox string `arg:""`
	UID     uint32 `arg:""`
}

func (c *messageCatCmd) Run(g *globals) error {
	var m manage.MessageContent
	if err := g.run("message.cat", manage.MessageArgs{Address: c.Address, Mailbox: c.Mailbox, UID: c.UID}, &m); err != nil {
		return err
	}
	_, err := g.stdout.Write(m.Raw)
	return err
}
