package message

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Header fields the parser keeps. Content fields are read for every part,
// envelope fields only for message roots.
const (
	fContentType = iota
	fContentTransferEncoding
	fContentID
	fContentDescription
	fContentDisposition
	fContentLanguage
	fContentLocation
	fContentMD5
	numContentFields

	fDate = iota - 1
	fSubject
	fFrom
	fSender
	fReplyTo
	fTo
	fCc
	fBcc
	fInReplyTo
	fMessageID
	numFields
)

var fieldIDs = map[string]int{
	"content-type":              fContentType,
	"content-transfer-encoding": fContentTransferEncoding,
	"content-id":                fContentID,
	"content-description":       fContentDescription,
	"content-disposition":       fContentDisposition,
	"content-language":          fContentLanguage,
	"content-location":          fContentLocation,
	"content-md5":               fContentMD5,
	"date":                      fDate,
	"subject":                   fSubject,
	"from":                      fFrom,
	"sender":                    fSender,
	"reply-to":                  fReplyTo,
	"to":                        fTo,
	"cc":                        fCc,
	"bcc":                       fBcc,
	"in-reply-to":               fInReplyTo,
	"message-id":                fMessageID,
}

// hdr collects the unfolded values of the interesting fields of one header.
// The first occurrence of a field wins. Its buffer is reused across parts.
type hdr struct {
	buf  []byte
	seen [numFields]bool
	span [numFields][2]int // value's start and end in buf
	cur  int               // field being collected, -1 for none
}

func (h *hdr) reset() {
	h.buf = h.buf[:0]
	h.seen = [numFields]bool{}
	h.cur = -1
}

func (h *hdr) start(id int, v []byte) {
	h.seen[id] = true
	h.cur = id
	n := len(h.buf)
	h.span[id] = [2]int{n, n}
	h.add(v)
}

// add appends a piece of the current field's value (a continuation line
// without its line break: unfolding keeps the leading white space).
func (h *hdr) add(v []byte) {
	if h.cur < 0 {
		return
	}
	sp := &h.span[h.cur]
	room := maxFieldLen - (sp[1] - sp[0])
	if room <= 0 {
		return
	}
	if len(v) > room {
		v = v[:room]
	}
	h.buf = append(h.buf, v...)
	sp[1] = len(h.buf)
}

func (h *hdr) value(id int) []byte {
	if !h.seen[id] {
		return nil
	}
	return bytes.TrimSpace(h.buf[h.span[id][0]:h.span[id][1]])
}

// readHeader reads header lines up to and including the blank line. It
// returns the body start and the newlines before it. If the header ends
// without a blank line, at a boundary delimiter or the end of input, ended
// is set and e tells where.
func (p *parser) readHeader(msgRoot bool) (bs, bsNL int64, e endInfo, ended bool) {
	h := &p.h
	h.reset()
	s := &p.s
	for s.next() {
		l := s.line
		if !s.atStart {
			h.add(l[:len(l)-eolLen(l)])
			continue
		}
		if lvl, cl := p.delim(); lvl >= 0 {
			e = s.endBefore(lvl, cl)
			return e.off, e.nl, e, true
		}
		eol := eolLen(l)
		if len(l) == eol {
			// The blank line; eol > 0 as lines are never empty.
			return s.off + int64(len(l)), s.nl + 1, endInfo{}, false
		}
		content := l[:len(l)-eol]
		if content[0] == ' ' || content[0] == '\t' {
			h.add(content)
			continue
		}
		h.cur = -1
		colon := bytes.IndexByte(content, ':')
		if colon <= 0 {
			continue // Not a header field (e.g. an mbox From line): ignored.
		}
		id := lookupField(content[:colon])
		if id < 0 || h.seen[id] || (id >= numContentFields && !msgRoot) {
			continue
		}
		h.start(id, content[colon+1:])
	}
	e = s.endEOF()
	return e.off, e.nl, e, true
}

// lookupField returns the id of a kept header field name, or -1.
func lookupField(name []byte) int {
	name = bytes.TrimRight(name, " \t")
	var lb [32]byte
	if len(name) > len(lb) {
		return -1
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lb[i] = c
	}
	id, ok := fieldIDs[string(lb[:len(name)])]
	if !ok {
		return -1
	}
	return id
}

