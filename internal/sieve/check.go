package sieve

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mailstead/mailstead/internal/address"
)

// Extensions lists the capabilities this interpreter supports, as they are
// named in "require" and announced in the ManageSieve SIEVE capability.
var Extensions = []string{
	"body",
	"comparator-i;ascii-numeric",
	"comparator-i;unicode-casemap",
	"copy",
	"date",
	"editheader",
	"encoded-character",
	"envelope",
	"environment",
	"ereject",
	"fileinto",
	"imap4flags",
	"index",
	"mailbox",
	"regex",
	"reject",
	"relational",
	"spamtest",
	"spamtestplus",
	"subaddress",
	"vacation",
	"vacation-seconds",
	"variables",
	"virustest",
}

// alwaysAvailable are capabilities that may be required but need not be.
var alwaysAvailable = map[string]bool{
	"comparator-i;octet":         true,
	"comparator-i;ascii-casemap": true,
}

// implies maps a capability to others it brings along.
var implies = map[string][]string{
	"vacation-seconds": {"vacation"},
	"spamtestplus":     {"spamtest"},
}

// tagSpec describes one tagged argument.
type tagSpec struct {
	arg   argKind // argNone: a flag; argNumber, argString or argList: takes one argument
	group string  // tags of one group exclude each other
	ext   string  // capability needed, "" for none
}

type cmdSpec struct {
	exts     []string // any one of these capabilities enables the command; nil: core
	test     bool
	tags     map[string]tagSpec
	pos      []argKind
	opt      int  // number of optional positional arguments
	optFirst bool // the optional arguments come first (else last)
}

