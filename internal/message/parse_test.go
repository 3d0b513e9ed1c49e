package message

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// structure renders a part tree compactly: type/subtype, [children] of a
// multipart, {root} of an embedded message.
func structure(p *Part) string {
	var b strings.Builder
	var walk func(p *Part)
	walk = func(p *Part) {
		b.WriteString(p.MediaType + "/" + p.MediaSubtype)
		if len(p.Parts) > 0 {
			b.WriteByte('[')
			for i, c := range p.Parts {
				if i > 0 {
					b.WriteByte(' ')
				}
				walk(c)
			}
			b.WriteByte(']')
		}
		if p.Message != nil {
			b.WriteByte('{')
			walk(p.Message)
			b.WriteByte('}')
		}
	}
	walk(p)
	return b.String()
}

// splitSection splits "1.2.MIME" into path [1 2] and spec "MIME".
func splitSection(t *testing.T, s string) ([]int, string) {
	t.Helper()
	if s == "" {
		return nil, ""
	}
	var path []int
	elems := strings.Split(s, ".")
	for i, e := range elems {
		n, err := strconv.Atoi(e)
		if err != nil {
			if i != len(elems)-1 {
				t.Fatalf("bad section %q", s)
			}
			return path, e
		}
		path = append(path, n)
	}
	return path, ""
}

func loadFixture(t testing.TB, name string, crlf bool) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(b, '\r') >= 0 {
		t.Fatalf("fixture %s must use LF line endings", name)
	}
	if crlf {
		b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	}
	return b
}

func decodedText(t *testing.T, msg []byte, p *Part) string {
	t.Helper()
	r := CharsetReader(p.Charset(), DecodeReader(p.Encoding, bytes.NewReader(msg[p.BodyStart:p.BodyEnd])))
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return string(b)
}

var fromAlice = []Address{{Name: "Alice Example", Mailbox: "alice", Host: "example.org"}}

type fixtureTest struct {
	file      string
	structure string
	// sections maps an IMAP section ("1.2", "2.MIME", "HEADER", "" for
	// the whole message) to its content, written with LF line breaks.
	sections map[string]string
	lines    map[string]int64 // section path to BodyLines
	// decoded maps a part path to its transfer- and charset-decoded
	// content (LF line breaks); decodedExact is not converted to CRLF.
	decoded      map[string]string
	decodedExact map[string]string
	env          *Envelope
	check        func(t *testing.T, p *Part)
}

