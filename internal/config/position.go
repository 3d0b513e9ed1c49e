package config

import (
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// position is a 1-based line and byte column in the config file.
type position struct{ line, col int }

// posEntry records where a key and its value are in the document.
type posEntry struct {
	key  position
	val  position
	kind unstable.Kind // kind of the value node; Table or ArrayTable for headers
}

// posIndex maps a key path to its place in the document so that errors found
// after decoding (bad addresses, conflicts, missing files) can point at the
// line that caused them. Paths are dotted keys with a zero-based index after
// every array element: "hostname", "tls.cert[1].names[0]",
// "listener[2].address". go-toml keeps no positions in the decoded value, so
// this is a second, cheap pass over the document with its own parser.
type posIndex struct {
	m map[string]posEntry
	// complete is false when the document has a syntax error (the index
	// then covers only what precedes it).
	complete bool
}

// lookup returns the position for path: the value's if known, otherwise the
// key's, and when path itself is absent (a missing key) the nearest
// enclosing table that is present, so "listener[0].address" falls back to
// the "[[listener]]" header.
func (x *posIndex) lookup(path string, preferKey bool) (position, bool) {
	if x == nil || x.m == nil {
		return position{}, false
	}
	for path != "" {
		if e, ok := x.m[path]; ok {
			if preferKey || e.val.line == 0 {
				return e.key, true
			}
			return e.val, true
		}
		path = parentPath(path)
	}
	return position{}, false
}

// kind returns the TOML kind of the value at path.
func (x *posIndex) kind(path string) (unstable.Kind, bool) {
	if x == nil || x.m == nil {
		return unstable.Invalid, false
	}
	e, ok := x.m[path]
	return e.kind, ok
}

// parentPath strips the last component of a path: "a[1].b" -> "a[1]",
// "a[1]" -> "a", "a" -> "".
func parentPath(p string) string {
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

// buildPosIndex indexes every key of data. It stops silently at the first
// syntax error: the decoder reports that one with its own position.
func buildPosIndex(data []byte) *posIndex {
	x := &posIndex{m: map[string]posEntry{}}
	lines := lineStarts(data)
	at := func(r unstable.Range) position {
		off := int(r.Offset)
		i := sort.Search(len(lines), func(i int) bool { return lines[i] > off }) - 1
		if i < 0 {
			i = 0
		}
		return position{line: i + 1, col: off - lines[i] + 1}
	}
	arrays := map[string]int{} // array-table path -> number of elements seen
	table := ""                // path of the current table header

	join := func(base, k string) string {
		if base == "" {
			return k
		}
		return base + "." + k
	}
	var addValue func(path string, key position, v *unstable.Node, depth int)
	addValue = func(path string, key position, v *unstable.Node, depth int) {
		if len(x.m) >= 1<<16 || depth > 64 {
			return // positions are a convenience; stay bounded on hostile input
		}
		e := posEntry{key: key, kind: v.Kind}
		if v.Raw.Length > 0 && v.Kind != unstable.Array {
			e.val = at(v.Raw)
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
			var first position
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
					x.m[path] = posEntry{key: first, kind: unstable.ArrayTable}
				}
				path += "[" + strconv.Itoa(n) + "]"
			}
			if len(x.m) < 1<<16 {
				x.m[path] = posEntry{key: first, kind: e.Kind}
			}
			table = path
		case unstable.KeyValue:
			addKeyValue(x, table, e, at, join, addValue, 0)
		}
	}
	x.complete = p.Error() == nil
	return x
}

// pathAtKey returns the path whose key starts at pos, used to give the
// right context to go-toml's unknown-key errors, whose key loses the array
// level for inline tables inside arrays.
func (x *posIndex) pathAtKey(pos position) (string, bool) {
	if x == nil {
		return "", false
	}
	best := ""
	for path, e := range x.m {
		if e.key == pos && e.kind != unstable.Table && e.kind != unstable.ArrayTable {
			// Dotted keys share the position of their first part; the
			// longest path is the leaf.
			if len(path) > len(best) {
				best = path
			}
		}
	}
	return best, best != ""
}

// addKeyValue indexes one key = value expression below base.
func addKeyValue(x *posIndex, base string, kv *unstable.Node, at func(unstable.Range) position, join func(string, string) string, addValue func(string, position, *unstable.Node, int), depth int) {
	path := base
	var first position
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
