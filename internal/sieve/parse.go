package sieve

import (
	"unicode/utf8"
)

// Limits of scripts. They bound the work of parsing and running a script
// whatever its author wrote; real-world scripts stay far below them.
const (
	// MaxScriptSize is the largest script accepted (as the store's limit).
	MaxScriptSize = 1 << 20
	// MaxStringLen bounds one string literal and one expanded string.
	MaxStringLen = 128 << 10
	// MaxListLen bounds the strings in one string list.
	MaxListLen = 1024
	// MaxDepth bounds the nesting of blocks and tests.
	MaxDepth = 32
	// MaxCommands bounds the commands and tests of a script.
	MaxCommands = 20000

	maxNumber = 1<<63 - 1
)

type argKind uint8

const (
	argNone argKind = iota
	argTag
	argNumber
	argString
	argList
)

// arg is one argument of a command or test as written.
type arg struct {
	kind argKind
	pos  Pos
	tag  string   // argTag: lower-cased, without ":"
	num  int64    // argNumber
	strs []string // argString: one element; argList: the elements
}

// astCmd is a command or test as parsed, before validation.
type astCmd struct {
	name     string // lower-cased
	pos      Pos
	args     []arg
	tests    []*astCmd // a test or a test list
	testList bool      // tests were given in parentheses
	block    []*astCmd
	hasBlock bool
}

type parser struct {
	lex   *lexer
	tok   token
	peekd bool
	nodes int
}

func (p *parser) next() (token, *Error) {
	if p.peekd {
		p.peekd = false
		return p.tok, nil
	}
	t, err := p.lex.next()
	p.tok = t
	return t, err
}

func (p *parser) peek() (token, *Error) {
	if p.peekd {
		return p.tok, nil
	}
	t, err := p.lex.next()
	if err != nil {
		return t, err
	}
	p.tok = t
	p.peekd = true
	return t, nil
}

// parseAST parses the script's syntax (RFC 5228 section 8.2).
func parseAST(src string) ([]*astCmd, *Error) {
	if len(src) > MaxScriptSize {
		return nil, &Error{Msg: "script larger than 1 MiB"}
	}
	if !utf8.ValidString(src) {
		l := newLexer(src)
		for i := 0; i < len(src); {
			r, w := utf8.DecodeRuneInString(src[i:])
			if r == utf8.RuneError && w == 1 {
				l.off = i
				return nil, errorf(l.pos(i), "script is not valid UTF-8")
			}
			if src[i] == '\n' {
				l.newline(i)
			}
			i += w
		}
	}
	p := &parser{lex: newLexer(src)}
	cmds, err := p.commands(0)
	if err != nil {
		return nil, err
	}
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tEOF {
		return nil, errorf(t.pos, "unexpected %s", t.kind)
	}
	return cmds, nil
}

// commands parses commands up to "}" or the end of the script.
func (p *parser) commands(depth int) ([]*astCmd, *Error) {
	var out []*astCmd
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind == tEOF || t.kind == tRBrace {
			return out, nil
		}
		c, err := p.command(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func (p *parser) count(pos Pos) *Error {
	p.nodes++
	if p.nodes > MaxCommands {
		return errorf(pos, "script has more than %d commands and tests", MaxCommands)
	}
	return nil
}

func (p *parser) command(depth int) (*astCmd, *Error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tIdent {
		return nil, errorf(t.pos, "expected a command, found %s", t.kind)
	}
	if err := p.count(t.pos); err != nil {
		return nil, err
	}
	c := &astCmd{name: t.text, pos: t.pos}
	if err := p.arguments(c, depth); err != nil {
		return nil, err
	}
	t, err = p.next()
	if err != nil {
		return nil, err
	}
	switch t.kind {
	case tSemi:
		return c, nil
	case tLBrace:
		if depth+1 > MaxDepth {
			return nil, errorf(t.pos, "blocks nested deeper than %d", MaxDepth)
		}
		c.hasBlock = true
		c.block, err = p.commands(depth + 1)
		if err != nil {
			return nil, err
		}
		t, err = p.next()
		if err != nil {
			return nil, err
		}
		if t.kind != tRBrace {
			return nil, errorf(t.pos, `expected "}", found %s`, t.kind)
		}
		return c, nil
	}
	return nil, errorf(t.pos, `expected ";" or a block after command %q, found %s`, c.name, t.kind)
}

// arguments parses arguments and an optional test or test list into c.
func (p *parser) arguments(c *astCmd, depth int) *Error {
	for {
		t, err := p.peek()
		if err != nil {
			return err
		}
		switch t.kind {
		case tTag:
			p.next()
			c.args = append(c.args, arg{kind: argTag, pos: t.pos, tag: t.text})
		case tNumber:
			p.next()
			c.args = append(c.args, arg{kind: argNumber, pos: t.pos, num: t.num})
		case tString:
			p.next()
			c.args = append(c.args, arg{kind: argString, pos: t.pos, strs: []string{t.text}})
		case tLBrack:
			p.next()
			a, err := p.stringList(t.pos)
			if err != nil {
				return err
			}
			c.args = append(c.args, a)
		case tIdent:
			if depth+1 > MaxDepth {
				return errorf(t.pos, "tests nested deeper than %d", MaxDepth)
			}
			tc, err := p.test(depth + 1)
			if err != nil {
				return err
			}
			c.tests = []*astCmd{tc}
			return nil
		case tLParen:
			if depth+1 > MaxDepth {
				return errorf(t.pos, "tests nested deeper than %d", MaxDepth)
			}
			p.next()
			c.testList = true
			for {
				tc, err := p.test(depth + 1)
				if err != nil {
					return err
				}
				c.tests = append(c.tests, tc)
				t, err := p.next()
				if err != nil {
					return err
				}
				if t.kind == tRParen {
					return nil
				}
				if t.kind != tComma {
					return errorf(t.pos, `expected "," or ")" in test list, found %s`, t.kind)
				}
			}
		default:
			return nil
		}
	}
}

func (p *parser) stringList(pos Pos) (arg, *Error) {
	a := arg{kind: argList, pos: pos}
	for {
		t, err := p.next()
		if err != nil {
			return a, err
		}
		if t.kind != tString {
			return a, errorf(t.pos, "expected a string in string list, found %s", t.kind)
		}
		if len(a.strs) >= MaxListLen {
			return a, errorf(t.pos, "string list longer than %d", MaxListLen)
		}
		a.strs = append(a.strs, t.text)
		t, err = p.next()
		if err != nil {
			return a, err
		}
		if t.kind == tRBrack {
			return a, nil
		}
		if t.kind != tComma {
			return a, errorf(t.pos, `expected "," or "]" in string list, found %s`, t.kind)
		}
	}
}

func (p *parser) test(depth int) (*astCmd, *Error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tIdent {
		return nil, errorf(t.pos, "expected a test, found %s", t.kind)
	}
	if err := p.count(t.pos); err != nil {
		return nil, err
	}
	c := &astCmd{name: t.text, pos: t.pos}
	if err := p.arguments(c, depth); err != nil {
		return nil, err
	}
	return c, nil
}
