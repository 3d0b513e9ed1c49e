package sieve

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"strings"

	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

// Bounds of what body tests read.
const (
	// MaxBodyPart bounds the decoded bytes of one MIME part a body test
	// looks at; the rest of a larger part is not searched.
	MaxBodyPart = 1 << 20
	// MaxBodyTotal bounds the decoded bytes of all parts of one message.
	MaxBodyTotal = 4 << 20
	maxBodyParts = 500
)

// Message is the message a script runs on: its header (which editheader
// actions change during the run) and, for body tests, its content. A
// Message caches what body tests decode, so it must not be shared by
// concurrent runs; make one per delivery.
type Message struct {
	r         io.ReaderAt
	size      int64
	prefix    int64  // length of a per-recipient header prefix (in header, not in r)
	header    []byte // header block, with the blank line ending it if any
	bodyStart int64  // in r
	part      *message.Part
	// decoded caches the decoded parts body tests read; its size is
	// bounded by MaxBodyTotal.
	decoded map[*message.Part]string
}

// NewMessage returns the message of size bytes read from r. part is the
// message's parsed structure if the caller has it (delivery does), else
// nil: it is then parsed on first use by a body test. Only the header is
// read here (at most message.MaxHeaderRead bytes).
func NewMessage(r io.ReaderAt, size int64, part *message.Part) (*Message, error) {
	m := &Message{r: r, size: size, part: part}
	end := int64(-1)
	if part != nil {
		end = part.BodyStart
	}
	if end < 0 {
		n := min(size, message.MaxHeaderRead)
		buf := make([]byte, n)
		k, err := r.ReadAt(buf, 0)
		if int64(k) < n && err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("sieve: read header: %w", err)
		}
		end = headerEnd(buf[:k])
	}
	h, err := message.ReadHeader(r, 0, min(end, size))
	if err != nil {
		return nil, fmt.Errorf("sieve: %w", err)
	}
	m.header = h
	m.bodyStart = end
	return m, nil
}

// NewMessagePrefixed is NewMessage for a stored message: prefix is the
// per-recipient header block the store keeps apart from the shared blob
// (store.Recipient.Prefix: Return-Path, Delivered-To, ...), r and part
// the blob and its parsed structure. Header tests see the prefix fields
// first, size tests the whole size.
func NewMessagePrefixed(prefix []byte, r io.ReaderAt, size int64, part *message.Part) (*Message, error) {
	m, err := NewMessage(r, size, part)
	if err != nil {
		return nil, err
	}
	if len(prefix) > 0 {
		m.header = append(append([]byte(nil), prefix...), m.header...)
		m.prefix = int64(len(prefix))
	}
	return m, nil
}

// MessageFromBytes returns a Message for raw bytes.
func MessageFromBytes(b []byte) *Message {
	m, err := NewMessage(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		// Unreachable: a bytes.Reader does not fail. Keep the whole
		// input as header rather than panic.
		return &Message{r: bytes.NewReader(b), size: int64(len(b)), header: b, bodyStart: int64(len(b))}
	}
	return m
}

// headerEnd returns the offset after the blank line ending the header in
// b, or the offset after the last complete line when there is none.
func headerEnd(b []byte) int64 {
	if len(b) > 0 && (b[0] == '\n' || bytes.HasPrefix(b, []byte("\r\n"))) {
		if b[0] == '\n' {
			return 1
		}
		return 2
	}
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return int64(len(b))
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return int64(i + 1)
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return int64(i + 2)
		}
	}
	return int64(len(b))
}

// WithHeader returns the message with its header block replaced by h
// (Result.Header after editheader), for Store.Deliver as a new blob. h
// includes the prefix fields if the message was made with
// NewMessagePrefixed, so the blob is then stored with an empty prefix.
func (m *Message) WithHeader(h []byte) store.Blob {
	return &joined{head: h, body: io.NewSectionReader(m.r, m.bodyStart, max(m.size-m.bodyStart, 0))}
}

// joined is a header followed by a body, as a store.Blob.
type joined struct {
	head []byte
	body *io.SectionReader
}

