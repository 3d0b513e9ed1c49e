package message

import (
	"strings"
)

// Placeholders for address parts missing from a header, as Dovecot uses
// them: an empty host would make the address look like a group start in
// ENVELOPE (RFC 3501), and an empty mailbox like a group end.
const (
	MissingMailbox = "MISSING_MAILBOX"
	MissingHost    = "MISSING_DOMAIN"
)

// maxAddrs bounds the addresses parsed from one header field.
const maxAddrs = 4096

// atok is a lexical token of an address header.
type atok struct {
	kind byte   // 'a' atom, 'q' quoted string, 'd' domain literal, 'c' comment, or one of <>@,:;.
	text string // atom, unquoted string, literal with brackets, comment content
	sp   bool   // preceded by white space or a comment
}

// ParseAddressList parses an RFC 5322 address-list (From, To, Cc, ...) into
// ENVELOPE addresses. It never fails: groups, quoted and encoded-word
// display names (kept raw), comments (the last one serves as name when
// there is no display name), obsolete routes and missing hosts are handled,
// and anything unparsable degrades to a mailbox-only address. Missing
// mailbox or host parts are filled with MissingMailbox/MissingHost. Names are
// returned with quotes removed and white space runs collapsed; invalid UTF-8
// is taken as windows-1252.
func ParseAddressList(s string) []Address {
	addrs, _ := parseAddressList(s, nil)
	return addrs
}

// parseAddressList is ParseAddressList with a reusable token buffer, which
// it returns.
func parseAddressList(s string, toks []atok) ([]Address, []atok) {
	if len(s) > maxFieldLen {
		s = s[:maxFieldLen]
	}
	s = textString(s)
	toks = tokenizeAddr(s, toks[:0])
	var out []Address
	inGroup := false
	for i := 0; i < len(toks) && len(out) < maxAddrs; {
		j := i
		for j < len(toks) {
			k := toks[j].kind
			if k == ',' || k == ';' || k == ':' || k == '<' {
				break
			}
			j++
		}
		if j < len(toks) && toks[j].kind == ':' {
			if !inGroup {
				name := phrase(toks[i:j])
				if name == "" {
					name = MissingMailbox
				}
				out = append(out, Address{Mailbox: name})
				inGroup = true
			}
			// A ':' inside a group is stray; what precedes it is dropped.
			i = j + 1
			continue
		}
		if j < len(toks) && toks[j].kind == '<' {
			k := j + 1
			for k < len(toks) && toks[k].kind != '>' {
				k++
			}
			a := angleAddr(toks[j+1 : k])
			a.Name = phrase(toks[i:j])
			m := k
			for m < len(toks) && toks[m].kind != ',' && toks[m].kind != ';' {
				m++
			}
			if a.Name == "" {
				a.Name = lastComment(toks[i:m])
			}
			out = appendAddr(out, a)
			j = m
		} else if a, ok := addrSpec(toks[i:j]); ok {
			out = appendAddr(out, a)
		}
		if j < len(toks) && toks[j].kind == ';' && inGroup {
			out = append(out, Address{GroupEnd: true})
			inGroup = false
		}
		i = j + 1
	}
	if inGroup {
		out = append(out, Address{GroupEnd: true})
	}
	return out, toks
}

// appendAddr appends a mailbox, filling missing parts; an entirely empty
// address (as from "<>") is dropped.
func appendAddr(out []Address, a Address) []Address {
	if a.Mailbox == "" && a.Host == "" && a.Name == "" && a.Adl == "" {
		return out
	}
	if a.Mailbox == "" {
		a.Mailbox = MissingMailbox
	}
	if a.Host == "" {
		a.Host = MissingHost
	}
	return append(out, a)
}

