package config

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/spam"
)

// Spam configures the spam defence of the MX listeners (package spam):
// checks on the client at MAIL FROM (DNS block- and allowlists, reverse
// DNS, the HELO name), optional greylisting at RCPT TO, and a score
// after DATA, built in or from Rspamd. Clients in limits.exempt_networks
// and authenticated senders are not checked.
type Spam struct {
	// JunkScore and RejectScore are the built-in score's thresholds: a
	// message scoring at least JunkScore goes to Junk, at least
	// RejectScore is refused with 550. 0 disables a threshold.
	JunkScore   float64 `toml:"junk_score"`
	RejectScore float64 `toml:"reject_score"`
	// VerdictWeights counts the SPF/DKIM/DMARC verdicts in the score.
	VerdictWeights bool `toml:"verdict_weights"`
	// DNSTimeout bounds all DNS of one client check.
	DNSTimeout Duration `toml:"dns_timeout"`

	// RspamdURL, when set, makes Rspamd score messages; the built-in
	// score is then the fallback (see RspamdFailMode).
	RspamdURL     string   `toml:"rspamd_url"`
	RspamdTimeout Duration `toml:"rspamd_timeout"`
	// RspamdMaxSize: larger messages get the built-in score.
	RspamdMaxSize Size `toml:"rspamd_max_size"`
	// RspamdFailMode is "builtin", "accept" or "defer".
	RspamdFailMode string `toml:"rspamd_fail_mode"`
	// RspamdPassAll makes Rspamd run every rule (complete symbol lists).
	RspamdPassAll bool `toml:"rspamd_pass_all"`
	// RspamdIgnoreGreylist treats Rspamd's "greylist" action as "no
	// action", for an Rspamd without its greylist module (Redis).
	RspamdIgnoreGreylist bool `toml:"rspamd_ignore_greylist"`

	// Weights override the built-in score's weights by symbol.
	Weights map[string]float64 `toml:"weights,omitempty"`
	// DNSBL and DNSWL are the block- and allowlists queried; none by
	// default.
	DNSBL []SpamList `toml:"dnsbl,omitempty"`
	DNSWL []SpamList `toml:"dnswl,omitempty"`

	Greylist Greylist `toml:"greylist"`
}

// SpamList is a DNS block- or allowlist.
type SpamList struct {
	Zone string `toml:"zone"`
	// Name is the symbol reported when the list lists a client; default
	// DNSBL_<ZONE> or DNSWL_<ZONE>.
	Name string `toml:"name,omitempty"`
	// Weight is added to the score of a listed client: positive (or 0)
	// for a DNSBL, negative (or 0) for a DNSWL.
	Weight float64 `toml:"weight"`
	// Codes are the answers that mean "listed": "127.0.0.2",
	// "127.0.0.2-127.0.0.11" or "127.0.10.0/24"; empty means any
	// 127.0.0.0/8 address except the lists' error codes.
	Codes []string `toml:"codes,omitempty"`
	// Reject refuses a client this DNSBL lists at RCPT TO (550 5.7.1),
	// whatever the score; postmaster@ and abuse@ stay reachable.
	Reject bool `toml:"reject,omitempty"`
}

// Greylist configures greylisting: the first message of every (client
// network, sender, recipient) is deferred with 451 4.7.1, a retry after
// Delay is accepted.
type Greylist struct {
	Enabled bool     `toml:"enabled"`
	Delay   Duration `toml:"delay"`
	// Window is how long after the first attempt a retry is accepted.
	Window Duration `toml:"window"`
	// PassTTL is how long a sender that passed is remembered.
	PassTTL Duration `toml:"pass_ttl"`
	// AutoAllow: a client network whose triplets passed this many times
	// is not greylisted any more; -1 disables.
	AutoAllow int `toml:"auto_allow"`
	// MaxEntries bounds the state kept (in memory, saved to
	// data_dir/greylist.state).
	MaxEntries int `toml:"max_entries"`
}

// Rspamd fail modes.
var spamFailModes = []string{string(spam.FailBuiltin), string(spam.FailAccept), string(spam.FailDefer)}

