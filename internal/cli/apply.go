package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailstead/mailstead/internal/apply"
	"github.com/mailstead/mailstead/internal/control"
)

// applyCmd is `mailstead apply FILE`: make the domains, accounts, aliases
// and sieve scripts match a declarative file (see docs/config.md,
// "Declarative apply").
type applyCmd struct {
	File   string `arg:"" help:"TOML file describing domains, accounts, aliases and sieve scripts."`
	DryRun bool   `help:"Print the plan and change nothing."`
	Prune  bool   `help:"Also delete what FILE does not name (never an account whose mailboxes hold mail)."`
}

// maxControlRequest is the control socket's request limit (control
// package); a larger State is refused here with a clear message.
const maxControlRequest = 1 << 20

func (c *applyCmd) Run(g *globals) error {
	f, diags := apply.Load(c.File)
	for _, d := range diags {
		fmt.Fprintln(g.stderr, d)
	}
	if n := apply.Errors(diags); n > 0 || f == nil {
		return fmt.Errorf("%s: %s; nothing changed", c.File, plural(max(n, 1), "error"))
	}
	req := apply.Request{State: f.State, DryRun: c.DryRun, Prune: c.Prune, Source: c.File}
	inv, done, err := g.invoker()
	if err != nil {
		return err
	}
	defer done()
	if _, remote := inv.(control.Remote); remote {
		if b, err := json.Marshal(req); err == nil && len(b) > maxControlRequest-1024 {
			return fmt.Errorf("%s: the desired state is %d bytes, more than the running server's control socket takes (%d): split the file or apply with the server stopped", c.File, len(b), maxControlRequest)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var res apply.Result
	if err := inv.Invoke(ctx, "apply", req, &res); err != nil {
		return err
	}
	res.Diagnostics = f.LocateAll(res.Diagnostics)
	nerr := apply.Errors(res.Diagnostics)
	if g.JSON {
		if err := g.printJSON(res); err != nil {
			return err
		}
	} else {
		for _, d := range res.Diagnostics {
			fmt.Fprintln(g.stderr, d)
		}
		c.report(g, res, nerr)
	}
	switch {
	case nerr > 0:
		return fmt.Errorf("%s: %s; nothing changed", c.File, plural(nerr, "error"))
	case res.Failed != "":
		return fmt.Errorf("apply stopped after %d of %d changes: %s", res.Done, len(res.Changes), res.Failed)
	}
	return nil
}

func (c *applyCmd) report(g *globals, res apply.Result, nerr int) {
	switch {
	case nerr > 0:
		return
	case len(res.Changes) == 0:
		fmt.Fprintf(g.stdout, "no changes: the store already matches %s\n", c.File)
	case !res.Applied && res.Failed == "":
		for _, ch := range res.Changes {
			fmt.Fprintln(g.stdout, "would", ch)
		}
		fmt.Fprintf(g.stdout, "dry run: %s planned; nothing changed\n", plural(len(res.Changes), "change"))
	default:
		for _, ch := range res.Changes[:res.Done] {
			fmt.Fprintln(g.stdout, ch)
		}
		if res.Applied {
			fmt.Fprintf(g.stdout, "%s applied\n", plural(res.Done, "change"))
		}
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