// applyHeader fills part from the collected header fields and returns the
// multipart boundary, if any.
func (p *parser) applyHeader(part *Part, inDigest, msgRoot bool) (boundary string) {
	h := &p.h
	part.MediaType, part.MediaSubtype = defaultType, defaultSubtype
	if inDigest {
		part.MediaType, part.MediaSubtype = "message", "rfc822"
	}
	if v := h.value(fContentType); v != nil {
		t, st, params, ok := parseContentType(v)
		if ok {
			part.MediaType, part.MediaSubtype = t, st
		}
		part.Params = params
		if part.MediaType == "multipart" {
			boundary = paramValue(params, "boundary")
		}
	}
	if v := h.value(fContentTransferEncoding); v != nil {
		part.Encoding = text(firstToken(v))
	}
	if v := h.value(fContentID); v != nil {
		part.ContentID = text(v)
	}
	if v := h.value(fContentDescription); v != nil {
		part.ContentDescription = text(v)
	}
	if v := h.value(fContentDisposition); v != nil {
		d, params := parseDisposition(v)
		part.Disposition = d
		part.DispositionParams = params
	}
	if v := h.value(fContentLanguage); v != nil {
		part.Language = parseLanguage(v)
	}
	if v := h.value(fContentLocation); v != nil {
		part.Location = text(v)
	}
	if v := h.value(fContentMD5); v != nil {
		part.MD5 = text(v)
	}
	if msgRoot {
		env := &Envelope{
			Date:      text(h.value(fDate)),
			Subject:   text(h.value(fSubject)),
			From:      p.addrs(h.value(fFrom)),
			Sender:    p.addrs(h.value(fSender)),
			ReplyTo:   p.addrs(h.value(fReplyTo)),
			To:        p.addrs(h.value(fTo)),
			Cc:        p.addrs(h.value(fCc)),
			Bcc:       p.addrs(h.value(fBcc)),
			InReplyTo: text(h.value(fInReplyTo)),
			MessageID: text(h.value(fMessageID)),
		}
		// RFC 3501: an absent or empty Sender or Reply-To is reported as
		// From.
		if len(env.Sender) == 0 {
			env.Sender = env.From
		}
		if len(env.ReplyTo) == 0 {
			env.ReplyTo = env.From
		}
		part.Envelope = env
	}
	return boundary
}

func (p *parser) addrs(v []byte) []Address {
	if len(v) == 0 {
		return nil
	}
	var a []Address
	a, p.toks = parseAddressList(text(v), p.toks)
	return a
}

// text converts header bytes to a string. Bytes that are not UTF-8 are
// taken as windows-1252 (a superset of ISO-8859-1, the most common legacy
// raw header charset), so the summary is always valid UTF-8 and survives
// JSON unchanged.
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return latin1ToUTF8(b)
}

func textString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return latin1ToUTF8([]byte(s))
}

func latin1ToUTF8(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			sb.WriteRune(charmap.Windows1252.DecodeByte(b[0]))
			b = b[1:]
			continue
		}
		sb.Write(b[:n])
		b = b[n:]
	}
	return sb.String()
}

// firstToken returns v up to the first white space, ';' or comment.
func firstToken(v []byte) []byte {
	if i := bytes.IndexAny(v, " \t;("); i >= 0 {
		v = v[:i]
	}
	return v
}

// parseContentType parses "type/subtype; params". ok is false when the
// type is syntactically invalid; RFC 2045 then says to assume text/plain.
// Parameters are returned even then.
func parseContentType(v []byte) (typ, sub string, params [][2]string, ok bool) {
	s := skipCFWS(string(v))
	i := 0
	for i < len(s) && isToken(s[i]) {
		i++
	}
	t := s[:i]
	s = skipCFWS(s[i:])
	var st string
	if len(s) > 0 && s[0] == '/' {
		s = skipCFWS(s[1:])
		j := 0
		for j < len(s) && isToken(s[j]) {
			j++
		}
		st = s[:j]
		s = s[j:]
	}
	if k := strings.IndexByte(s, ';'); k >= 0 {
		params = parseParams(s[k+1:])
	}
	if t == "" || st == "" {
		return "", "", params, false
	}
	return textString(strings.ToLower(t)), textString(strings.ToLower(st)), params, true
}