var fixtureTests = []fixtureTest{
	{
		file:      "simple.eml",
		structure: "text/plain",
		sections: map[string]string{
			"TEXT": "Hi Bob,\n\nhow are you?\n",
			"1":    "Hi Bob,\n\nhow are you?\n",
			"HEADER": "Return-Path: <alice@example.org>\nReceived: from mail.example.org (mail.example.org [192.0.2.1])\n" +
				"\tby mx.example.com with ESMTPS id 12345\n\tfor <bob@example.com>; Tue, 15 Nov 1994 08:12:31 -0800\n" +
				"Date: Tue, 15 Nov 1994 08:12:31 -0800\nFrom: Alice Example <alice@example.org>\nTo: Bob <bob@example.com>\n" +
				"Subject: Hello\n world\nMessage-ID: <1234@example.org>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n",
		},
		lines: map[string]int64{"": 3},
		env: &Envelope{
			Date:      "Tue, 15 Nov 1994 08:12:31 -0800",
			Subject:   "Hello world",
			From:      fromAlice,
			Sender:    fromAlice,
			ReplyTo:   fromAlice,
			To:        []Address{{Name: "Bob", Mailbox: "bob", Host: "example.com"}},
			MessageID: "<1234@example.org>",
		},
		check: func(t *testing.T, p *Part) {
			if got := p.Params; !reflect.DeepEqual(got, [][2]string{{"charset", "us-ascii"}}) {
				t.Errorf("params %q", got)
			}
			d, ok := Date(p.Envelope)
			want := time.Date(1994, 11, 15, 16, 12, 31, 0, time.UTC)
			if !ok || !d.Equal(want) {
				t.Errorf("date %v %v, want %v", d, ok, want)
			}
		},
	},
	{
		file:      "alternative.eml",
		structure: "multipart/alternative[text/plain text/html]",
		sections: map[string]string{
			"1":      "Caf=C3=A9 au lait =\ncosts 3=E2=82=AC.",
			"1.MIME": "Content-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: quoted-printable\n\n",
			"2":      "<p>Caf=C3=A9</p>",
			"TEXT": "This is a MIME preamble.\n\n--alt-b\nContent-Type: text/plain; charset=\"utf-8\"\n" +
				"Content-Transfer-Encoding: quoted-printable\n\nCaf=C3=A9 au lait =\ncosts 3=E2=82=AC.\n--alt-b\n" +
				"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<p>Caf=C3=A9</p>\n" +
				"--alt-b--\nThis is the epilogue.\n",
		},
		lines:   map[string]int64{"1": 2, "2": 1},
		decoded: map[string]string{"1": "Café au lait costs 3€.", "2": "<p>Café</p>"},
		env: &Envelope{
			Date:    "1 Jan 2020 10:00 +0100",
			Subject: "Alternative",
			From:    []Address{{Name: "Doe, John", Mailbox: "john", Host: "example.com"}},
			Sender:  []Address{{Name: "Doe, John", Mailbox: "john", Host: "example.com"}},
			ReplyTo: []Address{{Name: "Doe, John", Mailbox: "john", Host: "example.com"}},
			To:      []Address{{Mailbox: "jane", Host: "example.com"}},
		},
		check: func(t *testing.T, p *Part) {
			if b := p.Param("boundary"); b != "alt-b" {
				t.Errorf("boundary %q", b)
			}
			if e := p.Parts[0].Encoding; e != "quoted-printable" {
				t.Errorf("encoding %q", e)
			}
			d, ok := Date(p.Envelope)
			if want := time.Date(2020, 1, 1, 9, 0, 0, 0, time.UTC); !ok || !d.Equal(want) {
				t.Errorf("date %v %v", d, ok)
			}
		},
	},
	{
		file:      "mixed.eml",
		structure: "multipart/mixed[text/plain application/pdf]",
		sections: map[string]string{
			"1":      "See attachment.\n",
			"2":      "JVBERi0xLjQKZmFrZSBwZGYgY29u\ndGVudCBmb3IgdGVzdHMKJSVFT0YK",
			"1.MIME": "Content-Type: text/plain\n\n",
		},
		lines:        map[string]int64{"1": 1, "2": 2},
		decodedExact: map[string]string{"2": "%PDF-1.4\nfake pdf content for tests\n%%EOF\n"},
		check: func(t *testing.T, p *Part) {
			a := p.Parts[1]
			if a.Param("name") != "report.pdf" || a.Disposition != "attachment" || a.DispositionParam("filename") != "report.pdf" {
				t.Errorf("attachment params %q %q %q", a.Params, a.Disposition, a.DispositionParams)
			}
			if a.ContentID != "<part1@example.org>" || a.ContentDescription != "The report" || a.Encoding != "base64" {
				t.Errorf("attachment fields %q %q %q", a.ContentID, a.ContentDescription, a.Encoding)
			}
			if p.Param("boundary") != "----=_Part_0_1" {
				t.Errorf("folded boundary %q", p.Params)
			}
			if p.Parts[0].Charset() != "us-ascii" {
				t.Errorf("default charset %q", p.Parts[0].Charset())
			}
		},
	},
	{
		file:      "nested.eml",
		structure: "multipart/mixed[multipart/alternative[text/plain multipart/related[text/html image/png]] application/zip]",
		sections: map[string]string{
			"1.1":        "plain",
			"1.2.1":      "<img src=\"cid:img\">",
			"1.2.2.MIME": "Content-Type: image/png\nContent-ID: <img>\nContent-Transfer-Encoding: base64\n\n",
			"1.2": "--rel\nContent-Type: text/html\n\n<img src=\"cid:img\">\n--rel\nContent-Type: image/png\nContent-ID: <img>\n" +
				"Content-Transfer-Encoding: base64\n\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7\n--rel--",
			"2":      "zipdata",
			"2.MIME": "Content-Type: application/zip\nContent-Disposition: attachment; filename=a.zip\n\n",
		},
		decodedExact: map[string]string{"1.2.2": string(func() []byte {
			b := make([]byte, 60)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}())},
		check: func(t *testing.T, p *Part) {
			rel := p.Find([]int{1, 2})
			if !reflect.DeepEqual(rel.Params, [][2]string{{"boundary", "rel"}, {"type", "text/html"}}) {
				t.Errorf("related params %q", rel.Params)
			}
			if p.Find([]int{2}).DispositionParam("filename") != "a.zip" {
				t.Errorf("zip filename")
			}
			if p.Find([]int{1, 3}) != nil || p.Find([]int{3}) != nil || p.Find([]int{1, 1, 1}) != nil || p.Find([]int{0}) != nil {
				t.Errorf("nonexistent sections found")
			}
		},
	},
	{
		file:      "rfc822.eml",
		structure: "multipart/mixed[text/plain message/rfc822{multipart/alternative[text/plain text/html]}]",
		sections: map[string]string{
			"1":      "Forwarded message below.",
			"2.MIME": "Content-Type: message/rfc822\nContent-Disposition: inline\n\n",
			"2.HEADER": "From: Carol <carol@example.net>\nTo: alice@example.org\nSubject: Original\n" +
				"Date: Mon, 2 Mar 2020 13:14:15 +0000\nMessage-ID: <orig@example.net>\n" +
				"Content-Type: multipart/alternative; boundary=\"inner\"\n\n",
			"2.TEXT": "--inner\nContent-Type: text/plain\n\nOriginal text.\n--inner\nContent-Type: text/html\n\n" +
				"<p>Original text.</p>\n--inner--",
			"2": "From: Carol <carol@example.net>\nTo: alice@example.org\nSubject: Original\n" +
				"Date: Mon, 2 Mar 2020 13:14:15 +0000\nMessage-ID: <orig@example.net>\n" +
				"Content-Type: multipart/alternative; boundary=\"inner\"\n\n" +
				"--inner\nContent-Type: text/plain\n\nOriginal text.\n--inner\nContent-Type: text/html\n\n" +
				"<p>Original text.</p>\n--inner--",
			"2.1":      "Original text.",
			"2.2":      "<p>Original text.</p>",
			"2.2.MIME": "Content-Type: text/html\n\n",
		},
		lines: map[string]int64{"2": 16, "2.1": 1},
		check: func(t *testing.T, p *Part) {
			m := p.Parts[1].Message
			carol := []Address{{Name: "Carol", Mailbox: "carol", Host: "example.net"}}
			want := &Envelope{
				Date: "Mon, 2 Mar 2020 13:14:15 +0000", Subject: "Original", MessageID: "<orig@example.net>",
				From: carol, Sender: carol, ReplyTo: carol,
				To: []Address{{Mailbox: "alice", Host: "example.org"}},
			}
			if !reflect.DeepEqual(m.Envelope, want) {
				t.Errorf("embedded envelope %+v", m.Envelope)
			}
			if p.Parts[1].Disposition != "inline" {
				t.Errorf("disposition %q", p.Parts[1].Disposition)
			}
			if p.Parts[0].Envelope != nil || m.Parts[0].Envelope != nil {
				t.Errorf("envelope on non-message part")
			}
		},
	},
	{
		file:      "encoded.eml",
		structure: "text/plain",
		sections:  map[string]string{"TEXT": "body\n"},
		env: &Envelope{
			Date:    "15 Nov 94 08:12 EST",
			Subject: "=?utf-8?B?R3LDvMOfZQ==?= =?utf-8?Q?_und_mehr?= (folded)",
			From:    []Address{{Name: "=?utf-8?q?J=C3=B6rg?= M", Mailbox: "joerg", Host: "example.de"}},
			Sender:  []Address{{Name: "Mailing list", Mailbox: "list", Host: "example.com"}},
			ReplyTo: []Address{{Name: "=?iso-8859-1?B?Sm/rbA==?=", Mailbox: "noel", Host: "example.fr"}},
			To:      []Address{{Mailbox: "undisclosed-recipients"}, {GroupEnd: true}},
			Cc: []Address{
				{Mailbox: "friends"},
				{Mailbox: "anna", Host: "example.com"},
				{Name: `B. "Bee"`, Mailbox: "bee", Host: "example.com"},
				{GroupEnd: true},
				{Name: "Carl C", Mailbox: "carl", Host: "example.com"},
			},
			Bcc: []Address{
				{Adl: "@relay1.example,@relay2.example", Mailbox: "dave", Host: "example.com"},
				{Mailbox: "root", Host: MissingHost},
			},
			InReplyTo: "<prev@example.com>",
		},
		check: func(t *testing.T, p *Part) {
			if s := DecodeHeaderValue(p.Envelope.Subject); s != "Grüße und mehr (folded)" {
				t.Errorf("decoded subject %q", s)
			}
			if s := DecodeHeaderValue(p.Envelope.ReplyTo[0].Name); s != "Joël" {
				t.Errorf("decoded name %q", s)
			}
			if s := DecodeHeaderValue(p.Envelope.From[0].Name); s != "Jörg M" {
				t.Errorf("decoded name %q", s)
			}
			d, ok := Date(p.Envelope)
			if want := time.Date(1994, 11, 15, 13, 12, 0, 0, time.UTC); !ok || !d.Equal(want) {
				t.Errorf("date %v %v", d, ok)
			}
		},
	},
	{
		file:      "rfc2231.eml",
		structure: "multipart/mixed[text/plain application/octet-stream text/plain]",
		sections:  map[string]string{"2": "payload", "1": "Gr=FC=DFe"},
		decoded:   map[string]string{"1": "Grüße"},
		decodedExact: map[string]string{
			"3": "Grüße aus Köln – “quoted”\n",
		},
		check: func(t *testing.T, p *Part) {
			a := p.Parts[1]
			if !reflect.DeepEqual(a.Params, [][2]string{{"name", "€ rates 2024.txt"}}) {
				t.Errorf("params %q", a.Params)
			}
			if !reflect.DeepEqual(a.DispositionParams, [][2]string{{"filename", "Grüße.txt"}, {"size", "7"}}) {
				t.Errorf("disposition params %q", a.DispositionParams)
			}
			if !reflect.DeepEqual(a.Language, []string{"de", "en"}) {
				t.Errorf("language %q", a.Language)
			}
			if p.Parts[0].Charset() != "iso-8859-1" {
				t.Errorf("charset %q", p.Parts[0].Charset())
			}
		},
	},
	{
		file:      "noend.eml",
		structure: "multipart/mixed[text/plain text/plain]",
		sections:  map[string]string{"1": "one", "2": "two\n", "2.MIME": "Content-Type: text/plain\n\n"},
		lines:     map[string]int64{"1": 1, "2": 1},
	},
	{
		file:      "nobody.eml",
		structure: "text/plain",
		sections: map[string]string{
			"HEADER": "From: a@example.org\nSubject: no body here\n",
			"TEXT":   "",
			"1":      "",
			"":       "From: a@example.org\nSubject: no body here\n",
		},
		lines: map[string]int64{"": 0},
		check: func(t *testing.T, p *Part) {
			if p.Envelope.Subject != "no body here" {
				t.Errorf("subject %q", p.Envelope.Subject)
			}
		},
	},
	{
		file:      "digest.eml",
		structure: "multipart/digest[message/rfc822{text/plain} text/plain]",
		sections: map[string]string{
			"1.MIME":   "\n",
			"1.HEADER": "From: one@example.org\nSubject: First\n\n",
			"1.TEXT":   "first body",
			"1.1":      "first body",
			"2":        "not a message",
		},
		lines: map[string]int64{"1": 4, "1.1": 1},
		check: func(t *testing.T, p *Part) {
			if s := p.Parts[0].Message.Envelope.Subject; s != "First" {
				t.Errorf("embedded subject %q", s)
			}
		},
	},
	{
		file:      "badmime.eml",
		structure: "text/plain",
		sections:  map[string]string{"1": "no boundary parameter\n"},
		env: &Envelope{
			Subject: "broken",
			From:    []Address{{Name: "Weird", Mailbox: MissingMailbox, Host: MissingHost}},
			Sender:  []Address{{Name: "Weird", Mailbox: MissingMailbox, Host: MissingHost}},
			ReplyTo: []Address{{Name: "Weird", Mailbox: MissingMailbox, Host: MissingHost}},
			To:      []Address{{Mailbox: "x", Host: MissingHost}, {Mailbox: "y", Host: "example.com"}},
		},
	},
}

