package cli

import (
	"fmt"
	"strings"

	"github.com/mailstead/mailstead/internal/manage"
)

type aliasCmd struct {
	Add      aliasAddCmd      `cmd:"" help:"Add an alias (local@domain, or @domain for a catch-all) delivering to one or more targets."`
	List     aliasListCmd     `cmd:"" help:"List aliases."`
	Del      aliasDelCmd      `cmd:"" help:"Delete an alias."`
	Disable  aliasDisableCmd  `cmd:"" help:"Disable an alias: accept and drop its mail, or refuse it with --reject."`
	Enable   aliasEnableCmd   `cmd:"" help:"Enable a disabled alias."`
	Generate aliasGenerateCmd `cmd:"" help:"Create a random readable alias (word-word-NNN) for an account."`
	Check    aliasCheckCmd    `cmd:"" help:"Check all aliases: loops, missing targets, account/alias clashes."`
}

type aliasAddCmd struct {
	Address string   `arg:""`
	Targets []string `arg:"" help:"Local accounts, other aliases, external addresses, or http:NAME webhook targets."`
	Note    string   `help:"Free text, e.g. the website this alias was given to."`
	Forward string   `help:"Forwarding mode for external targets: srs (default) or rewrite." enum:"srs,rewrite," default:""`
	Owner   string   `help:"Account that owns the alias (may send as it)."`
}

func (c *aliasAddCmd) Run(g *globals) error {
	var r manage.AliasResult
	if err := g.run("alias.add", manage.AliasArgs{Address: c.Address, Targets: c.Targets, Note: c.Note, ForwardMode: c.Forward, Owner: c.Owner}, &r); err != nil {
		return err
	}
	for _, w := range r.Warnings {
		fmt.Fprintln(g.stderr, w)
	}
	if g.JSON {
		return g.printJSON(r)
	}
	fmt.Fprintf(g.stdout, "alias %s → %s\n", r.Alias.Address, strings.Join(r.Alias.Targets, ", "))
	return nil
}

type aliasListCmd struct {
	Domain string `arg:"" optional:""`
}

func (c *aliasListCmd) Run(g *globals) error {
	var as []manage.AliasInfo
	if err := g.run("alias.list", manage.DomainArgs{Name: c.Domain}, &as); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(as)
	}
	var rows [][]string
	for _, a := range as {
		state := "enabled"
		if a.Disabled {
			state = "disabled (" + a.DisabledAction + ")"
		}
		rows = append(rows, []string{a.Address, strings.Join(a.Targets, ","), state, a.ForwardMode, a.Note})
	}
	g.table("ALIAS\tTARGETS\tSTATE\tFORWARD\tNOTE", rows)
	return nil
}

type aliasDelCmd struct {
	Address string `arg:""`
}

func (c *aliasDelCmd) Run(g *globals) error {
	if err := g.run("alias.del", manage.AliasArgs{Address: c.Address}, nil); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "alias %s deleted\n", c.Address)
	return nil
}

type aliasDisableCmd struct {
	Address string `arg:""`
	Reject  bool   `help:"Refuse mail to the alias with 550 instead of accepting and dropping it."`
}

func (c *aliasDisableCmd) Run(g *globals) error {
	action := "drop"
	if c.Reject {
		action = "reject"
	}
	var a manage.AliasInfo
	if err := g.run("alias.disable", manage.AliasArgs{Address: c.Address, DisabledAction: action}, &a); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "alias %s disabled (%s)\n", a.Address, a.DisabledAction)
	return nil
}

type aliasEnableCmd struct {
	Address string `arg:""`
}

func (c *aliasEnableCmd) Run(g *globals) error {
	var a manage.AliasInfo
	if err := g.run("alias.enable", manage.AliasArgs{Address: c.Address}, &a); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "alias %s enabled\n", a.Address)
	return nil
}

type aliasGenerateCmd struct {
	Account string `arg:"" help:"Account the alias delivers to (and that owns it)."`
	Domain  string `help:"Domain of the alias (default: the account's)."`
	Note    string `help:"Free text, e.g. the website this alias is for."`
}

func (c *aliasGenerateCmd) Run(g *globals) error {
	var r manage.AliasResult
	if err := g.run("alias.generate", manage.AliasArgs{Account: c.Account, Domain: c.Domain, Note: c.Note}, &r); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(r)
	}
	fmt.Fprintln(g.stdout, r.Alias.Address)
	return nil
}

type aliasCheckCmd struct{}

func (c *aliasCheckCmd) Run(g *globals) error {
	var probs []string
	if err := g.run("alias.check", struct{}{}, &probs); err != nil {
		return err
	}
	errs := 0
	for _, p := range probs {
		fmt.Fprintln(g.stdout, p)
		if strings.HasPrefix(p, "error:") {
			errs++
		}
	}
	if errs > 0 {
		return fmt.Errorf("%d errors", errs)
	}
	if len(probs) == 0 {
		fmt.Fprintln(g.stdout, "aliases OK")
	}
	return nil
}
