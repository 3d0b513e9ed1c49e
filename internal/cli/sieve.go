package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/mailstead/mailstead/internal/manage"
	"github.com/mailstead/mailstead/internal/sieve"
)

type sieveCmd struct {
	Put      sievePutCmd      `cmd:"" help:"Validate and store a script: sieve put ACCOUNT NAME FILE, or sieve put --global before|after FILE."`
	Get      sieveGetCmd      `cmd:"" help:"Print a script: sieve get ACCOUNT NAME (or --global NAME)."`
	Check    sieveCheckCmd    `cmd:"" help:"Validate script files locally; errors as FILE:LINE:COL."`
	Activate sieveActivateCmd `cmd:"" help:"Make a script the active one: sieve activate ACCOUNT NAME, or ACCOUNT --none."`
	List     sieveListCmd     `cmd:"" help:"List scripts: sieve list ACCOUNT (or --global)."`
	Del      sieveDelCmd      `cmd:"" help:"Delete a script: sieve del ACCOUNT NAME (or --global NAME)."`
}

// sieveTarget holds the positional arguments, which start with ACCOUNT
// unless --global is given.
type sieveTarget struct {
	Global bool     `help:"Act on the global scripts (\"before\" runs ahead of every user's script, \"after\" behind it) instead of an account's."`
	Args   []string `arg:"" optional:"" name:"args" help:"ACCOUNT, then the command's arguments (no ACCOUNT with --global)."`
}

// split returns the SieveArgs for the account part and the remaining
// arguments, checking their count.
func (t *sieveTarget) split(names ...string) (manage.SieveArgs, []string, error) {
	a := manage.SieveArgs{Global: t.Global}
	rest := t.Args
	if !t.Global {
		if len(rest) == 0 {
			return a, nil, errors.New("an ACCOUNT (or --global) is required")
		}
		a.Account, rest = rest[0], rest[1:]
	}
	if len(rest) != len(names) {
		want := ""
		for _, n := range names {
			want += " " + n
		}
		if t.Global {
			return a, nil, fmt.Errorf("expected --global%s", want)
		}
		return a, nil, fmt.Errorf("expected ACCOUNT%s", want)
	}
	return a, rest, nil
}

func readScript(path string, stdin io.Reader) (string, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, sieve.MaxScriptSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > sieve.MaxScriptSize {
		return "", fmt.Errorf("%s: script larger than %d bytes", path, sieve.MaxScriptSize)
	}
	return string(b), nil
}

func scriptOwner(info manage.SieveScriptInfo) string {
	if info.Account == "" {
		return "global"
	}
	return info.Account
}

type sievePutCmd struct {
	sieveTarget
	Activate bool `help:"Also make it the account's active script."`
}

func (c *sievePutCmd) Run(g *globals) error {
	a, rest, err := c.split("NAME", "FILE")
	if err != nil {
		return err
	}
	a.Name = rest[0]
	a.Activate = c.Activate
	if a.Content, err = readScript(rest[1], g.stdin); err != nil {
		return err
	}
	// Validate here too, so errors name the file even without a server.
	if err := sieve.Check(a.Content); err != nil {
		return fmt.Errorf("%s:%w", rest[1], err)
	}
	var info manage.SieveScriptInfo
	if err := g.run("sieve.put", a, &info); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(info)
	}
	state := ""
	if info.Active {
		state = " (active)"
	}
	fmt.Fprintf(g.stdout, "sieve script %q stored for %s%s\n", info.Name, scriptOwner(info), state)
	return nil
}

type sieveGetCmd struct {
	sieveTarget
}

func (c *sieveGetCmd) Run(g *globals) error {
	a, rest, err := c.split("NAME")
	if err != nil {
		return err
	}
	a.Name = rest[0]
	var info manage.SieveScriptInfo
	if err := g.run("sieve.get", a, &info); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(info)
	}
	_, err = io.WriteString(g.stdout, info.Content)
	return err
}

type sieveCheckCmd struct {
	Files []string `arg:"" name:"file" help:"Script files (\"-\" for standard input)."`
}

func (c *sieveCheckCmd) Run(g *globals) error {
	bad := 0
	for _, f := range c.Files {
		src, err := readScript(f, g.stdin)
		if err != nil {
			return err
		}
		if err := sieve.Check(src); err != nil {
			var se *sieve.Error
			if errors.As(err, &se) && se.Pos.Line > 0 {
				fmt.Fprintf(g.stderr, "%s:%d:%d: %s\n", f, se.Pos.Line, se.Pos.Col, se.Msg)
			} else {
				fmt.Fprintf(g.stderr, "%s: %v\n", f, err)
			}
			bad++
			continue
		}
		fmt.Fprintf(g.stdout, "%s: OK\n", f)
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d scripts invalid", bad, len(c.Files))
	}
	return nil
}

type sieveActivateCmd struct {
	Args []string `arg:"" name:"args" help:"ACCOUNT NAME, or ACCOUNT with --none."`
	None bool     `help:"Deactivate the account's scripts."`
}

func (c *sieveActivateCmd) Run(g *globals) error {
	var a manage.SieveArgs
	switch {
	case c.None && len(c.Args) == 1:
		a.Account = c.Args[0]
	case !c.None && len(c.Args) == 2:
		a.Account, a.Name = c.Args[0], c.Args[1]
	default:
		return errors.New("expected ACCOUNT NAME, or ACCOUNT --none")
	}
	if err := g.run("sieve.activate", a, nil); err != nil {
		return err
	}
	if c.None {
		fmt.Fprintf(g.stdout, "no active sieve script for %s\n", a.Account)
	} else {
		fmt.Fprintf(g.stdout, "sieve script %q active for %s\n", a.Name, a.Account)
	}
	return nil
}

type sieveListCmd struct {
	sieveTarget
}

func (c *sieveListCmd) Run(g *globals) error {
	a, _, err := c.split()
	if err != nil {
		return err
	}
	var list []manage.SieveScriptInfo
	if err := g.run("sieve.list", a, &list); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(list)
	}
	var rows [][]string
	for _, s := range list {
		active := ""
		if s.Active {
			active = "yes"
		}
		rows = append(rows, []string{s.Name, active, strconv.Itoa(s.Size), s.UpdatedAt.Format(time.RFC3339)})
	}
	g.table("NAME\tACTIVE\tSIZE\tUPDATED", rows)
	return nil
}

type sieveDelCmd struct {
	sieveTarget
}

func (c *sieveDelCmd) Run(g *globals) error {
	a, rest, err := c.split("NAME")
	if err != nil {
		return err
	}
	a.Name = rest[0]
	if err := g.run("sieve.del", a, nil); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "sieve script %q deleted\n", a.Name)
	return nil
}