func TestFixtures(t *testing.T) {
	for _, tc := range fixtureTests {
		for _, crlf := range []bool{false, true} {
			name := tc.file + map[bool]string{false: "/lf", true: "/crlf"}[crlf]
			t.Run(name, func(t *testing.T) {
				msg := loadFixture(t, tc.file, crlf)
				nl := func(s string) string {
					if crlf {
						return strings.ReplaceAll(s, "\n", "\r\n")
					}
					return s
				}
				p, err := Parse(bytes.NewReader(msg), int64(len(msg)))
				if err != nil {
					t.Fatal(err)
				}
				checkInvariants(t, p, msg)
				if got := structure(p); got != tc.structure {
					t.Errorf("structure\n got %s\nwant %s", got, tc.structure)
				}
				if p.HeaderStart != 0 || p.BodyEnd != int64(len(msg)) {
					t.Errorf("root range %d..%d, want 0..%d", p.HeaderStart, p.BodyEnd, len(msg))
				}
				for sec, want := range tc.sections {
					path, spec := splitSection(t, sec)
					s, e, ok := p.Section(path, spec)
					if !ok {
						t.Errorf("section %q not found", sec)
						continue
					}
					if got := string(msg[s:e]); got != nl(want) {
						t.Errorf("section %q\n got %q\nwant %q", sec, got, nl(want))
					}
				}
				for sec, want := range tc.lines {
					path, _ := splitSection(t, sec)
					q := p.Find(path)
					if len(path) == 0 {
						q = p
					}
					if q == nil {
						t.Errorf("lines: %q not found", sec)
					} else if q.BodyLines != want {
						t.Errorf("lines of %q: %d, want %d", sec, q.BodyLines, want)
					}
				}
				for sec, want := range tc.decoded {
					path, _ := splitSection(t, sec)
					if got := decodedText(t, msg, p.Find(path)); got != nl(want) {
						t.Errorf("decoded %q: %q, want %q", sec, got, nl(want))
					}
				}
				for sec, want := range tc.decodedExact {
					path, _ := splitSection(t, sec)
					if got := decodedText(t, msg, p.Find(path)); got != want {
						t.Errorf("decoded %q: %q, want %q", sec, got, want)
					}
				}
				if tc.env != nil && !reflect.DeepEqual(p.Envelope, tc.env) {
					t.Errorf("envelope\n got %+v\nwant %+v", p.Envelope, tc.env)
				}
				if tc.check != nil {
					tc.check(t, p)
				}
				// The summary survives the store.
				q, err := Decode(p.Encode())
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if !reflect.DeepEqual(p, q) {
					t.Errorf("encode/decode roundtrip differs:\n%s\n%s", p.Encode(), q.Encode())
				}
			})
		}
	}
}

