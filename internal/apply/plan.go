package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/routing"
	"github.com/mailstead/mailstead/internal/store"
)

// Store is the part of store.Store apply uses.
type Store interface {
	ListDomains(ctx context.Context) ([]store.Domain, error)
	AddDomain(ctx context.Context, d store.Domain) error
	UpdateDomain(ctx context.Context, d store.Domain) error
	DeleteDomain(ctx context.Context, name string) error
	ListAccounts(ctx context.Context, domain string) ([]store.Account, error)
	GetAccount(ctx context.Context, address string) (store.Account, error)
	CreateAccount(ctx context.Context, a store.Account) (store.Account, error)
	UpdateAccount(ctx context.Context, a store.Account) error
	DeleteAccountIfEmpty(ctx context.Context, id int64) error
	ListMailboxes(ctx context.Context, accountID int64) ([]store.Mailbox, error)
	MailboxStatus(ctx context.Context, id int64) (store.Status, error)
	ListAliases(ctx context.Context, domain string) ([]store.Alias, error)
	AddAlias(ctx context.Context, a store.Alias) (store.Alias, error)
	UpdateAlias(ctx context.Context, a store.Alias) error
	DeleteAlias(ctx context.Context, address string) error
	ListSieveScripts(ctx context.Context, accountID int64) ([]store.SieveScript, error)
	PutSieveScript(ctx context.Context, sc store.SieveScript) error
	ActivateSieveScript(ctx context.Context, accountID int64, name string) error
	DeleteSieveScript(ctx context.Context, accountID int64, name string) error
}

// Options are the server's settings apply needs.
type Options struct {
	// DefaultQuota is the quota of accounts whose entry names none
	// (accounts.default_quota).
	DefaultQuota int64
}

// Run plans the request against st and, unless it is a dry run or the
// plan has errors, executes it. The error is for failures to read the
// store; problems with the request are in Result.Diagnostics, and a
// failure while executing is in Result.Failed.
func Run(ctx context.Context, st Store, req Request, opts Options) (Result, error) {
	p, err := makePlan(ctx, st, req, opts)
	if err != nil {
		return Result{}, err
	}
	res := Result{Diagnostics: p.diags, Changes: p.changes}
	if res.Changes == nil {
		res.Changes = []Change{}
	}
	if Errors(p.diags) > 0 || req.DryRun {
		return res, nil
	}
	for i, step := range p.steps {
		if err := ctx.Err(); err != nil {
			res.Failed, res.Done = err.Error(), i
			return res, nil
		}
		if err := step(ctx); err != nil {
			res.Failed, res.Done = fmt.Sprintf("%s: %v", p.changes[i], err), i
			return res, nil
		}
	}
	res.Applied, res.Done = true, len(p.steps)
	return res, nil
}

type plan struct {
	st    Store
	req   Request
	opts  Options
	diags []Diagnostic
	// Changes and the steps that make them, in execution order.
	changes []Change
	steps   []func(context.Context) error

	// The store as it is.
	curDomains  map[string]store.Domain
	curAccounts map[string]store.Account // by address key
	curAliases  map[string]store.Alias   // by lower-case address
	accByID     map[int64]store.Account
	// The file's objects by the same keys.
	wantDomains  map[string]Domain
	wantAccounts map[string]Account
	wantAliases  map[string]Alias
}

func (p *plan) add(c Change, step func(context.Context) error) {
	p.changes = append(p.changes, c)
	p.steps = append(p.steps, step)
}

func (p *plan) diag(isErr bool, ref Ref, format string, args ...any) {
	p.diags = append(p.diags, Diagnostic{Error: isErr, Ref: ref, Msg: fmt.Sprintf(format, args...)})
}

func (p *plan) source() string {
	if p.req.Source != "" {
		return p.req.Source
	}
	return "the file"
}

