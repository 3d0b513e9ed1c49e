package spam

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeRspamd replays recorded /checkv2 replies (testdata/rspamd) and
// records what it was sent.
type fakeRspamd struct {
	mu     sync.Mutex
	reply  []byte
	status int
	delay  time.Duration
	reqs   []*http.Request
	bodies [][]byte
}

func (f *fakeRspamd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.bodies = append(f.bodies, body)
	reply, status, delay := f.reply, f.status, f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(reply)
}

func (f *fakeRspamd) set(reply []byte, status int, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reply, f.status, f.delay = reply, status, delay
}

func (f *fakeRspamd) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func readReply(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rspamd", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const testMessage = "Received: from mail.example.org\r\nFrom: a@example.org\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"

// rspamdInput is a message from a listed client with a bare-IP HELO:
// built-in score 3+2+2 = 7, junk.
func rspamdInput(t testing.TB, c *Checker) MessageInput {
	conn := c.CheckConnection(bg, netip.MustParseAddr("192.0.2.66"), "192.0.2.66")
	msg := strings.NewReader(testMessage)
	return MessageInput{Conn: conn, MailFrom: "a@example.org", Rcpts: []string{"b@example.com", "c@example.com"},
		QueueID: "Q123", Message: msg, Size: msg.Size()}
}

func newRspamdChecker(t *testing.T, rc RspamdConfig) (*Checker, *fakeRspamd, *prometheus.Registry) {
	t.Helper()
	f := &fakeRspamd{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	if rc.URL == "" {
		rc.URL = srv.URL
	}
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Hostname = "mx.ours.example.net"
	cfg.DNSBL = []List{{Zone: "bl1.example", Weight: 3}}
	cfg.Rspamd = rc
	cfg.Registerer = reg
	return newChecker(t, cfg, newZone(t)), f, reg
}

func TestRspamdActions(t *testing.T) {
	tests := []struct {
		file     string
		ignoreGL bool
		action   Action
		mailbox  string
		reply    string
		score    float64
		flag     bool
	}{
		{file: "no_action.json", action: Accept, mailbox: MailboxInbox, score: -0.3},
		{file: "add_header.json", action: Junk, mailbox: MailboxJunk, score: 7, flag: true},
		{file: "rewrite_subject.json", action: Junk, mailbox: MailboxJunk, score: 12, flag: true},
		{file: "greylist.json", action: Defer, reply: "451 4.7.1 Greylisted, try again later", score: 5},
		{file: "greylist.json", ignoreGL: true, action: Accept, mailbox: MailboxInbox, score: 5},
		{file: "soft_reject.json", action: Defer, reply: "451 4.7.1 Try again later"},
		{file: "reject.json", action: Reject, reply: "550 5.7.1 Message rejected as spam", score: 20},
		{file: "reject_message.json", action: Reject, reply: "550 5.7.1 Custom reject text  Injected: yes"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			c, f, reg := newRspamdChecker(t, RspamdConfig{IgnoreGreylist: tc.ignoreGL, PassAll: true})
			f.set(readReply(t, tc.file), 0, 0)
			v := c.CheckMessage(bg, rspamdInput(t, c))
			if v.Source != "rspamd" || v.RspamdErr != nil {
				t.Fatalf("source %s err %v", v.Source, v.RspamdErr)
			}
			if v.Action != tc.action || v.Mailbox != tc.mailbox || v.Score != tc.score || v.Required != 15 {
				t.Errorf("verdict %s %q score %g required %g, want %s %q %g", v.Action, v.Mailbox, v.Score, v.Required, tc.action, tc.mailbox, tc.score)
			}
			var reply string
			if v.Reply != nil {
				reply = v.Reply.String()
			}
			if reply != tc.reply {
				t.Errorf("reply %q, want %q", reply, tc.reply)
			}
			h := string(v.Headers())
			if strings.Contains(h, "X-Spam-Flag: YES") != tc.flag || !strings.Contains(h, "required=15.00") {
				t.Errorf("headers:\n%s", h)
			}
			if got := metricValue(t, reg, "mailstead_spam_verdicts_total", "source", "rspamd", "action", string(tc.action)); got != 1 {
				t.Errorf("verdict metric %g", got)
			}
			if got := metricValue(t, reg, "mailstead_spam_rspamd_duration_seconds"); got != 1 {
				t.Errorf("latency observations %g", got)
			}
		})
	}
}

func TestRspamdRequest(t *testing.T) {
	c, f, _ := newRspamdChecker(t, RspamdConfig{PassAll: true})
	f.set(readReply(t, "no_action.json"), 0, 0)
	in := rspamdInput(t, c)
	in.User = "bob@example.com"
	c.CheckMessage(bg, in)
	// iprev-passing client: its name is the Hostname; null sender.
	in.Conn = c.CheckConnection(bg, netip.MustParseAddr("192.0.2.10"), "mail.example.org")
	in.MailFrom, in.User = "", ""
	in.Message = strings.NewReader(testMessage)
	c.CheckMessage(bg, in)
	if f.calls() != 2 {
		t.Fatalf("%d calls", f.calls())
	}
	r := f.reqs[0]
	if r.Method != http.MethodPost || r.URL.Path != "/checkv2" {
		t.Errorf("%s %s", r.Method, r.URL.Path)
	}
	want := map[string][]string{
		"Ip":       {"192.0.2.66"},
		"Helo":     {"192.0.2.66"},
		"Hostname": {"unknown"},
		"From":     {"a@example.org"},
		"Rcpt":     {"b@example.com", "c@example.com"},
		"User":     {"bob@example.com"},
		"Queue-Id": {"Q123"},
		"Pass":     {"all"},
		"Mta-Name": {"mx.ours.example.net"},
	}
	for k, v := range want {
		if got := r.Header.Values(k); !slices.Equal(got, v) {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if string(f.bodies[0]) != testMessage || r.ContentLength != int64(len(testMessage)) {
		t.Errorf("body %q (length %d)", f.bodies[0], r.ContentLength)
	}
	r = f.reqs[1]
	if r.Header.Get("Hostname") != "mail.example.org" || r.Header.Get("From") != "<>" || r.Header.Get("User") != "" {
		t.Errorf("second request headers %v", r.Header)
	}
}

func TestRspamdFailures(t *testing.T) {
	tests := []struct {
		name   string
		reply  string // testdata file, or literal
		status int
		delay  time.Duration
		down   bool
		mode   FailMode
		kind   string
		action Action
		source string
		reply4 string
	}{
		{name: "timeout falls back to builtin", reply: "no_action.json", delay: time.Minute, kind: "timeout", action: Junk, source: "builtin"},
		{name: "http 500", reply: `{"error":"internal"}`, status: 500, kind: "http", action: Junk, source: "builtin"},
		{name: "error reply", reply: "error.json", kind: "parse", action: Junk, source: "builtin"},
		{name: "garbage", reply: `<html>`, kind: "parse", action: Junk, source: "builtin"},
		{name: "unknown action", reply: "unknown_action.json", kind: "action", action: Junk, source: "builtin"},
		{name: "connection refused", down: true, kind: "connect", action: Junk, source: "builtin"},
		{name: "fail accept", reply: `{}`, mode: FailAccept, kind: "parse", action: Accept, source: "builtin"},
		{name: "fail defer", reply: `{}`, mode: FailDefer, kind: "parse", action: Defer, source: "builtin", reply4: "451 4.3.0 Temporary spam filter problem, try again later"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Only the timeout case runs into the timeout; the others get
			// one generous enough for a loaded machine, so that a slow
			// answer cannot turn their error into a timeout.
			rc := RspamdConfig{Timeout: 30 * time.Second, FailMode: tc.mode}
			if tc.delay > 0 {
				rc.Timeout = 200 * time.Millisecond
			}
			if tc.down {
				rc.URL = "http://" + refusedAddr(t)
			}
			c, f, reg := newRspamdChecker(t, rc)
			body := []byte(tc.reply)
			if strings.HasSuffix(tc.reply, ".json") {
				body = readReply(t, tc.reply)
			}
			f.set(body, tc.status, tc.delay)
			start := time.Now()
			v := c.CheckMessage(bg, rspamdInput(t, c))
			if el := time.Since(start); tc.delay > 0 && el >= tc.delay {
				t.Errorf("check took %s with a %s timeout: it waited for the reply", el, rc.Timeout)
			}
			if v.Action != tc.action || v.Source != tc.source || v.RspamdErr == nil {
				t.Errorf("verdict %s source %s err %v, want %s %s", v.Action, v.Source, v.RspamdErr, tc.action, tc.source)
			}
			var re *rspamdError
			if !errors.As(v.RspamdErr, &re) || re.kind != tc.kind {
				t.Errorf("error %v, want kind %s", v.RspamdErr, tc.kind)
			}
			if got := metricValue(t, reg, "mailstead_spam_rspamd_errors_total", "kind", tc.kind); got != 1 {
				t.Errorf("error metric %g", got)
			}
			if tc.reply4 != "" && (v.Reply == nil || v.Reply.String() != tc.reply4) {
				t.Errorf("reply %v", v.Reply)
			}
			if tc.action == Junk && v.Score != 7 {
				t.Errorf("builtin fallback score %g, want 7", v.Score)
			}
		})
	}
}

func TestRspamdSkipsLargeMessages(t *testing.T) {
	c, f, _ := newRspamdChecker(t, RspamdConfig{MaxSize: 10})
	f.set(readReply(t, "reject.json"), 0, 0)
	v := c.CheckMessage(bg, rspamdInput(t, c))
	if f.calls() != 0 || v.Source != "builtin" || v.Action != Junk {
		t.Errorf("large message: %d calls, verdict %+v", f.calls(), v)
	}
}

func TestParseRspamdReply(t *testing.T) {
	r, err := ParseRspamdReply(readReply(t, "no_action.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != RspamdNoAction || r.Score != -0.3 || r.RequiredScore != 15 || r.MessageID != "20260101.abc@example.org" {
		t.Errorf("%+v", r)
	}
	var names []string
	for _, s := range r.Symbols {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "ARC_NA,MIME_GOOD,R_SPF_ALLOW" {
		t.Errorf("symbol order %v", names)
	}
	if r.Symbols[2].Options[0] != "+ip4:192.0.2.0/24" {
		t.Errorf("options %v", r.Symbols[2].Options)
	}
	r, err = ParseRspamdReply(readReply(t, "rewrite_subject.json"))
	if err != nil || r.Subject != "*** SPAM *** score-12" {
		t.Errorf("subject %q err %v", r.Subject, err)
	}

	// Bounds: symbols, options, sizes.
	var b bytes.Buffer
	b.WriteString(`{"action":"no action","symbols":{`)
	for i := range 1000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"S` + strings.Repeat("x", i%10) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + `":{"score":1,"options":["` + strings.Repeat("o", 500) + `","b","c","d","e","f","g","h","i","j"]}`)
	}
	b.WriteString(`}}`)
	r, err = ParseRspamdReply(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Symbols) != maxRspamdSymbols || len(r.Symbols[0].Options) != maxSymbolOptions || len(r.Symbols[0].Options[0]) != maxOptionBytes {
		t.Errorf("bounds: %d symbols, %d options, option %d bytes", len(r.Symbols), len(r.Symbols[0].Options), len(r.Symbols[0].Options[0]))
	}
	// Without an actions block Rspamd sends "required_score":null.
	if r, err := ParseRspamdReply([]byte(`{"action":"no action","score":7.0,"required_score":null}`)); err != nil || r.Score != 7 || r.RequiredScore != 0 {
		t.Errorf("null required_score: %+v %v", r, err)
	}
	if _, err := ParseRspamdReply(make([]byte, maxRspamdReply+1)); err == nil {
		t.Error("oversized reply accepted")
	}
	for _, bad := range []string{``, `null`, `[]`, `{"score":1}`, `{"action":1}`, `{"action":"reject","score":"x"}`, `{"action":"reject","score":1e999}`} {
		if _, err := ParseRspamdReply([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRspamdNotAskedForRejectedClient(t *testing.T) {
	c, f, _ := newRspamdChecker(t, RspamdConfig{})
	c.dnsbl[0].List.Reject = true
	f.set(readReply(t, "no_action.json"), 0, 0)
	v := c.CheckMessage(bg, rspamdInput(t, c))
	if f.calls() != 0 || v.Action != Reject || v.Reply == nil || v.Reply.Code != 550 {
		t.Errorf("%d calls, verdict %+v", f.calls(), v)
	}
}
