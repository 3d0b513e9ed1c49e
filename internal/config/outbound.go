package config

import (
	"fmt"
	"net/mail"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Outbound configures the outbound queue and how it delivers: directly to
// the recipient domains' MX hosts, or through a smarthost (a relay that
// accepts authenticated submissions, such as a transactional mail
// provider). Routes send chosen destination domains through a specific
// relay whatever the mode.
type Outbound struct {
	// Mode is "direct" (MX lookup) or "smarthost" (everything through
	// [outbound.smarthost]).
	Mode string `toml:"mode"`
	// EHLOName is the name sent in EHLO; default: hostname.
	EHLOName string `toml:"ehlo_name,omitempty"`
	// SourceIPv4/SourceIPv6 are the local addresses outgoing connections
	// are made from; empty lets the kernel choose.
	SourceIPv4 string `toml:"source_ipv4,omitempty"`
	SourceIPv6 string `toml:"source_ipv6,omitempty"`
	// IPPreference orders the addresses of an MX host: "ipv4" (default:
	// IPv4 first, then IPv6), "ipv6", "ipv4-only", "ipv6-only".
	IPPreference string `toml:"ip_preference"`
	// RetrySchedule is the wait after each failed attempt; the last one
	// repeats until MaxAge.
	RetrySchedule []Duration `toml:"retry_schedule"`
	// MaxAge is how long a message is retried before it bounces.
	MaxAge Duration `toml:"max_age"`
	// DelayWarning sends the sender one "still trying" notice after this
	// time; 0 disables.
	DelayWarning Duration `toml:"delay_warning"`
	// MaxConcurrency bounds simultaneous deliveries; MaxPerDestination
	// bounds them per destination domain.
	MaxConcurrency    int `toml:"max_concurrency"`
	MaxPerDestination int `toml:"max_per_destination"`
	// ConnectTimeout bounds a TCP connect; CommandTimeout each SMTP reply
	// (the reply to the message data gets 10 minutes, RFC 5321 4.5.3.2).
	ConnectTimeout Duration `toml:"connect_timeout"`
	CommandTimeout Duration `toml:"command_timeout"`
	// MTASTS fetches and enforces the recipient domains' MTA-STS
	// policies (RFC 8461) in direct mode.
	MTASTS bool `toml:"mta_sts"`
	// DANE authenticates MX hosts that publish DNSSEC-signed TLSA records
	// (RFC 7672) in direct mode. It trusts the DNSSEC (AD) bit of the
	// nameservers in /etc/resolv.conf, which must be a validating
	// resolver on loopback; without one it finds nothing secure and
	// delivery stays as without DANE.
	DANE bool `toml:"dane"`
	// BounceMaxSize caps how much of the original message a bounce
	// carries; larger messages are returned as headers only.
	BounceMaxSize Size `toml:"bounce_max_size"`
	// DKIM names the active signing selector of domains that have several
	// keys; without an entry the newest key signs.
	DKIM []DKIMSelector `toml:"dkim,omitempty"`

	Smarthost Relay   `toml:"smarthost"`
	Routes    []Route `toml:"route,omitempty"`
	// TLSReports sends daily SMTP TLS reports (RFC 8460) to the domains
	// this server delivered to that ask for them (_smtp._tls TXT). The
	// per-domain results behind them are always recorded in direct mode
	// (`mailstead queue tls`).
	TLSReports TLSReports `toml:"tls_reports"`
}

// TLSReports configures RFC 8460 aggregate reports.
type TLSReports struct {
	Enabled bool `toml:"enabled"`
	// Organization is the report's organization-name; Contact its
	// contact-info (an address that reads replies). From is the sender
	// of mailed reports (default: Contact); its domain should have a DKIM
	// key, since receivers expect signed reports.
	Organization string `toml:"organization,omitempty"`
	Contact      string `toml:"contact,omitempty"`
	From         string `toml:"from,omitempty"`
	// Retention is how long the per-domain results are kept (at least 3
	// days; default 14 days).
	Retention Duration `toml:"retention"`
}

// DKIMSelector picks the selector that signs a domain's mail.
type DKIMSelector struct {
	Domain   string `toml:"domain"`
	Selector string `toml:"selector"`
}

// Relay is a smarthost: where and how to hand mail over.
type Relay struct {
	Host string `toml:"host,omitempty"`
	// Port defaults to 587 for starttls, 465 for implicit, 25 for none.
	Port int `toml:"port,omitempty"`
	// TLS is "starttls" (required: a relay that does not offer it gets
	// no mail), "implicit", or "none" (only for a relay on loopback or a
	// trusted network).
	TLS TLSMode `toml:"tls,omitempty"`
	// CAFile, when set, verifies the relay's certificate against this CA
	// bundle instead of the system roots.
	CAFile string `toml:"ca_file,omitempty"`
	// Username and the password secret enable AUTH (PLAIN, or LOGIN when
	// the relay offers only that).
	Username     string `toml:"username,omitempty"`
	PasswordFile string `toml:"password_file,omitempty"`
	PasswordEnv  string `toml:"password_env,omitempty"`
}

// Password returns the relay password secret.
func (r *Relay) Password(name string) Secret {
	return Secret{Name: name + ".password", File: r.PasswordFile, Env: r.PasswordEnv}
}

// Route sends mail for the listed destination domains through a relay,
// in either mode.
type Route struct {
	Domains      []string `toml:"domains"`
	Host         string   `toml:"host,omitempty"`
	Port         int      `toml:"port,omitempty"`
	TLS          TLSMode  `toml:"tls,omitempty"`
	CAFile       string   `toml:"ca_file,omitempty"`
	Username     string   `toml:"username,omitempty"`
	PasswordFile string   `toml:"password_file,omitempty"`
	PasswordEnv  string   `toml:"password_env,omitempty"`
}

// Relay returns the route's relay settings.
func (r Route) Relay() Relay {
	return Relay{Host: r.Host, Port: r.Port, TLS: r.TLS, CAFile: r.CAFile, Username: r.Username, PasswordFile: r.PasswordFile, PasswordEnv: r.PasswordEnv}
}

func (r *Route) setRelay(x Relay) {
	r.Host, r.Port, r.TLS, r.CAFile, r.Username, r.PasswordFile, r.PasswordEnv = x.Host, x.Port, x.TLS, x.CAFile, x.Username, x.PasswordFile, x.PasswordEnv
}

// Outbound modes.
const (
	OutboundDirect    = "direct"
	OutboundSmarthost = "smarthost"
)

// DefaultRetrySchedule is the default wait after attempt 1, 2, ...
var DefaultRetrySchedule = []Duration{
	Duration(time.Minute), Duration(5 * time.Minute), Duration(15 * time.Minute),
	Duration(30 * time.Minute), Duration(time.Hour),
}

func defaultOutbound() Outbound {
	return Outbound{
		Mode:              OutboundDirect,
		IPPreference:      "ipv4",
		RetrySchedule:     slices.Clone(DefaultRetrySchedule),
		MaxAge:            Duration(5 * 24 * time.Hour),
		DelayWarning:      Duration(4 * time.Hour),
		MaxConcurrency:    50,
		MaxPerDestination: 10,
		ConnectTimeout:    Duration(30 * time.Second),
		CommandTimeout:    Duration(5 * time.Minute),
		MTASTS:            true,
		DANE:              true,
		BounceMaxSize:     100 * 1000,
		TLSReports:        TLSReports{Retention: Duration(14 * 24 * time.Hour)},
	}
}

// RelayPort is the port of r with its default filled in.
func (r Relay) RelayPort() int {
	if r.Port != 0 {
		return r.Port
	}
	switch r.TLS {
	case TLSImplicit:
		return 465
	case TLSNone:
		return 25
	}
	return 587
}

func (v *validator) checkOutbound() {
	o := &v.c.Outbound
	switch o.Mode {
	case OutboundDirect, OutboundSmarthost:
	case "":
		o.Mode = OutboundDirect
	default:
		v.errAt("outbound.mode", didYouMeanOr(o.Mode, []string{OutboundDirect, OutboundSmarthost}), "outbound: unknown mode %q", o.Mode)
	}
	if o.EHLOName != "" {
		if h, err := normalizeHostname(o.EHLOName, false); err != nil {
			v.errAt("outbound.ehlo_name", "the host name this server's address resolves to (PTR)", "outbound.ehlo_name %q: %v", o.EHLOName, err)
		} else {
			o.EHLOName = h
		}
	}
	for _, s := range []struct {
		key, val string
		v4       bool
	}{{"source_ipv4", o.SourceIPv4, true}, {"source_ipv6", o.SourceIPv6, false}} {
		if s.val == "" {
			continue
		}
		a, err := netip.ParseAddr(s.val)
		if err != nil || a.Unmap().Is4() != s.v4 {
			fam := "an IPv6"
			if s.v4 {
				fam = "an IPv4"
			}
			v.errAt("outbound."+s.key, "a local address of this machine", "outbound.%s %q is not %s address", s.key, s.val, fam)
		}
	}
	switch o.IPPreference {
	case "ipv4", "ipv6", "ipv4-only", "ipv6-only":
	case "":
		o.IPPreference = "ipv4"
	default:
		v.errAt("outbound.ip_preference", didYouMeanOr(o.IPPreference, []string{"ipv4", "ipv6", "ipv4-only", "ipv6-only"}), "outbound: unknown ip_preference %q", o.IPPreference)
	}
	if len(o.RetrySchedule) == 0 {
		o.RetrySchedule = slices.Clone(DefaultRetrySchedule)
	}
	if len(o.RetrySchedule) > 100 {
		v.errAt("outbound.retry_schedule", "a handful of steps; the last repeats", "outbound.retry_schedule has more than 100 steps")
	}
	for _, d := range o.RetrySchedule {
		if d.D() < time.Second || d.D() > 7*24*time.Hour {
			v.errAt("outbound.retry_schedule", `steps between 1s and 7 days, e.g. ["1m", "5m", "15m", "30m", "1h"]`, "outbound.retry_schedule step %s is out of range", d)
			break
		}
	}
	if d := o.MaxAge.D(); d < time.Minute || d > 30*24*time.Hour {
		v.errAt("outbound.max_age", "between 1m and 30 days; the default is 5 days (120h)", "outbound.max_age = %s is out of range", o.MaxAge)
	}
	if o.DelayWarning != 0 && o.DelayWarning.D() >= o.MaxAge.D() {
		v.warn = append(v.warn, fmt.Sprintf("outbound.delay_warning (%s) is not shorter than max_age (%s): no delay warnings will be sent", o.DelayWarning, o.MaxAge))
	}
	if o.MaxConcurrency < 1 || o.MaxConcurrency > 10000 {
		v.errAt("outbound.max_concurrency", "between 1 and 10000; the default is 50", "outbound.max_concurrency = %d is out of range", o.MaxConcurrency)
	}
	if o.MaxPerDestination < 1 || o.MaxPerDestination > 10000 {
		v.errAt("outbound.max_per_destination", "between 1 and 10000; the default is 10", "outbound.max_per_destination = %d is out of range", o.MaxPerDestination)
	}
	if d := o.ConnectTimeout.D(); d < time.Second || d > 10*time.Minute {
		v.errAt("outbound.connect_timeout", "between 1s and 10m", "outbound.connect_timeout = %s is out of range", o.ConnectTimeout)
	}
	if d := o.CommandTimeout.D(); d < time.Second || d > time.Hour {
		v.errAt("outbound.command_timeout", "between 1s and 1h", "outbound.command_timeout = %s is out of range", o.CommandTimeout)
	}
	if o.BounceMaxSize < 1000 || o.BounceMaxSize > 100<<20 {
		v.errAt("outbound.bounce_max_size", "between 1KB and 100MiB", "outbound.bounce_max_size = %s is out of range", o.BounceMaxSize)
	}
	if r := &o.TLSReports; r.Enabled {
		if strings.TrimSpace(r.Organization) == "" {
			v.errKey("outbound.tls_reports", `e.g. organization = "Example Family"`, "outbound.tls_reports: enabled needs organization")
		}
		for _, a := range []struct{ key, val string }{{"contact", r.Contact}, {"from", r.From}} {
			if a.val == "" && a.key == "from" {
				continue
			}
			if _, err := mail.ParseAddress(a.val); err != nil || strings.ContainsAny(a.val, "<> ") {
				v.errAt("outbound.tls_reports."+a.key, `a plain address, e.g. "postmaster@example.org"`, "outbound.tls_reports.%s %q is not an e-mail address", a.key, a.val)
			}
		}
	}
	if d := o.TLSReports.Retention.D(); d != 0 && (d < 3*24*time.Hour || d > 365*24*time.Hour) {
		v.errAt("outbound.tls_reports.retention", "between 3d and 365d; the default is 14d", "outbound.tls_reports.retention = %s is out of range", o.TLSReports.Retention)
	}
	seenSel := map[string]bool{}
	for i := range o.DKIM {
		d := &o.DKIM[i]
		key := fmt.Sprintf("outbound.dkim[%d]", i)
		h, err := normalizeHostname(d.Domain, false)
		if err != nil {
			v.errAt(key+".domain", "a local domain", "%s.domain %q: %v", key, d.Domain, err)
			continue
		}
		d.Domain = h
		if seenSel[h] {
			v.errAt(key+".domain", "one active selector per domain", "%s: domain %s is listed twice", key, h)
		}
		seenSel[h] = true
		if !validSelector(d.Selector) {
			v.errAt(key+".selector", "letters, digits, '-', '_' and '.', as in the key's file name", "%s.selector %q is not a valid selector", key, d.Selector)
		}
	}
	if o.Mode == OutboundSmarthost && o.Smarthost.Host == "" {
		v.errKey("outbound.mode", "set [outbound.smarthost] host = \"smtp.example.net\"", "outbound: mode = \"smarthost\" needs outbound.smarthost.host")
	}
	if o.Smarthost.Host != "" || o.Mode == OutboundSmarthost {
		v.checkRelay("outbound.smarthost", &o.Smarthost)
	}
	seen := map[string]int{}
	for i := range o.Routes {
		r := &o.Routes[i]
		key := fmt.Sprintf("outbound.route[%d]", i)
		if len(r.Domains) == 0 {
			v.errKey(key, `e.g. domains = ["example.com"]`, "%s: no domains", key)
		}
		for j, d := range r.Domains {
			h, err := normalizeHostname(d, true)
			if err != nil {
				v.errAt(key+".domains", `domain names, "*.example.com" for subdomains`, "%s: domain %q: %v", key, d, err)
				continue
			}
			r.Domains[j] = h
			if k, dup := seen[h]; dup {
				v.errAt(key+".domains", "each domain can have one route", "%s: domain %s is already routed by route %d", key, h, k)
			}
			seen[h] = i
		}
		if r.Host == "" {
			v.errKey(key, `e.g. host = "smtp.example.net"`, "%s: host is not set", key)
			continue
		}
		rel := r.Relay()
		v.checkRelay(key, &rel)
		r.setRelay(rel)
	}
}

func (v *validator) checkRelay(key string, r *Relay) {
	if r.Host != "" {
		if _, err := netip.ParseAddr(r.Host); err != nil {
			if h, err := normalizeHostname(r.Host, false); err != nil {
				v.errAt(key+".host", "a host name or IP address", "%s.host %q: %v", key, r.Host, err)
			} else {
				r.Host = h
			}
		}
	}
	if r.TLS == "" {
		r.TLS = TLSStartTLS
	}
	var tm TLSMode
	if err := tm.UnmarshalText([]byte(r.TLS)); err != nil {
		msg, hint := splitHint(err.Error())
		v.errAt(key+".tls", hint, "%s: %s", key, msg)
	} else if r.TLS == TLSNone {
		if a, err := netip.ParseAddr(r.Host); (err != nil || !a.IsLoopback()) && r.Host != "localhost" {
			v.warn = append(v.warn, fmt.Sprintf("%s: tls = \"none\": mail to %s travels unencrypted", key, r.Host))
		}
	}
	if r.Port < 0 || r.Port > 65535 {
		v.errAt(key+".port", "between 1 and 65535; 587 for starttls, 465 for implicit", "%s.port %d is out of range", key, r.Port)
	}
	pw := r.Password(key)
	v.checkSecret(key, pw)
	if r.Username != "" && !pw.IsSet() {
		v.errKey(key+".username", "set password_file or password_env", "%s: username without a password", key)
	}
	if r.Username == "" && pw.IsSet() {
		v.errKey(key+".username", "set username", "%s: a password without a username", key)
	}
	if r.Username != "" && r.TLS == TLSNone {
		v.warn = append(v.warn, fmt.Sprintf("%s: credentials for %s are sent without TLS only if it is on loopback; elsewhere delivery is refused", key, r.Host))
	}
	if v.c.file != "" {
		base := filepath.Dir(v.c.file)
		for _, p := range []*string{&r.CAFile, &r.PasswordFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(base, *p)
			}
		}
	}
}

// validSelector: a DKIM selector is a DNS label sequence; it is also a
// file name in the data directory, so nothing else is allowed.
func validSelector(s string) bool {
	if s == "" || len(s) > 63 || strings.HasPrefix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