func defaultSpam() Spam {
	return Spam{
		JunkScore:      spam.DefaultJunkScore,
		RejectScore:    spam.DefaultRejectScore,
		VerdictWeights: true,
		DNSTimeout:     Duration(spam.DefaultDNSTimeout),
		RspamdTimeout:  Duration(spam.DefaultRspamdTimeout),
		RspamdMaxSize:  Size(spam.DefaultRspamdMaxSize),
		RspamdFailMode: string(spam.FailBuiltin),
		Greylist: Greylist{
			Delay:      Duration(spam.DefaultGreylistDelay),
			Window:     Duration(spam.DefaultGreylistWindow),
			PassTTL:    Duration(spam.DefaultGreylistPassTTL),
			AutoAllow:  spam.DefaultAutoAllow,
			MaxEntries: spam.DefaultGreylistMax,
		},
	}
}

// Bounds of [spam] values.
const (
	maxSpamScore  = 1000
	maxSpamWeight = 100
	maxSpamLists  = 32
	maxListCodes  = 32
)

func (v *validator) checkSpam() {
	s := &v.c.Spam
	for _, f := range []struct {
		key string
		val float64
	}{{"junk_score", s.JunkScore}, {"reject_score", s.RejectScore}} {
		if math.IsNaN(f.val) || f.val < 0 || f.val > maxSpamScore {
			v.errAt("spam."+f.key, "a score from 0 to 1000; 0 disables", "spam.%s = %g is out of range", f.key, f.val)
		}
	}
	if s.JunkScore > 0 && s.RejectScore > 0 && s.RejectScore < s.JunkScore {
		v.errAt("spam.reject_score", "reject_score must be at least junk_score, or 0 to never reject",
			"spam.reject_score = %g is below junk_score = %g%s", s.RejectScore, s.JunkScore, v.line("spam.junk_score"))
	}
	if d := s.DNSTimeout.D(); d < 100*time.Millisecond || d > time.Minute {
		v.errAt("spam.dns_timeout", "between 100ms and 1m; the default is 5s", "spam.dns_timeout = %s is out of range", s.DNSTimeout)
	}
	if s.RspamdURL != "" {
		u, err := url.Parse(s.RspamdURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errAt("spam.rspamd_url", `the URL of Rspamd's normal worker or proxy, e.g. "http://127.0.0.1:11333"`, "spam.rspamd_url %q is not an http(s) URL", s.RspamdURL)
		}
	}
	if d := s.RspamdTimeout.D(); d < time.Second || d > 10*time.Minute {
		v.errAt("spam.rspamd_timeout", "between 1s and 10m; the default is 20s", "spam.rspamd_timeout = %s is out of range", s.RspamdTimeout)
	}
	if s.RspamdMaxSize < 1000 || s.RspamdMaxSize > 1<<30 {
		v.errAt("spam.rspamd_max_size", "between 1KB and 1GiB; the default is 20MiB", "spam.rspamd_max_size = %s is out of range", s.RspamdMaxSize)
	}
	if s.RspamdFailMode == "" {
		s.RspamdFailMode = string(spam.FailBuiltin)
	}
	if !slices.Contains(spamFailModes, s.RspamdFailMode) {
		v.errAt("spam.rspamd_fail_mode", didYouMeanOr(s.RspamdFailMode, spamFailModes), "spam: unknown rspamd_fail_mode %q", s.RspamdFailMode)
	}
	known := make([]string, 0, len(spam.DefaultWeights()))
	for k := range spam.DefaultWeights() {
		known = append(known, k)
	}
	slices.Sort(known)
	names := make([]string, 0, len(s.Weights))
	for k := range s.Weights {
		names = append(names, k)
	}
	slices.Sort(names) // errors in a stable order
	for _, k := range names {
		w := s.Weights[k]
		path := "spam.weights." + k
		if !slices.Contains(known, k) {
			v.errKey(path, didYouMeanOr(k, known), "spam.weights: unknown symbol %q", k)
		} else if math.IsNaN(w) || math.Abs(w) > maxSpamWeight {
			v.errAt(path, "a weight from -100 to 100", "spam.weights.%s = %g is out of range", k, w)
		}
	}
	v.checkSpamLists("dnsbl", s.DNSBL, false)
	v.checkSpamLists("dnswl", s.DNSWL, true)

	g := &s.Greylist
	if d := g.Delay.D(); d < time.Second || d > 24*time.Hour {
		v.errAt("spam.greylist.delay", "between 1s and 24h; the default is 5m", "spam.greylist.delay = %s is out of range", g.Delay)
	}
	if d := g.Window.D(); d > 30*24*time.Hour || d < g.Delay.D() {
		v.errAt("spam.greylist.window", "at least the delay and at most 30 days; the default is 24h",
			"spam.greylist.window = %s must be from delay (%s) to 720h", g.Window, g.Delay)
	}
	if d := g.PassTTL.D(); d < time.Hour || d > 366*24*time.Hour {
		v.errAt("spam.greylist.pass_ttl", "between 1h and 366 days; the default is 36 days (864h)", "spam.greylist.pass_ttl = %s is out of range", g.PassTTL)
	}
	if g.AutoAllow == 0 || g.AutoAllow < -1 || g.AutoAllow > 1000 {
		v.errAt("spam.greylist.auto_allow", "1 to 1000 passes, or -1 to greylist every new triplet", "spam.greylist.auto_allow = %d is out of range", g.AutoAllow)
	}
	if g.MaxEntries < 64 || g.MaxEntries > 100_000_000 {
		v.errAt("spam.greylist.max_entries", "between 64 and 100000000; the default is 200000", "spam.greylist.max_entries = %d is out of range", g.MaxEntries)
	}
}

