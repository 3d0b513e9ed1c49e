package imapload

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
)

// DefaultWord is the word SEARCH TEXT looks for in the big mailbox. No word
// of the corpus vocabulary contains it, so the generator knows exactly which
// messages match.
const DefaultWord = "quokka"

// Corpus generates the benchmark's messages: deterministic for a seed and
// index, 1–50 KiB, a mix of MIME structures and transfer encodings
// (7bit, 8bit, quoted-printable, base64), some non-ASCII subjects as RFC
// 2047 encoded words, and the search word in about 1 in 50 messages —
// sometimes inside an encoded part, so a server must decode to find it.
type Corpus struct {
	Seed uint64
	Word string // DefaultWord if empty
	To   string // To header; "bench@example.test" if empty
}

// Message kinds, chosen per message.
const (
	kindPlain       = iota // text/plain, 7bit
	kindQP                 // text/plain; charset=utf-8, quoted-printable
	kindAlternative        // multipart/alternative: QP text + QP html
	kindAttachment         // multipart/mixed: text + base64 binary attachment
	kindBase64Text         // text/plain; charset=utf-8, base64
	kind8bit               // text/plain; charset=utf-8, 8bit
)

// Generated describes a generated message.
type Generated struct {
	Data    []byte
	HasWord bool // contains Corpus.Word in a text part
	Seen    bool // suggested \Seen flag (about 70% of messages)
	Date    time.Time
}

var vocabulary = strings.Fields(`the quarterly planning meeting has been moved to thursday afternoon so that
team in other office can join without staying late please bring figures for last three months and short
list of risks you see next release we will keep agenda first status migration then hiring plan any
business comes up invoice payment due contract draft review attached photos holiday schedule server
backup report monitoring alert database index query latency throughput budget approval travel hotel
flight booking confirmation delivery parcel tracking number customer support ticket resolved closed
weekly newsletter subscription unsubscribe garden kitchen recipe dinner weekend concert tickets`)

// Non-ASCII words for subjects and 8-bit bodies.
var vocabularyUTF8 = strings.Fields(`Grüße Köln Straße Übersicht Änderung café naïve résumé Zürich
Ελλάδα Москва 東京 año señor façade smörgåsbord Ærøskøbing fiancée jalapeño`)

func (c *Corpus) word() string {
	if c.Word != "" {
		return c.Word
	}
	return DefaultWord
}

// Message returns message i (0-based).
func (c *Corpus) Message(i int) Generated {
	rng := rand.New(rand.NewPCG(c.Seed, uint64(i)))
	to := c.To
	if to == "" {
		to = "bench@example.test"
	}
	g := Generated{
		HasWord: rng.IntN(50) == 0,
		Seen:    rng.IntN(10) < 7,
		Date:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 7 * time.Minute),
	}
	size := messageSize(rng)
	var b bytes.Buffer
	b.Grow(size + 1024)
	fmt.Fprintf(&b, "Date: %s\r\n", g.Date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: %s <sender%d@example.net>\r\n", title(pick(rng, vocabulary)), rng.IntN(200))
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Subject: %s\r\n", c.subject(rng, i))
	fmt.Fprintf(&b, "Message-ID: <imapload.%d.%d@example.net>\r\nMIME-Version: 1.0\r\n", c.Seed, i)

	kind := pickKind(rng)
	// Remaining bytes for the body content, roughly: the MIME headers of
	// the parts are subtracted here, the encodings' growth below, so the
	// total lands near size.
	overhead := 90
	if kind == kindAlternative || kind == kindAttachment {
		overhead = 420
	}
	body := max(size-b.Len()-overhead, 400)
	switch kind {
	case kindPlain:
		b.WriteString("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
		writeLines(&b, c.text(rng, body, g.HasWord, false))
	case kind8bit:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		writeLines(&b, c.text(rng, body, g.HasWord, true))
	case kindQP:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		writeQP(&b, c.text(rng, body*4/5, g.HasWord, true))
	case kindBase64Text:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		writeBase64(&b, []byte(c.text(rng, body*3/4, g.HasWord, true)))
	case kindAlternative:
		boundary := fmt.Sprintf("alt-%d-%d", c.Seed, i)
		fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\nThis is a multi-part message in MIME format.\r\n", boundary)
		text := c.text(rng, body/3, g.HasWord, true)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
		writeQP(&b, text)
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
		writeQP(&b, "<html><body><p>"+strings.ReplaceAll(text, "\n", "</p>\n<p>")+"</p></body></html>")
		fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	case kindAttachment:
		boundary := fmt.Sprintf("mixed-%d-%d", c.Seed, i)
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", boundary)
		writeLines(&b, c.text(rng, min(body/4, 2000), g.HasWord, false))
		att := make([]byte, max(body-min(body/4, 2000), 100)*3/4)
		for j := range att {
			att[j] = byte(rng.Uint32())
		}
		name := pick(rng, []string{"report.pdf", "photo.jpg", "data.bin", "scan.pdf"})
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: application/octet-stream; name=%q\r\nContent-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary, name, name)
		writeBase64(&b, att)
		fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	}
	g.Data = b.Bytes()
	return g
}

