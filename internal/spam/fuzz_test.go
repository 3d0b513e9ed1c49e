package spam

import (
	"encoding/binary"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func FuzzParseRspamdReply(f *testing.F) {
	ents, _ := os.ReadDir(filepath.Join("testdata", "rspamd"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			b, _ := os.ReadFile(filepath.Join("testdata", "rspamd", e.Name()))
			f.Add(b)
		}
	}
	f.Add([]byte(`{"action":"reject","score":1e308,"symbols":{"":{"options":[""]}},"messages":{"smtp_message":7}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRspamdReply(b)
		if err != nil {
			return
		}
		if len(r.Symbols) > maxRspamdSymbols || len(r.SMTPMessage) > maxReasonBytes {
			t.Fatalf("bounds exceeded: %d symbols, message %d bytes", len(r.Symbols), len(r.SMTPMessage))
		}
		if strings.ContainsAny(r.SMTPMessage, "\r\n") {
			t.Fatalf("line break in smtp message %q", r.SMTPMessage)
		}
		// Whatever Rspamd said maps to a verdict or an error, and the
		// header block stays well-formed.
		c := &Checker{}
		v, err := c.rspamdVerdict(r)
		if err != nil {
			return
		}
		if v.Reply != nil && strings.ContainsAny(v.Reply.Text, "\r\n") {
			t.Fatalf("line break in reply %q", v.Reply.Text)
		}
		checkHeaderBlock(t, v.Headers())
	})
}

// checkHeaderBlock fails unless h is CRLF-terminated header fields with
// folded continuation lines only.
func checkHeaderBlock(t *testing.T, h []byte) {
	t.Helper()
	s := string(h)
	if !strings.HasSuffix(s, "\r\n") {
		t.Fatalf("header block not CRLF-terminated: %q", s)
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n") {
		if l == "" || strings.ContainsAny(l, "\r\n") || len(l) > 998 {
			t.Fatalf("bad header line %q in %q", l, s)
		}
		if l[0] != '\t' && !strings.HasPrefix(l, "X-Spam-") {
			t.Fatalf("unexpected field %q", l)
		}
	}
}

func FuzzHELO(f *testing.F) {
	for _, s := range []string{"mail.example.org", "[192.0.2.1]", "[IPv6:2001:db8::1]", "192.0.2.1", "localhost",
		"mx.ours.example.net", "bücher.example", "[IPv6:::ffff:192.0.2.1]", "a..b", "-", "[", "[]", "[IPv6:]", "x.123"} {
		f.Add(s, "192.0.2.1")
		f.Add(s, "2001:db8::1")
	}
	zone := newZone(f)
	cfg := DefaultConfig()
	cfg.Hostname = "mx.ours.example.net"
	c := newChecker(f, cfg, zone)
	f.Fuzz(func(t *testing.T, helo, ipText string) {
		ip, err := netip.ParseAddr(ipText)
		if err != nil {
			ip = netip.MustParseAddr("192.0.2.1")
		}
		problem, name := heloSyntax(helo, ip, cfg.Hostname)
		if problem != "" && name != "" {
			t.Fatalf("%q: problem %s and a name to resolve %q", helo, problem, name)
		}
		if name != "" && !validDomain(name) {
			t.Fatalf("%q: invalid name %q to resolve", helo, name)
		}
		if problem != "" && !knownSymbol(problem) {
			t.Fatalf("%q: unknown symbol %s", helo, problem)
		}
		r := c.checkHELO(bg, helo, ip)
		if r.Problem != "" && !knownSymbol(r.Problem) {
			t.Fatalf("%q: unknown symbol %s", helo, r.Problem)
		}
		if strings.ContainsAny(r.Helo, "\r\n") {
			t.Fatalf("line break in %q", r.Helo)
		}
	})
}

func FuzzGreylistState(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := make([]byte, greyEntrySize)
	rec[16] = kindPassed
	binary.BigEndian.PutUint64(rec[25:], uint64(now.UnixNano()))
	body := append([]byte(greyMagic), rec...)
	f.Add(binary.BigEndian.AppendUint32(body, crc32.ChecksumIEEE(body)))
	f.Add([]byte(greyMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		g := &Greylist{cfg: GreylistConfig{Window: time.Hour, PassTTL: time.Hour, Now: func() time.Time { return now }}, perShrd: 2}
		for i := range g.shards {
			g.shards[i].m = map[greyKey]greyEntry{}
		}
		g.log = discardLogger()
		g.loadBytes(b)
		if g.Len() > 2*greyShards {
			t.Fatalf("%d entries loaded, bound %d", g.Len(), 2*greyShards)
		}
	})
}
