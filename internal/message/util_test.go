package message

import (
	"bytes"
	"encoding/base64"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestParseAddressList(t *testing.T) {
	tests := []struct {
		in   string
		want []Address
	}{
		{"", nil},
		{"alice@example.org", []Address{{Mailbox: "alice", Host: "example.org"}}},
		{"Alice <alice@example.org>", []Address{{Name: "Alice", Mailbox: "alice", Host: "example.org"}}},
		{`"Doe, John" <j@x.example>, b@y.example`, []Address{
			{Name: "Doe, John", Mailbox: "j", Host: "x.example"}, {Mailbox: "b", Host: "y.example"}}},
		{`John Q. Public <jqp@example.com>`, []Address{{Name: "John Q. Public", Mailbox: "jqp", Host: "example.com"}}},
		{`"quoted \"name\"" <q@example.com>`, []Address{{Name: `quoted "name"`, Mailbox: "q", Host: "example.com"}}},
		{"=?utf-8?q?J=C3=B6rg?= <j@example.de>", []Address{{Name: "=?utf-8?q?J=C3=B6rg?=", Mailbox: "j", Host: "example.de"}}},
		{`"=?utf-8?B?SsO2cmc=?=" <j@example.de>`, []Address{{Name: "=?utf-8?B?SsO2cmc=?=", Mailbox: "j", Host: "example.de"}}},
		{"pete(his account)@silly.test(his host)", []Address{{Name: "his host", Mailbox: "pete", Host: "silly.test"}}},
		{"bob@example.com (Bob  the\tBuilder)", []Address{{Name: "Bob the Builder", Mailbox: "bob", Host: "example.com"}}},
		{"(comment) <c@example.com>", []Address{{Name: "comment", Mailbox: "c", Host: "example.com"}}},
		{"A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;", []Address{
			{Mailbox: "A Group"},
			{Name: "Ed Jones", Mailbox: "c", Host: "a.test"},
			{Mailbox: "joe", Host: "where.test"},
			{Name: "John", Mailbox: "jdoe", Host: "one.test"},
			{GroupEnd: true},
		}},
		{"Undisclosed recipients:;", []Address{{Mailbox: "Undisclosed recipients"}, {GroupEnd: true}}},
		{"group: a@b.test", []Address{{Mailbox: "group"}, {Mailbox: "a", Host: "b.test"}, {GroupEnd: true}}},
		{":;", []Address{{Mailbox: MissingMailbox}, {GroupEnd: true}}},
		{"<@route1.test,@route2.test:user@host.test>", []Address{{Adl: "@route1.test,@route2.test", Mailbox: "user", Host: "host.test"}}},
		{"root", []Address{{Mailbox: "root", Host: MissingHost}}},
		{"<root>", []Address{{Mailbox: "root", Host: MissingHost}}},
		{"<@host.test>", []Address{{Mailbox: MissingMailbox, Host: "host.test"}}},
		{"<>", nil},
		{"Mailer <>", []Address{{Name: "Mailer", Mailbox: MissingMailbox, Host: MissingHost}}},
		{`"with space"@example.com`, []Address{{Mailbox: "with space", Host: "example.com"}}},
		{"user@[192.0.2.1]", []Address{{Mailbox: "user", Host: "[192.0.2.1]"}}},
		{"John Doe john@example.com", []Address{{Name: "John Doe", Mailbox: "john", Host: "example.com"}}},
		{"a . b @ example . com", []Address{{Mailbox: "a.b", Host: "example.com"}}},
		{",,, a@b.test ,, ", []Address{{Mailbox: "a", Host: "b.test"}}},
		{"Broken <a@b.test", []Address{{Name: "Broken", Mailbox: "a", Host: "b.test"}}},
		{`"unterminated <a@b.test>`, []Address{{Mailbox: "unterminated <a@b.test>", Host: MissingHost}}},
		{"a@b.test (unterminated", []Address{{Name: "unterminated", Mailbox: "a", Host: "b.test"}}},
		{"Doe, John <j@x.test>", []Address{{Mailbox: "Doe", Host: MissingHost}, {Name: "John", Mailbox: "j", Host: "x.test"}}},
		{"G1: a@b.test; G2: c@d.test;", []Address{
			{Mailbox: "G1"}, {Mailbox: "a", Host: "b.test"}, {GroupEnd: true},
			{Mailbox: "G2"}, {Mailbox: "c", Host: "d.test"}, {GroupEnd: true},
		}},
		{"0 ) y@example.com", []Address{{Name: "0", Mailbox: "y", Host: "example.com"}}},
		{"J\xf6rg <j@x.test>", []Address{{Name: "Jörg", Mailbox: "j", Host: "x.test"}}},
		{"Jörg <jörg@bücher.test>", []Address{{Name: "Jörg", Mailbox: "jörg", Host: "bücher.test"}}},
	}
	for _, tc := range tests {
		got := ParseAddressList(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseAddressList(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func TestDate(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s int) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"Tue, 15 Nov 1994 08:12:31 -0800", utc(1994, 11, 15, 16, 12, 31), true},
		{"15 Nov 1994 08:12:31 +0000 (UTC)", utc(1994, 11, 15, 8, 12, 31), true},
		{"Tue, 15 Nov 94 08:12 GMT", utc(1994, 11, 15, 8, 12, 0), true},
		{"15 Nov 03 8:12:31 PDT", utc(2003, 11, 15, 15, 12, 31), true},
		{"Tue Nov 15 08:12:31 1994", utc(1994, 11, 15, 8, 12, 31), true},
		{"Tuesday, November 15, 1994 8:12:31 PM -0500", utc(1994, 11, 16, 1, 12, 31), true},
		{"2020-03-04T05:06:07Z", utc(2020, 3, 4, 5, 6, 7), true},
		{"2020-03-04 05:06:07 +01:00", utc(2020, 3, 4, 4, 6, 7), true},
		{"4-Mar-2020 05:06:07+0100", utc(2020, 3, 4, 4, 6, 7), true},
		{"Wed, 4 Mar 2020", utc(2020, 3, 4, 0, 0, 0), true},
		{"Mon, 31 Dec 2001 23:59:60 +0000", utc(2001, 12, 31, 23, 59, 59), true},
		{"Thu, 1 Jan 2015 10:00:00 CET", utc(2015, 1, 1, 9, 0, 0), true},
		{"  Fri,  2 Jan 2015 10:00:00 +0000  ", utc(2015, 1, 2, 10, 0, 0), true},
		{"", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"32 Jan 2020", time.Time{}, false},
		{"1 Foo 2020", time.Time{}, false},
		{"1 Jan 2020 25:00:00", time.Time{}, false},
	}
	for _, tc := range tests {
		got, ok := Date(&Envelope{Date: tc.in})
		if ok != tc.ok || (ok && !got.Equal(tc.want)) {
			t.Errorf("Date(%q) = %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := Date(nil); ok {
		t.Errorf("nil envelope has a date")
	}
}

func TestDecodeHeaderValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"=?utf-8?q?caf=C3=A9?=", "café"},
		{"=?UTF-8?Q?a_b?= =?UTF-8?Q?c?=", "a bc"},
		{"=?utf-8?b?R3LDvMOfZQ==?= und =?utf-8?b?bWVocg==?=", "Grüße und mehr"},
		{"=?iso-8859-1?q?J=F6rg?=", "Jörg"},
		{"=?ISO-8859-15?Q?=A4?=", "€"},
		{"=?windows-1252?q?=93q=94?=", "“q”"},
		{"=?utf-8*de?q?Stra=C3=9Fe?=", "Straße"},
		// A multi-byte character split across two words.
		{"=?utf-8?b?w6Q=?= =?utf-8?b?w7Y=?=", "äö"},
		{"=?utf-8?b?4oI=?= =?utf-8?b?rA==?=", "€"},
		{"=?utf-8?q?a?==?utf-8?q?b?=", "ab"},
		{"=?unknown-charset?q?abc?=", "abc"},
		{"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},
		{"=?utf-8?q?unterminated", "=?utf-8?q?unterminated"},
		{"a =? b ?= c", "a =? b ?= c"},
		{"=?utf-8?q?one?= text =?utf-8?q?two?=", "one text two"},
		{"Gr\xfc\xdfe", "Grüße"},
		{"=?shift_jis?b?k/qWe4zq?=", "日本語"},
		{"=?iso-2022-jp?b?GyRCRnxLXDhsGyhC?=", "日本語"},
		{"=?utf-8?b?!!!?=", ""},
	}
	for _, tc := range tests {
		if got := DecodeHeaderValue(tc.in); got != tc.want {
			t.Errorf("DecodeHeaderValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeReader(t *testing.T) {
	tests := []struct{ enc, in, want string }{
		{"base64", "aGVsbG8gd29ybGQ=", "hello world"},
		{"BASE64", "aGVs\r\nbG8g\n d29y bGQ=\r\n", "hello world"},
		{"base64", "aGVs!!bG8*gd29ybGQ", "hello world"},
		{"base64", "aGk=aGk=", "hihi"},
		{"base64", "aGk", "hi"},
		{"base64", "a", ""},
		{"base64", "aGVsbG8_-w==", "hello?\xfb"}, // URL alphabet
		{"quoted-printable", "caf=C3=A9", "café"},
		{"Quoted-Printable", "caf=c3=a9", "café"},
		{"quoted-printable", "soft =\r\nbreak", "soft break"},
		{"quoted-printable", "soft =\nbreak", "soft break"},
		{"quoted-printable", "soft = \t\r\nbreak", "soft break"},
		{"quoted-printable", "trailing   \r\nspace\t\nend  ", "trailing\r\nspace\nend"},
		{"quoted-printable", "a = b =XY =4 =", "a = b =XY =4 ="},
		{"quoted-printable", "inner  space", "inner  space"},
		{"quoted-printable", "bare\rcr", "bare\rcr"},
		{"quoted-printable", "x=\ry", "xy"},
		{"quoted-printable", "=3D=3d", "=="},
		{"7bit", "as =3D is", "as =3D is"},
		{"", "plain", "plain"},
		{"x-unknown", "aGk=", "aGk="},
	}
	for _, tc := range tests {
		if got := readAll(t, DecodeReader(tc.enc, strings.NewReader(tc.in))); got != tc.want {
			t.Errorf("DecodeReader(%q, %q) = %q, want %q", tc.enc, tc.in, got, tc.want)
		}
		// Byte-at-a-time reads give the same result.
		if got := readAll(t, iotest.OneByteReader(DecodeReader(tc.enc, iotest.OneByteReader(strings.NewReader(tc.in))))); got != tc.want {
			t.Errorf("DecodeReader(%q, %q) one byte = %q, want %q", tc.enc, tc.in, got, tc.want)
		}
	}

	// Large input across chunk boundaries matches the standard decoder.
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.EncodeToString(data)
	var wrapped strings.Builder
	for i := 0; i < len(enc); i += 76 {
		wrapped.WriteString(enc[i:min(i+76, len(enc))] + "\r\n")
	}
	if got := readAll(t, DecodeReader("base64", strings.NewReader(wrapped.String()))); got != string(data) {
		t.Errorf("large base64 differs")
	}

	// Errors from the underlying reader are passed on.
	boom := io.ErrClosedPipe
	if _, err := io.ReadAll(DecodeReader("base64", iotest.ErrReader(boom))); err != boom {
		t.Errorf("base64 error %v", err)
	}
	if _, err := io.ReadAll(DecodeReader("quoted-printable", iotest.ErrReader(boom))); err != boom {
		t.Errorf("qp error %v", err)
	}
}

// stuckReader never returns data nor an error.
type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestDecodeReaderNoProgress(t *testing.T) {
	for _, enc := range []string{"base64", "quoted-printable"} {
		if _, err := io.ReadAll(DecodeReader(enc, stuckReader{})); err != io.ErrNoProgress {
			t.Errorf("%s: %v", enc, err)
		}
	}
}

func TestCharsetReader(t *testing.T) {
	tests := []struct{ charset, in, want string }{
		{"utf-8", "café", "café"},
		{"UTF-8", "caf\xe9", "caf\xe9"}, // passed through, not replaced
		{"us-ascii", "abc", "abc"},
		{"iso-8859-1", "caf\xe9", "café"},
		{"ISO-8859-1", "\x93q\x94", "“q”"}, // windows-1252 superset, as browsers do
		{"latin1", "\xe9", "é"},
		{"windows-1252", "\x80", "€"},
		{"iso-8859-15", "\xa4", "€"},
		{"koi8-r", "\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"},
		{"shift_jis", "\x93\xfa\x96\x7b", "日本"},
		{"gb2312", "\xc4\xe3\xba\xc3", "你好"},
		{"\"iso-8859-1\"", "\xe9", "é"},
		{"x-no-such-charset", "caf\xe9", "caf\xe9"},
		{"", "raw", "raw"},
	}
	for _, tc := range tests {
		if got := readAll(t, CharsetReader(tc.charset, strings.NewReader(tc.in))); got != tc.want {
			t.Errorf("CharsetReader(%q, %q) = %q, want %q", tc.charset, tc.in, got, tc.want)
		}
	}
}

const fieldsHeader = "Subject: hello\r\n" +
	"X-Long: first\r\n" +
	"\tsecond\r\n" +
	"From: a@example.org\r\n" +
	"subject : duplicate\r\n" +
	"garbage line\r\n" +
	"To: b@example.org\n" +
	" folded-lf\n" +
	"\r\n"

func TestHeaderFields(t *testing.T) {
	tests := []struct {
		raw   string
		names []string
		not   bool
		want  string
	}{
		{fieldsHeader, []string{"SUBJECT"}, false, "Subject: hello\r\nsubject : duplicate\r\n\r\n"},
		{fieldsHeader, []string{"x-long", "to"}, false, "X-Long: first\r\n\tsecond\r\nTo: b@example.org\r\n folded-lf\r\n\r\n"},
		{fieldsHeader, []string{"subject", "x-long", "to"}, true, "From: a@example.org\r\ngarbage line\r\n\r\n"},
		{fieldsHeader, []string{"nonexistent"}, false, "\r\n"},
		{fieldsHeader, nil, true, strings.ReplaceAll(strings.ReplaceAll(fieldsHeader, "\r\n", "\n"), "\n", "\r\n")},
		{"Subject: no blank line", []string{"subject"}, false, "Subject: no blank line\r\n"},
		{"Subject: x\n\nSubject: in body\n", []string{"subject"}, false, "Subject: x\r\n\r\n"},
		{"", []string{"subject"}, false, ""},
		{" leading continuation\nA: b\n\n", []string{"a"}, true, " leading continuation\r\n\r\n"},
	}
	for _, tc := range tests {
		if got := string(HeaderFields([]byte(tc.raw), tc.names, tc.not)); got != tc.want {
			t.Errorf("HeaderFields(%q, %q, %v)\n got %q\nwant %q", tc.raw, tc.names, tc.not, got, tc.want)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	raw := []byte(fieldsHeader)
	if v, ok := HeaderValue(raw, "x-long"); !ok || v != "first\tsecond" {
		t.Errorf("x-long %q %v", v, ok)
	}
	if v, ok := HeaderValue(raw, "SUBJECT"); !ok || v != "hello" {
		t.Errorf("subject %q %v", v, ok)
	}
	if _, ok := HeaderValue(raw, "missing"); ok {
		t.Errorf("missing field found")
	}
	if vs := HeaderValues(raw, "subject"); !reflect.DeepEqual(vs, []string{"hello", "duplicate"}) {
		t.Errorf("values %q", vs)
	}
	if v, _ := HeaderValue(raw, "to"); v != "b@example.org folded-lf" {
		t.Errorf("to %q", v)
	}
}

func TestReadHeader(t *testing.T) {
	msg := loadFixture(t, "simple.eml", true)
	p, err := Parse(bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(bytes.NewReader(msg), p.HeaderStart, p.BodyStart)
	if err != nil || string(h) != string(msg[:p.BodyStart]) {
		t.Fatalf("ReadHeader: %v %q", err, h)
	}
	if got := string(HeaderFields(h, []string{"Message-ID"}, false)); got != "Message-ID: <1234@example.org>\r\n\r\n" {
		t.Errorf("fields %q", got)
	}
	if _, err := ReadHeader(bytes.NewReader(msg), 0, int64(len(msg))+5); err == nil {
		t.Errorf("short read accepted")
	}
	if _, err := ReadHeader(bytes.NewReader(msg), 5, 4); err == nil {
		t.Errorf("bad range accepted")
	}
	big := strings.Repeat("X-Filler: 0123456789012345678901234567890123456789\r\n", MaxHeaderRead/50+10)
	h, err = ReadHeader(strings.NewReader(big), 0, int64(len(big)))
	if err != nil || len(h) > MaxHeaderRead || len(h) < MaxHeaderRead-100 || !bytes.HasSuffix(h, []byte("\r\n")) {
		t.Errorf("big header: %v, %d bytes", err, len(h))
	}
}

func TestParams(t *testing.T) {
	tests := []struct {
		in   string
		want [][2]string
	}{
		{`text/plain; charset=utf-8; format=flowed`, [][2]string{{"charset", "utf-8"}, {"format", "flowed"}}},
		{`text/plain; CHARSET="UTF-8"`, [][2]string{{"charset", "UTF-8"}}},
		{`text/plain; charset = "us-ascii" (comment) ; x=y`, [][2]string{{"charset", "us-ascii"}, {"x", "y"}}},
		{`text/plain; charset=us-ascii (Plain text)`, [][2]string{{"charset", "us-ascii"}}},
		{`application/pdf; name=my file.pdf`, [][2]string{{"name", "my file.pdf"}}},
		{`application/pdf; name="a;b.pdf"; x`, [][2]string{{"name", "a;b.pdf"}}},
		{`application/pdf; name="esc\"aped"`, [][2]string{{"name", `esc"aped`}}},
		{`application/pdf; name="unterminated`, [][2]string{{"name", "unterminated"}}},
		{`a/b; p*=us-ascii'en'This%20is%20%2A%2A%2Afun%2A%2A%2A`, [][2]string{{"p", "This is ***fun***"}}},
		{`a/b; p*1*=%20world; p*0*=utf-8''hello`, [][2]string{{"p", "hello world"}}},
		{`a/b; p*0="a"; p*1="b"; p*2*=%63`, [][2]string{{"p", "abc"}}},
		{`a/b; p="plain"; p*=utf-8''%E2%82%AC`, [][2]string{{"p", "€"}}},
		{`a/b; p*=utf-8''%ZZ%4`, [][2]string{{"p", "%ZZ%4"}}},
		{`a/b; p*=''nocharset`, [][2]string{{"p", "nocharset"}}},
		{`a/b; p*=noquotes`, [][2]string{{"p", "noquotes"}}},
		{`a/b; p*x=1; p*99999999=2`, [][2]string{{"p*x", "1"}, {"p*99999999", "2"}}},
		{`a/b; =novalue; ;; q=1`, [][2]string{{"q", "1"}}},
		{`a/b; q=1; q=2`, [][2]string{{"q", "1"}}},
	}
	for _, tc := range tests {
		_, _, got, _ := parseContentType([]byte(tc.in))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("params of %q\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	many := "a/b" + strings.Repeat("; x=y", 10000)
	if _, _, got, _ := parseContentType([]byte(many)); len(got) != 1 {
		t.Errorf("repeated param: %d", len(got))
	}
}
