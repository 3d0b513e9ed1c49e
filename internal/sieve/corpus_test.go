package sieve

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// corpusCase is one case of a corpus file.
type corpusCase struct {
	name string
	env  Envelope
	msg  string
	want string
}

// parseCorpus reads a corpus file: a description, then sections started by
// "== script", "== case NAME" (envelope lines "env.KEY: value", a blank
// line, the message) and "== want NAME" (Result.String()).
func parseCorpus(t *testing.T, path string) (string, []*corpusCase) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var script string
	cases := map[string]*corpusCase{}
	var order []*corpusCase
	var section, name string
	var body []string
	flush := func() {
		text := strings.Join(body, "\n")
		switch section {
		case "script":
			script = text
		case "case":
			c := &corpusCase{name: name}
			head, msg, _ := strings.Cut(text, "\n\n")
			if strings.HasPrefix(text, "\n") {
				head, msg = "", text[1:]
			}
			for _, l := range strings.Split(head, "\n") {
				k, v, ok := strings.Cut(l, ":")
				if !ok || !strings.HasPrefix(k, "env.") {
					t.Fatalf("%s: case %s: bad envelope line %q", path, name, l)
				}
				v = strings.TrimSpace(v)
				switch strings.TrimPrefix(k, "env.") {
				case "from":
					c.env.From = v
				case "to":
					c.env.To = v
				case "auth":
					c.env.Auth = v
				case "spf":
					c.env.SPF = v
				case "dkim":
					c.env.DKIM = v
				case "dkim-domains":
					c.env.DKIMDomains = strings.Fields(v)
				case "dmarc":
					c.env.DMARC = v
				case "dmarc-policy":
					c.env.DMARCPolicy = v
				case "spam":
					c.env.SpamScore, _ = strconv.Atoi(v)
				default:
					t.Fatalf("%s: unknown envelope key %q", path, k)
				}
			}
			if c.env.To == "" {
				c.env.To = "me@example.com"
			}
			c.msg = msg + "\n"
			cases[name] = c
			order = append(order, c)
		case "want":
			c := cases[name]
			if c == nil {
				t.Fatalf("%s: want for unknown case %q", path, name)
			}
			c.want = text + "\n"
		}
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "== ") {
			flush()
			f := strings.TrimPrefix(l, "== ")
			section, name, _ = strings.Cut(f, " ")
			body = nil
			continue
		}
		body = append(body, l)
	}
	flush()
	if script == "" || len(order) == 0 {
		t.Fatalf("%s: no script or no cases", path)
	}
	return script, order
}

// TestCorpus runs the real-world scripts in testdata/corpus.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*.txt")
	if err != nil || len(files) < 15 {
		t.Fatalf("corpus: %v, %d files", err, len(files))
	}
	for _, f := range files {
		script, cases := parseCorpus(t, f)
		s, err := Parse(script)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, c := range cases {
			t.Run(filepath.Base(f)+"/"+c.name, func(t *testing.T) {
				if c.want == "" {
					t.Fatal("no want section")
				}
				res, err := Run(context.Background(), s, MessageFromBytes(crlfMsg(c.msg)), c.env, testOpts())
				if err != nil {
					t.Fatal(err)
				}
				if got := res.String(); got != c.want {
					t.Fatalf("got:\n%swant:\n%s", got, c.want)
				}
			})
		}
	}
}