// checkInvariants verifies what IMAP relies on: ordered offsets within the
// input, children inside their parent, embedded message starting at the
// body, bounded depth, and a well-formed tree.
func checkInvariants(t testing.TB, p *Part, msg []byte) {
	t.Helper()
	n := 0
	if err := p.check(0, 0, int64(len(msg)), &n); err != nil {
		t.Fatalf("invariants: %v\n%s", err, p.Encode())
	}
	var walk func(p *Part)
	walk = func(p *Part) {
		body := msg[p.BodyStart:p.BodyEnd]
		lines := int64(bytes.Count(body, []byte("\n")))
		if len(body) > 0 && body[len(body)-1] != '\n' {
			lines++
		}
		if p.BodyLines != lines {
			t.Fatalf("part at %d: %d lines, body has %d", p.HeaderStart, p.BodyLines, lines)
		}
		if p.Message != nil && p.Message.HeaderStart != p.BodyStart {
			t.Fatalf("embedded message starts at %d, body at %d", p.Message.HeaderStart, p.BodyStart)
		}
		if p.MediaType == "message" && p.MediaSubtype == "rfc822" && p.Message == nil {
			t.Fatalf("message/rfc822 without message")
		}
		for i, c := range p.Parts {
			if i > 0 && c.HeaderStart < p.Parts[i-1].BodyEnd {
				t.Fatalf("parts overlap")
			}
			walk(c)
		}
		if p.Message != nil {
			walk(p.Message)
		}
	}
	walk(p)
}