func (j *joined) Size() int64 { return int64(len(j.head)) + j.body.Size() }

func (j *joined) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("sieve: negative offset")
	}
	n := 0
	if off < int64(len(j.head)) {
		n = copy(p, j.head[off:])
		if n == len(p) {
			return n, nil
		}
	}
	m, err := j.body.ReadAt(p[n:], max(off-int64(len(j.head)), 0))
	return n + m, err
}

// Header returns the message's header block as read.
func (m *Message) Header() []byte { return m.header }

// Size returns the message's size in bytes, prefix included.
func (m *Message) Size() int64 { return m.prefix + m.size }

func (m *Message) structure() (*message.Part, error) {
	if m.part == nil {
		p, err := message.Parse(m.r, m.size)
		if err != nil {
			return nil, fmt.Errorf("sieve: parse message: %w", err)
		}
		m.part = p
	}
	return m.part, nil
}

// readDecoded reads a part's body, decoded from its transfer encoding and,
// for text parts, converted to UTF-8; at most limit bytes.
func (m *Message) readDecoded(p *message.Part, limit int64) (string, error) {
	if p.BodyEnd < p.BodyStart || p.BodyEnd > m.size {
		return "", nil
	}
	var r io.Reader = io.NewSectionReader(m.r, p.BodyStart, p.BodyEnd-p.BodyStart)
	r = message.DecodeReader(p.Encoding, r)
	if p.MediaType == "text" {
		r = message.CharsetReader(p.Charset(), r)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return "", fmt.Errorf("sieve: read body: %w", err)
	}
	return string(b), nil
}

// bodyTexts returns what a body test compares (RFC 5173): for :raw the
// undecoded body; for :content the decoded parts whose type matches one
// of types ("" all, "type" or "type/subtype"); for :text the text parts
// as text, HTML reduced to its text.
func (m *Message) bodyTexts(transform string, types []string) ([]string, error) {
	if transform == "raw" {
		n := min(m.size-m.bodyStart, MaxBodyTotal)
		if n <= 0 {
			return []string{""}, nil
		}
		b := make([]byte, n)
		k, err := m.r.ReadAt(b, m.bodyStart)
		if int64(k) < n && err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("sieve: read body: %w", err)
		}
		return []string{string(b[:k])}, nil
	}
	root, err := m.structure()
	if err != nil {
		return nil, err
	}
	var out []string
	total := int64(0)
	visited := 0
	var walk func(p *message.Part) error
	walk = func(p *message.Part) error {
		visited++
		if visited > maxBodyParts || total >= MaxBodyTotal {
			return nil
		}
		if p.MediaType == "multipart" {
			for _, c := range p.Parts {
				if err := walk(c); err != nil {
					return err
				}
			}
			return nil
		}
		if p.Message != nil {
			return walk(p.Message)
		}
		want := false
		if transform == "text" {
			want = p.MediaType == "text"
		} else {
			for _, t := range types {
				t = strings.ToLower(strings.TrimSpace(t))
				typ, sub, hasSub := strings.Cut(t, "/")
				if t == "" || typ == p.MediaType && (!hasSub || sub == p.MediaSubtype) {
					want = true
					break
				}
			}
		}
		if !want {
			return nil
		}
		s, ok := m.decoded[p]
		if !ok {
			var err error
			s, err = m.readDecoded(p, min(MaxBodyPart, MaxBodyTotal-total))
			if err != nil {
				return err
			}
			if m.decoded == nil {
				m.decoded = map[*message.Part]string{}
			}
			m.decoded[p] = s
		}
		total += int64(len(s))
		if transform == "text" && p.MediaSubtype == "html" {
			s = htmlText(s)
		}
		out = append(out, s)
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return out, nil
}

// htmlText reduces HTML to its text: tags, comments, scripts and styles
// removed, entities decoded.
func htmlText(s string) string {
	return strings.Join(strings.Fields(htmlStrip(s)), " ")
}

