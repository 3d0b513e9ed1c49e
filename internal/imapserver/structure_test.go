package imapserver

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/message"
)

func render(t *testing.T, utf8 bool, f func(w *imapwire.Writer)) string {
	t.Helper()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := imapwire.NewWriter(bw)
	w.UTF8 = utf8
	f(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func parseMsg(t *testing.T, s string) *message.Part {
	t.Helper()
	data := []byte(strings.ReplaceAll(s, "\n", "\r\n"))
	p, err := message.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// Go through the stored form, as the server does.
	p, err = message.Decode(p.Encode())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBodyStructure(t *testing.T) {
	tests := []struct {
		name      string
		msg       string
		structure string
		body      string
	}{
		{
			name:      "plain",
			msg:       "Subject: x\n\nhello\nworld\n",
			structure: `("text" "plain" NIL NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)`,
			body:      `("text" "plain" NIL NIL NIL "7BIT" 14 2)`,
		},
		{
			name: "nested multipart",
			msg: `Subject: nested
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=us-ascii

plain
--inner
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<p>html</p>
--inner--
--outer
Content-Type: image/png
Content-ID: <img1@x>
Content-Description: a picture
Content-Disposition: inline; filename=a.png
Content-Language: en, de
Content-Location: http://example.com/a.png
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--outer--
`,
			structure: `((("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)` +
				`("text" "html" ("charset" "utf-8") NIL NIL "8BIT" 11 1 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)` +
				`("image" "png" NIL "<img1@x>" "a picture" "BASE64" 12 NIL ("inline" ("filename" "a.png")) ("en" "de") "http://example.com/a.png")` +
				` "mixed" ("boundary" "outer") NIL NIL NIL)`,
			body: `((("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 5 1)("text" "html" ("charset" "utf-8") NIL NIL "8BIT" 11 1) "alternative")` +
				`("image" "png" NIL "<img1@x>" "a picture" "BASE64" 12) "mixed")`,
		},
		{
			name: "message/rfc822",
			msg: `Subject: fwd
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

see attached
--b
Content-Type: message/rfc822

From: Bob <bob@example.com>
Subject: inner
Message-ID: <in@x>

inner body
--b--
`,
			structure: `(("text" "plain" NIL NIL NIL "7BIT" 12 1 NIL NIL NIL NIL)` +
				`("message" "rfc822" NIL NIL NIL "7BIT" 77 ` +
				`(NIL "inner" (("Bob" NIL "bob" "example.com")) (("Bob" NIL "bob" "example.com")) (("Bob" NIL "bob" "example.com")) NIL NIL NIL NIL "<in@x>") ` +
				`("text" "plain" NIL NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 5 NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)`,
		},
		{
			name:      "parameters with RFC 2231 and non-ASCII",
			msg:       "Content-Type: application/octet-stream; name*=utf-8''%C3%A4.bin\nContent-Disposition: attachment; filename*=utf-8''%C3%A4.bin\n\nxx\n",
			structure: "(\"application\" \"octet-stream\" (\"name\" {6}\r\nä.bin) NIL NIL \"7BIT\" 4 NIL (\"attachment\" (\"filename\" {6}\r\nä.bin)) NIL NIL)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parseMsg(t, tc.msg)
			got := render(t, false, func(w *imapwire.Writer) { writeBodyStructure(w, p, true) })
			if got != tc.structure {
				t.Errorf("BODYSTRUCTURE\n got %s\nwant %s", got, tc.structure)
			}
			if tc.body != "" {
				got := render(t, false, func(w *imapwire.Writer) { writeBodyStructure(w, p, false) })
				if got != tc.body {
					t.Errorf("BODY\n got %s\nwant %s", got, tc.body)
				}
			}
		})
	}
}

func TestEnvelope(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		utf8 bool
		want string
	}{
		{
			name: "encoded words and groups",
			msg: `Date: Tue, 5 Mar 2024 09:00:00 +0100
Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= "quoted"
From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.com>
Sender: sec@example.com
Reply-To: list@example.com
To: Team: a@example.com, "B, Ltd" <b@example.com>;, c@example.com
Cc: undisclosed-recipients:;
In-Reply-To: <prev@x>
Message-ID: <id@x>

body
`,
			want: `("Tue, 5 Mar 2024 09:00:00 +0100" "=?ISO-8859-1?Q?Gr=FC=DFe?= \"quoted\"" ` +
				`(("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.com")) ` +
				`((NIL NIL "sec" "example.com")) ((NIL NIL "list" "example.com")) ` +
				`((NIL NIL "Team" NIL)(NIL NIL "a" "example.com")("B, Ltd" NIL "b" "example.com")(NIL NIL NIL NIL)(NIL NIL "c" "example.com")) ` +
				`((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL "<prev@x>" "<id@x>")`,
		},
		{
			name: "defaults and raw UTF-8",
			msg:  "From: Zoë <zoe@example.com>\nSubject: Größe\n\nx\n",
			want: "(NIL {7}\r\nGröße (({4}\r\nZoë NIL \"zoe\" \"example.com\")) (({4}\r\nZoë NIL \"zoe\" \"example.com\")) (({4}\r\nZoë NIL \"zoe\" \"example.com\")) NIL NIL NIL NIL NIL)",
		},
		{
			name: "raw UTF-8 with IMAP4rev2",
			msg:  "From: Zoë <zoe@example.com>\nSubject: Größe\n\nx\n",
			utf8: true,
			want: "(NIL \"Größe\" ((\"Zoë\" NIL \"zoe\" \"example.com\")) ((\"Zoë\" NIL \"zoe\" \"example.com\")) ((\"Zoë\" NIL \"zoe\" \"example.com\")) NIL NIL NIL NIL NIL)",
		},
		{
			name: "no envelope",
			want: "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var env *message.Envelope
			if tc.msg != "" {
				env = parseMsg(t, tc.msg).Envelope
			}
			got := render(t, tc.utf8, func(w *imapwire.Writer) { writeEnvelope(w, env) })
			if got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
