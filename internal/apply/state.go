// Package apply makes the store's mail data — domains, accounts, aliases,
// catch-alls and sieve scripts — match a declarative TOML file, so a
// GitOps pipeline can keep a server's directory in a repository and apply
// it on every change (`mailstead apply FILE [--dry-run] [--prune]`).
//
// It works in three steps, and the first two never change anything:
//
//  1. Parse reads the file into a State, reporting every problem it can
//     find without the store (unknown keys, bad values, duplicates,
//     unreadable password or sieve files) as FILE:LINE:COL diagnostics.
//  2. Plan merges the State with what the store holds (objects the file
//     does not name are kept, or removed with Prune), checks the merged
//     directory with routing.Validate — the same rules `alias check` and
//     `alias add` use, so there is one definition of a loop or a clash —
//     and computes the create/update/delete changes.
//  3. Run executes the plan unless it is a dry run or a diagnostic is an
//     error.
//
// Apply never loses mail: an account is deleted only with Prune and only
// when all its mailboxes are empty; otherwise the plan fails with an error
// saying so. Applying the same file twice changes nothing the second time.
//
// Parse runs where the file is (the CLI); Plan and Run run where the store
// is (the server, through the control socket, or the CLI on a data
// directory it opened). Diagnostics found by Plan carry a Ref to the object
// they concern, and File.Locate turns it back into a line and column.
package apply

import (
	"fmt"
	"strings"
)

// State is the desired mail data. Addresses and domain names are
// normalised (A-label domains); Parse fills it, Plan reads it.
type State struct {
	Domains  []Domain  `json:"domains,omitempty"`
	Accounts []Account `json:"accounts,omitempty"`
	// Aliases include the catch-alls ("@domain").
	Aliases []Alias `json:"aliases,omitempty"`
	// Global sieve scripts ("before" and "after"); nil when the file has
	// no [sieve] table.
	GlobalSieve []Script `json:"global_sieve,omitempty"`
}

// Domain is a local domain. Empty fields mean the default (see
// store.Domain).
type Domain struct {
	Name            string `json:"name"`
	Postmaster      string `json:"postmaster,omitempty"`
	DMARCReject     string `json:"dmarc_reject,omitempty"`
	DMARCQuarantine string `json:"dmarc_quarantine,omitempty"`
}

// Account is an account. PasswordHash "" leaves an existing account's
// password alone (a new account needs one); QuotaBytes nil means the
// server's default quota.
type Account struct {
	Address      string `json:"address"`
	PasswordHash string `json:"password_hash,omitempty"`
	QuotaBytes   *int64 `json:"quota_bytes,omitempty"`
	Disabled     bool   `json:"disabled,omitempty"`
	// Sieve, when set, is stored under its name and made the account's
	// active script; nil leaves the account's scripts to its user
	// (ManageSieve).
	Sieve *Script `json:"sieve,omitempty"`
}

// Script is a sieve script.
type Script struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// Alias is an alias or catch-all. DisabledAction "" means enabled,
// "drop" or "reject" disabled.
type Alias struct {
	Address        string   `json:"address"`
	Targets        []string `json:"targets,omitempty"`
	ForwardMode    string   `json:"forward_mode,omitempty"` // "" = srs
	DisabledAction string   `json:"disabled_action,omitempty"`
	Note           string   `json:"note,omitempty"`
	Owner          string   `json:"owner,omitempty"`
}

// Request is what the apply operation of the control socket takes.
type Request struct {
	State  State `json:"state"`
	DryRun bool  `json:"dry_run,omitempty"`
	// Prune deletes what the file does not name (never an account that
	// still has mail).
	Prune bool `json:"prune,omitempty"`
	// Source names the file in messages about objects it does not name.
	Source string `json:"source,omitempty"`
}

// Object kinds of a Ref and a Change.
const (
	KindDomain  = "domain"
	KindAccount = "account"
	KindAlias   = "alias"
	KindSieve   = "sieve" // Key: the account's address, or "global/before", "global/after"
)

// Ref names an object of the State and optionally one of its fields,
// spelled as in the file ("targets[1]", "owner"), so that a problem found
// by Plan can be shown at its line. Key is the object's identity:
// lower-case address, A-label domain.
type Ref struct {
	Kind  string `json:"kind,omitempty"`
	Key   string `json:"key,omitempty"`
	Field string `json:"field,omitempty"`
}

// Diagnostic is one problem. Errors stop the apply; warnings do not.
type Diagnostic struct {
	Error bool `json:"error"`
	// File, Line and Col place the problem; Line 0 when it has no place
	// in the file (e.g. an alias in the store the file does not name).
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
	Ref  Ref    `json:"ref,omitzero"`
	Msg  string `json:"msg"`
}

func (d Diagnostic) String() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
		if d.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", d.Line, d.Col)
		}
		b.WriteString(": ")
	}
	if d.Error {
		b.WriteString("error: ")
	} else {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Errors counts the diagnostics that are errors.
func Errors(ds []Diagnostic) int {
	n := 0
	for _, d := range ds {
		if d.Error {
			n++
		}
	}
	return n
}

// Change actions.
const (
	Create = "create"
	Update = "update"
	Delete = "delete"
)

// Change is one step of a plan.
type Change struct {
	Action string `json:"action"`
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	// Detail says what changes, e.g. "quota 1 GiB → 5 GiB"; secrets are
	// never shown.
	Detail string `json:"detail,omitempty"`
}

func (c Change) String() string {
	s := c.Action + " " + c.Kind + " " + c.Key
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

// Result is the outcome of Run.
type Result struct {
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
	// Changes are the planned changes; with Applied, the ones made.
	Changes []Change `json:"changes"`
	Applied bool     `json:"applied"`
	// Failed is the error that stopped the apply after Changes[:Done]
	// were made (the rest were not).
	Failed string `json:"failed,omitempty"`
	Done   int    `json:"done"`
}