func tokenizeAddr(s string, toks []atok) []atok {
	sp := false
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case ' ', '\t', '\r', '\n', ')':
			// A stray ')' is dropped like white space.
			sp = true
			i++
			continue
		case '(':
			e := commentEnd(s[i:])
			inner := s[i+1 : i+e]
			inner = strings.TrimSuffix(inner, ")")
			toks = append(toks, atok{kind: 'c', text: strings.TrimSpace(inner), sp: sp})
			sp = true
			i += e
			continue
		case '"':
			v, rest := quotedString(s[i:])
			toks = append(toks, atok{kind: 'q', text: v, sp: sp})
			i = len(s) - len(rest)
		case '[':
			e := strings.IndexByte(s[i:], ']')
			if e < 0 {
				e = len(s) - i
			} else {
				e++
			}
			toks = append(toks, atok{kind: 'd', text: s[i : i+e], sp: sp})
			i += e
		case '<', '>', '@', ',', ':', ';', '.':
			toks = append(toks, atok{kind: c, text: s[i : i+1], sp: sp})
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n()\"[<>@,:;.", rune(s[j])) {
				j++
			}
			toks = append(toks, atok{kind: 'a', text: s[i:j], sp: sp})
			i = j
		}
		sp = false
	}
	return toks
}

// phrase joins the words of a display name, with single spaces where the
// header had white space or comments.
func phrase(toks []atok) string {
	var sb strings.Builder
	for _, t := range toks {
		if t.kind == 'c' {
			continue
		}
		if t.sp && sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(t.text)
	}
	return strings.TrimSpace(sb.String())
}

// concat joins tokens without white space, as in local parts and domains.
func concat(toks []atok) string {
	n, words := 0, 0
	last := ""
	for _, t := range toks {
		if t.kind != 'c' {
			n += len(t.text)
			words++
			last = t.text
		}
	}
	if words <= 1 {
		return last
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, t := range toks {
		if t.kind != 'c' {
			sb.WriteString(t.text)
		}
	}
	return sb.String()
}

func lastComment(toks []atok) string {
	for i := len(toks) - 1; i >= 0; i-- {
		if toks[i].kind == 'c' && toks[i].text != "" {
			return strings.Join(strings.Fields(toks[i].text), " ")
		}
	}
	return ""
}

func index(toks []atok, kind byte) int {
	for i, t := range toks {
		if t.kind == kind {
			return i
		}
	}
	return -1
}

// angleAddr parses what is between < and >: [obs-route ":"] addr-spec.
func angleAddr(toks []atok) Address {
	var a Address
	if first := firstNonComment(toks); first >= 0 && toks[first].kind == '@' {
		if c := index(toks, ':'); c >= 0 {
			a.Adl = concat(toks[:c])
			toks = toks[c+1:]
		}
	}
	if at := index(toks, '@'); at >= 0 {
		a.Mailbox = concat(toks[:at])
		a.Host = concat(toks[at+1:])
	} else {
		a.Mailbox = concat(toks)
	}
	return a
}

func firstNonComment(toks []atok) int {
	for i, t := range toks {
		if t.kind != 'c' {
			return i
		}
	}
	return -1
}

// addrSpec parses an address without angle brackets: local@domain with an
// optional trailing comment as name. Words separated by white space before
// the local part (a display name missing its angle brackets) become the
// name.
func addrSpec(toks []atok) (Address, bool) {
	var a Address
	comment := lastComment(toks)
	nc := toks
	if comment != "" || index(toks, 'c') >= 0 {
		nc = make([]atok, 0, len(toks))
		for _, t := range toks {
			if t.kind != 'c' {
				nc = append(nc, t)
			}
		}
	}
	if len(nc) == 0 {
		return a, false
	}
	at := index(nc, '@')
	if at < 0 {
		a.Mailbox = phrase(nc)
		a.Name = comment
		return a, true
	}
	// The local part is the run of tokens before '@' not separated by
	// white space (dots may have white space around them, obs-local-part).
	ls := at
	for ls > 0 && (ls == at || !nc[ls].sp || nc[ls].kind == '.' || nc[ls-1].kind == '.') {
		ls--
	}
	a.Mailbox = concat(nc[ls:at])
	a.Host = concat(nc[at+1:])
	a.Name = phrase(nc[:ls])
	if a.Name == "" {
		a.Name = comment
	}
	return a, true
}
