package sieve

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func corpusScripts(f *testing.F) []string {
	files, _ := filepath.Glob("testdata/corpus/*.txt")
	var out []string
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		s := string(b)
		if i := strings.Index(s, "== script\n"); i >= 0 {
			s = s[i+len("== script\n"):]
			if j := strings.Index(s, "\n== "); j >= 0 {
				s = s[:j]
			}
			out = append(out, s)
		}
	}
	return out
}

// FuzzParse checks that parsing never panics and that errors carry a
// position or are limit errors.
func FuzzParse(f *testing.F) {
	for _, s := range corpusScripts(f) {
		f.Add(s)
	}
	for _, s := range []string{
		"", "keep;", "if true {", "text:\n", "\"\\", "/*", `require "variables"; set "a" "${`,
		`require "encoded-character"; keep :flags "${hex:zz}${unicode:110000}";`,
		"if anyof(not not true, false) { stop; }",
		`require "regex"; if header :regex "a" "[[:alpha:]]{2,3}(x|y)*" { stop; }`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Parse(src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if s == nil {
			t.Fatal("nil script without error")
		}
	})
}

// FuzzRun runs fuzzed scripts on fuzzed messages: no panic, bounded time,
// and a runtime error always comes with the INBOX result.
func FuzzRun(f *testing.F) {
	msgs := []string{
		rfcMessage,
		"Subject: =?utf-8?q?x?=\nList-Id: <a.b>\nTo: a@b, \"c\" <d@e>, g: h@i;\n\nbody",
		"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/html\n\n<p>hi</p>\n--x--\n",
	}
	for i, s := range corpusScripts(f) {
		f.Add(s, msgs[i%len(msgs)])
	}
	f.Add(`require ["variables","fileinto","regex","editheader","imap4flags","body","date","relational","environment","subaddress","envelope"];
if header :matches "subject" "*" { set :upper "s" "${1}"; }
if header :regex "to" "(.*)@(.*)" { fileinto "${2}"; }
deleteheader :matches "subject" "*"; addheader :last "X" "${s}";
if body :raw :contains "" { addflag "a b c"; }
if date :value "gt" "date" "year" "1" { keep :flags "\\Seen"; }
if envelope :detail "to" "x" { stop; }`, msgs[1])
	f.Fuzz(func(t *testing.T, src, msg string) {
		s, err := Parse(src)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := Run(ctx, s, MessageFromBytes([]byte(msg)), testEnv, testOpts())
		if err != nil && (!res.ImplicitKeep || len(res.Deliveries) != 1 || len(res.Redirects) != 0) {
			t.Fatalf("error result %+v for %v", res, err)
		}
		if !res.ImplicitKeep && len(res.Deliveries) > 0 && res.Deliveries[len(res.Deliveries)-1].Implicit {
			t.Fatal("implicit delivery without implicit keep")
		}
	})
}

// FuzzMatches compares globMatch with a naive backtracking matcher.
func FuzzMatches(f *testing.F) {
	f.Add("frop.......frop.........frop....", "?*frop*")
	f.Add("klopfropstroptop", "*?op*")
	f.Add("abc", "a\\*c")
	f.Fuzz(func(t *testing.T, value, pattern string) {
		if len(value) > 64 || len(pattern) > 16 {
			return
		}
		ok, caps := globMatch(cmpOctet, value, pattern)
		want, wcaps := naiveGlob(value, pattern)
		if ok != want {
			t.Fatalf("%q %q: got %v want %v", value, pattern, ok, want)
		}
		if ok && strings.Join(caps, "\x00") != strings.Join(wcaps, "\x00") {
			t.Fatalf("%q %q: caps %q want %q", value, pattern, caps, wcaps)
		}
	})
}

// naiveGlob is shortest-first backtracking on octets.
func naiveGlob(v, p string) (bool, []string) {
	type tok struct {
		c    byte
		kind byte // 'l' literal, '?' any, '*' star
	}
	var toks []tok
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*', '?':
			toks = append(toks, tok{kind: p[i]})
		case '\\':
			if i+1 < len(p) {
				i++
			}
			toks = append(toks, tok{c: p[i], kind: 'l'})
		default:
			toks = append(toks, tok{c: p[i], kind: 'l'})
		}
	}
	var rec func(ti, vi int, caps []string) (bool, []string)
	rec = func(ti, vi int, caps []string) (bool, []string) {
		if ti == len(toks) {
			return vi == len(v), caps
		}
		switch t := toks[ti]; t.kind {
		case 'l':
			if vi < len(v) && v[vi] == t.c {
				return rec(ti+1, vi+1, caps)
			}
			return false, nil
		case '?':
			if vi < len(v) {
				return rec(ti+1, vi+1, append(append([]string(nil), caps...), v[vi:vi+1]))
			}
			return false, nil
		}
		for end := vi; end <= len(v); end++ {
			if ok, c := rec(ti+1, end, append(append([]string(nil), caps...), v[vi:end])); ok {
				return true, c
			}
		}
		return false, nil
	}
	ok, caps := rec(0, 0, []string{v})
	return ok, caps
}
