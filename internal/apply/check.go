package apply

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/sieve"
)

// Limits of a State. They bound what one apply can ask of the server.
const (
	maxNote       = 4096
	maxTargets    = 1000
	maxScriptName = 255
)

// DefaultSieveName is the name an account's script from the file is
// stored under when the file does not name it.
const DefaultSieveName = "managed"

// Global sieve script names (as package manage calls them).
const (
	sieveBefore = "before"
	sieveAfter  = "after"
)

// domainKey, accountKey and aliasKey are the identities objects are
// matched by, in the file and in the store.
func domainKey(s string) (string, error) { return address.Domain(s) }

func accountKey(s string) (string, error) {
	a, err := address.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	return a.Key(), nil
}

func aliasKey(s string) (string, error) {
	a, err := address.ParseAlias(s)
	return strings.ToLower(a), err
}

// normTarget normalises one alias target as `alias add` does: an address,
// or "http:NAME" for a webhook.
func normTarget(t string) (string, error) {
	t = strings.TrimSpace(t)
	if name, ok := strings.CutPrefix(t, "http:"); ok {
		if name == "" || strings.ContainsAny(name, " \t,") {
			return "", fmt.Errorf("target %q: webhook targets are http:NAME", t)
		}
		return t, nil
	}
	a, err := address.Parse(t)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", t, err)
	}
	return a.String(), nil
}

func checkScriptName(name string) error {
	if name == "" {
		return errors.New("empty script name")
	}
	if len(name) > maxScriptName || !utf8.ValidString(name) {
		return errors.New("script name too long or not UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r >= 0x7f && r <= 0x9f || r == 0x2028 || r == 0x2029 || r == '/' {
			return fmt.Errorf("invalid character %q in script name", r)
		}
	}
	return nil
}

// dmarcAction checks a DMARC failure action; "default" is "".
func dmarcAction(v string) (string, error) {
	switch v {
	case "", "default":
		return "", nil
	case "reject", "junk", "accept":
		return v, nil
	}
	return "", fmt.Errorf("%q is not reject, junk, accept or default", v)
}

// checkState validates and normalises a State in place. It is the one
// check of values, run by Parse (whose diagnostics then get positions) and
// again by Plan on what arrives over the control socket. Objects whose
// identity is invalid are dropped, so the rest can still be checked.
func checkState(s *State) []Diagnostic {
	var ds []Diagnostic
	bad := func(kind, key, field, format string, args ...any) {
		ds = append(ds, Diagnostic{Error: true, Ref: Ref{Kind: kind, Key: key, Field: field}, Msg: fmt.Sprintf(format, args...)})
	}

	domains := s.Domains[:0]
	for _, d := range s.Domains {
		name, err := domainKey(d.Name)
		if err != nil {
			bad(KindDomain, d.Name, "name", "%v", err)
			continue
		}
		d.Name = name
		if d.Postmaster != "" {
			p, err := address.Parse(strings.TrimSpace(d.Postmaster))
			if err != nil {
				bad(KindDomain, name, "postmaster", "postmaster: %v", err)
			} else {
				d.Postmaster = p.String()
			}
		}
		if d.DMARCReject, err = dmarcAction(d.DMARCReject); err != nil {
			bad(KindDomain, name, "dmarc_reject", "dmarc_reject: %v", err)
		}
		if d.DMARCQuarantine, err = dmarcAction(d.DMARCQuarantine); err != nil {
			bad(KindDomain, name, "dmarc_quarantine", "dmarc_quarantine: %v", err)
		}
		domains = append(domains, d)
	}
	s.Domains = domains

	accounts := s.Accounts[:0]
	for _, a := range s.Accounts {
		addr, err := address.Parse(strings.TrimSpace(a.Address))
		if err != nil {
			bad(KindAccount, a.Address, "address", "%v", err)
			continue
		}
		a.Address = addr.String()
		key := addr.Key()
		if a.PasswordHash != "" {
			if _, err := account.NormalizeHash(a.PasswordHash); err != nil {
				bad(KindAccount, key, "password_hash", "password hash: %v (apply takes argon2id, bcrypt or SHA-crypt hashes, optionally with a Dovecot {SCHEME} prefix, never plain passwords)", err)
			}
		}
		if a.QuotaBytes != nil && *a.QuotaBytes < 0 {
			bad(KindAccount, key, "quota", "quota must be 0 (unlimited) or a positive size")
		}
		if a.Sieve != nil {
			if err := checkScriptName(a.Sieve.Name); err != nil {
				bad(KindAccount, key, "sieve_name", "sieve_name: %v", err)
			}
			if err := sieve.Check(a.Sieve.Content); err != nil {
				bad(KindAccount, key, "sieve_file", "sieve script: %v", err)
			}
		}
		accounts = append(accounts, a)
	}
	s.Accounts = accounts

	aliases := s.Aliases[:0]
	for _, al := range s.Aliases {
		addr, err := address.ParseAlias(al.Address)
		if err != nil {
			bad(KindAlias, al.Address, "address", "%v", err)
			continue
		}
		al.Address = addr
		key := strings.ToLower(addr)
		if len(al.Targets) > maxTargets {
			bad(KindAlias, key, "targets", "more than %d targets", maxTargets)
			al.Targets = al.Targets[:maxTargets]
		}
		given := len(al.Targets)
		targets := make([]string, 0, len(al.Targets))
		for i, t := range al.Targets {
			nt, err := normTarget(t)
			if err != nil {
				// Reported here, and left out so that the
				// directory check does not report it again.
				bad(KindAlias, key, fmt.Sprintf("targets[%d]", i), "%v", err)
				continue
			}
			targets = append(targets, nt)
		}
		al.Targets = targets
		if given == 0 && al.DisabledAction == "" {
			bad(KindAlias, key, "targets", "an alias needs at least one target (or disabled = \"drop\" or \"reject\")")
		}
		switch al.ForwardMode {
		case "", "srs", "rewrite":
		default:
			bad(KindAlias, key, "forward", "forward: %q is not srs or rewrite", al.ForwardMode)
		}
		switch al.DisabledAction {
		case "", "drop", "reject":
		default:
			bad(KindAlias, key, "disabled", "disabled: %q is not \"drop\" (accept and discard) or \"reject\" (550)", al.DisabledAction)
		}
		if len(al.Note) > maxNote {
			bad(KindAlias, key, "note", "note longer than %d bytes", maxNote)
		}
		if al.Owner != "" {
			o, err := address.Parse(strings.TrimSpace(al.Owner))
			if err != nil {
				bad(KindAlias, key, "owner", "owner: %v", err)
			} else {
				al.Owner = o.String()
			}
		}
		aliases = append(aliases, al)
	}
	s.Aliases = aliases

	for _, sc := range s.GlobalSieve {
		key := "global/" + sc.Name
		if sc.Name != sieveBefore && sc.Name != sieveAfter {
			bad(KindSieve, key, "", "global sieve scripts are named %q or %q", sieveBefore, sieveAfter)
			continue
		}
		if err := sieve.Check(sc.Content); err != nil {
			bad(KindSieve, key, "", "sieve script: %v", err)
		}
	}
	return ds
}
