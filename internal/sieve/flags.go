package sieve

import (
	"strings"

	"github.com/mailstead/mailstead/internal/store"
)

// maxFlags bounds the flags of one flag list.
const maxFlags = 64

// systemFlags are the IMAP system flags a script may set, in canonical
// spelling. \Recent is not settable.
var systemFlags = []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}

// canonicalFlag returns the canonical form of a flag, or "" when it is not
// a settable IMAP flag or keyword (RFC 5232 section 3: invalid flags are
// ignored).
func canonicalFlag(f string) string {
	if strings.HasPrefix(f, `\`) {
		for _, s := range systemFlags {
			if strings.EqualFold(f, s) {
				return s
			}
		}
		return ""
	}
	if f == "" || len(f) > 128 {
		return ""
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return ""
		}
	}
	return f
}

// parseFlags splits flag lists (each string holds space-separated flags)
// into distinct valid flags, compared case-insensitively as IMAP does.
func parseFlags(lists []string) []string {
	var out []string
	for _, l := range lists {
		for _, f := range strings.Fields(l) {
			if f = canonicalFlag(f); f == "" || containsFold(out, f) {
				continue
			}
			if len(out) >= maxFlags {
				return out
			}
			out = append(out, f)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func unionFlags(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, f := range b {
		if !containsFold(out, f) && len(out) < maxFlags {
			out = append(out, f)
		}
	}
	return out
}

func removeFlags(a, b []string) []string {
	var out []string
	for _, f := range a {
		if !containsFold(b, f) {
			out = append(out, f)
		}
	}
	return out
}

// actionFlags returns the flags for a keep or fileinto: its :flags
// argument, else the internal flags variable (RFC 5232 section 5).
func (in *interp) actionFlags(n *node) []string {
	if a := n.tags["flags"]; a != nil {
		return parseFlags(in.list(a))
	}
	return append([]string(nil), in.flags...)
}

// flagAction runs setflag, addflag or removeflag on the internal flags
// variable or on a named variable.
func (in *interp) flagAction(n *node) error {
	arg := parseFlags(in.list(&n.args[1]))
	var cur []string
	named := n.args[0].kind != argNone
	var name string
	if named {
		name = strings.ToLower(n.args[0].strs[0])
		cur = parseFlags([]string{in.vars[name]})
	} else {
		cur = in.flags
	}
	switch n.name {
	case "setflag":
		cur = arg
	case "addflag":
		cur = unionFlags(cur, arg)
	case "removeflag":
		cur = removeFlags(cur, arg)
	}
	if named {
		return in.setVar(n.pos, name, strings.Join(cur, " "))
	}
	in.flags = cur
	return nil
}

// matchFlags implements hasflag: each flag is a value; keys holding
// several space-separated flags stand for each of them. :count counts
// flags.
func (in *interp) matchFlags(n *node, flags []string) (bool, error) {
	keys := in.list(&n.args[1])
	var split []string
	for _, k := range keys {
		split = append(split, strings.Fields(k)...)
	}
	return in.matchExpanded(n, flags, split, n.args[1].pos)
}

// StoreFlags splits IMAP flag names into the store's system flag bits and
// keywords.
func StoreFlags(flags []string) (store.Flags, []string) {
	var fl store.Flags
	var kw []string
	for _, f := range flags {
		sys := false
		for _, fn := range store.FlagNames {
			if strings.EqualFold(f, fn.Name) {
				fl |= fn.Flag
				sys = true
				break
			}
		}
		if !sys && canonicalFlag(f) != "" && !strings.HasPrefix(f, `\`) {
			kw = append(kw, f)
		}
	}
	return fl, kw
}