func parseString(t testing.TB, s string) *Part {
	t.Helper()
	p, err := Parse(strings.NewReader(s), int64(len(s)))
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, p, []byte(s))
	return p
}

func TestEdgeCases(t *testing.T) {
	tests := []struct {
		name      string
		msg       string
		structure string
		sections  map[string]string
		lines     map[string]int64
	}{
		{"empty", "", "text/plain", map[string]string{"HEADER": "", "TEXT": ""}, map[string]int64{"": 0}},
		{"header only no newline", "Subject: x", "text/plain", map[string]string{"HEADER": "Subject: x", "TEXT": ""}, nil},
		{"no header", "\r\nbody", "text/plain", map[string]string{"HEADER": "\r\n", "TEXT": "body"}, map[string]int64{"": 1}},
		{"body without final newline", "A: b\n\nx\ny", "text/plain", map[string]string{"TEXT": "x\ny"}, map[string]int64{"": 2}},
		{"blank lines only body", "A: b\n\n\n\n", "text/plain", map[string]string{"TEXT": "\n\n"}, map[string]int64{"": 2}},
		{
			"child header ended by delimiter",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n--b--\r\n",
			"multipart/mixed[text/html]",
			map[string]string{"1.MIME": "Content-Type: text/html", "1": ""},
			map[string]int64{"1": 0},
		},
		{
			"child with empty header and empty body",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--b\n\nx\n--b--",
			"multipart/mixed[text/plain text/plain]",
			map[string]string{"1.MIME": "\n", "1": "", "2": "x"},
			nil,
		},
		{
			// Without a blank line, everything up to the delimiter is
			// header (RFC 2046 body-part syntax).
			"child text without blank line",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nx\n--b--\n",
			"multipart/mixed[text/plain]",
			map[string]string{"1.MIME": "x", "1": ""},
			nil,
		},
		{
			"child without header lines",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\n--b--\n",
			"multipart/mixed[text/plain]",
			map[string]string{"1.MIME": "", "1": ""},
			nil,
		},
		{
			"first delimiter without preamble, trailing space on delimiter",
			"Content-Type: multipart/mixed; boundary=\"b\"\n\n--b  \n\nx\n--b-- \t\nepilogue",
			"multipart/mixed[text/plain]",
			map[string]string{"1": "x", "TEXT": "--b  \n\nx\n--b-- \t\nepilogue"},
			nil,
		},
		{
			"boundary prefix of nested boundary",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/alternative; boundary=b-1\n\n--b-1\n\ninner\n--b-1--\n--b\n\nsecond\n--b--\n",
			"multipart/mixed[multipart/alternative[text/plain] text/plain]",
			map[string]string{"1.1": "inner", "2": "second"},
			nil,
		},
		{
			"inner multipart missing close, outer continues",
			"Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\na\n--o\n\nb\n--o--\n",
			"multipart/mixed[multipart/alternative[text/plain] text/plain]",
			map[string]string{"1.1": "a", "1": "--i\n\na", "2": "b"},
			nil,
		},
		{
			"multipart without delimiters",
			"Content-Type: multipart/mixed; boundary=zz\n\nplain text\n",
			"text/plain",
			map[string]string{"1": "plain text\n"},
			nil,
		},
		{
			"close delimiter before any part",
			"Content-Type: multipart/mixed; boundary=zz\n\npre\n--zz--\npost\n",
			"text/plain",
			map[string]string{"1": "pre\n--zz--\npost\n"},
			nil,
		},
		{
			"base64 message/rfc822 is opaque",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoKeQo=\n--b--\n",
			"multipart/mixed[application/octet-stream]",
			map[string]string{"1": "U3ViamVjdDogeAoKeQo="},
			nil,
		},
		{
			"message/rfc822 with empty body",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n--b--\n",
			"multipart/mixed[message/rfc822{text/plain}]",
			map[string]string{"1": "", "1.HEADER": "", "1.TEXT": ""},
			nil,
		},
		{
			"message/rfc822 header cut by delimiter",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: x\n--b--\n",
			"multipart/mixed[message/rfc822{text/plain}]",
			map[string]string{"1.HEADER": "Subject: x", "1.TEXT": ""},
			nil,
		},
		{
			"root message/global",
			"Content-Type: message/global\n\nSubject: inner\n\nhi\n",
			"message/global{text/plain}",
			map[string]string{"1": "Subject: inner\n\nhi\n", "1.HEADER": "Subject: inner\n\n", "1.TEXT": "hi\n", "1.1": "hi\n"},
			map[string]int64{"": 3},
		},
		{
			"mbox From line and garbage header lines",
			"From alice@example.org Mon Jan  1 00:00:00 2024\nnot a header\n continuation\nSubject: s\n\nbody\n",
			"text/plain",
			map[string]string{"TEXT": "body\n"},
			nil,
		},
		{
			"mixed line endings",
			"Content-Type: multipart/mixed; boundary=b\r\n\n--b\r\nContent-Type: text/plain\n\r\nx\r\ny\n--b--\r\n",
			"multipart/mixed[text/plain]",
			map[string]string{"1": "x\r\ny", "1.MIME": "Content-Type: text/plain\n\r\n"},
			map[string]int64{"1": 2},
		},
		{
			"uppercase and invalid content types",
			"Content-Type: MULTIPART/Mixed; BOUNDARY=\"X\"\n\n--X\nContent-Type: text\n\na\n--X\nContent-Type: /html\n\nb\n--X--",
			"multipart/mixed[text/plain text/plain]",
			map[string]string{"1": "a", "2": "b"},
			nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parseString(t, tc.msg)
			if got := structure(p); got != tc.structure {
				t.Errorf("structure %s, want %s", got, tc.structure)
			}
			for sec, want := range tc.sections {
				path, spec := splitSection(t, sec)
				s, e, ok := p.Section(path, spec)
				if !ok {
					t.Errorf("section %q not found", sec)
					continue
				}
				if got := tc.msg[s:e]; got != want {
					t.Errorf("section %q: %q, want %q", sec, got, want)
				}
			}
			for sec, want := range tc.lines {
				path, _ := splitSection(t, sec)
				if q := p.Find(path); q == nil || q.BodyLines != want {
					t.Errorf("lines %q: %+v, want %d", sec, q, want)
				}
			}
		})
	}
}

