package apply

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/sieve"
	"github.com/mailstead/mailstead/internal/tomlpos"
)

// Size limits of the files apply reads.
const (
	// MaxFileSize bounds the apply file. The whole State must also fit in
	// one control-socket request (1 MiB) when a server is running.
	MaxFileSize = 1 << 20
	// maxPasswordFile bounds a password_file (it holds one hash).
	maxPasswordFile = 4096
	// maxDiagnostics bounds what one file can produce.
	maxDiagnostics = 200
)

// The file's schema. Fields typed any accept more than one TOML type
// (quota = "5GB" or 0; targets = "a@x" or ["a@x", "b@y"]) and are checked
// by hand.
type fileDoc struct {
	Domain  []fileDomain  `toml:"domain"`
	Account []fileAccount `toml:"account"`
	Alias   []fileAlias   `toml:"alias"`
	Sieve   *fileSieve    `toml:"sieve"`
}

type fileDomain struct {
	Name            string `toml:"name"`
	Postmaster      string `toml:"postmaster"`
	DMARCReject     string `toml:"dmarc_reject"`
	DMARCQuarantine string `toml:"dmarc_quarantine"`
	CatchAll        any    `toml:"catch_all"`
}

type fileAccount struct {
	Address      string `toml:"address"`
	PasswordHash string `toml:"password_hash"`
	PasswordFile string `toml:"password_file"`
	Quota        any    `toml:"quota"`
	Disabled     bool   `toml:"disabled"`
	SieveFile    string `toml:"sieve_file"`
	SieveName    string `toml:"sieve_name"`
}

type fileAlias struct {
	Address  string `toml:"address"`
	Targets  any    `toml:"targets"`
	Forward  string `toml:"forward"`
	Disabled any    `toml:"disabled"`
	Note     string `toml:"note"`
	Owner    string `toml:"owner"`
}

type fileSieve struct {
	BeforeFile string `toml:"before_file"`
	AfterFile  string `toml:"after_file"`
}

// knownKeys lists each table's keys, for unknown-key hints.
var knownKeys = map[string][]string{
	"":        {"domain", "account", "alias", "sieve"},
	"domain":  {"name", "postmaster", "dmarc_reject", "dmarc_quarantine", "catch_all"},
	"account": {"address", "password_hash", "password_file", "quota", "disabled", "sieve_file", "sieve_name"},
	"alias":   {"address", "targets", "forward", "disabled", "note", "owner"},
	"sieve":   {"before_file", "after_file"},
}

// File is a parsed apply file: the desired State and what is needed to
// place diagnostics about it.
type File struct {
	Name  string
	State State

	pos *tomlpos.Index
	// objs maps an object (Ref without Field) to its table's path.
	objs map[Ref]string
	// catchAll maps a catch-all declared in a [[domain]] to the path of
	// its catch_all key, whose elements are the targets.
	catchAll map[string]string
}

// ReadFunc reads a file named in the apply file (password_file,
// sieve_file), at most limit bytes. Relative names are relative to the
// apply file's directory.
type ReadFunc func(name string, limit int64) ([]byte, error)

// Load reads and parses the apply file at path.
func Load(path string) (*File, []Diagnostic) {
	f, err := os.Open(path)
	if err != nil {
		return nil, []Diagnostic{{Error: true, File: path, Msg: err.Error()}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, []Diagnostic{{Error: true, File: path, Msg: err.Error()}}
	}
	return Parse(path, data, DirReader(filepath.Dir(path)))
}

// DirReader returns a ReadFunc for files relative to dir.
func DirReader(dir string) ReadFunc {
	return func(name string, limit int64) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, limit+1))
		if err != nil {
			return nil, err
		}
		if int64(len(b)) > limit {
			return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
		}
		return b, nil
	}
}