// messageSize draws a total size: 60% 1–4 KiB, 30% 4–16 KiB, 10% 16–50 KiB.
func messageSize(rng *rand.Rand) int {
	switch r := rng.IntN(10); {
	case r < 6:
		return 1200 + rng.IntN(3*1024-176)
	case r < 9:
		return 4*1024 + rng.IntN(12*1024)
	default:
		return 16*1024 + rng.IntN(34*1024)
	}
}

func pickKind(rng *rand.Rand) int {
	switch r := rng.IntN(100); {
	case r < 35:
		return kindPlain
	case r < 50:
		return kindQP
	case r < 65:
		return kindAlternative
	case r < 80:
		return kindAttachment
	case r < 90:
		return kindBase64Text
	default:
		return kind8bit
	}
}

func pick(rng *rand.Rand, words []string) string { return words[rng.IntN(len(words))] }

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// subject returns the Subject header value: ASCII words, and for 1 in 5
// messages some non-ASCII words as an RFC 2047 B or Q encoded word.
func (c *Corpus) subject(rng *rand.Rand, i int) string {
	words := make([]string, 0, 6)
	for range 3 + rng.IntN(4) {
		words = append(words, pick(rng, vocabulary))
	}
	s := fmt.Sprintf("%s #%d", strings.Join(words, " "), i)
	if rng.IntN(5) == 0 {
		utf := pick(rng, vocabularyUTF8) + " " + pick(rng, vocabularyUTF8)
		enc := mime.QEncoding
		if rng.IntN(2) == 0 {
			enc = mime.BEncoding
		}
		s = enc.Encode("utf-8", utf) + " " + s
	}
	return s
}

// text returns about n bytes of lines of words (LF line ends), with the
// search word once in the middle if withWord and some non-ASCII words if
// utf8.
func (c *Corpus) text(rng *rand.Rand, n int, withWord, utf8 bool) string {
	var b strings.Builder
	b.Grow(n + 100)
	line := 0
	wordAt := -1
	if withWord {
		wordAt = n / 2
	}
	for b.Len() < n {
		w := pick(rng, vocabulary)
		if utf8 && rng.IntN(8) == 0 {
			w = pick(rng, vocabularyUTF8)
		}
		if wordAt >= 0 && b.Len() >= wordAt {
			w, wordAt = c.word(), -1
		}
		if line+len(w)+1 > 72 {
			b.WriteByte('\n')
			line = 0
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteByte('\n')
	return b.String()
}

// writeLines writes LF-terminated text with CRLF line ends.
func writeLines(b *bytes.Buffer, text string) {
	b.WriteString(strings.ReplaceAll(text, "\n", "\r\n"))
}

func writeQP(b *bytes.Buffer, text string) {
	w := quotedprintable.NewWriter(b)
	w.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	w.Close()
}

// writeBase64 writes data base64-encoded in lines of 76 characters.
func writeBase64(b *bytes.Buffer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
}

// FixedSize returns a plain-text message of exactly size bytes (at least
// the header's length, about 200), for APPEND in the mixed mode.
func FixedSize(i, size int, to string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Load <load@example.net>\r\nTo: %s\r\nSubject: mixed load %d\r\nMessage-ID: <imapload.mixed.%d@example.net>\r\n\r\n", to, i, i)
	for b.Len() < size {
		line := "The backup jobs now finish before midnight and the dashboards show fewer alerts."
		if rest := size - b.Len() - 2; rest < len(line) {
			line = line[:max(rest, 0)]
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}
