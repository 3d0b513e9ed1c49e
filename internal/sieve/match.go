package sieve

import (
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// comparator is a collation (RFC 4790) usable in :comparator.
type comparator uint8

const (
	cmpOctet comparator = iota + 1
	cmpASCIICasemap
	cmpASCIINumeric
	cmpUnicodeCasemap
)

var comparators = map[string]comparator{
	"i;octet":           cmpOctet,
	"i;ascii-casemap":   cmpASCIICasemap,
	"i;ascii-numeric":   cmpASCIINumeric,
	"i;unicode-casemap": cmpUnicodeCasemap,
}

type matchType uint8

const (
	mIs matchType = iota
	mContains
	mMatches
	mRegex
	mCount
	mValue
)

type relOp uint8

const (
	relGT relOp = iota + 1
	relGE
	relLT
	relLE
	relEQ
	relNE
)

var relOps = map[string]relOp{"gt": relGT, "ge": relGE, "lt": relLT, "le": relLE, "eq": relEQ, "ne": relNE}

// matchSpec is a test's compiled comparator and match type.
type matchSpec struct {
	cmp comparator
	typ matchType
	rel relOp
	// regex holds the compiled constant keys of a :regex match, by key
	// index (nil for keys with variables, compiled at run time).
	regex    []*regexp.Regexp
	regexSrc []string // the keys regex was compiled from
}

// fold returns the canonical form of s under cmp for equality and
// substring tests.
//
// i;unicode-casemap is approximated as NFC normalisation followed by
// simple per-code-point case folding (lower(upper(r))), which equates the
// same strings as RFC 5051's titlecase+NFKD for all practical mail text
// except compatibility characters (ligatures, full-width forms), and keeps
// one folded code point per original so :matches can return the original
// substrings.
func fold(cmp comparator, s string) string {
	switch cmp {
	case cmpASCIICasemap:
		return asciiLower(s)
	case cmpUnicodeCasemap:
		return strings.Map(foldRune, norm.NFC.String(s))
	}
	return s
}

func foldRune(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// numeric returns the i;ascii-numeric value of s: its leading digits
// without leading zeroes, or inf when s does not start with a digit
// (positive infinity, RFC 4790 section 9.1).
func numeric(s string) (digits string, inf bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return "", true
	}
	d := strings.TrimLeft(s[:i], "0")
	return d, false
}

// compare orders a and b under cmp: -1, 0 or 1.
func compare(cmp comparator, a, b string) int {
	if cmp == cmpASCIINumeric {
		da, ia := numeric(a)
		db, ib := numeric(b)
		switch {
		case ia && ib:
			return 0
		case ia:
			return 1
		case ib:
			return -1
		case len(da) != len(db):
			if len(da) < len(db) {
				return -1
			}
			return 1
		}
		return strings.Compare(da, db)
	}
	return strings.Compare(fold(cmp, a), fold(cmp, b))
}

func relHolds(rel relOp, c int) bool {
	switch rel {
	case relGT:
		return c > 0
	case relGE:
		return c >= 0
	case relLT:
		return c < 0
	case relLE:
		return c <= 0
	case relEQ:
		return c == 0
	case relNE:
		return c != 0
	}
	return false
}

// matchOne tests value against key for the match types other than :count.
// For :matches and :regex it returns the match variables on success.
func (m *matchSpec) matchOne(value, key string, re *regexp.Regexp) (bool, []string) {
	switch m.typ {
	case mIs:
		if m.cmp == cmpASCIINumeric {
			return compare(m.cmp, value, key) == 0, nil
		}
		return fold(m.cmp, value) == fold(m.cmp, key), nil
	case mContains:
		return strings.Contains(fold(m.cmp, value), fold(m.cmp, key)), nil
	case mValue:
		return relHolds(m.rel, compare(m.cmp, value, key)), nil
	case mMatches:
		return globMatch(m.cmp, value, key)
	case mRegex:
		if re == nil {
			return false, nil
		}
		sub := re.FindStringSubmatch(value)
		if sub == nil {
			return false, nil
		}
		return true, sub
	}
	return false, nil
}

// units splits s into the units that "?" matches: octets for i;octet,
// code points otherwise. folded has the comparator's canonical form of each
// unit; orig converts a range of units back to a string.
type units struct {
	orig   []rune
	folded []rune
	octets bool
}

func toUnits(cmp comparator, s string) units {
	if cmp == cmpOctet {
		r := make([]rune, len(s))
		for i := 0; i < len(s); i++ {
			r[i] = rune(s[i])
		}
		return units{orig: r, folded: r, octets: true}
	}
	if cmp == cmpUnicodeCasemap {
		s = norm.NFC.String(s)
	}
	orig := []rune(s)
	folded := make([]rune, len(orig))
	for i, r := range orig {
		switch cmp {
		case cmpASCIICasemap:
			if r >= 'A' && r <= 'Z' {
				r += 'a' - 'A'
			}
		case cmpUnicodeCasemap:
			r = foldRune(r)
		}
		folded[i] = r
	}
	return units{orig: orig, folded: folded}
}

func (u units) str(i, j int) string {
	if u.octets {
		b := make([]byte, j-i)
		for k := i; k < j; k++ {
			b[k-i] = byte(u.orig[k])
		}
		return string(b)
	}
	return string(u.orig[i:j])
}

// ptok is one token of a :matches pattern: a literal unit, or -1 for "?".
type ptok = rune

const anyUnit ptok = -1

// globMatch implements :matches (RFC 5228 section 2.7.1) with the match
// variables of RFC 5229 section 3.2: one per wildcard, in order, plus ${0}
// for the whole value.
//
// Wildcards expand non-greedily, as Pigeonhole and Cyrus do: each "*"
// takes the shortest text that lets the rest of the pattern match. The
// pattern is split at its stars into segments of literals and "?"; the
// first segment must match at the start, the last at the end, and each
// middle segment is placed at its earliest occurrence. That placement is
// exactly what shortest-first backtracking would choose (a later start
// never helps the rest, which begins with a star), but costs
// O(len(value)·len(pattern)) instead of exponential time.
func globMatch(cmp comparator, value, pattern string) (bool, []string) {
	v := toUnits(cmp, value)
	pu := toUnits(cmp, pattern)
	// Parse the pattern into segments.
	var segs [][]ptok
	var cur []ptok
	for i := 0; i < len(pu.orig); i++ {
		switch pu.orig[i] {
		case '*':
			segs = append(segs, cur)
			cur = nil
		case '?':
			cur = append(cur, anyUnit)
		case '\\':
			if i+1 < len(pu.orig) {
				i++
			}
			cur = append(cur, pu.folded[i])
		default:
			cur = append(cur, pu.folded[i])
		}
	}
	segs = append(segs, cur)

	n := len(v.folded)
	at := func(seg []ptok, p int) bool {
		if p+len(seg) > n {
			return false
		}
		for k, t := range seg {
			if t != anyUnit && t != v.folded[p+k] {
				return false
			}
		}
		return true
	}
	var caps []string
	anyCaps := func(seg []ptok, p int) {
		for k, t := range seg {
			if t == anyUnit {
				caps = append(caps, v.str(p+k, p+k+1))
			}
		}
	}
	caps = append(caps, value)
	if len(segs) == 1 {
		if len(segs[0]) != n || !at(segs[0], 0) {
			return false, nil
		}
		anyCaps(segs[0], 0)
		return true, caps
	}
	first, last := segs[0], segs[len(segs)-1]
	if !at(first, 0) {
		return false, nil
	}
	anyCaps(first, 0)
	pos := len(first)
	end := n - len(last)
	if end < pos || !at(last, end) {
		return false, nil
	}
	for _, seg := range segs[1 : len(segs)-1] {
		q := pos
		for ; q+len(seg) <= end; q++ {
			if at(seg, q) {
				break
			}
		}
		if q+len(seg) > end {
			return false, nil
		}
		caps = append(caps, v.str(pos, q))
		anyCaps(seg, q)
		pos = q + len(seg)
	}
	caps = append(caps, v.str(pos, end))
	anyCaps(last, end)
	return true, caps
}