func TestRawHeaderCharsets(t *testing.T) {
	p := parseString(t, "Subject: Gr\xfc\xdfe \xe2\x82\xac\nFrom: J\xf6rg <j@example.org>\nContent-Type: text/plain; name=\"\xe4.txt\"\n\nx")
	if p.Envelope.Subject != "Grüße €" {
		t.Errorf("subject %q", p.Envelope.Subject)
	}
	if p.Envelope.From[0].Name != "Jörg" {
		t.Errorf("name %q", p.Envelope.From[0].Name)
	}
	if p.Param("name") != "ä.txt" {
		t.Errorf("param %q", p.Param("name"))
	}
}

func TestFirstFieldWins(t *testing.T) {
	p := parseString(t, "Subject: one\nsubject: two\nCONTENT-TYPE: text/html\nContent-Type: text/plain\n\n")
	if p.Envelope.Subject != "one" || p.MediaSubtype != "html" {
		t.Errorf("got %q %q", p.Envelope.Subject, p.MediaSubtype)
	}
}

func TestDepthLimit(t *testing.T) {
	var b strings.Builder
	const n = MaxDepth + 20
	for i := 0; i < n; i++ {
		b.WriteString("Content-Type: multipart/mixed; boundary=b" + strconv.Itoa(i) + "\n\n--b" + strconv.Itoa(i) + "\n")
	}
	b.WriteString("\ninnermost\n")
	for i := n - 1; i >= 0; i-- {
		b.WriteString("--b" + strconv.Itoa(i) + "--\n")
	}
	p := parseString(t, b.String())
	depth := 0
	for q := p; len(q.Parts) > 0; q = q.Parts[0] {
		depth++
	}
	if depth != MaxDepth {
		t.Errorf("depth %d, want %d", depth, MaxDepth)
	}

	// Embedded messages count too.
	b.Reset()
	for i := 0; i < n; i++ {
		b.WriteString("Content-Type: message/rfc822\n\n")
	}
	b.WriteString("\nx\n")
	p = parseString(t, b.String())
	depth = 0
	for q := p; q.Message != nil; q = q.Message {
		depth++
	}
	if depth != MaxDepth {
		t.Errorf("message depth %d, want %d", depth, MaxDepth)
	}
}

func TestPartLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\n\n")
	for i := 0; i < MaxParts+50; i++ {
		b.WriteString("--b\n\nx\n")
	}
	b.WriteString("--b--\nepilogue\n")
	p := parseString(t, b.String())
	if len(p.Parts) != MaxParts-1 {
		t.Errorf("%d parts, want %d", len(p.Parts), MaxParts-1)
	}
	if p.BodyEnd != int64(b.Len()) {
		t.Errorf("body end %d, want %d", p.BodyEnd, b.Len())
	}
}

// countingReaderAt counts reads, to check large input is read in windows.
type countingReaderAt struct {
	r     io.ReaderAt
	reads int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

func TestLargeMessage(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("Subject: big\r\nContent-Type: multipart/mixed; boundary=big\r\n\r\n--big\r\nContent-Type: text/plain\r\n\r\n")
	// A line longer than the read window, with a fake delimiter in it.
	long := bytes.Repeat([]byte("a"), bufSize+100)
	copy(long[bufSize-3:], "\n--big--\n")
	long[bufSize-3] = 'x' // keep it a single line
	b.Write(long)
	b.WriteString("\r\n--big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	att := bytes.Repeat([]byte("QUJDRA==\r\n"), 60000)
	attStart := b.Len()
	b.Write(att)
	b.WriteString("--big--\r\n")
	msg := b.Bytes()
	cr := &countingReaderAt{r: bytes.NewReader(msg)}
	p, err := Parse(cr, int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, p, msg)
	if got := structure(p); got != "multipart/mixed[text/plain application/octet-stream]" {
		t.Fatalf("structure %s", got)
	}
	if got := p.Parts[0].Size(); got != int64(len(long)) {
		t.Errorf("long line part size %d, want %d", got, len(long))
	}
	if p.Parts[0].BodyLines != 2 {
		t.Errorf("long part lines %d", p.Parts[0].BodyLines)
	}
	a := p.Parts[1]
	if a.BodyStart != int64(attStart) || a.BodyEnd != int64(attStart+len(att)-2) || a.BodyLines != 60000 {
		t.Errorf("attachment %d..%d lines %d", a.BodyStart, a.BodyEnd, a.BodyLines)
	}
	if cr.reads < len(msg)/bufSize || cr.reads > 2*len(msg)/bufSize+2 {
		t.Errorf("%d reads for %d bytes", cr.reads, len(msg))
	}
	dec, err := io.ReadAll(DecodeReader(a.Encoding, bytes.NewReader(msg[a.BodyStart:a.BodyEnd])))
	if err != nil || !bytes.Equal(dec, bytes.Repeat([]byte("ABCD"), 60000)) {
		t.Errorf("decoded attachment: %v, %d bytes", err, len(dec))
	}
}

// shortReaderAt claims more content than it has.
type errReaderAt struct{ err error }

func (e errReaderAt) ReadAt(p []byte, off int64) (int, error) { return 0, e.err }

func TestReadErrors(t *testing.T) {
	msg := "Subject: x\n\nbody\n"
	if _, err := Parse(strings.NewReader(msg), int64(len(msg))+10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short input: %v", err)
	}
	boom := errors.New("boom")
	if _, err := Parse(errReaderAt{boom}, 100); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
	if _, err := Parse(strings.NewReader(msg), -1); err == nil {
		t.Errorf("negative size accepted")
	}
	// Reading less than the input is fine: the summary covers size bytes.
	p, err := Parse(strings.NewReader(msg), 12)
	if err != nil || p.BodyEnd != 12 {
		t.Errorf("prefix parse: %v %+v", err, p)
	}
}

func TestFindSection(t *testing.T) {
	msg := loadFixture(t, "rfc822.eml", true)
	p, err := Parse(bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path []int
		spec string
		ok   bool
	}{
		{nil, "", true},
		{nil, "HEADER", true},
		{nil, "TEXT", true},
		{nil, "MIME", false},
		{[]int{1}, "HEADER", false}, // not a message/rfc822
		{[]int{1}, "MIME", true},
		{[]int{2}, "HEADER", true},
		{[]int{2}, "header", true},
		{[]int{2, 1}, "", true},
		{[]int{2, 3}, "", false},
		{[]int{2, 1, 1}, "", false},
		{[]int{3}, "", false},
		{[]int{1}, "BOGUS", false},
		{[]int{-1}, "", false},
	}
	for _, tc := range tests {
		_, _, ok := p.Section(tc.path, tc.spec)
		if ok != tc.ok {
			t.Errorf("Section(%v, %q) ok %v, want %v", tc.path, tc.spec, ok, tc.ok)
		}
	}
	s, e, _ := p.Section(nil, "")
	if s != 0 || e != int64(len(msg)) {
		t.Errorf("whole message %d..%d", s, e)
	}
	// A non-multipart embedded message: its part 1 is its body.
	q := parseString(t, "Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nSubject: deepest\n\nx\n")
	if got := q.Find([]int{1, 1, 1}); got == nil || got.Envelope == nil || got.Envelope.Subject != "deepest" {
		t.Errorf("nested message part: %+v", got)
	}
	var nilPart *Part
	if nilPart.Find([]int{1}) != nil {
		t.Errorf("nil part")
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, s := range []string{
		``,
		`[]`,
		`{"hs":5,"bs":1,"be":9,"t":"text","st":"plain","n":0}`,
		`{"hs":0,"bs":1,"be":9,"t":"multipart","st":"mixed","n":0}`,
		`{"hs":0,"bs":1,"be":9,"t":"text","st":"plain","n":0,"c":[{"hs":0,"bs":1,"be":2,"t":"text","st":"plain","n":0}]}`,
		`{"hs":0,"bs":1,"be":9,"t":"multipart","st":"mixed","n":0,"c":[{"hs":2,"bs":3,"be":20,"t":"text","st":"plain","n":0}]}`,
		`{"hs":0,"bs":1,"be":9,"t":"message","st":"rfc822","n":0,"msg":{"hs":1,"bs":3,"be":5,"t":"text","st":"plain","n":0}}`,
		`{"hs":0,"bs":1,"be":9,"t":"","st":"plain","n":0}`,
		`{"hs":0,"bs":1,"be":9,"t":"multipart","st":"mixed","n":0,"c":[null]}`,
		`{"hs":0,"bs":1,"be":9,"t":"text","st":"plain","n":-1}`,
	} {
		if _, err := Decode([]byte(s)); err == nil {
			t.Errorf("Decode(%s) accepted", s)
		}
	}
	if _, err := Decode([]byte(`{"hs":0,"bs":1,"be":9,"t":"text","st":"plain","n":3}`)); err != nil {
		t.Errorf("valid summary rejected: %v", err)
	}
}

func TestEncodeCompact(t *testing.T) {
	msg := loadFixture(t, "simple.eml", true)
	p, err := Parse(bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	b := p.Encode()
	// The envelope dominates; offsets and types take a few dozen bytes.
	if len(b) > 400 {
		t.Errorf("summary is %d bytes: %s", len(b), b)
	}
}

// TestPooledBuffers checks that summaries never alias the parser's pooled
// buffers: parsing other messages, also concurrently, must not change them.
func TestPooledBuffers(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	var want []string
	var parts []*Part
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
		want = append(want, string(p.Encode()))
		parts = append(parts, p)
	}
	done := make(chan error)
	for w := 0; w < 4; w++ {
		go func() {
			for i := 0; i < 50; i++ {
				k := (i + w) % len(msgs)
				p, err := Parse(bytes.NewReader(msgs[k]), int64(len(msgs[k])))
				if err == nil && string(p.Encode()) != want[k] {
					err = errors.New("concurrent parse of " + files[k] + " differs")
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for w := 0; w < 4; w++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	for i, p := range parts {
		if string(p.Encode()) != want[i] {
			t.Errorf("summary of %s changed after later parses", files[i])
		}
	}
}