func (v *validator) checkSpamLists(kind string, ls []SpamList, allow bool) {
	if len(ls) > maxSpamLists {
		v.errAt("spam."+kind, "fewer lists; each is queried for every client", "spam.%s: more than %d lists", kind, maxSpamLists)
		return
	}
	seen := map[string]int{}
	for i := range ls {
		l := &ls[i]
		key := fmt.Sprintf("spam.%s[%d]", kind, i)
		zone, err := normalizeHostname(l.Zone, false)
		if err != nil {
			v.errAt(key+".zone", `the list's DNS zone, e.g. "zen.spamhaus.org"`, "%s.zone %q: %v", key, l.Zone, err)
		} else {
			l.Zone = zone
			if j, dup := seen[zone]; dup {
				v.errAt(key+".zone", "each list once", "spam.%s: zone %s is already list %d%s", kind, zone, j+1, v.line(fmt.Sprintf("spam.%s[%d].zone", kind, j)))
			}
			seen[zone] = i
		}
		if l.Name != "" && !validSymbol(l.Name) {
			v.errAt(key+".name", "letters, digits and '_', at most 64, e.g. \"DNSBL_ZEN\"", "%s.name %q is not a valid symbol name", key, l.Name)
		}
		switch {
		case math.IsNaN(l.Weight) || math.Abs(l.Weight) > maxSpamWeight:
			v.errAt(key+".weight", "a weight from -100 to 100", "%s.weight = %g is out of range", key, l.Weight)
		case allow && l.Weight > 0:
			v.errAt(key+".weight", "an allowlist lowers the score: 0 or negative, e.g. -2", "%s.weight = %g must not be positive", key, l.Weight)
		case !allow && l.Weight < 0:
			v.errAt(key+".weight", "a blocklist raises the score: 0 or positive, e.g. 3", "%s.weight = %g must not be negative", key, l.Weight)
		}
		if allow && l.Reject {
			v.errAt(key+".reject", "reject is for blocklists ([[spam.dnsbl]])", "%s: reject on an allowlist", key)
		}
		if len(l.Codes) > maxListCodes {
			v.errAt(key+".codes", "ranges like \"127.0.0.2-127.0.0.11\" keep the list short", "%s: more than %d codes", key, maxListCodes)
			continue
		}
		for j, c := range l.Codes {
			if !validListCode(c) {
				v.errAt(fmt.Sprintf("%s.codes[%d]", key, j), `an address "127.0.0.2", a range "127.0.0.2-127.0.0.11" or a prefix "127.0.10.0/24"`, "%s: invalid code %q", key, c)
			}
		}
	}
}

// validListCode mirrors package spam's parser of list codes.
func validListCode(s string) bool {
	s = strings.TrimSpace(s)
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(lo))
		b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		return err1 == nil && err2 == nil && a.BitLen() == b.BitLen() && a.Compare(b) <= 0
	}
	if strings.Contains(s, "/") {
		_, err := netip.ParsePrefix(s)
		return err == nil
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

func validSymbol(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