func htmlStrip(s string) string {
	var b strings.Builder
	lower := strings.ToLower(s)
	for i := 0; i < len(s); {
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s) - i
			}
			b.WriteString(html.UnescapeString(s[i : i+j]))
			i += j
			continue
		}
		switch {
		case strings.HasPrefix(lower[i:], "<!--"):
			j := strings.Index(s[i+4:], "-->")
			if j < 0 {
				return b.String()
			}
			i += 4 + j + 3
		case strings.HasPrefix(lower[i:], "<script"), strings.HasPrefix(lower[i:], "<style"):
			tag := "</script"
			if strings.HasPrefix(lower[i:], "<style") {
				tag = "</style"
			}
			j := strings.Index(lower[i:], tag)
			if j < 0 {
				return b.String()
			}
			i += j + 1
		default:
			j := strings.IndexByte(s[i:], '>')
			if j < 0 {
				return b.String()
			}
			b.WriteByte(' ')
			i += j + 1
		}
	}
	return b.String()
}

// field is one header field with its raw lines; name is "" for lines that
// are not fields (kept as they are).
type field struct {
	name string
	raw  []byte
}

// splitHeader splits a header block into fields and the rest (the blank
// line ending the header).
func splitHeader(h []byte) (fields []field, tail []byte) {
	for len(h) > 0 {
		l := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			l = h[:i+1]
		}
		if len(bytes.TrimRight(l, "\r\n")) == 0 {
			return fields, h
		}
		n := len(l)
		for n < len(h) && (h[n] == ' ' || h[n] == '\t') {
			if i := bytes.IndexByte(h[n:], '\n'); i >= 0 {
				n += i + 1
			} else {
				n = len(h)
			}
		}
		f := field{raw: h[:n]}
		if l[0] != ' ' && l[0] != '\t' {
			if c := bytes.IndexByte(l, ':'); c > 0 {
				f.name = string(bytes.TrimRight(l[:c], " \t"))
			}
		}
		fields = append(fields, f)
		h = h[n:]
	}
	return fields, nil
}

func joinHeader(fields []field, tail []byte) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		b.Write(f.raw)
	}
	b.Write(tail)
	return b.Bytes()
}

// fieldValue returns a field's unfolded value, encoded words decoded.
func fieldValue(f field) string {
	v := f.raw[bytes.IndexByte(f.raw, ':')+1:]
	v = bytes.ReplaceAll(bytes.ReplaceAll(v, []byte("\r"), nil), []byte("\n"), nil)
	return message.DecodeHeaderValue(strings.TrimSpace(string(v)))
}

// eol returns the line break style of a header block.
func eol(h []byte) string {
	if i := bytes.IndexByte(h, '\n'); i > 0 && h[i-1] == '\r' {
		return "\r\n"
	}
	if bytes.IndexByte(h, '\n') < 0 {
		return "\r\n"
	}
	return "\n"
}

// formatField renders "Name: value" for addheader (RFC 5293 section 4):
// non-ASCII values are RFC 2047 encoded, long values folded at white
// space, line breaks in the value removed.
func formatField(name, value, nl string) []byte {
	value = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, value)
	ascii := true
	for i := 0; i < len(value); i++ {
		if value[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		value = mime.QEncoding.Encode("utf-8", value)
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(":")
	lineLen := len(name) + 1
	words := strings.Split(value, " ")
	for i, w := range words {
		if i > 0 && lineLen+1+len(w) > 78 && lineLen > 1 {
			b.WriteString(nl)
			lineLen = 0
		}
		b.WriteByte(' ')
		b.WriteString(w)
		lineLen += 1 + len(w)
	}
	b.WriteString(nl)
	return []byte(b.String())
}

// protectedField reports whether editheader must leave a field alone.
// Received and Auto-Submitted are protected as in Pigeonhole: trace
// fields must survive, and a script must not make mail look
// (non-)automatic to loop-prevention logic (RFC 5293 section 9).
func protectedField(name string) bool {
	return strings.EqualFold(name, "Received") || strings.EqualFold(name, "Auto-Submitted")
}
