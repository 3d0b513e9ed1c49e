package message

import (
	"bytes"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func addFixtureSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
	}
	for _, s := range []string{
		"",
		"\n",
		"Subject: x",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n--b--",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n--b--\n",
		"Content-Type: multipart/digest; boundary=\"\"\n\n--\n\n",
		"Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n",
		"Content-Type: text/plain; name*0*=utf-8''%E2; name*1*=%82%AC\n\n",
	} {
		f.Add([]byte(s))
	}
}

func FuzzParse(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		p, err := Parse(bytes.NewReader(msg), int64(len(msg)))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		checkInvariants(t, p, msg)
		if p.Envelope == nil {
			t.Fatalf("root without envelope")
		}
		q, err := Decode(p.Encode())
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("roundtrip differs:\n%s\n%s", p.Encode(), q.Encode())
		}
		var walk func(p *Part, path []int)
		walk = func(part *Part, path []int) {
			for _, spec := range []string{"", "HEADER", "TEXT", "MIME"} {
				if s, e, ok := p.Section(path, spec); ok && (s < 0 || e < s || e > int64(len(msg))) {
					t.Fatalf("section %v %s: %d..%d of %d", path, spec, s, e, len(msg))
				}
			}
			if len(path) > 0 && p.Find(path) != part {
				t.Fatalf("Find(%v) is not the part walked to", path)
			}
			kids := part.Parts
			if part.Message != nil {
				if part.Message.MediaType == "multipart" {
					kids = part.Message.Parts
				} else {
					kids = []*Part{part.Message}
				}
			}
			for i, c := range kids {
				walk(c, append(path[:len(path):len(path)], i+1))
			}
		}
		if p.MediaType == "multipart" {
			for i, c := range p.Parts {
				walk(c, []int{i + 1})
			}
		} else {
			walk(p, []int{1})
		}
		h := msg[p.HeaderStart:p.BodyStart]
		HeaderFields(h, []string{"subject", "content-type"}, false)
		HeaderFields(h, []string{"subject"}, true)
	})
}

func FuzzAddressList(f *testing.F) {
	for _, s := range []string{
		"a@b.test", `"x, y" <a@b.test>, g: c@d.test, e@f.test;`, "<@r1,@r2:u@h>", "(c) a(b)@c(d)",
		"=?utf-8?q?x?= <a@b>", ":;", "<>", `"\`, "(((", "a@b@c", "[x", "G:;G:;;;::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addrs := ParseAddressList(s)
		if len(addrs) > maxAddrs+1 {
			t.Fatalf("%d addresses", len(addrs))
		}
		inGroup := false
		for _, a := range addrs {
			for _, v := range []string{a.Name, a.Adl, a.Mailbox, a.Host} {
				if !utf8.ValidString(v) {
					t.Fatalf("invalid UTF-8 in %+v", a)
				}
			}
			switch {
			case a.GroupEnd:
				if !inGroup || a != (Address{GroupEnd: true}) {
					t.Fatalf("bad group end in %+v", addrs)
				}
				inGroup = false
			case a.Host == "":
				if inGroup || a.Mailbox == "" || a.Name != "" || a.Adl != "" {
					t.Fatalf("bad group start in %+v", addrs)
				}
				inGroup = true
			case a.Mailbox == "":
				t.Fatalf("mailbox without local part in %+v", addrs)
			}
		}
		if inGroup {
			t.Fatalf("unterminated group in %+v", addrs)
		}
	})
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, fn := range files {
		b, _ := os.ReadFile(fn)
		if p, err := Parse(bytes.NewReader(b), int64(len(b))); err == nil {
			f.Add(p.Encode())
		}
	}
	f.Add([]byte(`{"hs":0,"bs":1,"be":9,"t":"multipart","st":"mixed","n":0,"c":[{"hs":2,"bs":3,"be":4,"t":"text","st":"plain","n":0}]}`))
	f.Add([]byte(`{"c":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		n := 0
		if err := p.check(0, 0, -1, &n); err != nil {
			t.Fatalf("decoded summary fails check: %v", err)
		}
		for _, path := range [][]int{nil, {1}, {1, 1}, {2, 1}, {1, 2, 3}} {
			for _, spec := range []string{"", "HEADER", "TEXT", "MIME"} {
				if s, e, ok := p.Section(path, spec); ok && (s < 0 || e < s) {
					t.Fatalf("section %v %s: %d..%d", path, spec, s, e)
				}
			}
		}
		// Re-encoding is stable (Decode accepts what it produced).
		q, err := Decode(p.Encode())
		if err != nil || !bytes.Equal(p.Encode(), q.Encode()) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func FuzzDecodeReader(f *testing.F) {
	f.Add(true, []byte("aGVsbG8=\r\nd29ybGQ="))
	f.Add(false, []byte("a=3D=\r\nb = \r\n=4"))
	f.Fuzz(func(t *testing.T, b64 bool, data []byte) {
		enc := "quoted-printable"
		if b64 {
			enc = "base64"
		}
		got, err := io.ReadAll(DecodeReader(enc, bytes.NewReader(data)))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > len(data) {
			t.Fatalf("decoded %d bytes from %d", len(got), len(data))
		}
		if b64 {
			if want, err := base64.StdEncoding.DecodeString(string(data)); err == nil && !bytes.Equal(got, want) {
				t.Fatalf("base64 %q: %q, want %q", data, got, want)
			}
			// Clean input round-trips.
			enc := base64.StdEncoding.EncodeToString(data)
			if got, _ := io.ReadAll(DecodeReader("base64", strings.NewReader(enc))); !bytes.Equal(got, data) {
				t.Fatalf("base64 roundtrip of %q: %q", data, got)
			}
		}
	})
}

func FuzzDecodeHeaderValue(f *testing.F) {
	for _, s := range []string{"=?utf-8?q?a?= =?utf-8?b?w6Q=?=", "=?", "=??=", "=?x?q?", "=?utf-16?b?AEEAQg==?="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if out := DecodeHeaderValue(s); !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 from %q: %q", s, out)
		}
	})
}

func FuzzDate(f *testing.F) {
	for _, s := range []string{"Tue, 15 Nov 1994 08:12:31 -0800", "1-1-1", "(", "9999-99-99", "1 jan 1 1:1:1 +9999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseDate(s)
	})
}

