package manage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailstead/mailstead/internal/control"
	"github.com/mailstead/mailstead/internal/sieve"
	"github.com/mailstead/mailstead/internal/store"
)

// Global sieve scripts live under account 0 with these names: "before"
// runs ahead of every user's script, "after" behind it (as Dovecot's
// sieve_before/sieve_after). They run whenever they exist.
const (
	SieveGlobalBefore = "before"
	SieveGlobalAfter  = "after"
)

func (o *Ops) registerSieve(r *control.Registry) {
	control.Register(r, "sieve.put", o.SievePut)
	control.Register(r, "sieve.get", o.SieveGet)
	control.Register(r, "sieve.list", o.SieveList)
	control.Register(r, "sieve.activate", o.SieveActivate)
	control.Register(r, "sieve.del", o.SieveDel)
}

// SieveArgs select a script: an account's (Account) or a global one
// (Global, Name "before" or "after").
type SieveArgs struct {
	Account string `json:"account,omitempty"`
	Global  bool   `json:"global,omitempty"`
	Name    string `json:"name,omitempty"`
	// Content is the script for sieve.put.
	Content string `json:"content,omitempty"`
	// Activate makes the script active after sieve.put.
	Activate bool `json:"activate,omitempty"`
}

// SieveScriptInfo describes a stored script.
type SieveScriptInfo struct {
	Account   string    `json:"account"` // "" for global scripts
	Name      string    `json:"name"`
	Active    bool      `json:"active"`
	Size      int       `json:"size"`
	UpdatedAt time.Time `json:"updated_at"`
	// Content is set by sieve.get only.
	Content string `json:"content,omitempty"`
}

// sieveOwner resolves the account ID of a script: 0 for global scripts.
func (o *Ops) sieveOwner(ctx context.Context, a SieveArgs) (int64, string, error) {
	if a.Global {
		if a.Account != "" {
			return 0, "", errors.New("give an account or --global, not both")
		}
		if a.Name != "" && a.Name != SieveGlobalBefore && a.Name != SieveGlobalAfter {
			return 0, "", fmt.Errorf("global scripts are named %q or %q", SieveGlobalBefore, SieveGlobalAfter)
		}
		return 0, "", nil
	}
	if a.Account == "" {
		return 0, "", errors.New("an account (or --global) is required")
	}
	acc, err := o.get(ctx, a.Account)
	if err != nil {
		return 0, "", err
	}
	return acc.ID, acc.Address, nil
}

func scriptInfo(owner string, sc store.SieveScript) SieveScriptInfo {
	return SieveScriptInfo{Account: owner, Name: sc.Name, Active: sc.Active, Size: len(sc.Content), UpdatedAt: sc.UpdatedAt}
}

func notFound(err error, name string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no sieve script %q", name)
	}
	return err
}

// SievePut validates and stores a script. A script with errors is not
// stored; the error names line and column.
func (o *Ops) SievePut(ctx context.Context, a SieveArgs) (SieveScriptInfo, error) {
	id, owner, err := o.sieveOwner(ctx, a)
	if err != nil {
		return SieveScriptInfo{}, err
	}
	if a.Name == "" {
		return SieveScriptInfo{}, errors.New("a script name is required")
	}
	if err := sieve.Check(a.Content); err != nil {
		return SieveScriptInfo{}, fmt.Errorf("script %s: %w", a.Name, err)
	}
	if err := o.St.PutSieveScript(ctx, store.SieveScript{AccountID: id, Name: a.Name, Content: a.Content}); err != nil {
		return SieveScriptInfo{}, err
	}
	if a.Activate && !a.Global {
		if err := o.St.ActivateSieveScript(ctx, id, a.Name); err != nil {
			return SieveScriptInfo{}, err
		}
	}
	sc, err := o.St.GetSieveScript(ctx, id, a.Name)
	if err != nil {
		return SieveScriptInfo{}, err
	}
	return scriptInfo(owner, sc), nil
}

// SieveGet returns a script with its content.
func (o *Ops) SieveGet(ctx context.Context, a SieveArgs) (SieveScriptInfo, error) {
	id, owner, err := o.sieveOwner(ctx, a)
	if err != nil {
		return SieveScriptInfo{}, err
	}
	sc, err := o.St.GetSieveScript(ctx, id, a.Name)
	if err != nil {
		return SieveScriptInfo{}, notFound(err, a.Name)
	}
	info := scriptInfo(owner, sc)
	info.Content = sc.Content
	return info, nil
}

// SieveList lists an account's (or the global) scripts.
func (o *Ops) SieveList(ctx context.Context, a SieveArgs) ([]SieveScriptInfo, error) {
	a.Name = ""
	id, owner, err := o.sieveOwner(ctx, a)
	if err != nil {
		return nil, err
	}
	list, err := o.St.ListSieveScripts(ctx, id)
	if err != nil {
		return nil, err
	}
	out := []SieveScriptInfo{}
	for _, sc := range list {
		out = append(out, scriptInfo(owner, sc))
	}
	return out, nil
}

// SieveActivate makes a script the account's active one; an empty Name
// deactivates all. The script is validated again first: the validator may
// have become stricter since it was stored.
func (o *Ops) SieveActivate(ctx context.Context, a SieveArgs) (struct{}, error) {
	if a.Global {
		return struct{}{}, errors.New("global scripts run whenever they exist; delete one to disable it")
	}
	id, _, err := o.sieveOwner(ctx, a)
	if err != nil {
		return struct{}{}, err
	}
	if a.Name != "" {
		sc, err := o.St.GetSieveScript(ctx, id, a.Name)
		if err != nil {
			return struct{}{}, notFound(err, a.Name)
		}
		if err := sieve.Check(sc.Content); err != nil {
			return struct{}{}, fmt.Errorf("script %s is invalid: %w", a.Name, err)
		}
	}
	return struct{}{}, notFound(o.St.ActivateSieveScript(ctx, id, a.Name), a.Name)
}

// SieveDel deletes a script; the active script must be deactivated first
// (as ManageSieve requires).
func (o *Ops) SieveDel(ctx context.Context, a SieveArgs) (struct{}, error) {
	id, _, err := o.sieveOwner(ctx, a)
	if err != nil {
		return struct{}{}, err
	}
	err = o.St.DeleteSieveScript(ctx, id, a.Name)
	if errors.Is(err, store.ErrInvalid) {
		return struct{}{}, fmt.Errorf("script %s is active: deactivate it first (sieve activate --none)", a.Name)
	}
	return struct{}{}, notFound(err, a.Name)
}
