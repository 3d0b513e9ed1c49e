package config

import (
	"encoding"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/mailstead/mailstead/internal/tomlpos"
)

// Reflection over Config's toml tags, used to phrase errors: which keys
// exist at a level (for "did you mean"), which Go type a key decodes into
// (to name the expected TOML type, and to refuse integer durations).

var (
	configType   = reflect.TypeOf(Config{})
	durationType = reflect.TypeOf(Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
)

func ioLimit(r io.Reader, n int64) io.Reader { return io.LimitReader(r, n) }

// tomlKey returns the key name of an exported struct field, or "" when the
// field is not part of the file format.
func tomlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("toml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

// typeAtPath returns the Go type a dotted key path decodes into, or nil if
// the schema has no such key. Array indexes ("listener[0]") and slice levels
// are stepped through.
func typeAtPath(t reflect.Type, path string) reflect.Type {
	if path == "" {
		return t
	}
	for _, part := range strings.Split(path, ".") {
		name, _, _ := strings.Cut(part, "[")
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		var next reflect.Type
		for i := 0; i < t.NumField(); i++ {
			if tomlKey(t.Field(i)) == name {
				next = t.Field(i).Type
				break
			}
		}
		if next == nil {
			return nil
		}
		t = next
		// Each "[i]" steps into a slice element.
		for n := strings.Count(part, "["); n > 0; n-- {
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		}
	}
	return t
}

// keysAtPath lists the keys the struct at a dotted path accepts.
func keysAtPath(path string) []string {
	t := typeAtPath(configType, path)
	if t == nil {
		return nil
	}
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if k := tomlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// tableOfKey returns the top-level table that has key k, for a key written
// outside its table.
func tableOfKey(k string) string {
	for i := 0; i < configType.NumField(); i++ {
		f := configType.Field(i)
		name := tomlKey(f)
		if name == "" || f.Type.Kind() != reflect.Struct {
			continue
		}
		for _, sub := range keysAtPath(name) {
			if sub == k {
				return name
			}
		}
	}
	return ""
}

func isSliceOfStruct(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && !isTextType(t.Elem())
}

// isTextType reports whether t is written as a string in the file (it
// implements encoding.TextUnmarshaler).
func isTextType(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(textUnmarshalerType)
}

var textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

// kindErrors checks, before decoding, that values of the types written as
// strings (durations, sizes, protocols, modes, networks) are strings, so that
// "timeout = 30" and "protocol = 5" get a position and a clear message.
func kindErrors(name string, x *tomlpos.Index) ErrorList {
	var errs ErrorList
	for path, e := range x.All {
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable, unstable.InlineTable, unstable.String:
			continue
		}
		t := typeAtPath(configType, path)
		if t == nil || !isTextType(t) || t == sizeType && e.Kind == unstable.Integer {
			continue
		}
		p, _ := x.Lookup(path, false)
		err := &Error{File: name, Line: p.Line, Column: p.Col, Msg: fmt.Sprintf("%s: expected %s", displayPath(path), tomlTypeName(t))}
		if t == durationType {
			err.Msg = fmt.Sprintf("%s: a duration must be a string with a unit", displayPath(path))
			err.Hint = `write e.g. "30s", "5m" or "1h"`
		}
		errs = append(errs, err)
	}
	sortErrors(errs)
	if len(errs) > maxErrors {
		errs = errs[:maxErrors]
	}
	return errs
}

// tomlTypeName describes what a value of Go type t looks like in TOML.
func tomlTypeName(t reflect.Type) string {
	switch t {
	case durationType:
		return `a duration string like "30s"`
	case sizeType:
		return `a size like "25MB" or a number of bytes`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Slice:
		if isTextType(t.Elem()) || t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		if isSliceOfStruct(t) {
			return "an array of tables"
		}
		return "an array"
	case reflect.Struct:
		if isTextType(t) {
			return "a string"
		}
		return "a table"
	}
	return ""
}

// displayPath turns an index path into the key as written in the file:
// "listener[2].address" -> "listener.address" (the line number says which).
func displayPath(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}