// Parse parses an apply file named name. It returns the File (nil when
// the document cannot be decoded) and every problem found, each placed at
// its line; if any is an error the State must not be applied.
func Parse(name string, data []byte, read ReadFunc) (*File, []Diagnostic) {
	if len(data) > MaxFileSize {
		return nil, []Diagnostic{{Error: true, File: name, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var doc fileDoc
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, decodeErrors(name, err)
	}
	f := &File{Name: name, pos: tomlpos.Build(data), objs: map[Ref]string{}, catchAll: map[string]string{}}
	p := &parser{f: f, read: read, aliasSeen: map[string]string{}}
	p.domains(doc.Domain)
	p.accounts(doc.Account)
	p.aliases(doc.Alias)
	p.globalSieve(doc.Sieve)
	for _, d := range checkState(&f.State) {
		p.diags = append(p.diags, f.Locate(d))
	}
	sortDiagnostics(p.diags)
	if len(p.diags) > maxDiagnostics {
		p.diags = append(p.diags[:maxDiagnostics], Diagnostic{Error: true, File: name, Msg: "too many problems; stopping"})
	}
	return f, p.diags
}

type parser struct {
	f     *File
	read  ReadFunc
	diags []Diagnostic
	// aliasSeen is shared by catch-alls of [[domain]] tables and
	// [[alias]] tables, which may declare the same "@domain".
	aliasSeen map[string]string
}

func (p *parser) at(path string, isErr bool, format string, args ...any) {
	d := Diagnostic{Error: isErr, File: p.f.Name, Msg: fmt.Sprintf(format, args...)}
	if ps, ok := p.f.pos.Lookup(path, false); ok {
		d.Line, d.Col = ps.Line, ps.Col
	}
	p.diags = append(p.diags, d)
}

func (p *parser) errorf(path, format string, args ...any) { p.at(path, true, format, args...) }

// dup reports a duplicate and returns true when key was seen.
func (p *parser) dup(seen map[string]string, key, path, field, what string) bool {
	if prev, ok := seen[key]; ok {
		line := 0
		if ps, ok := p.f.pos.Lookup(prev, true); ok {
			line = ps.Line
		}
		p.errorf(path+"."+field, "%s is declared twice (first at line %d)", what, line)
		return true
	}
	seen[key] = path + "." + field
	return false
}

func (p *parser) domains(ds []fileDomain) {
	seen := map[string]string{}
	for i, d := range ds {
		path := "domain[" + strconv.Itoa(i) + "]"
		if d.Name == "" {
			p.errorf(path, "a [[domain]] needs a name")
			continue
		}
		key, err := domainKey(d.Name)
		if err != nil {
			p.errorf(path+".name", "%v", err)
			continue
		}
		if p.dup(seen, key, path, "name", "domain "+key) {
			continue
		}
		p.f.objs[Ref{Kind: KindDomain, Key: key}] = path
		p.f.State.Domains = append(p.f.State.Domains, Domain{Name: d.Name, Postmaster: d.Postmaster, DMARCReject: d.DMARCReject, DMARCQuarantine: d.DMARCQuarantine})
		if d.CatchAll != nil {
			targets, ok := p.stringList(d.CatchAll, path+".catch_all")
			if !ok {
				continue
			}
			if len(targets) == 0 {
				p.errorf(path+".catch_all", "catch_all needs at least one target")
				continue
			}
			ca := "@" + key
			if p.dup(p.aliasSeen, ca, path, "catch_all", "catch-all "+ca) {
				continue
			}
			p.f.catchAll[ca] = path + ".catch_all"
			p.f.objs[Ref{Kind: KindAlias, Key: ca}] = path
			p.f.State.Aliases = append(p.f.State.Aliases, Alias{Address: ca, Targets: targets})
		}
	}
}

// stringList accepts a string or an array of strings.
func (p *parser) stringList(v any, path string) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				p.errorf(path+"["+strconv.Itoa(i)+"]", "expected a string, found %s", tomlType(e))
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	p.errorf(path, "expected a string or an array of strings, found %s", tomlType(v))
	return nil, false
}

func (p *parser) accounts(as []fileAccount) {
	seen := map[string]string{}
	for i, a := range as {
		path := "account[" + strconv.Itoa(i) + "]"
		if a.Address == "" {
			p.errorf(path, "an [[account]] needs an address")
			continue
		}
		key, err := accountKey(a.Address)
		if err != nil {
			p.errorf(path+".address", "%v", err)
			continue
		}
		if p.dup(seen, key, path, "address", "account "+key) {
			continue
		}
		p.f.objs[Ref{Kind: KindAccount, Key: key}] = path
		acc := Account{Address: a.Address, Disabled: a.Disabled, PasswordHash: strings.TrimSpace(a.PasswordHash)}
		switch {
		case a.PasswordHash != "" && a.PasswordFile != "":
			p.errorf(path+".password_file", "give password_hash or password_file, not both")
		case a.PasswordFile != "":
			b, err := p.read(a.PasswordFile, maxPasswordFile)
			if err != nil {
				p.errorf(path+".password_file", "password_file: %v", err)
				break
			}
			line, _, _ := strings.Cut(string(b), "\n")
			acc.PasswordHash = strings.TrimSpace(line)
			if acc.PasswordHash == "" {
				p.errorf(path+".password_file", "password_file %s is empty (it holds a password hash)", a.PasswordFile)
			}
		}
		if a.Quota != nil {
			q, err := quotaValue(a.Quota)
			if err != nil {
				p.errorf(path+".quota", "quota: %v", err)
			} else {
				acc.QuotaBytes = &q
			}
		}
		switch {
		case a.SieveFile != "":
			name := a.SieveName
			if name == "" {
				name = DefaultSieveName
			}
			if src, ok := p.script(a.SieveFile, path+".sieve_file"); ok {
				acc.Sieve = &Script{Name: name, Content: src}
			}
		case a.SieveName != "":
			p.errorf(path+".sieve_name", "sieve_name without sieve_file")
		}
		p.f.State.Accounts = append(p.f.State.Accounts, acc)
	}
}

// script reads and checks a sieve file; its errors are placed in the
// script itself.
func (p *parser) script(name, path string) (string, bool) {
	b, err := p.read(name, sieve.MaxScriptSize)
	if err != nil {
		p.errorf(path, "sieve_file: %v", err)
		return "", false
	}
	src := string(b)
	if err := sieve.Check(src); err != nil {
		var se *sieve.Error
		if errors.As(err, &se) && se.Pos.Line > 0 {
			// The script's own position is the useful one; the
			// apply file's line is in the message.
			line := 0
			if ps, ok := p.f.pos.Lookup(path, false); ok {
				line = ps.Line
			}
			p.diags = append(p.diags, Diagnostic{Error: true, File: p.scriptPath(name), Line: se.Pos.Line, Col: se.Pos.Col, Msg: fmt.Sprintf("%s (sieve script of %s:%d)", se.Msg, p.f.Name, line)})
		} else {
			p.errorf(path, "sieve script %s: %v", name, err)
		}
		return "", false
	}
	return src, true
}

// scriptPath names a sieve file as the user can open it.
func (p *parser) scriptPath(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(filepath.Dir(p.f.Name), name)
}

// quotaValue accepts a size string ("5GB") or a byte count.
func quotaValue(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return 0, errors.New("must be 0 (unlimited) or a positive size")
		}
		return v, nil
	case string:
		s, err := config.ParseSize(v)
		if err != nil {
			return 0, err
		}
		if s < 0 {
			return 0, errors.New("must be 0 (unlimited) or a positive size")
		}
		return int64(s), nil
	}
	return 0, fmt.Errorf("expected a size such as \"5GB\" or a number of bytes, found %s", tomlType(v))
}