func makePlan(ctx context.Context, st Store, req Request, opts Options) (*plan, error) {
	p := &plan{st: st, req: req, opts: opts}
	// The request may come from any client of the control socket: check
	// it again (Parse did, for the CLI).
	p.diags = checkState(&p.req.State)
	if err := p.load(ctx); err != nil {
		return nil, err
	}
	want := p.req.State
	p.wantDomains = map[string]Domain{}
	for _, d := range want.Domains {
		p.wantDomains[d.Name] = d
	}
	p.wantAccounts = map[string]Account{}
	for _, a := range want.Accounts {
		k, _ := accountKey(a.Address)
		p.wantAccounts[k] = a
	}
	p.wantAliases = map[string]Alias{}
	for _, a := range want.Aliases {
		p.wantAliases[strings.ToLower(a.Address)] = a
	}

	keep, err := p.prunableAccounts(ctx)
	if err != nil {
		return nil, err
	}
	p.validate(keep)
	if err := p.changesFor(ctx, keep); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *plan) load(ctx context.Context) error {
	ds, err := p.st.ListDomains(ctx)
	if err != nil {
		return fmt.Errorf("list domains: %w", err)
	}
	p.curDomains = map[string]store.Domain{}
	for _, d := range ds {
		p.curDomains[d.Name] = d
	}
	accs, err := p.st.ListAccounts(ctx, "")
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	p.curAccounts = map[string]store.Account{}
	p.accByID = map[int64]store.Account{}
	for _, a := range accs {
		k, err := accountKey(a.Address)
		if err != nil {
			k = strings.ToLower(a.Address)
		}
		p.curAccounts[k] = a
		p.accByID[a.ID] = a
	}
	als, err := p.st.ListAliases(ctx, "")
	if err != nil {
		return fmt.Errorf("list aliases: %w", err)
	}
	p.curAliases = map[string]store.Alias{}
	for _, a := range als {
		p.curAliases[strings.ToLower(a.Address)] = a
	}
	return nil
}

// messages counts the messages in all of an account's mailboxes.
func messages(ctx context.Context, st Store, id int64) (int, error) {
	mbs, err := st.ListMailboxes(ctx, id)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mb := range mbs {
		s, err := st.MailboxStatus(ctx, mb.ID)
		if err != nil {
			return 0, err
		}
		n += int(s.Messages)
	}
	return n, nil
}

// prunableAccounts finds the accounts Prune would delete and refuses those
// that still hold mail. It returns the store accounts that stay although
// the file does not name them.
func (p *plan) prunableAccounts(ctx context.Context) (map[string]bool, error) {
	keep := map[string]bool{}
	for _, k := range sortedKeys(p.curAccounts) {
		a := p.curAccounts[k]
		if _, ok := p.wantAccounts[k]; ok {
			continue
		}
		if !p.req.Prune {
			keep[k] = true
			continue
		}
		n, err := messages(ctx, p.st, a.ID)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", a.Address, err)
		}
		if n > 0 {
			keep[k] = true
			p.diag(true, Ref{}, "account %s is not in %s but its mailboxes hold %d messages; apply never deletes mail: add the account to %s, or delete it with `mailstead account del --yes %s`", a.Address, p.source(), n, p.source(), a.Address)
		}
	}
	return keep, nil
}

