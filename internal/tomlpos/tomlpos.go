// Package tomlpos finds where keys and values are in a TOML document, so
// that problems found after decoding (a bad address, a conflict, an alias
// loop) can be reported at the line and column that caused them, and
// suggests the closest known key for a typo. go-toml keeps no Poss in
// decoded values; this is a second, cheap pass with go-toml's own parser.
// Package config (mailstead.toml) and package apply (declarative state)
// share it.
package tomlpos

import (
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Pos is a 1-based line and byte column in the document.
type Pos struct{ Line, Col int }

// Entry records where a key and its value are in the document.
type Entry struct {
	Key  Pos
	Val  Pos           // zero for tables and arrays
	Kind unstable.Kind // kind of the value node; Table or ArrayTable for headers
}

// Index maps a key path to its place in the document. Paths are dotted
// keys with a zero-based index after every array element: "hostname",
// "tls.cert[1].names[0]", "listener[2].address".
type Index struct {
	m map[string]Entry
	// Complete is false when the document has a syntax error (the index
	// then covers only what precedes it).
	Complete bool
}

// maxEntries bounds the index on hostile input: Poss are a
// convenience.
const maxEntries = 1 << 16

// Lookup returns the Pos for path: the value's if known, otherwise the
// key's, and when path itself is absent (a missing key) the nearest
// enclosing table that is present, so "listener[0].address" falls back to
// the "[[listener]]" header.
func (x *Index) Lookup(path string, preferKey bool) (Pos, bool) {
	if x == nil || x.m == nil {
		return Pos{}, false
	}
	for path != "" {
		if e, ok := x.m[path]; ok {
			if preferKey || e.Val.Line == 0 {
				return e.Key, true
			}
			return e.Val, true
		}
		path = ParentPath(path)
	}
	return Pos{}, false
}

// Kind returns the TOML kind of the value at path; ok is false when the
// document does not have path.
func (x *Index) Kind(path string) (unstable.Kind, bool) {
	if x == nil || x.m == nil {
		return unstable.Invalid, false
	}
	e, ok := x.m[path]
	return e.Kind, ok
}

// All yields every indexed path with its entry, in no particular order.
func (x *Index) All(yield func(path string, e Entry) bool) {
	if x == nil {
		return
	}
	for p, e := range x.m {
		if !yield(p, e) {
			return
		}
	}
}

// ParentPath strips the last component of a path: "a[1].b" -> "a[1]",
// "a[1]" -> "a", "a" -> "".
func ParentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Build indexes every key of data. It stops silently at the first syntax
// error: the decoder reports that one with its own Pos.
func Build(data []byte) *Index {
	x := &Index{m: map[string]Entry{}}
	lines := lineStarts(data)
	at := func(r unstable.Range) Pos {
		off := int(r.Offset)
		i := sort.Search(len(lines), func(i int) bool { return lines[i] > off }) - 1
		if i < 0 {
			i = 0
		}
		return Pos{Line: i + 1, Col: off - lines[i] + 1}
	}
	arrays := map[string]int{} // array-table path -> number of elements seen
	table := ""                // path of the current table header

	join := func(base, k string) string {
		if base == "" {
			return k
		}
		return base + "." + k
	}
	var addValue func(path string, key Pos, v *unstable.Node, depth int)
	addValue = func(path string, key Pos, v *unstable.Node, depth int) {
		if len(x.m) >= maxEntries || depth > 64 {
			return // Poss are a convenience; stay bounded on hostile input
		}
		e := Entry{Key: key, Kind: v.Kind}
		if v.Raw.Length > 0 && v.Kind != unstable.Array {
			e.Val = at(v.Raw)
		}
		x.m[path] = e
		switch v.Kind {
		case unstable.Array:
			it := v.Children()
			i := 0
			for it.Next() {
				n := it.Node()
				if n.Kind == unstable.Comment {
					continue
				}
				p := key
				if n.Raw.Length > 0 {
					p = at(n.Raw)
				}
				addValue(path+"["+strconv.Itoa(i)+"]", p, n, depth+1)
				i++
			}
		case unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				kv := it.Node()
				if kv.Kind != unstable.KeyValue {
					continue
				}
				addKeyValue(x, path, kv, at, join, addValue, depth+1)
			}
		}
	}

	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			var parts []string
			var first Pos
			it := e.Key()
			for it.Next() {
				if len(parts) == 0 {
					first = at(it.Node().Raw)
				}
				parts = append(parts, string(it.Node().Data))
			}
			path := ""
			for i, k := range parts {
				path = join(path, k)
				if i == len(parts)-1 {
					break
				}
				// A header below an array table refers to its last element.
				if n, ok := arrays[path]; ok && n > 0 {
					path += "[" + strconv.Itoa(n-1) + "]"
				}
			}
			if e.Kind == unstable.ArrayTable {
				n := arrays[path]
				arrays[path] = n + 1
				if _, ok := x.m[path]; !ok {
					x.m[path] = Entry{Key: first, Kind: unstable.ArrayTable}
				}
				path += "[" + strconv.Itoa(n) + "]"
			}
			if len(x.m) < maxEntries {
				x.m[path] = Entry{Key: first, Kind: e.Kind}
			}
			table = path
		case unstable.KeyValue:
			addKeyValue(x, table, e, at, join, addValue, 0)
		}
	}
	x.Complete = p.Error() == nil
	return x
}

// PathAtKey returns the path whose key starts at pos, used to give the
// right context to go-toml's unknown-key errors, whose key loses the array
// level for inline tables inside arrays.
func (x *Index) PathAtKey(pos Pos) (string, bool) {
	if x == nil {
		return "", false
	}
	best := ""
	for path, e := range x.m {
		if e.Key == pos && e.Kind != unstable.Table && e.Kind != unstable.ArrayTable {
			// Dotted keys share the Pos of their first part; the
			// longest path is the leaf.
			if len(path) > len(best) {
				best = path
			}
		}
	}
	return best, best != ""
}

// addKeyValue indexes one key = value expression below base.
func addKeyValue(x *Index, base string, kv *unstable.Node, at func(unstable.Range) Pos, join func(string, string) string, addValue func(string, Pos, *unstable.Node, int), depth int) {
	path := base
	var first Pos
	n := 0
	it := kv.Key()
	for it.Next() {
		if n == 0 {
			first = at(it.Node().Raw)
		}
		path = join(path, string(it.Node().Data))
		n++
	}
	if n == 0 {
		return
	}
	addValue(path, first, kv.Value(), depth)
}

// lineStarts returns the byte offset at which each line of data starts.
func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// Closest returns the candidate with the smallest edit distance to s when
// that distance is small relative to the length of s (at most 1 for short
// words, at most a third of the length for longer ones), else "". Comparison
// ignores case.
func Closest(s string, candidates []string) string {
	if s == "" || len(s) > 64 {
		return ""
	}
	ls := strings.ToLower(s)
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := len(s) / 3
	if limit < 1 {
		limit = 1
	}
	if limit > 3 {
		limit = 3
	}
	if bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b with
// transposition of two adjacent bytes counted as one edit (the optimal string
// alignment variant), since "adress" and "addrses" are the typos people make.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30 // keyed on config key names; long inputs are never typos
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
