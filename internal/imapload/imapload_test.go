package imapload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/imapserver"
	"github.com/mailstead/mailstead/internal/loadgen"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

const (
	testPass = "load test pw"
	testHash = "{SHA512-CRYPT}$6$imaploadtest$rX6ex9xFYBCp5HamN6rHGUvKrtKLQf8N8ZK3UNh5BX9u5rAUO1heao2QyjhG9YvFI3lU4IrmLWNSltE3gaTWF1"
)

// testServer runs mailstead's real IMAP server in-process over a real
// store, with accounts user0..user{n-1}@example.test.
func testServer(t *testing.T, accounts int) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.AddDomain(ctx, store.Domain{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	// SHA512-CRYPT (as imported from Dovecot) rather than our argon2id
	// default: the Authenticator is the real one, but logins stay cheap
	// under the race detector.
	hash, err := account.NormalizeHash(testHash)
	if err != nil {
		t.Fatal(err)
	}
	for i := range accounts {
		addr := fmt.Sprintf("user%d@example.test", i)
		if _, err := st.CreateAccount(ctx, store.Account{Address: addr, Domain: "example.test", PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := imapserver.New(imapserver.Config{
		Hostname:          "mail.example.test",
		Store:             st,
		Auth:              account.NewAuthenticator(st, account.AuthOptions{FailureDelay: time.Millisecond}),
		AllowInsecureAuth: true,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return l.Addr().String()
}

func TestBig(t *testing.T) {
	t.Parallel()
	addr := testServer(t, 1)
	cfg := BigConfig{
		Dialer: Dialer{Addr: addr, TLS: TLSNone, IOTimeout: 30 * time.Second},
		User:   "user0@example.test", Pass: testPass,
		Messages: 110, Batch: 40, Repeat: 2, PID: os.Getpid(),
		Corpus: Corpus{Seed: 7, To: "user0@example.test"},
	}
	res, err := Big(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Messages != 110 || res.Appended != 110 {
		t.Errorf("messages %d, appended %d, want 110", res.Messages, res.Appended)
	}
	var firstHundred int64
	for i := range 100 {
		firstHundred += int64(len(cfg.Corpus.Message(i).Data))
	}
	want := map[string][2]int64{ // op → count, bytes
		"SELECT":                     {110, 0},
		"UID FETCH 1:* (FLAGS)":      {110, 0},
		"UID SEARCH UNSEEN":          {int64(res.WantUnseen), 0},
		"SEARCH TEXT " + DefaultWord: {int64(res.WantWord), 0},
		"FETCH 1:100 BODY.PEEK[]":    {100, firstHundred},
	}
	if len(res.Ops) != len(want) {
		t.Fatalf("ops %+v", res.Ops)
	}
	for _, op := range res.Ops {
		w, ok := want[op.Op]
		if !ok || int64(op.Count) != w[0] || op.Bytes != w[1] || op.Best <= 0 || op.Best > op.First {
			t.Errorf("%s: count %d bytes %d, want %v", op.Op, op.Count, op.Bytes, w)
		}
	}
	if res.WantWord == 0 || res.WantUnseen == 0 {
		t.Errorf("corpus of 110 has %d unseen and %d with the word: too few to test", res.WantUnseen, res.WantWord)
	}
	if res.MemAfter.Procs < 1 || res.MemAfter.RSS <= 0 || res.MemError != "" {
		t.Errorf("memory of this process: %+v %q", res.MemAfter, res.MemError)
	}

	// A second run finds the mailbox full and appends nothing.
	cfg.Repeat = 1
	res, err = Big(context.Background(), cfg)
	if err != nil || res.Appended != 0 || res.Messages != 110 {
		t.Errorf("second run: appended %d, messages %d, err %v", res.Appended, res.Messages, err)
	}
}

func TestMixed(t *testing.T) {
	t.Parallel()
	addr := testServer(t, 2)
	d := Dialer{Addr: addr, TLS: TLSNone, IOTimeout: 30 * time.Second}
	res, err := Mixed(context.Background(), MixedConfig{
		Dialer:   d,
		Accounts: Accounts{Format: "user%d@example.test", Pass: testPass},
		Clients:  2, Messages: 20, Duration: 500 * time.Millisecond, Seed: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Errors != 0 || res.Loops == 0 || res.Commands != res.Loops*len(mixedOps) || res.Rate <= 0 {
		t.Fatalf("result %+v", res)
	}
	for _, o := range res.Ops {
		if o.Count != res.Loops || o.P50 <= 0 || o.P99 < o.P50 || o.Max < o.P99 {
			t.Errorf("op stats %+v (loops %d)", o, res.Loops)
		}
	}
	// Every loop appends one message and expunges one.
	for i := range 2 {
		c, err := d.DialLogin(context.Background(), fmt.Sprintf("user%d@example.test", i), testPass)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := mailboxSize(c, "INBOX"); err != nil || n != 20 {
			t.Errorf("user%d INBOX holds %d messages (%v), want 20", i, n, err)
		}
		c.Logout()
	}
}

func TestIdleSessions(t *testing.T) {
	t.Parallel()
	addr := testServer(t, 2)
	res, err := Idle(context.Background(), IdleConfig{
		Dialer:      Dialer{Addr: addr, TLS: TLSNone, IOTimeout: 30 * time.Second},
		Accounts:    Accounts{Format: "user%d@example.test", Pass: testPass},
		NumAccounts: 2, Sessions: 4, Settle: 10 * time.Millisecond, PID: os.Getpid(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions != 4 || res.UnexpectedDisconnects != 0 || res.MemIdle.Procs < 1 {
		t.Errorf("result %+v", res)
	}
}

func TestAppendSynchronizingLiteral(t *testing.T) {
	t.Parallel()
	addr := testServer(t, 1)
	d := Dialer{Addr: addr, TLS: TLSNone, IOTimeout: 30 * time.Second}
	c, err := d.DialLogin(context.Background(), "user0@example.test", testPass)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Has("LITERAL+") || !c.Has("MULTIAPPEND") {
		t.Fatalf("server lacks LITERAL+ or MULTIAPPEND: %v", c.caps)
	}
	delete(c.caps, "LITERAL+") // take the path for servers without it
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("", 2*3600))
	resp, err := c.Append("INBOX",
		Message{Data: []byte("Subject: a\r\n\r\na\r\n"), Flags: []string{`\Seen`}, Date: date},
		Message{Data: []byte("Subject: b\r\n\r\nbb\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Code(), "APPENDUID ") {
		t.Errorf("APPEND completion %q", resp.Text)
	}
	if _, err := c.Do("SELECT INBOX", nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	if _, err := c.Do("FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])", func(r *Response) error {
		got = append(got, string(r.Text)+"|"+string(r.Literals[0]))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasSuffix(got[0], "|Subject: a\r\n\r\na\r\n") || !strings.HasSuffix(got[1], "|Subject: b\r\n\r\nbb\r\n") ||
		!strings.Contains(got[0], `\Seen`) || strings.Contains(got[1], `\Seen`) {
		t.Fatalf("fetched %q", got)
	}
	// The server may keep the date in another zone, but not another instant.
	_, rest, _ := strings.Cut(got[0], `INTERNALDATE "`)
	stored, err := time.Parse("_2-Jan-2006 15:04:05 -0700", strings.TrimSpace(rest[:26]))
	if err != nil || !stored.Equal(date) {
		t.Errorf("INTERNALDATE %q (%v), want %v", rest[:26], err, date)
	}
	// A refused command is a StatusError.
	_, err = c.Do("SELECT Nonexistent", nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != "NO" || se.Command != "SELECT" {
		t.Errorf("SELECT of a missing mailbox: %v", err)
	}
	// Bad credentials are refused before anything is sent.
	if err := c.Login("a\r\nb", "x"); err == nil {
		t.Error("user name with CRLF accepted")
	}
}

func TestLoopbackOnly(t *testing.T) {
	_, err := Big(context.Background(), BigConfig{Dialer: Dialer{Addr: "192.0.2.1:143"}, User: "u", Pass: "p"})
	if !errors.Is(err, loadgen.ErrNotLoopback) {
		t.Errorf("Big against 192.0.2.1: %v", err)
	}
	_, err = Idle(context.Background(), IdleConfig{
		Dialer: Dialer{Addr: "127.0.0.1:1"}, Accounts: Accounts{Format: "u%d"}, NumAccounts: 1, Sessions: 1,
		Deliveries: 1, Deliver: Deliverer{Addr: "[2001:db8::1]:25"},
	})
	if !errors.Is(err, loadgen.ErrNotLoopback) {
		t.Errorf("Idle delivering to 2001:db8::1: %v", err)
	}
}

func TestResponses(t *testing.T) {
	in := "* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n" +
		"* 3 EXISTS\r\n" +
		"* 2 FETCH (BODY[] {5}\r\nhello UID 9 BODY[HEADER] {2}\r\nab)\r\n" +
		"* SEARCH 1 5 9\n" +
		"* ESEARCH (TAG \"x\") UID ALL 1:3,7,10:9\r\n" +
		"* ESEARCH (TAG \"y\") COUNT 42\r\n" +
		"+\r\n" +
		"+ go ahead\r\n" +
		"L1 NO [TRYCREATE] no such mailbox\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	type want struct {
		tag, kind string
		num       uint32
		status    string
		code      string
		numbers   int
		literals  string
	}
	for i, w := range []want{
		{"*", "OK", 0, "OK", "CAPABILITY IMAP4rev1 LITERAL+", 0, ""},
		{"*", "EXISTS", 3, "", "", 0, ""},
		{"*", "FETCH", 2, "", "", 0, "hello|ab"},
		{"*", "SEARCH", 0, "", "", 3, ""},
		{"*", "ESEARCH", 0, "", "", 6, ""},
		{"*", "ESEARCH", 0, "", "", 42, ""},
		{"+", "", 0, "", "", 0, ""},
		{"+", "GO", 0, "", "", 0, ""},
		{"L1", "NO", 0, "NO", "TRYCREATE", 0, ""},
	} {
		resp, err := readResponse(r)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		kind, num := resp.Kind()
		var lits []string
		for _, l := range resp.Literals {
			lits = append(lits, string(l))
		}
		got := want{resp.Tag, kind, num, resp.Status(), resp.Code(), resp.Numbers(), strings.Join(lits, "|")}
		if got != w {
			t.Errorf("response %d: got %+v, want %+v", i, got, w)
		}
	}
	if _, err := readResponse(r); err == nil {
		t.Error("read past the end")
	}

	for _, bad := range []string{
		"*\r\n",                                // no separator
		" OK\r\n",                              // empty tag
		"* 1 FETCH (BODY[] {999999999999}\r\n", // literal over the limit
		"* 1 FETCH (BODY[] {10}\r\nshort",      // truncated literal
		"* " + strings.Repeat("x", MaxLine+10) + "\r\n",
	} {
		if _, err := readResponse(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("accepted %.60q", bad)
		}
	}
}

func TestSetSize(t *testing.T) {
	for s, want := range map[string]int{"1": 1, "1:4": 4, "4:1": 4, "1:4,7,9:10": 7, "": 0, "x,2": 1} {
		if got := setSize(s); got != want {
			t.Errorf("setSize(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote(`a"b\c`); got != `"a\"b\\c"` {
		t.Errorf("Quote = %s", got)
	}
}

func TestPercentile(t *testing.T) {
	var l []time.Duration
	for i := 1; i <= 200; i++ {
		l = append(l, time.Duration(i))
	}
	s := stats("x", l)
	if s.P50 != 100 || s.P99 != 198 || s.Max != 200 || s.Mean != 100 || s.Count != 200 {
		t.Errorf("stats %+v", s)
	}
	if s := stats("empty", nil); s.Count != 0 || s.P99 != 0 {
		t.Errorf("empty stats %+v", s)
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in        string
		pid, ppid int
		ok        bool
	}{
		{"1234 (dovecot) S 1 1234 1234 0 -1", 1234, 1, true},
		{"77 (imap [user 127.0.0.1]) S 1234 77", 77, 1234, true},
		{"78 (a) b) (c) R 5 78", 78, 5, true},
		{"garbage", 0, 0, false},
		{"12 (x)", 0, 0, false},
	} {
		pid, ppid, ok := parseStat([]byte(tc.in))
		if pid != tc.pid || ppid != tc.ppid || ok != tc.ok {
			t.Errorf("parseStat(%q) = %d %d %v", tc.in, pid, ppid, ok)
		}
	}
	m, err := TreeMemory(os.Getpid())
	if err != nil || m.Procs < 1 || m.RSS <= 0 || m.PSS <= 0 {
		t.Errorf("TreeMemory(self) = %+v, %v", m, err)
	}
	if _, err := TreeMemory(0); err == nil {
		t.Error("TreeMemory(0) succeeded")
	}
}

func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"* OK [CAPABILITY IMAP4rev1] hi\r\n",
		"* 2 FETCH (BODY[] {5}\r\nhello UID 9)\r\n",
		"* ESEARCH (TAG \"x\") UID ALL 1:3,7\r\n",
		"* 1 FETCH (BINARY[1] ~{3}\r\n\x00\x01\x02)\r\n",
		"+ \r\n",
		"A1 BAD [PARSE] x\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := bufio.NewReader(strings.NewReader(s))
		for range 100 {
			resp, err := readResponse(r)
			if err != nil {
				return
			}
			resp.Kind()
			resp.Status()
			resp.Code()
			resp.Numbers()
			if len(resp.Text) > MaxLine {
				t.Fatalf("response text of %d bytes", len(resp.Text))
			}
		}
	})
}