func (p *parser) aliases(as []fileAlias) {
	seen := p.aliasSeen
	for i, a := range as {
		path := "alias[" + strconv.Itoa(i) + "]"
		if a.Address == "" {
			p.errorf(path, "an [[alias]] needs an address (local@domain, or @domain for a catch-all)")
			continue
		}
		key, err := aliasKey(a.Address)
		if err != nil {
			p.errorf(path+".address", "%v", err)
			continue
		}
		if p.dup(seen, key, path, "address", "alias "+key) {
			continue
		}
		p.f.objs[Ref{Kind: KindAlias, Key: key}] = path
		al := Alias{Address: a.Address, ForwardMode: a.Forward, Note: a.Note, Owner: a.Owner}
		if a.Targets != nil {
			ts, ok := p.stringList(a.Targets, path+".targets")
			if !ok {
				continue
			}
			al.Targets = ts
		}
		switch v := a.Disabled.(type) {
		case nil:
		case bool:
			if v {
				al.DisabledAction = "drop"
			}
		case string:
			al.DisabledAction = v // checkState checks the value
		default:
			p.errorf(path+".disabled", "disabled: expected \"drop\", \"reject\" or a boolean, found %s", tomlType(v))
			continue
		}
		p.f.State.Aliases = append(p.f.State.Aliases, al)
	}
}

func (p *parser) globalSieve(s *fileSieve) {
	if s == nil {
		return
	}
	for _, g := range []struct{ name, file, key string }{{sieveBefore, s.BeforeFile, "before_file"}, {sieveAfter, s.AfterFile, "after_file"}} {
		if g.file == "" {
			continue
		}
		p.f.objs[Ref{Kind: KindSieve, Key: "global/" + g.name}] = "sieve." + g.key
		if src, ok := p.script(g.file, "sieve."+g.key); ok {
			p.f.State.GlobalSieve = append(p.f.State.GlobalSieve, Script{Name: g.name, Content: src})
		}
	}
}