func parseDisposition(v []byte) (string, [][2]string) {
	s := skipCFWS(string(v))
	i := 0
	for i < len(s) && isToken(s[i]) {
		i++
	}
	d := textString(strings.ToLower(s[:i]))
	var params [][2]string
	if k := strings.IndexByte(s[i:], ';'); k >= 0 {
		params = parseParams(s[i+k+1:])
	}
	return d, params
}

func parseLanguage(v []byte) []string {
	var out []string
	s := string(v)
	for len(s) > 0 && len(out) < 100 {
		s = skipCFWS(s)
		i := 0
		for i < len(s) && s[i] != ',' && s[i] != ' ' && s[i] != '\t' && s[i] != '(' {
			i++
		}
		if i > 0 {
			out = append(out, textString(s[:i]))
		}
		s = s[i:]
		if len(s) > 0 && s[0] != '(' {
			s = s[1:]
		}
	}
	return out
}

// isToken reports whether c may appear in an RFC 2045 token. 8-bit bytes
// are allowed for tolerance.
func isToken(c byte) bool {
	if c <= ' ' || c == 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// skipCFWS skips white space and (nested) comments.
func skipCFWS(s string) string {
	for len(s) > 0 {
		switch s[0] {
		case ' ', '\t', '\r', '\n':
			s = s[1:]
		case '(':
			s = s[commentEnd(s):]
		default:
			return s
		}
	}
	return s
}

// commentEnd returns the index after the comment starting at s[0] == '(',
// or len(s) if it is not closed.
func commentEnd(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(s)
}

// maxParams bounds the parameters parsed from one header field.
const maxParams = 256

type rawParam struct {
	name, value string
}

// parseParams parses a parameter list (after the first ';'). Attribute
// names are lower-cased; RFC 2231 continuations and charsets are decoded.
// Parsing is tolerant: unquoted values may contain white space (seen in
// the wild for file names), values run to the next ';'.
func parseParams(s string) [][2]string {
	var raw []rawParam
	has2231 := false
	for len(s) > 0 && len(raw) < maxParams {
		s = skipCFWS(s)
		if len(s) > 0 && s[0] == ';' {
			s = s[1:]
			continue
		}
		// Attribute.
		i := 0
		for i < len(s) && s[i] != '=' && s[i] != ';' {
			i++
		}
		name := strings.TrimSpace(s[:i])
		s = s[i:]
		if len(s) == 0 || s[0] == ';' {
			continue // attribute without value
		}
		s = s[1:] // '='
		for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n') {
			s = s[1:]
		}
		var val string
		if len(s) > 0 && s[0] == '"' {
			val, s = quotedString(s)
			if k := strings.IndexByte(s, ';'); k >= 0 {
				s = s[k:]
			} else {
				s = ""
			}
		} else {
			k := strings.IndexByte(s, ';')
			if k < 0 {
				k = len(s)
			}
			val = s[:k]
			s = s[k:]
			// Drop a trailing comment: charset=us-ascii (plain text).
			if c := strings.Index(val, " ("); c >= 0 {
				val = val[:c]
			} else if c := strings.Index(val, "\t("); c >= 0 {
				val = val[:c]
			}
			val = strings.TrimSpace(val)
		}
		if name == "" {
			continue
		}
		name = strings.ToLower(name)
		if strings.IndexByte(name, '*') >= 0 {
			has2231 = true
		}
		raw = append(raw, rawParam{name, val})
	}
	if len(raw) == 0 {
		return nil
	}
	out := make([][2]string, 0, len(raw))
	if !has2231 {
		for _, rp := range raw {
			if paramIndex(out, rp.name) < 0 {
				out = append(out, [2]string{textString(rp.name), textString(rp.value)})
			}
		}
		return out
	}
	return decode2231(raw, out)
}

// quotedString reads a quoted string at s[0] == '"', unescaping quoted
// pairs. An unterminated string runs to the end.
func quotedString(s string) (val, rest string) {
	esc := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			esc = true
			i++
		case '"':
			v := s[1:i]
			if esc {
				v = unescape(v)
			}
			return v, s[i+1:]
		}
	}
	v := s[1:]
	if esc {
		v = unescape(v)
	}
	return v, ""
}

