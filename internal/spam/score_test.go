package spam

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestBuiltinVerdict(t *testing.T) {
	tests := []struct {
		name          string
		ip, helo      string
		spf, dkim, dm string
		action        Action
		score         float64
		syms          []string
	}{
		{name: "clean", ip: "192.0.2.10", helo: "mail.example.org", spf: "pass", dkim: "pass", dm: "pass",
			action: Accept, score: -2, syms: []string{SymSPFPass, SymDKIMPass, SymDMARCPass}},
		{name: "clean, no auth", ip: "192.0.2.10", helo: "mail.example.org",
			action: Accept, score: 0},
		// bl1 (3) + bare IP HELO (2) = 5: the junk threshold.
		{name: "junk at threshold", ip: "192.0.2.66", helo: "192.0.2.66", spf: "none",
			action: Junk, score: 5 + 2, syms: []string{"DNSBL_BL1_EXAMPLE", SymIprevNoPTR, SymHeloBareIP}},
		{name: "just below junk", ip: "192.0.2.11", helo: "helo.example.org", spf: "softfail",
			action: Accept, score: 1.5 + 1, syms: []string{SymIprevFail, SymSPFSoftFail}},
		// 3 + 2 + 2 + 3.5 + 2.5 = 13 >= 12.
		{name: "reject", ip: "192.0.2.66", helo: "192.0.2.66", spf: "fail", dm: "fail",
			action: Reject, score: 13, syms: []string{"DNSBL_BL1_EXAMPLE", SymIprevNoPTR, SymHeloBareIP, SymSPFFail, SymDMARCFail}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			cfg := DefaultConfig()
			cfg.DNSBL = []List{{Zone: "bl1.example", Weight: 3}}
			cfg.Registerer = reg
			c := newChecker(t, cfg, newZone(t))
			conn := c.CheckConnection(bg, netip.MustParseAddr(tc.ip), tc.helo)
			v := c.CheckMessage(bg, MessageInput{Conn: conn, SPF: tc.spf, DKIM: tc.dkim, DMARC: tc.dm})
			if v.Action != tc.action || v.Score != tc.score || v.Source != "builtin" {
				t.Errorf("verdict %s score %g source %s, want %s %g (symbols %+v)", v.Action, v.Score, v.Source, tc.action, tc.score, v.Symbols)
			}
			var names []string
			for _, s := range v.Symbols {
				names = append(names, s.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.syms, ",") {
				t.Errorf("symbols %v, want %v", names, tc.syms)
			}
			switch tc.action {
			case Accept:
				if v.Mailbox != MailboxInbox || v.Reply != nil {
					t.Errorf("accept: mailbox %q reply %v", v.Mailbox, v.Reply)
				}
			case Junk:
				if v.Mailbox != MailboxJunk {
					t.Errorf("junk: mailbox %q", v.Mailbox)
				}
			case Reject:
				if v.Reply == nil || v.Reply.Code != 550 || v.Reply.Enhanced != [3]int{5, 7, 1} {
					t.Errorf("reject reply %v", v.Reply)
				}
			}
			h := string(v.Headers())
			if (tc.action == Junk) != strings.Contains(h, "X-Spam-Flag: YES\r\n") {
				t.Errorf("headers:\n%s", h)
			}
			if !strings.HasPrefix(h, "X-Spam-Score: ") || !strings.Contains(h, "required=5.00") {
				t.Errorf("headers:\n%s", h)
			}
			if got := metricValue(t, reg, "mailstead_spam_verdicts_total", "source", "builtin", "action", string(tc.action)); got != 1 {
				t.Errorf("verdict metric = %g", got)
			}
			if len(v.AuthResults) == 0 || v.AuthResults[0].Method != "iprev" {
				t.Errorf("auth results %+v", v.AuthResults)
			}
		})
	}
}

func TestTrustedAndRejectList(t *testing.T) {
	zone := newZone(t)
	cfg := DefaultConfig()
	cfg.DNSBL = []List{{Zone: "bl1.example", Weight: 3, Reject: true}}
	cfg.Trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.64/28")}
	c := newChecker(t, cfg, zone)
	conn := c.CheckConnection(bg, netip.MustParseAddr("192.0.2.66"), "x")
	if !conn.Trusted || conn.Reject != nil || conn.AuthResults() != nil || !conn.Allowlisted() {
		t.Errorf("trusted client checked: %+v", conn)
	}
	if q := zone.Queries(); len(q) != 0 {
		t.Errorf("trusted client caused DNS queries: %v", q)
	}
	v := c.CheckMessage(bg, MessageInput{Conn: conn, DMARC: "fail", SPF: "fail"})
	if v.Action != Accept || v.Headers() != nil || v.Source != "trusted" {
		t.Errorf("trusted verdict %+v headers %q", v, v.Headers())
	}

	cfg.Trusted = nil
	c = newChecker(t, cfg, zone)
	conn = c.CheckConnection(bg, netip.MustParseAddr("192.0.2.66"), "mail.example.org")
	v = c.CheckMessage(bg, MessageInput{Conn: conn})
	if v.Action != Reject || v.Reply == nil || v.Reply != nil && !strings.Contains(v.Reply.Text, "bl1.example") {
		t.Errorf("listed client with reject list: %+v", v)
	}
}

