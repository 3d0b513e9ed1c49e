package routing

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/store"
)

// Problem is one finding of Validate.
type Problem struct {
	Error   bool   // false: a warning
	Address string // the alias or account concerned
	Message string
}

func (p Problem) String() string {
	kind := "warning"
	if p.Error {
		kind = "error"
	}
	return fmt.Sprintf("%s: %s: %s", kind, p.Address, p.Message)
}

// Validate checks a complete set of mail data before it is applied (and
// what is in the store, for `mailstead alias check`): an address that is
// both an account and an alias, aliases in domains that are not local,
// alias loops (errors), and targets in local domains that do not exist
// (warnings).
func Validate(domains []string, accounts []store.Account, aliases []store.Alias) []Problem {
	var out []Problem
	local := map[string]bool{}
	for _, d := range domains {
		local[d] = true
	}
	acc := map[string]bool{}
	for _, a := range accounts {
		acc[strings.ToLower(a.Address)] = true
	}
	al := map[string]store.Alias{}
	for _, a := range aliases {
		k := strings.ToLower(a.Address)
		if acc[k] {
			out = append(out, Problem{true, a.Address, "is both an account and an alias; an address must be one or the other"})
		}
		if _, dup := al[k]; dup {
			out = append(out, Problem{true, a.Address, "alias defined twice"})
		}
		al[k] = a
		if d := a.Address[strings.LastIndexByte(a.Address, '@')+1:]; !local[d] {
			out = append(out, Problem{true, a.Address, fmt.Sprintf("domain %s is not a local domain", d)})
		}
	}
	for _, a := range aliases {
		for _, t := range a.Targets {
			if strings.HasPrefix(t, "http:") {
				continue
			}
			ta, err := address.Parse(t)
			if err != nil {
				out = append(out, Problem{true, a.Address, fmt.Sprintf("target %q is not an address", t)})
				continue
			}
			k := strings.ToLower(ta.String())
			if local[ta.Domain] && !acc[k] {
				if _, ok := al[k]; !ok {
					out = append(out, Problem{false, a.Address, fmt.Sprintf("target %s does not exist in local domain %s", ta, ta.Domain)})
				}
			}
		}
	}
	// Cycles: depth-first search over alias → alias edges.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var path []string
	reported := map[string]bool{}
	var visit func(k string)
	visit = func(k string) {
		color[k] = grey
		path = append(path, al[k].Address)
		for _, t := range al[k].Targets {
			tk := strings.ToLower(t)
			if _, ok := al[tk]; !ok {
				continue
			}
			switch color[tk] {
			case grey:
				i := 0
				for j, p := range path {
					if strings.EqualFold(p, t) {
						i = j
					}
				}
				cycle := append(append([]string{}, path[i:]...), al[tk].Address)
				if !reported[tk] {
					reported[tk] = true
					out = append(out, Problem{true, al[tk].Address, "alias loop: " + strings.Join(cycle, " → ")})
				}
			case white:
				visit(tk)
			}
		}
		path = path[:len(path)-1]
		color[k] = black
	}
	keys := make([]string, 0, len(al))
	for k := range al {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if color[k] == white {
			visit(k)
		}
	}
	return out
}