func FuzzHeaderFields(f *testing.F) {
	f.Add([]byte(fieldsHeader), "subject")
	f.Fuzz(func(t *testing.T, raw []byte, name string) {
		for _, not := range []bool{false, true} {
			out := HeaderFields(raw, []string{name}, not)
			for len(out) > 0 {
				i := bytes.Index(out, []byte("\r\n"))
				if i < 0 {
					t.Fatalf("line without CRLF in %q", out)
				}
				out = out[i+2:]
			}
		}
		HeaderValues(raw, name)
	})
}

// bench4K is a typical 4 KiB delivered message: trace and authentication
// headers, a text body.
func bench4K() []byte {
	var b bytes.Buffer
	b.WriteString("Return-Path: <newsletter@lists.example.org>\r\n")
	for i := 0; i < 3; i++ {
		b.WriteString("Received: from mail" + string(rune('a'+i)) + ".example.org (mail.example.org [192.0.2.10])\r\n" +
			"\tby mx.example.com (mailstead) with ESMTPS id 4XyZ1234abcd\r\n" +
			"\tfor <bob@example.com>; Tue, 15 Nov 2022 08:12:31 +0000 (UTC)\r\n")
	}
	b.WriteString("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel1;\r\n" +
		"\th=from:to:subject:date:message-id:mime-version:content-type;\r\n" +
		"\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n" +
		"\tb=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR\r\n" +
		"\t TbVNs3j6dRe7Sj2FMlZP9z9Dj9TJWN0ar7YuCHTSYuYqzGZHJsB7YjvDOPo8SiCd\r\n" +
		"\t EF7NMbyHnGnBLeNUF0Sc5qU3Fj8nV4tKa0jLPPiYpSt0vl9Y=\r\n")
	b.WriteString("Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=lists.example.org;\r\n" +
		"\tdkim=pass header.d=example.org; dmarc=pass header.from=example.org\r\n")
	b.WriteString("From: \"Example Newsletter\" <newsletter@example.org>\r\n" +
		"To: Bob Example <bob@example.com>, \"Carol, C.\" <carol@example.com>\r\n" +
		"Cc: team@example.com\r\n" +
		"Subject: =?utf-8?q?Your_weekly_digest_=E2=80=93_issue_42?=\r\n" +
		"Date: Tue, 15 Nov 2022 08:12:30 +0000\r\n" +
		"Message-ID: <20221115081230.12345@example.org>\r\n" +
		"List-Unsubscribe: <mailto:unsubscribe@example.org>, <https://example.org/unsub?id=12345>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8; format=flowed\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\n")
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
	for b.Len()+len(line) <= 4096 {
		b.WriteString(line)
	}
	return b.Bytes()
}

func BenchmarkParse4K(b *testing.B) {
	msg := bench4K()
	r := bytes.NewReader(msg)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(r, int64(len(msg))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMultipart(b *testing.B) {
	msg := loadFixture(b, "nested.eml", true)
	r := bytes.NewReader(msg)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(r, int64(len(msg))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAttachment measures throughput on a 5 MB base64 attachment.
func BenchmarkParseAttachment(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := strings.Repeat("QUJD", 19) + "\r\n"
	for buf.Len() < 5<<20 {
		buf.WriteString(line)
	}
	buf.WriteString("--x--\r\n")
	msg := buf.Bytes()
	r := bytes.NewReader(msg)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(r, int64(len(msg))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	msg := bench4K()
	p, err := Parse(bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(p.Encode()); err != nil {
			b.Fatal(err)
		}
	}
}
