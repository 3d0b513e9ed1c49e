package server

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/smtpserver"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// TestSpamDefence: [spam] becomes a checker (trusting the exempt
// networks) and a greylist for MX listeners only; closing saves the
// greylist state in the data directory.
func TestSpamDefence(t *testing.T) {
	dir := t.TempDir()
	doc := `
data_dir = "data"
[[listener]]
protocol = "smtp"
address = "127.0.0.1:0"
tls = "none"
[spam.weights]
HELO_BARE_IP = 3
[[spam.dnsbl]]
zone = "bl.example"
weight = 6
reject = true
[spam.greylist]
enabled = true
delay = "1m"
`
	cfg, err := config.Parse(filepath.Join(dir, "m.toml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deliv := delivery.New(st, delivery.Options{TmpDir: t.TempDir()})
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	d, closeSpam, err := newSpamDefence(cfg, deliv, dnsresolver.NewFake(), trusted, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if d.checker == nil || d.greylist == nil {
		t.Fatalf("defence %+v", d)
	}
	mx := d.apply(smtpserver.Config{Role: smtpserver.RoleMX})
	sub := d.apply(smtpserver.Config{Role: smtpserver.RoleSubmission})
	if mx.Spam != d.checker || mx.Greylist != d.greylist || sub.Spam != nil || sub.Greylist != nil {
		t.Errorf("apply: mx %v %v, submission %v %v", mx.Spam, mx.Greylist, sub.Spam, sub.Greylist)
	}
	if v := d.checker.CheckConnection(context.Background(), netip.MustParseAddr("127.0.0.1"), "x"); !v.Trusted {
		t.Errorf("exempt network not trusted: %+v", v)
	}
	if ok, _ := d.greylist.Check(netip.MustParseAddr("192.0.2.1"), "a@example.net", "b@example.org"); ok {
		t.Error("new triplet passed the greylist")
	}
	closeSpam()
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "greylist.state")); err != nil {
		t.Errorf("greylist state not saved: %v", err)
	}

	// Greylisting off: no greylist, nothing to save.
	cfg.Spam.Greylist.Enabled = false
	d, closeSpam, err = newSpamDefence(cfg, deliv, dnsresolver.NewFake(), trusted, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil || d.greylist != nil {
		t.Fatalf("greylist off: %+v, %v", d, err)
	}
	closeSpam()

	// A configuration spam.New refuses is a start-up error.
	cfg.Spam.Weights = map[string]float64{"NO_SUCH_SYMBOL": 1}
	if _, _, err := newSpamDefence(cfg, deliv, dnsresolver.NewFake(), trusted, nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "NO_SUCH_SYMBOL") {
		t.Errorf("bad weight: %v", err)
	}

	for _, f := range []string{"X-Mailstead-*", "X-Spam*", "X-Rspamd-*"} {
		if !slices.Contains(StripFields(), f) {
			t.Errorf("StripFields %v lacks %s", StripFields(), f)
		}
	}
}