func TestZeroWeightDropsSymbol(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Weights[SymIprevNoPTR] = 0
	c := newChecker(t, cfg, newZone(t))
	conn := c.CheckConnection(bg, netip.MustParseAddr("192.0.2.99"), "helo.example.org")
	if len(conn.Symbols) != 0 || conn.Score != 0 {
		t.Errorf("symbols %+v", conn.Symbols)
	}
	cfg.VerdictWeights = false
	c = newChecker(t, cfg, newZone(t))
	if v := c.CheckMessage(bg, MessageInput{Conn: conn, SPF: "fail", DMARC: "fail"}); v.Score != 0 || v.Action != Accept {
		t.Errorf("verdict weights off: %+v", v)
	}
}

func TestThresholdsDisabled(t *testing.T) {
	cfg := DefaultConfig()
	cfg.JunkScore, cfg.RejectScore = 0, 0
	c := newChecker(t, cfg, newZone(t))
	conn := c.CheckConnection(bg, netip.MustParseAddr("192.0.2.99"), "1.2.3.4")
	v := c.CheckMessage(bg, MessageInput{Conn: conn, SPF: "fail", DMARC: "fail"})
	if v.Action != Accept || v.Score < 10 {
		t.Errorf("thresholds off: %+v", v)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		sub  string
	}{
		{"unknown weight", func(c *Config) { c.Weights["NOPE"] = 1 }, "unknown weight"},
		{"negative threshold", func(c *Config) { c.JunkScore = -1 }, "negative"},
		{"reject below junk", func(c *Config) { c.RejectScore = 3 }, "below junk"},
		{"bad rspamd url", func(c *Config) { c.Rspamd.URL = "ftp://x" }, "rspamd url"},
		{"bad fail mode", func(c *Config) { c.Rspamd.URL = "http://127.0.0.1:1"; c.Rspamd.FailMode = "maybe" }, "fail mode"},
	} {
		cfg := DefaultConfig()
		tc.mod(&cfg)
		if _, err := New(cfg, newZone(t)); err == nil || !strings.Contains(err.Error(), tc.sub) {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
	if _, err := New(DefaultConfig(), nil); err == nil {
		t.Error("nil resolver accepted")
	}
}

func TestSpamHeaders(t *testing.T) {
	var syms []Symbol
	for i := range 100 {
		syms = append(syms, Symbol{Name: "SYMBOL_NUMBER_" + strings.Repeat("X", i%5) + string(rune('A'+i%26)) + string(rune('A'+i/26)), Score: 0.1})
	}
	syms = append(syms, Symbol{Name: "EVIL\r\nX-Spam-Flag: NO"})
	h := spamHeaders(true, 12.345, 5, syms)
	lines := strings.Split(strings.TrimSuffix(string(h), "\r\n"), "\r\n")
	if lines[0] != "X-Spam-Score: 12.35" || !strings.HasPrefix(lines[1], "X-Spam-Status: Yes, score=12.35 required=5.00") {
		t.Errorf("headers:\n%s", h)
	}
	if lines[len(lines)-1] != "X-Spam-Flag: YES" {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
	fields := 0
	for _, l := range lines {
		if len(l) > 78 {
			t.Errorf("line longer than 78: %q", l)
		}
		if l != "" && l[0] != '\t' {
			fields++
		}
		if strings.Contains(l, "Flag: NO") || strings.ContainsAny(l, "\r\n") {
			t.Errorf("injected content: %q", l)
		}
	}
	if fields != 3 {
		t.Errorf("%d fields, want 3:\n%s", fields, h)
	}
	if !bytes.Contains(h, []byte("...")) {
		t.Error("symbol list over the bound not marked as cut")
	}
	h = spamHeaders(false, -1, 5, nil)
	if string(h) != "X-Spam-Score: -1.00\r\nX-Spam-Status: No, score=-1.00 required=5.00 tests=none\r\n" {
		t.Errorf("no symbols: %q", h)
	}
}

func TestIsStripField(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Spam-Flag":       true,
		"x-spam-status":     true,
		"X-Spam-Score":      true,
		"X-Spam":            true,
		"X-Spamd-Result":    true,
		"X-Rspamd-Queue-Id": true,
		"X-Rspamd":          false,
		"X-Spa":             false,
		"Subject":           false,
		"X-Mailer":          false,
	} {
		if got := IsStripField(name); got != want {
			t.Errorf("IsStripField(%q) = %v", name, got)
		}
	}
}
