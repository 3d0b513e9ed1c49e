package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/smtpserver"
	"github.com/mailstead/mailstead/internal/spam"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

const reloadBase = `
hostname = "mx.example.org"
data_dir = "data"
[[listener]]
protocol = "smtp"
address = "127.0.0.1:0"
tls = "none"
`

// TestReloadSpam: a SIGHUP that adds a rejecting Rspamd takes effect
// for the next session on the running MX listener without a restart; a
// broken file and restart-only changes leave the checks alone, and the
// restart-only sections are named in the log.
func TestReloadSpam(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	parse := func(extra string) *config.Config {
		t.Helper()
		cfg, err := config.Parse(filepath.Join(dir, "m.toml"), []byte(reloadBase+extra))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := parse("")
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AddDomain(ctx, store.Domain{Name: "example.org"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, store.Account{Address: "user@example.org", Domain: "example.org", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	deliv := delivery.New(st, delivery.Options{TmpDir: t.TempDir()})
	dns := dnsresolver.NewFake()
	// A stand-in for Rspamd's /checkv2 that rejects every message (the
	// DNS lists skip loopback clients, so they cannot show the change).
	rspamd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"is_skipped":false,"score":20.0,"required_score":15.0,"action":"reject","symbols":{},"messages":{}}`)
	}))
	defer rspamd.Close()
	reg := prometheus.NewRegistry()
	var logBuf lockedBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	newSpam := func(c *config.Config) (*spam.Checker, error) {
		return newSpamChecker(c, deliv.IsLocalDomain, dns, nil, reg, log)
	}
	first, err := newSpam(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := smtpserver.New(smtpserver.Config{Role: smtpserver.RoleMX, Hostname: cfg.Hostname, Deliverer: deliv, Spam: first})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)

	send := func() error {
		t.Helper()
		return smtp.SendMail(ln.Addr().String(), nil, "a@sender.example", []string{"user@example.org"}, []byte("Subject: x\r\n\r\nhi\r\n"))
	}
	if err := send(); err != nil {
		t.Fatalf("before reload: %v", err)
	}

	next := cfg
	running := *cfg
	rl := &reloader{cur: &running, log: log, newSpam: newSpam, mx: []*smtpserver.Server{srv},
		opts: Options{Reload: func() (*config.Config, error) { return next, nil }}}

	// A file with errors: nothing changes.
	rl.opts.Reload = func() (*config.Config, error) { return nil, errors.New("m.toml:3:1: broken") }
	rl.reload()
	if err := send(); err != nil {
		t.Fatalf("after a broken reload: %v", err)
	}

	// Rspamd arrives with SIGHUP, together with a restart-only change.
	next = parse(`
[limits]
max_recipients = 7
[spam]
rspamd_url = "` + rspamd.URL + `"
`)
	rl.opts.Reload = func() (*config.Config, error) { return next, nil }
	rl.reload()
	err = send()
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code/100 != 5 {
		t.Fatalf("after adding Rspamd: %v, want a 5xx refusal", err)
	}
	logs := logBuf.String()
	if !strings.Contains(logs, "spam checks reloaded") || !strings.Contains(logs, "[limits]") {
		t.Errorf("log does not say what was reloaded and what needs a restart:\n%s", logs)
	}
	if strings.Contains(logs, "[spam.greylist]") {
		t.Errorf("greylist reported as changed:\n%s", logs)
	}

	// And it goes away again.
	next = parse("")
	rl.reload()
	if err := send(); err != nil {
		t.Fatalf("after removing Rspamd: %v", err)
	}
}

// lockedBuffer is a log sink written by session goroutines and read by
// the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