func tags(sets ...map[string]tagSpec) map[string]tagSpec {
	out := map[string]tagSpec{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

var (
	comparatorTag = map[string]tagSpec{"comparator": {arg: argString, group: "comparator"}}
	matchTags     = map[string]tagSpec{
		"is":       {group: "match"},
		"contains": {group: "match"},
		"matches":  {group: "match"},
		"regex":    {group: "match", ext: "regex"},
		"count":    {arg: argString, group: "match", ext: "relational"},
		"value":    {arg: argString, group: "match", ext: "relational"},
	}
	addressPartTags = map[string]tagSpec{
		"all":       {group: "addresspart"},
		"localpart": {group: "addresspart"},
		"domain":    {group: "addresspart"},
		"user":      {group: "addresspart", ext: "subaddress"},
		"detail":    {group: "addresspart", ext: "subaddress"},
	}
	indexTags = map[string]tagSpec{
		"index": {arg: argNumber, ext: "index"},
		"last":  {ext: "index"},
	}
	matchCmp = tags(comparatorTag, matchTags)
)

var specs = map[string]*cmdSpec{
	// Actions.
	"keep":     {tags: map[string]tagSpec{"flags": {arg: argList, ext: "imap4flags"}}},
	"discard":  {},
	"stop":     {},
	"redirect": {tags: map[string]tagSpec{"copy": {ext: "copy"}}, pos: []argKind{argString}},
	"fileinto": {exts: []string{"fileinto"}, tags: map[string]tagSpec{
		"copy":   {ext: "copy"},
		"flags":  {arg: argList, ext: "imap4flags"},
		"create": {ext: "mailbox"},
	}, pos: []argKind{argString}},
	"reject":     {exts: []string{"reject"}, pos: []argKind{argString}},
	"ereject":    {exts: []string{"ereject"}, pos: []argKind{argString}},
	"setflag":    {exts: []string{"imap4flags"}, pos: []argKind{argString, argList}, opt: 1, optFirst: true},
	"addflag":    {exts: []string{"imap4flags"}, pos: []argKind{argString, argList}, opt: 1, optFirst: true},
	"removeflag": {exts: []string{"imap4flags"}, pos: []argKind{argString, argList}, opt: 1, optFirst: true},
	"set": {exts: []string{"variables"}, tags: map[string]tagSpec{
		"lower":         {group: "mod40"},
		"upper":         {group: "mod40"},
		"lowerfirst":    {group: "mod30"},
		"upperfirst":    {group: "mod30"},
		"quotewildcard": {group: "mod20"},
		"quoteregex":    {group: "mod20", ext: "regex"},
		"length":        {group: "mod10"},
	}, pos: []argKind{argString, argString}},
	"vacation": {exts: []string{"vacation"}, tags: map[string]tagSpec{
		"days":      {arg: argNumber, group: "period"},
		"seconds":   {arg: argNumber, group: "period", ext: "vacation-seconds"},
		"subject":   {arg: argString},
		"from":      {arg: argString},
		"addresses": {arg: argList},
		"mime":      {},
		"handle":    {arg: argString},
	}, pos: []argKind{argString}},
	"addheader": {exts: []string{"editheader"}, tags: map[string]tagSpec{"last": {}}, pos: []argKind{argString, argString}},
	"deleteheader": {exts: []string{"editheader"}, tags: tags(matchCmp, map[string]tagSpec{
		"index": {arg: argNumber},
		"last":  {},
	}), pos: []argKind{argString, argList}, opt: 1},

	// Tests.
	"address":  {test: true, tags: tags(matchCmp, addressPartTags, indexTags), pos: []argKind{argList, argList}},
	"envelope": {test: true, exts: []string{"envelope"}, tags: tags(matchCmp, addressPartTags), pos: []argKind{argList, argList}},
	"header":   {test: true, tags: tags(matchCmp, indexTags), pos: []argKind{argList, argList}},
	"exists":   {test: true, pos: []argKind{argList}},
	"size": {test: true, tags: map[string]tagSpec{
		"over":  {arg: argNumber, group: "size"},
		"under": {arg: argNumber, group: "size"},
	}},
	"allof": {test: true},
	"anyof": {test: true},
	"not":   {test: true},
	"true":  {test: true},
	"false": {test: true},
	"body": {test: true, exts: []string{"body"}, tags: tags(matchCmp, map[string]tagSpec{
		"raw":     {group: "transform"},
		"content": {arg: argList, group: "transform"},
		"text":    {group: "transform"},
	}), pos: []argKind{argList}},
	"string":  {test: true, exts: []string{"variables"}, tags: matchCmp, pos: []argKind{argList, argList}},
	"hasflag": {test: true, exts: []string{"imap4flags"}, tags: matchCmp, pos: []argKind{argList, argList}, opt: 1, optFirst: true},
	"date": {test: true, exts: []string{"date"}, tags: tags(matchCmp, indexTags, map[string]tagSpec{
		"zone":         {arg: argString, group: "zone"},
		"originalzone": {group: "zone"},
	}), pos: []argKind{argString, argString, argList}},
	"currentdate": {test: true, exts: []string{"date"}, tags: tags(matchCmp, map[string]tagSpec{
		"zone": {arg: argString, group: "zone"},
	}), pos: []argKind{argString, argList}},
	"mailboxexists": {test: true, exts: []string{"mailbox"}, pos: []argKind{argList}},
	"environment":   {test: true, exts: []string{"environment"}, tags: matchCmp, pos: []argKind{argString, argList}},
	"spamtest": {test: true, exts: []string{"spamtest"}, tags: tags(matchCmp, map[string]tagSpec{
		"percent": {ext: "spamtestplus"},
	}), pos: []argKind{argString}},
	"virustest": {test: true, exts: []string{"virustest"}, tags: matchCmp, pos: []argKind{argString}},
}

// Script is a parsed and validated sieve script, ready to run. It is
// immutable and may be run concurrently.
type Script struct {
	cmds []*node
	exts map[string]bool
	vars bool // variables: strings are expanded at run time
}

// Has reports whether the script requires the capability.
func (s *Script) Has(ext string) bool { return s.exts[ext] }

// node is a validated command or test.
type node struct {
	name  string
	pos   Pos
	tags  map[string]*arg
	args  []arg // positional; kind argNone for an omitted optional one
	tests []*node
	// if: branches, the last one with test nil for "else".
	branches []branch
	match    *matchSpec
}

type branch struct {
	test  *node
	block []*node
}

func (n *node) has(tag string) bool { _, ok := n.tags[tag]; return ok }

// Parse parses and validates a script. Errors are *Error with the line and
// column of the offending token.
func Parse(src string) (*Script, error) {
	s, err := parse(src)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func parse(src string) (*Script, *Error) {
	ast, err := parseAST(src)
	if err != nil {
		return nil, err
	}
	c := &compiler{exts: map[string]bool{}}
	// require commands come first (RFC 5228 section 3.2).
	i := 0
	for ; i < len(ast) && ast[i].name == "require"; i++ {
		if err := c.require(ast[i]); err != nil {
			return nil, err
		}
	}
	if c.exts["encoded-character"] {
		for _, a := range ast[i:] {
			if err := decodeAST(a); err != nil {
				return nil, err
			}
		}
	}
	cmds, err := c.block(ast[i:])
	if err != nil {
		return nil, err
	}
	return &Script{cmds: cmds, exts: c.exts, vars: c.exts["variables"]}, nil
}

// Check validates a script: syntax, known commands, tests and tags,
// extensions that are supported and required before use, argument types,
// constant arguments (regular expressions, addresses, header names, ...).
// It is what ManageSieve PUTSCRIPT and `mailstead sieve check` run.
func Check(src string) error {
	_, err := Parse(src)
	return err
}

type compiler struct {
	exts map[string]bool
}

func (c *compiler) has(ext string) bool { return c.exts[ext] }

func (c *compiler) require(a *astCmd) *Error {
	if a.hasBlock || len(a.tests) > 0 || len(a.args) != 1 || (a.args[0].kind != argString && a.args[0].kind != argList) {
		return errorf(a.pos, "require needs one string list of capabilities")
	}
	for _, e := range a.args[0].strs {
		e = strings.ToLower(e)
		if alwaysAvailable[e] {
			c.exts[e] = true
			continue
		}
		if !slices.Contains(Extensions, e) {
			return errorf(a.args[0].pos, "unsupported extension %q", e)
		}
		c.exts[e] = true
		for _, x := range implies[e] {
			c.exts[x] = true
		}
	}
	return nil
}

// block validates a list of commands, joining if/elsif/else chains.
func (c *compiler) block(cmds []*astCmd) ([]*node, *Error) {
	var out []*node
	var chain *node // the open if chain, nil if the previous command was not one
	for _, a := range cmds {
		switch a.name {
		case "require":
			return nil, errorf(a.pos, "require must come before any other command")
		case "if", "elsif", "else":
			if a.name != "if" && (chain == nil || chain.branches[len(chain.branches)-1].test == nil) {
				return nil, errorf(a.pos, "%s without a preceding if", a.name)
			}
			if !a.hasBlock {
				return nil, errorf(a.pos, "%s needs a block", a.name)
			}
			if len(a.args) > 0 {
				return nil, errorf(a.args[0].pos, "%s takes no arguments besides its test", a.name)
			}
			var t *node
			if a.name == "else" {
				if len(a.tests) > 0 {
					return nil, errorf(a.tests[0].pos, "else takes no test")
				}
			} else {
				if len(a.tests) != 1 || a.testList {
					return nil, errorf(a.pos, "%s needs exactly one test", a.name)
				}
				var err *Error
				if t, err = c.test(a.tests[0]); err != nil {
					return nil, err
				}
			}
			blk, err := c.block(a.block)
			if err != nil {
				return nil, err
			}
			if a.name == "if" {
				chain = &node{name: "if", pos: a.pos}
				out = append(out, chain)
			}
			chain.branches = append(chain.branches, branch{test: t, block: blk})
			if a.name == "else" {
				chain = nil
			}
			continue
		}
		chain = nil
		n, err := c.command(a)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func (c *compiler) lookup(a *astCmd, test bool) (*cmdSpec, *Error) {
	sp, ok := specs[a.name]
	if !ok {
		if a.name == "if" || a.name == "elsif" || a.name == "else" || a.name == "require" {
			return nil, errorf(a.pos, "%s is a command, not a test", a.name)
		}
		if test {
			return nil, errorf(a.pos, "unknown test %q", a.name)
		}
		return nil, errorf(a.pos, "unknown command %q", a.name)
	}
	if sp.test != test {
		if test {
			return nil, errorf(a.pos, "%s is a command, not a test", a.name)
		}
		return nil, errorf(a.pos, "%s is a test, not a command", a.name)
	}
	if sp.exts != nil && !slices.ContainsFunc(sp.exts, c.has) {
		return nil, errorf(a.pos, "%s needs require %q", a.name, sp.exts[0])
	}
	return sp, nil
}

func (c *compiler) command(a *astCmd) (*node, *Error) {
	sp, err := c.lookup(a, false)
	if err != nil {
		return nil, err
	}
	if a.hasBlock {
		return nil, errorf(a.pos, "%s takes no block", a.name)
	}
	if len(a.tests) > 0 {
		return nil, errorf(a.tests[0].pos, "%s takes no test", a.name)
	}
	n, err := c.args(a, sp)
	if err != nil {
		return nil, err
	}
	return n, c.checkCommand(n)
}

func (c *compiler) test(a *astCmd) (*node, *Error) {
	sp, err := c.lookup(a, true)
	if err != nil {
		return nil, err
	}
	n, err := c.args(a, sp)
	if err != nil {
		return nil, err
	}
	switch a.name {
	case "allof", "anyof":
		if !a.testList || len(a.tests) == 0 {
			return nil, errorf(a.pos, "%s needs a test list in parentheses", a.name)
		}
	case "not":
		if a.testList || len(a.tests) != 1 {
			return nil, errorf(a.pos, "not needs exactly one test")
		}
	default:
		if len(a.tests) > 0 {
			return nil, errorf(a.tests[0].pos, "%s takes no test", a.name)
		}
	}
	for _, t := range a.tests {
		tn, err := c.test(t)
		if err != nil {
			return nil, err
		}
		n.tests = append(n.tests, tn)
	}
	return n, c.checkTest(n)
}

// args matches the arguments of a against the spec: tags (in any order)
// first, then positional arguments.
func (c *compiler) args(a *astCmd, sp *cmdSpec) (*node, *Error) {
	n := &node{name: a.name, pos: a.pos, tags: map[string]*arg{}}
	groups := map[string]string{}
	i := 0
	for ; i < len(a.args) && a.args[i].kind == argTag; i++ {
		t := a.args[i]
		ts, ok := sp.tags[t.tag]
		if !ok {
			return nil, errorf(t.pos, "unknown tag :%s for %s", t.tag, a.name)
		}
		if ts.ext != "" && !c.has(ts.ext) {
			return nil, errorf(t.pos, "tag :%s needs require %q", t.tag, ts.ext)
		}
		if n.has(t.tag) {
			return nil, errorf(t.pos, "tag :%s given twice", t.tag)
		}
		if ts.group != "" {
			if other, ok := groups[ts.group]; ok {
				return nil, errorf(t.pos, "tags :%s and :%s exclude each other", other, t.tag)
			}
			groups[ts.group] = t.tag
		}
		if ts.arg == argNone {
			n.tags[t.tag] = &arg{kind: argTag, pos: t.pos, tag: t.tag}
			continue
		}
		i++
		if i >= len(a.args) || !argFits(a.args[i].kind, ts.arg) {
			return nil, errorf(t.pos, "tag :%s needs a %s argument", t.tag, kindName(ts.arg))
		}
		v := a.args[i]
		n.tags[t.tag] = &v
	}
	rest := a.args[i:]
	for _, r := range rest {
		if r.kind == argTag {
			if _, ok := sp.tags[r.tag]; ok {
				return nil, errorf(r.pos, "tag :%s must come before the other arguments of %s", r.tag, a.name)
			}
			return nil, errorf(r.pos, "unknown tag :%s for %s", r.tag, a.name)
		}
	}
	max := len(sp.pos)
	min := max - sp.opt
	if len(rest) < min || len(rest) > max {
		if min == max {
			return nil, errorf(a.pos, "%s needs %d positional argument%s, found %d", a.name, max, plural(max), len(rest))
		}
		return nil, errorf(a.pos, "%s needs %d to %d positional arguments, found %d", a.name, min, max, len(rest))
	}
	n.args = make([]arg, max)
	off := 0
	if sp.optFirst {
		off = max - len(rest)
	}
	for j, r := range rest {
		want := sp.pos[off+j]
		if !argFits(r.kind, want) {
			return nil, errorf(r.pos, "argument %d of %s must be a %s", off+j+1, a.name, kindName(want))
		}
		n.args[off+j] = r
	}
	return n, nil
}

func argFits(have, want argKind) bool {
	return have == want || have == argString && want == argList
}

func kindName(k argKind) string {
	switch k {
	case argNumber:
		return "number"
	case argString:
		return "string"
	case argList:
		return "string list"
	}
	return "tag"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// dynamic reports whether s is expanded at run time.
func (c *compiler) dynamic(s string) bool {
	return c.has("variables") && strings.Contains(s, "${")
}

func (c *compiler) constant(a *arg) bool {
	for _, s := range a.strs {
		if c.dynamic(s) {
			return false
		}
	}
	return true
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *compiler) varName(a *arg, what string) *Error {
	for _, s := range a.strs {
		if !identRE.MatchString(s) {
			return errorf(a.pos, "invalid %s %q", what, s)
		}
	}
	return nil
}

func (c *compiler) checkCommand(n *node) *Error {
	switch n.name {
	case "fileinto":
		if a := &n.args[0]; c.constant(a) {
			if err := checkMailbox(a.strs[0]); err != nil {
				return errorf(a.pos, "%s", err)
			}
		}
	case "redirect":
		if a := &n.args[0]; c.constant(a) {
			if _, err := address.Parse(a.strs[0]); err != nil {
				return errorf(a.pos, "redirect: invalid address %q", a.strs[0])
			}
		}
	case "setflag", "addflag", "removeflag":
		if v := &n.args[0]; v.kind != argNone {
			if !c.has("variables") {
				return errorf(v.pos, "%s with a variable name needs require \"variables\"", n.name)
			}
			if err := c.varName(v, "variable name"); err != nil {
				return err
			}
		}
	case "set":
		if err := c.varName(&n.args[0], "variable name"); err != nil {
			return err
		}
	case "vacation":
		if a := n.tags["from"]; a != nil && c.constant(a) {
			if _, err := parseMailbox(a.strs[0]); err != nil {
				return errorf(a.pos, "vacation :from: invalid address %q", a.strs[0])
			}
		}
		if a := n.tags["addresses"]; a != nil && c.constant(a) {
			for _, s := range a.strs {
				if _, err := parseMailbox(s); err != nil {
					return errorf(a.pos, "vacation :addresses: invalid address %q", s)
				}
			}
		}
	case "addheader":
		if a := &n.args[0]; c.constant(a) && !validFieldName(a.strs[0]) {
			return errorf(a.pos, "invalid header field name %q", a.strs[0])
		}
	case "deleteheader":
		if a := &n.args[0]; c.constant(a) && !validFieldName(a.strs[0]) {
			return errorf(a.pos, "invalid header field name %q", a.strs[0])
		}
		if n.has("last") && !n.has("index") {
			return errorf(n.tags["last"].pos, ":last needs :index")
		}
		if a := n.tags["index"]; a != nil && a.num < 1 {
			return errorf(a.pos, ":index must be at least 1")
		}
		return c.matchSpec(n, n.args[1].strs, &n.args[1])
	}
	return nil
}

func (c *compiler) checkTest(n *node) *Error {
	if n.has("last") && !n.has("index") {
		return errorf(n.tags["last"].pos, ":last needs :index")
	}
	if a := n.tags["index"]; a != nil && a.num < 1 {
		return errorf(a.pos, ":index must be at least 1")
	}
	switch n.name {
	case "size":
		if !n.has("over") && !n.has("under") {
			return errorf(n.pos, "size needs :over or :under")
		}
		return nil
	case "envelope":
		if a := &n.args[0]; c.constant(a) {
			for _, s := range a.strs {
				switch strings.ToLower(s) {
				case "from", "to", "auth":
				default:
					return errorf(a.pos, "unsupported envelope part %q", s)
				}
			}
		}
	case "hasflag":
		if v := &n.args[0]; v.kind != argNone {
			if !c.has("variables") {
				return errorf(v.pos, "hasflag with variable names needs require \"variables\"")
			}
			if err := c.varName(v, "variable name"); err != nil {
				return err
			}
		}
	case "date", "currentdate":
		part := &n.args[0]
		if n.name == "date" {
			part = &n.args[1]
		}
		if c.constant(part) && !validDatePart(part.strs[0]) {
			return errorf(part.pos, "unknown date part %q", part.strs[0])
		}
		if z := n.tags["zone"]; z != nil && c.constant(z) {
			if _, ok := parseZone(z.strs[0]); !ok {
				return errorf(z.pos, "invalid time zone %q (use +hhmm or -hhmm)", z.strs[0])
			}
		}
	case "allof", "anyof", "not", "true", "false", "exists", "mailboxexists":
		return nil
	}
	switch n.name {
	case "address", "envelope", "header", "body", "string", "hasflag", "date", "currentdate", "environment", "spamtest", "virustest":
		keys := &n.args[len(n.args)-1]
		return c.matchSpec(n, keys.strs, keys)
	}
	return nil
}

// matchSpec validates and compiles the comparator and match type of n for
// the given keys.
func (c *compiler) matchSpec(n *node, keys []string, keyArg *arg) *Error {
	m := &matchSpec{cmp: cmpASCIICasemap, typ: mIs}
	if a := n.tags["comparator"]; a != nil {
		name := strings.ToLower(a.strs[0])
		cmp, ok := comparators[name]
		if !ok {
			return errorf(a.pos, "unknown comparator %q", a.strs[0])
		}
		if !alwaysAvailable["comparator-"+name] && !c.has("comparator-"+name) {
			return errorf(a.pos, "comparator %q needs require %q", name, "comparator-"+name)
		}
		m.cmp = cmp
	}
	switch {
	case n.has("contains"):
		m.typ = mContains
	case n.has("matches"):
		m.typ = mMatches
	case n.has("regex"):
		m.typ = mRegex
	case n.has("count"), n.has("value"):
		a := n.tags["count"]
		m.typ = mCount
		if a == nil {
			a = n.tags["value"]
			m.typ = mValue
		}
		rel, ok := relOps[strings.ToLower(a.strs[0])]
		if !ok {
			return errorf(a.pos, "unknown relational operator %q", a.strs[0])
		}
		m.rel = rel
	}
	if m.cmp == cmpASCIINumeric && (m.typ == mContains || m.typ == mMatches || m.typ == mRegex) {
		return errorf(n.pos, "comparator i;ascii-numeric does not support this match type")
	}
	if m.typ == mRegex && keyArg != nil {
		m.regex = make([]*regexp.Regexp, len(keys))
		m.regexSrc = make([]string, len(keys))
		for i, k := range keys {
			if c.dynamic(k) {
				continue
			}
			re, err := compileRegex(k, m.cmp)
			if err != nil {
				return errorf(keyArg.pos, "%s", err)
			}
			m.regex[i], m.regexSrc[i] = re, k
		}
	}
	n.match = m
	return nil
}

// maxRegexLen and maxRegexInsts bound regular expressions. Go's regexp
// runs in time linear in the input, so the size of the compiled program is
// all that needs a bound.
const (
	maxRegexLen   = 4096
	maxRegexInsts = 20000
)

// compileRegex compiles a :regex key.
//
// RFC draft-ietf-sieve-regex specifies POSIX extended regular expressions.
// We use Go's RE2 syntax (regexp, linear time, no catastrophic
// backtracking) with leftmost-longest matching as POSIX requires. RE2
// accepts every ERE construct scripts use in practice (alternation,
// groups, bracket expressions with [:classes:], interval repetition up to
// 1000) and more (\d, \w, \s, non-greedy operators, (?i) flags). The
// differences: a backslash inside a bracket expression is an escape in RE2
// but a literal in ERE, so "[\]" must be written "[\\]"; GNU extensions
// \< \> and back-references \1 are not supported (scripts using them fail
// validation, not silently at delivery); and matching is on UTF-8 code
// points rather than bytes. The case-insensitive comparators add the (?i)
// flag, so "i;ascii-casemap" (the default) matches upper-case patterns
// against lower-case text and vice versa — the case go-sieve gets wrong.
func compileRegex(pat string, cmp comparator) (*regexp.Regexp, error) {
	if len(pat) > maxRegexLen {
		return nil, errorf(Pos{}, "regular expression longer than %d bytes", maxRegexLen)
	}
	flags := syntax.Perl
	if cmp == cmpASCIICasemap || cmp == cmpUnicodeCasemap {
		flags |= syntax.FoldCase
	}
	re, err := syntax.Parse(pat, flags)
	if err != nil {
		return nil, errorf(Pos{}, "invalid regular expression %q: %v", pat, err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, errorf(Pos{}, "invalid regular expression %q: %v", pat, err)
	}
	if len(prog.Inst) > maxRegexInsts {
		return nil, errorf(Pos{}, "regular expression %q too complex", pat)
	}
	prefix := ""
	if flags&syntax.FoldCase != 0 {
		prefix = "(?i)"
	}
	rx, err := regexp.Compile(prefix + pat)
	if err != nil {
		return nil, errorf(Pos{}, "invalid regular expression %q: %v", pat, err)
	}
	rx.Longest()
	return rx, nil
}

// checkMailbox validates a fileinto mailbox name.
func checkMailbox(name string) error {
	if name == "" {
		return errorf(Pos{}, "fileinto: empty mailbox name")
	}
	if len(name) > 1000 {
		return errorf(Pos{}, "fileinto: mailbox name too long")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errorf(Pos{}, "fileinto: control character in mailbox name %q", name)
		}
	}
	return nil
}

// validFieldName reports whether s is a header field name (RFC 5322
// ftext: printable ASCII except colon).
func validFieldName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return true
}

// decodeAST applies the encoded-character extension (RFC 5228 section
// 2.4.2.4) to every string of a.
func decodeAST(a *astCmd) *Error {
	for i := range a.args {
		for j, s := range a.args[i].strs {
			d, err := decodeEncodedChars(s)
			if err != nil {
				return errorf(a.args[i].pos, "%s", err)
			}
			a.args[i].strs[j] = d
		}
	}
	for _, t := range a.tests {
		if err := decodeAST(t); err != nil {
			return err
		}
	}
	for _, b := range a.block {
		if err := decodeAST(b); err != nil {
			return err
		}
	}
	return nil
}

// decodeEncodedChars replaces "${hex:...}" and "${unicode:...}" sequences.
// Malformed sequences are left as they are; a "unicode" sequence naming a
// surrogate or a value beyond U+10FFFF is an error.
func decodeEncodedChars(s string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		end := strings.IndexByte(rest, '}')
		colon := strings.IndexByte(rest, ':')
		if end < 0 || colon < 0 || colon > end {
			b.WriteString("${")
			s = rest
			continue
		}
		kind := strings.ToLower(rest[:colon])
		body := rest[colon+1 : end]
		if kind != "hex" && kind != "unicode" {
			b.WriteString("${")
			s = rest
			continue
		}
		out, ok, err := decodeSeq(kind, body)
		if err != nil {
			return "", err
		}
		if !ok {
			b.WriteString("${")
			s = rest
			continue
		}
		b.WriteString(out)
		s = rest[end+1:]
	}
}

func decodeSeq(kind, body string) (string, bool, error) {
	fields := strings.FieldsFunc(body, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' })
	if len(fields) == 0 {
		return "", false, nil
	}
	var b strings.Builder
	for _, f := range fields {
		if kind == "hex" {
			if len(f) > 2 {
				return "", false, nil
			}
			v, err := strconv.ParseUint(f, 16, 8)
			if err != nil {
				return "", false, nil
			}
			b.WriteByte(byte(v))
			continue
		}
		if len(f) > 8 {
			// Leading zeroes are allowed, up to a sane length.
			t := strings.TrimLeft(f, "0")
			if len(t) > 6 {
				return "", false, errorf(Pos{}, "invalid unicode character %q", f)
			}
			f = t
			if f == "" {
				f = "0"
			}
		}
		v, err := strconv.ParseUint(f, 16, 32)
		if err != nil {
			return "", false, nil
		}
		if v > utf8.MaxRune || v >= 0xd800 && v <= 0xdfff {
			return "", false, errorf(Pos{}, "invalid unicode character U+%X", v)
		}
		b.WriteRune(rune(v))
	}
	return b.String(), true, nil
}