// Locate places a diagnostic that has a Ref but no position (found by
// checkState or Plan) in the file.
func (f *File) Locate(d Diagnostic) Diagnostic {
	if d.File != "" {
		return d
	}
	d.File = f.Name
	base, ok := f.objs[Ref{Kind: d.Ref.Kind, Key: d.Ref.Key}]
	if !ok {
		return d
	}
	path := base
	if d.Ref.Field != "" {
		path = base + "." + d.Ref.Field
	}
	if ca, ok := f.catchAll[d.Ref.Key]; ok && d.Ref.Kind == KindAlias {
		// A catch-all from a [[domain]]: its targets are catch_all's
		// elements, everything else is the key itself.
		path = ca
		if rest, ok := strings.CutPrefix(d.Ref.Field, "targets"); ok && strings.HasPrefix(rest, "[") {
			path = ca + rest
		}
	}
	if ps, ok := f.pos.Lookup(path, false); ok {
		d.Line, d.Col = ps.Line, ps.Col
	}
	return d
}

// LocateAll places diagnostics (see Locate) and sorts them by position.
func (f *File) LocateAll(ds []Diagnostic) []Diagnostic {
	out := make([]Diagnostic, 0, len(ds))
	for _, d := range ds {
		out = append(out, f.Locate(d))
	}
	sortDiagnostics(out)
	return out
}

// sortDiagnostics orders by file, then position; unplaced ones last.
func sortDiagnostics(ds []Diagnostic) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if (a.Line == 0) != (b.Line == 0) {
			return a.Line != 0
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	}
	return "a date or time"
}

// decodeErrors turns go-toml's errors into placed diagnostics.
func decodeErrors(name string, err error) []Diagnostic {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var out []Diagnostic
		for i := range strict.Errors {
			if len(out) >= maxDiagnostics {
				break
			}
			de := &strict.Errors[i]
			line, col := de.Position()
			out = append(out, Diagnostic{Error: true, File: name, Line: line, Col: col, Msg: unknownKey(de.Key())})
		}
		sortDiagnostics(out)
		return out
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if m := typeMismatch.FindStringSubmatch(msg); m != nil {
			msg = "expected " + goTypeName(m[2]) + ", found a TOML " + m[1]
		}
		if k := de.Key(); len(k) > 0 && !strings.Contains(msg, strings.Join(k, ".")) {
			msg = strings.Join(k, ".") + ": " + msg
		}
		return []Diagnostic{{Error: true, File: name, Line: line, Col: col, Msg: msg}}
	}
	return []Diagnostic{{Error: true, File: name, Msg: err.Error()}}
}

func unknownKey(key []string) string {
	if len(key) == 0 {
		return "unknown key"
	}
	last := key[len(key)-1]
	table := ""
	if len(key) > 1 {
		table = key[0]
	}
	where := "at top level"
	switch table {
	case "":
	case "sieve":
		where = "in [sieve]"
	default:
		where = "in [[" + table + "]]"
	}
	msg := fmt.Sprintf("unknown key '%s' %s", last, where)
	if known, ok := knownKeys[table]; ok {
		if h, ok := keyHints[last]; ok {
			msg += " (" + h + ")"
		} else if c := tomlpos.Closest(last, known); c != "" {
			msg += fmt.Sprintf(" (did you mean '%s'?)", c)
		} else {
			msg += " (known keys: " + strings.Join(known, ", ") + ")"
		}
	}
	return msg
}

// keyHints answer the keys people reach for out of habit.
var keyHints = map[string]string{
	"password":     "apply never takes plain passwords: use password_hash or password_file with a hash",
	"mode":         "the forwarding mode is 'forward' (srs or rewrite)",
	"forward_mode": "the forwarding mode is 'forward' (srs or rewrite)",
	"target":       "did you mean 'targets'?",
	"sieve":        "use sieve_file (and optionally sieve_name)",
	"domain":       "an account's domain is part of its address",
}

// typeMismatch matches go-toml's message for a value of the wrong type.
var typeMismatch = regexp.MustCompile(`^cannot decode TOML (\w+) into (?:struct field \S+ of type )?(\S+)`)

func goTypeName(t string) string {
	switch {
	case t == "bool":
		return "a boolean"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "an array of tables"
	case strings.HasPrefix(t, "int"):
		return "an integer"
	}
	return "a table"
}
