package imapserver

import (
	"regexp"
	"strings"
	"testing"
)

// runTranscript plays a transcript in the style of the RFCs' examples:
//
//	C: a1 UID STORE 4,6 (UNCHANGEDSINCE $h0) +FLAGS.SILENT (\Deleted)
//	S: * 1 FETCH (UID 4 MODSEQ ($m4))
//	S: a1 OK [MODIFIED 6] {*}
//
// "C:" lines are sent as they are (the first word is the tag), after
// replacing $name by the value bound earlier. The "S:" lines that follow
// must match the server's responses to that command, in order. In them,
// $name (lower-case first letter; "$Seen"-style keywords stay literal)
// matches a number and binds it (or must equal it when already
// bound), $_ matches any number, {*} any text, and a line "S: ..." skips
// any number of responses. vars may hold bindings made by the caller and
// receives those made by the transcript.
func runTranscript(t *testing.T, c *client, vars map[string]string, script string) {
	t.Helper()
	type exchange struct {
		cmd  string
		want []string
	}
	var ex []*exchange
	for _, l := range strings.Split(script, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "C: "):
			ex = append(ex, &exchange{cmd: l[3:]})
		case strings.HasPrefix(l, "S: ") && len(ex) > 0:
			ex[len(ex)-1].want = append(ex[len(ex)-1].want, l[3:])
		default:
			t.Fatalf("bad transcript line %q", l)
		}
	}
	for _, e := range ex {
		cmd := substVars(t, e.cmd, vars)
		tag, rest, _ := strings.Cut(cmd, " ")
		c.write(tag + " " + rest + "\r\n")
		var got []string
		for {
			l := c.readLine()
			got = append(got, l)
			if strings.HasPrefix(l, tag+" ") {
				break
			}
		}
		if !matchLines(t, e.want, got, vars) {
			t.Fatalf("C: %s\nwant:\n  %s\ngot:\n  %s", cmd, strings.Join(e.want, "\n  "), strings.Join(got, "\n  "))
		}
	}
}

var varRE = regexp.MustCompile(`\$[a-z_][A-Za-z0-9_]*`)

func substVars(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	return varRE.ReplaceAllStringFunc(s, func(v string) string {
		val, ok := vars[v[1:]]
		if !ok {
			t.Fatalf("transcript uses unbound %s", v)
		}
		return val
	})
}

// matchLines matches got against the patterns of want (see
// runTranscript), binding variables only when the whole exchange matches.
func matchLines(t *testing.T, want, got []string, vars map[string]string) bool {
	var try func(wi, gi int, b map[string]string) map[string]string
	try = func(wi, gi int, b map[string]string) map[string]string {
		if wi == len(want) {
			if gi == len(got) {
				return b
			}
			return nil
		}
		if want[wi] == "..." {
			for k := gi; k <= len(got); k++ {
				if r := try(wi+1, k, b); r != nil {
					return r
				}
			}
			return nil
		}
		if gi == len(got) {
			return nil
		}
		nb, ok := matchLine(want[wi], got[gi], b)
		if !ok {
			return nil
		}
		return try(wi+1, gi+1, nb)
	}
	b := try(0, 0, vars)
	if b == nil {
		return false
	}
	for k, v := range b {
		vars[k] = v
	}
	return true
}

func matchLine(pat, line string, vars map[string]string) (map[string]string, bool) {
	var re strings.Builder
	var names []string
	re.WriteString("^")
	for len(pat) > 0 {
		switch {
		case strings.HasPrefix(pat, "{*}"):
			re.WriteString(".*")
			pat = pat[3:]
		case pat[0] == '$' && len(pat) > 1 && varRE.MatchString(pat[:2]):
			name := varRE.FindString(pat)
			pat = pat[len(name):]
			re.WriteString(`(\d+)`)
			names = append(names, name[1:])
		default:
			re.WriteString(regexp.QuoteMeta(pat[:1]))
			pat = pat[1:]
		}
	}
	re.WriteString("$")
	m := regexp.MustCompile(re.String()).FindStringSubmatch(line)
	if m == nil {
		return nil, false
	}
	out := make(map[string]string, len(vars)+len(names))
	for k, v := range vars {
		out[k] = v
	}
	for i, n := range names {
		if n == "_" {
			continue
		}
		if v, ok := out[n]; ok && v != m[i+1] {
			return nil, false
		}
		out[n] = m[i+1]
	}
	return out, true
}

func TestTranscriptMatcher(t *testing.T) {
	vars := map[string]string{"a": "5"}
	if b, ok := matchLine(`* $a FETCH (UID $u MODSEQ ($_)) {*}`, "* 5 FETCH (UID 7 MODSEQ (99)) whatever", vars); !ok || b["u"] != "7" {
		t.Fatalf("got %v %v", b, ok)
	}
	if _, ok := matchLine(`* $a EXISTS`, "* 6 EXISTS", vars); ok {
		t.Fatal("bound variable must match its value")
	}
	if !matchLines(t, []string{"...", "x OK $n"}, []string{"* 1", "* 2", "x OK 3"}, vars) || vars["n"] != "3" {
		t.Fatalf("skip: %v", vars)
	}
	if matchLines(t, []string{"* 1", "x OK"}, []string{"* 1", "* 2", "x OK"}, vars) {
		t.Fatal("an unexpected response must fail the match")
	}
}