// validate checks the directory as it will be: the file's objects, plus
// the store's that stay. The rules are routing.Validate's.
func (p *plan) validate(keepAccounts map[string]bool) {
	var domains []string
	merged := map[string]bool{}
	for d := range p.wantDomains {
		merged[d] = true
	}
	for d := range p.curDomains {
		if !p.req.Prune {
			merged[d] = true
		}
	}
	var accounts []store.Account
	mergedAcc := map[string]bool{}
	for k, a := range p.wantAccounts {
		accounts = append(accounts, store.Account{Address: a.Address, Domain: domainOf(a.Address)})
		mergedAcc[k] = true
	}
	for k := range keepAccounts {
		a := p.curAccounts[k]
		accounts = append(accounts, a)
		mergedAcc[k] = true
		merged[a.Domain] = true // a domain with an account that stays, stays
	}
	for d := range merged {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	var aliases []store.Alias
	for _, a := range p.req.State.Aliases {
		aliases = append(aliases, p.storeAlias(a))
	}
	if !p.req.Prune {
		for k, a := range p.curAliases {
			if _, ok := p.wantAliases[k]; !ok {
				aliases = append(aliases, a)
			}
		}
	}
	slices.SortFunc(accounts, func(a, b store.Account) int { return strings.Compare(a.Address, b.Address) })
	slices.SortFunc(aliases, func(a, b store.Alias) int { return strings.Compare(a.Address, b.Address) })

	// Problems already in the store, so that those of objects the file
	// does not name are not blamed on it.
	var curDomains []string
	for d := range p.curDomains {
		curDomains = append(curDomains, d)
	}
	var curAccs []store.Account
	for _, a := range p.curAccounts {
		curAccs = append(curAccs, a)
	}
	var curAls []store.Alias
	for _, a := range p.curAliases {
		curAls = append(curAls, a)
	}
	before := map[string]bool{}
	for _, pr := range routing.Validate(curDomains, curAccs, curAls) {
		before[pr.String()] = true
	}

	for _, pr := range routing.Validate(domains, accounts, aliases) {
		k := strings.ToLower(pr.Address)
		if a, ok := p.wantAliases[k]; ok {
			p.diag(pr.Error, Ref{Kind: KindAlias, Key: k, Field: targetField(a, pr.Message)}, "alias %s: %s", a.Address, pr.Message)
			continue
		}
		if _, ok := p.wantAccounts[k]; ok {
			p.diag(pr.Error, Ref{Kind: KindAccount, Key: k, Field: "address"}, "%s: %s", pr.Address, pr.Message)
			continue
		}
		if before[pr.String()] {
			p.diag(false, Ref{}, "alias %s (in the store, not in %s): %s", pr.Address, p.source(), pr.Message)
		} else {
			p.diag(pr.Error, Ref{}, "alias %s (in the store, not in %s): %s", pr.Address, p.source(), pr.Message)
		}
	}

	// What routing does not check: accounts need a local domain, owners
	// must be accounts, postmasters should be.
	for _, k := range sortedKeys(p.wantAccounts) {
		a := p.wantAccounts[k]
		if d := domainOf(a.Address); !merged[d] {
			hint := "declare it in a [[domain]] table"
			if _, ok := p.curDomains[d]; ok && p.req.Prune {
				hint = "--prune removes it because " + p.source() + " does not declare it"
			}
			p.diag(true, Ref{Kind: KindAccount, Key: k, Field: "address"}, "account %s: domain %s is not a local domain (%s)", a.Address, d, hint)
		}
		if _, exists := p.curAccounts[k]; !exists && a.PasswordHash == "" {
			p.diag(true, Ref{Kind: KindAccount, Key: k, Field: "address"}, "account %s does not exist yet and has no password_hash or password_file", a.Address)
		}
	}
	for _, k := range sortedKeys(p.wantAliases) {
		a := p.wantAliases[k]
		if a.Owner == "" {
			continue
		}
		ok, _ := accountKey(a.Owner)
		if !mergedAcc[ok] {
			p.diag(true, Ref{Kind: KindAlias, Key: k, Field: "owner"}, "alias %s: owner %s is not an account", a.Address, a.Owner)
		}
	}
	for _, name := range sortedKeys(p.wantDomains) {
		d := p.wantDomains[name]
		if d.Postmaster == "" {
			continue
		}
		if k, _ := accountKey(d.Postmaster); !mergedAcc[k] {
			p.diag(false, Ref{Kind: KindDomain, Key: name, Field: "postmaster"}, "domain %s: postmaster %s is not an account, so postmaster@ and abuse@ mail has nowhere to go", name, d.Postmaster)
		}
	}
}

// targetField names the alias field a routing problem is about: the
// target its message names, else the address.
func targetField(a Alias, msg string) string {
	words := strings.Fields(msg)
	for i, t := range a.Targets {
		for _, w := range words {
			if strings.EqualFold(strings.Trim(w, `"`), t) {
				return fmt.Sprintf("targets[%d]", i)
			}
		}
	}
	return "address"
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

// storeAlias converts a desired alias as AddAlias would store it.
func (p *plan) storeAlias(a Alias) store.Alias {
	mode := a.ForwardMode
	if mode == "" {
		mode = "srs"
	}
	sa := store.Alias{Address: a.Address, Domain: domainOf(a.Address), Targets: a.Targets, Disabled: a.DisabledAction != "", DisabledAction: a.DisabledAction, Note: a.Note, ForwardMode: mode}
	if sa.DisabledAction == "" {
		sa.DisabledAction = "drop"
	}
	return sa
}

func sizeString(q int64) string {
	if q == 0 {
		return "unlimited"
	}
	return config.Size(q).String()
}

// changesFor computes the plan's changes. Order matters: deletions of
// aliases and accounts first (an address may move from one to the
// other), then domains, accounts, aliases and scripts, and empty domains
// last.
func (p *plan) changesFor(ctx context.Context, keepAccounts map[string]bool) error {
	st := p.st
	if p.req.Prune {
		for _, k := range sortedKeys(p.curAliases) {
			if _, ok := p.wantAliases[k]; ok {
				continue
			}
			a := p.curAliases[k]
			p.add(Change{Action: Delete, Kind: KindAlias, Key: a.Address}, func(ctx context.Context) error {
				return st.DeleteAlias(ctx, a.Address)
			})
		}
		for _, k := range sortedKeys(p.curAccounts) {
			if _, ok := p.wantAccounts[k]; ok || keepAccounts[k] {
				continue
			}
			a := p.curAccounts[k]
			p.add(Change{Action: Delete, Kind: KindAccount, Key: a.Address, Detail: "no mail in its mailboxes"}, func(ctx context.Context) error {
				// Mail may have arrived since the plan: the store
				// checks again in the transaction that deletes.
				if err := st.DeleteAccountIfEmpty(ctx, a.ID); err != nil {
					if errors.Is(err, store.ErrNotEmpty) {
						return errors.New("it received mail during the apply; not deleted")
					}
					return err
				}
				return nil
			})
		}
	}

	for _, d := range p.req.State.Domains {
		sd := store.Domain{Name: d.Name, Postmaster: d.Postmaster, DMARCReject: d.DMARCReject, DMARCQuarantine: d.DMARCQuarantine}
		cur, ok := p.curDomains[d.Name]
		if !ok {
			p.add(Change{Action: Create, Kind: KindDomain, Key: d.Name}, func(ctx context.Context) error { return st.AddDomain(ctx, sd) })
			continue
		}
		var diff []string
		if !strings.EqualFold(cur.Postmaster, d.Postmaster) {
			diff = append(diff, fmt.Sprintf("postmaster %s → %s", orDefault(cur.Postmaster), orDefault(d.Postmaster)))
		}
		if cur.DMARCReject != d.DMARCReject {
			diff = append(diff, fmt.Sprintf("dmarc_reject %s → %s", orDefault(cur.DMARCReject), orDefault(d.DMARCReject)))
		}
		if cur.DMARCQuarantine != d.DMARCQuarantine {
			diff = append(diff, fmt.Sprintf("dmarc_quarantine %s → %s", orDefault(cur.DMARCQuarantine), orDefault(d.DMARCQuarantine)))
		}
		if len(diff) > 0 {
			sd.CreatedAt = cur.CreatedAt
			p.add(Change{Action: Update, Kind: KindDomain, Key: d.Name, Detail: strings.Join(diff, ", ")}, func(ctx context.Context) error { return st.UpdateDomain(ctx, sd) })
		}
	}

	for _, a := range p.req.State.Accounts {
		k, _ := accountKey(a.Address)
		quota := p.opts.DefaultQuota
		if a.QuotaBytes != nil {
			quota = *a.QuotaBytes
		}
		cur, ok := p.curAccounts[k]
		if !ok {
			sa := store.Account{Address: a.Address, Domain: domainOf(a.Address), PasswordHash: a.PasswordHash, QuotaBytes: quota}
			detail := "quota " + sizeString(quota)
			if a.Disabled {
				detail += ", disabled"
			}
			disabled := a.Disabled
			p.add(Change{Action: Create, Kind: KindAccount, Key: a.Address, Detail: detail}, func(ctx context.Context) error {
				got, err := st.CreateAccount(ctx, sa)
				if err != nil {
					return err
				}
				if disabled != got.Disabled {
					got.Disabled = disabled
					return st.UpdateAccount(ctx, got)
				}
				return nil
			})
			continue
		}
		var diff []string
		upd := cur
		if a.PasswordHash != "" && a.PasswordHash != cur.PasswordHash {
			diff = append(diff, "password")
			upd.PasswordHash = a.PasswordHash
		}
		if quota != cur.QuotaBytes {
			diff = append(diff, fmt.Sprintf("quota %s → %s", sizeString(cur.QuotaBytes), sizeString(quota)))
			upd.QuotaBytes = quota
		}
		if a.Disabled != cur.Disabled {
			diff = append(diff, map[bool]string{true: "disabled", false: "enabled"}[a.Disabled])
			upd.Disabled = a.Disabled
		}
		if len(diff) > 0 {
			p.add(Change{Action: Update, Kind: KindAccount, Key: cur.Address, Detail: strings.Join(diff, ", ")}, func(ctx context.Context) error {
				// Re-read: UsedBytes and other fields may have moved.
				now, err := st.GetAccount(ctx, upd.Address)
				if err != nil {
					return err
				}
				now.PasswordHash, now.QuotaBytes, now.Disabled = upd.PasswordHash, upd.QuotaBytes, upd.Disabled
				return st.UpdateAccount(ctx, now)
			})
		}
	}

	for _, a := range p.req.State.Aliases {
		if err := p.aliasChange(a); err != nil {
			return err
		}
	}

	if err := p.sieveChanges(ctx); err != nil {
		return err
	}

	if p.req.Prune {
		for _, name := range sortedKeys(p.curDomains) {
			if _, ok := p.wantDomains[name]; ok {
				continue
			}
			stays := false
			for k := range keepAccounts {
				if p.curAccounts[k].Domain == name {
					stays = true
				}
			}
			if stays {
				continue
			}
			p.add(Change{Action: Delete, Kind: KindDomain, Key: name}, func(ctx context.Context) error { return st.DeleteDomain(ctx, name) })
		}
	}
	return nil
}

func orDefault(s string) string {
	if s == "" {
		return "(default)"
	}
	return s
}

func (p *plan) aliasChange(a Alias) error {
	st := p.st
	k := strings.ToLower(a.Address)
	want := p.storeAlias(a)
	owner := a.Owner
	// The owner's ID is looked up when the step runs: the owner may be
	// created by the same apply.
	withOwner := func(ctx context.Context, sa store.Alias) (store.Alias, error) {
		sa.OwnerAccountID = 0
		if owner != "" {
			acc, err := st.GetAccount(ctx, owner)
			if err != nil {
				return sa, fmt.Errorf("owner %s: %w", owner, err)
			}
			sa.OwnerAccountID = acc.ID
		}
		return sa, nil
	}
	cur, ok := p.curAliases[k]
	if !ok {
		var detail []string
		if len(a.Targets) > 0 {
			detail = append(detail, "→ "+strings.Join(a.Targets, ", "))
		}
		if want.Disabled {
			detail = append(detail, "disabled ("+want.DisabledAction+")")
		}
		if want.ForwardMode != "srs" {
			detail = append(detail, "forward "+want.ForwardMode)
		}
		if owner != "" {
			detail = append(detail, "owner "+owner)
		}
		p.add(Change{Action: Create, Kind: KindAlias, Key: a.Address, Detail: strings.Join(detail, ", ")}, func(ctx context.Context) error {
			sa, err := withOwner(ctx, want)
			if err != nil {
				return err
			}
			_, err = st.AddAlias(ctx, sa)
			return err
		})
		return nil
	}
	var diff []string
	if !slices.Equal(cur.Targets, want.Targets) {
		diff = append(diff, fmt.Sprintf("targets %s → %s", strings.Join(cur.Targets, ", "), strings.Join(want.Targets, ", ")))
	}
	switch {
	case cur.Disabled && !want.Disabled:
		diff = append(diff, "enabled")
	case want.Disabled && (!cur.Disabled || cur.DisabledAction != want.DisabledAction):
		diff = append(diff, "disabled ("+want.DisabledAction+")")
	}
	curMode := cur.ForwardMode
	if curMode == "" {
		curMode = "srs"
	}
	if curMode != want.ForwardMode {
		diff = append(diff, fmt.Sprintf("forward %s → %s", curMode, want.ForwardMode))
	}
	if cur.Note != want.Note {
		diff = append(diff, "note")
	}
	curOwner := ""
	if cur.OwnerAccountID != 0 {
		curOwner = p.accByID[cur.OwnerAccountID].Address
		if curOwner == "" {
			curOwner = fmt.Sprintf("(account #%d)", cur.OwnerAccountID)
		}
	}
	if !strings.EqualFold(curOwner, owner) {
		diff = append(diff, fmt.Sprintf("owner %s → %s", orNone(curOwner), orNone(owner)))
	}
	if len(diff) == 0 {
		return nil
	}
	if !want.Disabled {
		// Keep the stored action of an enabled alias: it is not shown
		// and only matters when the alias is disabled.
		want.DisabledAction = cur.DisabledAction
	}
	p.add(Change{Action: Update, Kind: KindAlias, Key: cur.Address, Detail: strings.Join(diff, ", ")}, func(ctx context.Context) error {
		sa, err := withOwner(ctx, want)
		if err != nil {
			return err
		}
		sa.Address = cur.Address
		return st.UpdateAlias(ctx, sa)
	})
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// sieveChanges stores the scripts the file gives: per account (made
// active) and global. Accounts without one in the file keep their own
// scripts; global scripts the file does not give are deleted with Prune.
func (p *plan) sieveChanges(ctx context.Context) error {
	st := p.st
	for _, a := range p.req.State.Accounts {
		if a.Sieve == nil {
			continue
		}
		sc := *a.Sieve
		k, _ := accountKey(a.Address)
		detail, action := "", Update
		if cur, ok := p.curAccounts[k]; ok {
			list, err := st.ListSieveScripts(ctx, cur.ID)
			if err != nil {
				return fmt.Errorf("sieve scripts of %s: %w", cur.Address, err)
			}
			var have *store.SieveScript
			for i := range list {
				if list[i].Name == sc.Name {
					have = &list[i]
				}
			}
			switch {
			case have == nil:
				detail, action = fmt.Sprintf("script %q stored and activated", sc.Name), Create
			case have.Content != sc.Content && !have.Active:
				detail = fmt.Sprintf("script %q updated and activated", sc.Name)
			case have.Content != sc.Content:
				detail = fmt.Sprintf("script %q updated", sc.Name)
			case !have.Active:
				detail = fmt.Sprintf("script %q activated", sc.Name)
			default:
				continue
			}
		} else {
			detail, action = fmt.Sprintf("script %q stored and activated", sc.Name), Create
		}
		addr := a.Address
		p.add(Change{Action: action, Kind: KindSieve, Key: addr, Detail: detail}, func(ctx context.Context) error {
			acc, err := st.GetAccount(ctx, addr)
			if err != nil {
				return err
			}
			if err := st.PutSieveScript(ctx, store.SieveScript{AccountID: acc.ID, Name: sc.Name, Content: sc.Content}); err != nil {
				return err
			}
			return st.ActivateSieveScript(ctx, acc.ID, sc.Name)
		})
	}

	globals, err := st.ListSieveScripts(ctx, 0)
	if err != nil {
		return fmt.Errorf("global sieve scripts: %w", err)
	}
	have := map[string]store.SieveScript{}
	for _, g := range globals {
		have[g.Name] = g
	}
	want := map[string]bool{}
	for _, sc := range p.req.State.GlobalSieve {
		want[sc.Name] = true
		cur, ok := have[sc.Name]
		if ok && cur.Content == sc.Content {
			continue
		}
		action := Update
		if !ok {
			action = Create
		}
		s := store.SieveScript{Name: sc.Name, Content: sc.Content}
		p.add(Change{Action: action, Kind: KindSieve, Key: "global/" + sc.Name}, func(ctx context.Context) error { return st.PutSieveScript(ctx, s) })
	}
	if p.req.Prune {
		for _, g := range globals {
			if want[g.Name] {
				continue
			}
			name := g.Name
			p.add(Change{Action: Delete, Kind: KindSieve, Key: "global/" + name}, func(ctx context.Context) error {
				err := st.DeleteSieveScript(ctx, 0, name)
				if errors.Is(err, store.ErrNotFound) {
					return nil
				}
				return err
			})
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