func unescape(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

func paramIndex(params [][2]string, name string) int {
	for i, p := range params {
		if p[0] == name {
			return i
		}
	}
	return -1
}

// paramValue returns the value of the named (lower-case) parameter.
func paramValue(params [][2]string, name string) string {
	if i := paramIndex(params, name); i >= 0 {
		return params[i][1]
	}
	return ""
}

// maxSections bounds RFC 2231 continuation section numbers.
const maxSections = 1000

type section struct {
	n       int
	encoded bool
	val     string
}

// decode2231 combines RFC 2231 parameter sections (name*0*=, name*1=...)
// and decodes their charset. A value given both plainly and per RFC 2231
// is taken from the RFC 2231 form.
func decode2231(raw []rawParam, out [][2]string) [][2]string {
	type group struct {
		name     string
		plain    string
		hasPlain bool
		secs     []section
	}
	var groups []*group
	find := func(name string) *group {
		for _, g := range groups {
			if g.name == name {
				return g
			}
		}
		g := &group{name: name}
		groups = append(groups, g)
		return g
	}
	for _, rp := range raw {
		base, rest, ok := strings.Cut(rp.name, "*")
		if !ok {
			g := find(rp.name)
			if !g.hasPlain {
				g.plain, g.hasPlain = rp.value, true
			}
			continue
		}
		sec := section{val: rp.value}
		switch {
		case rest == "":
			sec.encoded = true
		default:
			num := rest
			if strings.HasSuffix(num, "*") {
				sec.encoded = true
				num = num[:len(num)-1]
			}
			n, ok := smallAtoi(num)
			if !ok || n >= maxSections {
				// Not RFC 2231 after all; keep it as named.
				g := find(rp.name)
				if !g.hasPlain {
					g.plain, g.hasPlain = rp.value, true
				}
				continue
			}
			sec.n = n
		}
		g := find(base)
		g.secs = append(g.secs, sec)
	}
	for _, g := range groups {
		if len(g.secs) == 0 {
			out = append(out, [2]string{textString(g.name), textString(g.plain)})
			continue
		}
		out = append(out, [2]string{textString(g.name), joinSections(g.secs)})
	}
	return out
}

// joinSections orders sections by number (first occurrence of a number
// wins), percent-decodes the encoded ones and converts the result from the
// charset named in the first section.
func joinSections(secs []section) string {
	// Insertion sort: section counts are small and bounded.
	for i := 1; i < len(secs); i++ {
		for j := i; j > 0 && secs[j].n < secs[j-1].n; j-- {
			secs[j], secs[j-1] = secs[j-1], secs[j]
		}
	}
	var charset string
	var b []byte
	last := -1
	for i, sec := range secs {
		if sec.n == last {
			continue
		}
		last = sec.n
		v := sec.val
		if sec.encoded {
			if i == 0 {
				// charset'language'value
				if cs, rest, ok := strings.Cut(v, "'"); ok {
					charset = cs
					if _, after, ok := strings.Cut(rest, "'"); ok {
						v = after
					} else {
						v = rest
					}
				}
			}
			b = percentDecode(b, v)
		} else {
			b = append(b, v...)
		}
	}
	return decodeCharset(charset, b)
}

func smallAtoi(s string) (int, bool) {
	if s == "" || len(s) > 6 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func percentDecode(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return b
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// MaxMessageIDLen is the longest message ID MessageIDs returns: longer
// ones cannot fit an RFC 5322 line and are skipped.
const MaxMessageIDLen = 998

// MessageIDs extracts up to max (0: no limit) "<...>" message IDs of a
// Message-ID, In-Reply-To or References value, without the angle
// brackets. IDs with white space or nested brackets, and IDs over
// MaxMessageIDLen bytes, are not valid and skipped. Threading (store
// thread ids, IMAP THREAD=REFERENCES) reads these fields through it.
func MessageIDs(v string, max int) []string {
	var out []string
	for len(v) > 0 && (max <= 0 || len(out) < max) {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		v = v[i+1:]
		j := strings.IndexByte(v, '>')
		if j < 0 {
			break
		}
		id := v[:j]
		v = v[j+1:]
		if id != "" && len(id) <= MaxMessageIDLen && !strings.ContainsAny(id, "< \t\r\n") {
			out = append(out, id)
		}
	}
	return out
}
