package sieve

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Variable limits (RFC 5229 section 6 asks for bounds).
const (
	// MaxVariables bounds the variables one script run may set.
	MaxVariables = 256
	// MaxVariableLen bounds a variable's value; longer values are cut at
	// a character boundary.
	MaxVariableLen = 16 << 10
	// maxMatchVars bounds the match variables ${0}..${n-1} kept.
	maxMatchVars = 64
)

// truncate cuts s to at most n bytes at a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// expand substitutes variable references (RFC 5229 section 3): "${name}"
// for a variable (names are case-insensitive), "${N}" for a match
// variable. Unknown variables expand to the empty string; text that is not
// a well-formed reference is kept as is.
func (in *interp) expand(s string) string {
	if !in.s.vars || !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for len(s) > 0 && b.Len() <= MaxStringLen {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		name, n := scanVarRef(rest)
		if n == 0 {
			b.WriteString("${")
			s = rest
			continue
		}
		b.WriteString(in.lookup(name))
		s = rest[n:]
	}
	return truncate(b.String(), MaxStringLen)
}

// scanVarRef parses the name of a reference after "${" up to and including
// "}": digits, or identifiers joined by dots. n is 0 when s does not start
// with a well-formed reference.
func scanVarRef(s string) (name string, n int) {
	if s == "" {
		return "", 0
	}
	i := 0
	if s[0] >= '0' && s[0] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		for {
			if i >= len(s) || !isIdentStart(s[i]) {
				return "", 0
			}
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
			if i < len(s) && s[i] == '.' {
				i++
				continue
			}
			break
		}
	}
	if i >= len(s) || s[i] != '}' {
		return "", 0
	}
	return s[:i], i + 1
}

func (in *interp) lookup(name string) string {
	if name[0] >= '0' && name[0] <= '9' {
		t := strings.TrimLeft(name, "0")
		if t == "" {
			t = "0"
		}
		if len(t) > 4 {
			return ""
		}
		k, _ := strconv.Atoi(t)
		if k < len(in.matchVars) {
			return in.matchVars[k]
		}
		return ""
	}
	// Namespaced names (RFC 5229 section 3) name no variable we know.
	return in.vars[strings.ToLower(name)]
}

// setMatch replaces the match variables after a successful :matches or
// :regex test.
func (in *interp) setMatch(caps []string) {
	if !in.s.vars {
		return
	}
	if len(caps) > maxMatchVars {
		caps = caps[:maxMatchVars]
	}
	// A new slice: callers may hold on to the previous one.
	in.matchVars = make([]string, 0, len(caps))
	for _, c := range caps {
		in.matchVars = append(in.matchVars, truncate(c, MaxVariableLen))
	}
}

func (in *interp) setVar(pos Pos, name, value string) error {
	name = strings.ToLower(name)
	if _, ok := in.vars[name]; !ok && len(in.vars) >= MaxVariables {
		return errorf(pos, "more than %d variables", MaxVariables)
	}
	in.vars[name] = truncate(value, MaxVariableLen)
	return nil
}

// applyModifiers applies the modifiers of a set command in the order of
// their precedence (RFC 5229 section 4.1): 40 (:lower, :upper), 30
// (:lowerfirst, :upperfirst), 20 (:quotewildcard, :quoteregex), 10
// (:length).
func applyModifiers(n *node, v string) string {
	switch {
	case n.has("lower"):
		v = strings.ToLower(v)
	case n.has("upper"):
		v = strings.ToUpper(v)
	}
	if n.has("lowerfirst") || n.has("upperfirst") {
		if r, w := utf8.DecodeRuneInString(v); w > 0 {
			if n.has("lowerfirst") {
				r = unicode.ToLower(r)
			} else {
				r = unicode.ToUpper(r)
			}
			v = string(r) + v[w:]
		}
	}
	switch {
	case n.has("quotewildcard"):
		v = quote(v, `*?\`)
	case n.has("quoteregex"):
		v = quote(v, `\^$.[]|()?*+{}`)
	}
	if n.has("length") {
		v = strconv.Itoa(utf8.RuneCountInString(v))
	}
	return v
}

func quote(s, special string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(special, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
