package managesieve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// errProtocol is a request the server cannot parse; the session answers
// NO (or BYE when the stream cannot be resynchronised).
type errProtocol struct {
	msg   string
	fatal bool // the input stream position is lost: end the session
}

func (e *errProtocol) Error() string { return e.msg }

func protoErr(fatal bool, format string, args ...any) error {
	return &errProtocol{msg: fmt.Sprintf(format, args...), fatal: fatal}
}

// argKind tells an atom (command names, numbers) from a string (quoted or
// literal).
type argKind uint8

const (
	kAtom argKind = iota
	kString
)

type token struct {
	kind argKind
	s    string
}

// reader reads ManageSieve requests (RFC 5804 section 4): a command atom,
// then atoms, numbers, quoted strings and literals ({n+} or {n}), ending
// with CRLF. Lines and literals are bounded.
type reader struct {
	br         *bufio.Reader
	maxLine    int
	maxLiteral int64
}

// readLine reads one line without its CRLF (or LF).
func (r *reader) readLine() (string, error) {
	var b []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(b)+len(chunk) > r.maxLine {
			// Drain nothing more: the session ends.
			return "", protoErr(true, "line longer than %d bytes", r.maxLine)
		}
		b = append(b, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return "", err
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// readCommand reads one request. It returns nil tokens for an empty line.
func (r *reader) readCommand() ([]token, error) {
	line, err := r.readLine()
	if err != nil {
		return nil, err
	}
	var toks []token
	total := 0
	for {
		rest, lit, err := scanLine(line, &toks)
		if err != nil {
			return nil, err
		}
		if lit < 0 {
			if rest != "" {
				return nil, protoErr(false, "unexpected text %q", rest)
			}
			return toks, nil
		}
		if int64(lit) > r.maxLiteral || total+lit > 2*int(r.maxLiteral) {
			return nil, protoErr(true, "literal larger than %d bytes", r.maxLiteral)
		}
		total += lit
		buf := make([]byte, lit)
		if _, err := io.ReadFull(r.br, buf); err != nil {
			return nil, err
		}
		toks = append(toks, token{kind: kString, s: string(buf)})
		if len(toks) > maxArgs {
			return nil, protoErr(true, "too many arguments")
		}
		if line, err = r.readLine(); err != nil {
			return nil, err
		}
	}
}

// maxArgs bounds the tokens of one request; no command takes more than
// three arguments.
const maxArgs = 8

// scanLine appends the tokens of line to toks. When the line ends with a
// literal announcement it returns the literal's length, else -1; rest is
// unparsed text.
func scanLine(line string, toks *[]token) (rest string, lit int, err error) {
	s := line
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return "", -1, nil
		}
		if len(*toks) >= maxArgs {
			return "", -1, protoErr(false, "too many arguments")
		}
		switch c := s[0]; {
		case c == '"':
			v, n, err := quoted(s)
			if err != nil {
				return "", -1, err
			}
			*toks = append(*toks, token{kind: kString, s: v})
			s = s[n:]
		case c == '{':
			end := strings.IndexByte(s, '}')
			if end < 0 || end != len(s)-1 {
				return "", -1, protoErr(true, "malformed literal")
			}
			num := strings.TrimSuffix(s[1:end], "+")
			n, err := strconv.Atoi(num)
			if err != nil || n < 0 || num == "" || len(num) > 10 {
				return "", -1, protoErr(true, "malformed literal length")
			}
			return "", n, nil
		case isAtomChar(c):
			i := 0
			for i < len(s) && isAtomChar(s[i]) {
				i++
			}
			*toks = append(*toks, token{kind: kAtom, s: s[:i]})
			s = s[i:]
		default:
			return s, -1, nil
		}
		if s != "" && s[0] != ' ' {
			return s, -1, nil
		}
	}
}

func isAtomChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// quoted parses a quoted string at the start of s: only \" and \\ are
// escapes (RFC 5804 section 4, QUOTED-SPECIALS).
func quoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(s) || s[i+1] != '"' && s[i+1] != '\\' {
				return "", 0, protoErr(false, "invalid escape in quoted string")
			}
			i++
			b.WriteByte(s[i])
		case 0:
			return "", 0, protoErr(false, "NUL in quoted string")
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, protoErr(false, "unterminated quoted string")
}

// quote renders s as a quoted string, or as a literal when it holds line
// breaks or is long (RFC 5804 section 4).
func quote(s string) string {
	if len(s) > 1024 || strings.ContainsAny(s, "\r\n\x00") {
		return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}
