package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// validator collects errors with positions.
type validator struct {
	c    *Config
	errs ErrorList
	warn []string
	// badTLS marks listeners whose TLS mode was already reported, so that
	// they do not also cause a "no certificate" error.
	badTLS map[int]bool
}

// errAt records an error for the value at path (or, when the path is not in
// the file, for its nearest enclosing table).
func (v *validator) errAt(path, hint, format string, args ...any) {
	v.add(path, false, hint, format, args...)
}

// errKey records an error positioned at the key rather than its value.
func (v *validator) errKey(path, hint, format string, args ...any) {
	v.add(path, true, hint, format, args...)
}

func (v *validator) add(path string, preferKey bool, hint, format string, args ...any) {
	if len(v.errs) >= maxErrors {
		return
	}
	e := &Error{File: v.c.file, Msg: fmt.Sprintf(format, args...), Hint: hint}
	if p, ok := v.c.pos.Lookup(path, preferKey); ok {
		e.Line, e.Column = p.Line, p.Col
	}
	v.errs = append(v.errs, e)
}

// line returns " (line N)" for path when known, to point at the other half
// of a conflict.
func (v *validator) line(path string) string {
	if p, ok := v.c.pos.Lookup(path, false); ok {
		return " at line " + strconv.Itoa(p.Line)
	}
	return ""
}

// Validate checks the configuration, fills in per-listener defaults (name,
// TLS mode, PROXY settings) and normalizes host names. It is called by Parse,
// and again by anyone who changes a Config afterwards (tests that set
// addresses to 127.0.0.1:0, command-line overrides). Port 0 is allowed and
// never conflicts. Configured certificate files are loaded to find a
// missing, unreadable or mismatched pair before the server starts. It
// returns an ErrorList; Warnings are updated either way.
func (c *Config) Validate() error {
	v := &validator{c: c, badTLS: map[int]bool{}}
	v.checkGlobal()
	v.checkListeners()
	v.checkTLS()
	v.checkLimits()
	v.checkStore()
	v.checkAccounts()
	v.checkOutbound()
	v.checkAPI()
	v.checkForwarding()
	v.checkSpam()
	c.warnings = append(append([]string(nil), c.parseWarns...), v.warn...)
	if len(v.errs) > 0 {
		sortErrors(v.errs)
		return v.errs
	}
	return nil
}

func (v *validator) checkGlobal() {
	c := v.c
	if h, err := normalizeHostname(c.Hostname, false); err != nil {
		v.errAt("hostname", "use the fully qualified name that the MX record points to, e.g. \"mail.example.com\"", "hostname %q: %v", c.Hostname, err)
	} else {
		c.Hostname = h
		if !strings.Contains(h, ".") && h != "localhost" && c.fromFile {
			v.warn = append(v.warn, fmt.Sprintf("hostname %q is not fully qualified; other servers check the name in EHLO against DNS", h))
		}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		v.errAt("data_dir", `e.g. "/var/lib/mailstead"`, "data_dir is empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		v.errAt("log_level", didYouMeanOr(c.LogLevel, []string{"debug", "info", "warn", "error"}), "unknown log_level %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		v.errAt("log_format", didYouMeanOr(c.LogFormat, []string{"text", "json"}), "unknown log_format %q", c.LogFormat)
	}
}

func (v *validator) checkListeners() {
	c := v.c
	if len(c.Listeners) == 0 {
		if c.fromFile {
			v.errAt("", "add at least one [[listener]] table, e.g. name = \"mx\", protocol = \"smtp\", address = \"0.0.0.0:25\"", "no listeners configured")
		}
		return
	}
	names := map[string]int{}
	type bound struct {
		idx  int
		host string // "" for all interfaces
		port int
	}
	var bounds []bound
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := func(key string) string { return fmt.Sprintf("listener[%d].%s", i, key) }
		hdr := fmt.Sprintf("listener[%d]", i)

		if l.Protocol == "" {
			v.errKey(hdr, `protocol is one of: smtp, submission, submissions, imap, imaps, managesieve, http, admin`, "listener has no protocol")
			continue
		}
		if err := l.Protocol.UnmarshalText([]byte(l.Protocol)); err != nil {
			msg, hint := splitHint(err.Error())
			v.errAt(p("protocol"), hint, "%s", msg)
			continue
		}
		if l.Name == "" {
			l.Name = string(l.Protocol)
		}
		label := fmt.Sprintf("listener %q", l.Name)
		if !validListenerName(l.Name) {
			v.errAt(p("name"), "use letters, digits, '-' and '_' (at most 64)", "%s: invalid name", label)
		} else if j, dup := names[l.Name]; dup {
			hint := "give each listener a unique name"
			if _, ok := v.c.pos.Kind(p("name")); !ok {
				hint = "the name defaults to the protocol; set name = \"...\" on one of them"
			}
			v.errAt(p("name"), hint, "%s: name already used by the listener%s", label, v.line(fmt.Sprintf("listener[%d].name", j)))
		} else {
			names[l.Name] = i
		}

		// go-toml assigns string-kinded types directly, without their
		// UnmarshalText, so the enumerations are checked here.
		if l.TLS == "" {
			l.TLS = l.Protocol.DefaultTLS()
		}
		var tm TLSMode
		if err := tm.UnmarshalText([]byte(l.TLS)); err != nil {
			msg, hint := splitHint(err.Error())
			v.errAt(p("tls"), hint, "%s: %s", label, msg)
			v.badTLS[i] = true
		} else if !slices.Contains(l.Protocol.AllowedTLS(), l.TLS) {
			v.errAt(p("tls"), tlsModeHint(l.Protocol, l.TLS), "%s: tls = %q is not possible with protocol %s", label, l.TLS, l.Protocol)
			v.badTLS[i] = true
		}

		if l.Proxy == "" {
			l.Proxy = ProxyOff
		}
		var pm ProxyMode
		if err := pm.UnmarshalText([]byte(l.Proxy)); err != nil {
			msg, hint := splitHint(err.Error())
			v.errAt(p("proxy"), hint, "%s: %s", label, msg)
			l.Proxy = ProxyOff // checked; avoid a second error about trusted_proxies
		}
		if l.ProxyHeaderTimeout == 0 {
			l.ProxyHeaderTimeout = defaultProxyHeaderTimeout
		}
		if l.Proxy != ProxyOff && len(l.TrustedProxies) == 0 {
			v.errAt(p("proxy"), "set trusted_proxies to the load balancer's addresses, e.g. [\"10.0.0.0/8\"]; anyone else could forge client addresses", "%s: proxy = %q needs trusted_proxies", label, l.Proxy)
		}
		if l.Proxy == ProxyOff && len(l.TrustedProxies) > 0 {
			v.warn = append(v.warn, fmt.Sprintf("%s: trusted_proxies is ignored because proxy = \"off\"", label))
		}
		if d := l.ProxyHeaderTimeout.D(); d < 100*time.Millisecond || d > time.Minute {
			v.errAt(p("proxy_header_timeout"), "between 100ms and 1m; the default is 3s", "%s: proxy_header_timeout %s out of range", label, l.ProxyHeaderTimeout)
		}
		if l.AllowInsecureAuth {
			v.warn = append(v.warn, fmt.Sprintf("%s: allow_insecure_auth = true: passwords may be sent in plain text on %s", label, l.Address))
		}

		if l.Address == "" {
			v.errKey(hdr, fmt.Sprintf("e.g. address = %q", exampleAddress(l.Protocol)), "%s: address is not set", label)
			continue
		}
		host, port, err := parseListenAddress(l.Address)
		if err != nil {
			msg, hint := splitHint(err.Error())
			v.errAt(p("address"), hint, "%s: %s", label, msg)
			continue
		}
		if l.Protocol == ProtoAdmin && host != "" {
			if a, err := netip.ParseAddr(host); err == nil && !a.IsLoopback() {
				v.warn = append(v.warn, fmt.Sprintf("%s: admin listener on non-loopback address %s exposes metrics and health endpoints", label, l.Address))
			}
		} else if l.Protocol == ProtoAdmin && host == "" {
			v.warn = append(v.warn, fmt.Sprintf("%s: admin listener on all interfaces (%s) exposes metrics and health endpoints", label, l.Address))
		}
		if port == 0 {
			continue
		}
		for _, b := range bounds {
			if b.port != port {
				continue
			}
			if b.host == host || b.host == "" || host == "" || isUnspecified(b.host) || isUnspecified(host) {
				other := c.Listeners[b.idx]
				v.errAt(p("address"), "each listener needs its own port, or distinct IP addresses on the same port", "%s: address %q conflicts with listener %q (%s)%s", label, l.Address, other.Name, other.Address, v.line(fmt.Sprintf("listener[%d].address", b.idx)))
				break
			}
		}
		bounds = append(bounds, bound{idx: i, host: host, port: port})
	}
}

func isUnspecified(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

func exampleAddress(p Protocol) string {
	switch p {
	case ProtoSMTP:
		return "0.0.0.0:25"
	case ProtoSubmission:
		return "0.0.0.0:587"
	case ProtoSubmissions:
		return "0.0.0.0:465"
	case ProtoIMAP:
		return "0.0.0.0:143"
	case ProtoIMAPS:
		return "0.0.0.0:993"
	case ProtoManageSieve:
		return "0.0.0.0:4190"
	case ProtoHTTP:
		return "0.0.0.0:80"
	}
	return "127.0.0.1:8080"
}

func tlsModeHint(p Protocol, m TLSMode) string {
	switch {
	case p == ProtoSMTP && m == TLSImplicit:
		return "SMTP between servers uses STARTTLS on port 25; for implicit TLS from users use protocol \"submissions\""
	case p == ProtoSubmission && m == TLSImplicit:
		return "use protocol \"submissions\" for implicit TLS (port 465)"
	case p == ProtoIMAP && m == TLSImplicit:
		return "use protocol \"imaps\" for implicit TLS (port 993)"
	case p == ProtoSubmissions:
		return "submissions is always implicit TLS; use protocol \"submission\" for STARTTLS or plain text"
	case p == ProtoIMAPS:
		return "imaps is always implicit TLS; use protocol \"imap\" for STARTTLS or plain text"
	case p == ProtoHTTP || p == ProtoAdmin:
		return "HTTP has no STARTTLS; use \"none\" or \"implicit\""
	}
	var names []string
	for _, a := range p.AllowedTLS() {
		names = append(names, string(a))
	}
	return "one of: " + strings.Join(names, ", ")
}

// parseListenAddress checks "ip:port" / ":port" and returns the host ("" for
// all interfaces) and port. Host names are refused: a name may resolve to
// several addresses, or to a different one after the next DNS change.
func parseListenAddress(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		hint := `write "ip:port", ":port" for all interfaces, or "[ipv6]:port"`
		if !strings.Contains(addr, ":") {
			hint = fmt.Sprintf("add a port, e.g. %q", addr+":25")
		}
		return "", 0, fmt.Errorf("invalid address %q%s", addr, hintSuffix(hint))
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("invalid port %q in address %q%s", portStr, addr, hintSuffix("a number from 0 to 65535; 0 picks a free port"))
	}
	if host == "" {
		return "", port, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		hint := "use an IP address, e.g. \"0.0.0.0\" for all IPv4 interfaces"
		if strings.EqualFold(host, "localhost") {
			hint = `use "127.0.0.1" or "[::1]"`
		}
		return "", 0, fmt.Errorf("address %q: %q is not an IP address%s", addr, host, hintSuffix(hint))
	}
	return a.Unmap().String(), port, nil
}

func validListenerName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (v *validator) checkTLS() {
	c := v.c
	t := &c.TLS
	haveDefault := false
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.errKey("tls.cert_file", "set key_file to the matching private key", "tls: cert_file is set but key_file is not")
	case t.CertFile == "" && t.KeyFile != "":
		v.errKey("tls.key_file", "set cert_file to the matching certificate", "tls: key_file is set but cert_file is not")
	case t.CertFile != "":
		if t.SelfSigned {
			v.errAt("tls.self_signed", "remove self_signed; it only applies when no cert_file is given", "tls: self_signed = true and cert_file are both set")
		}
		haveDefault = v.checkKeyPair("tls", t.CertFile, t.KeyFile)
	}
	seen := map[string]int{}
	for i := range t.Certs {
		sc := &t.Certs[i]
		p := fmt.Sprintf("tls.cert[%d]", i)
		if len(sc.Names) == 0 {
			v.errKey(p, `e.g. names = ["mail.example.org"]`, "[[tls.cert]]: names is empty")
		}
		for j, n := range sc.Names {
			np := fmt.Sprintf("%s.names[%d]", p, j)
			h, err := normalizeHostname(n, true)
			if err != nil {
				v.errAt(np, `a host name like "mail.example.org" or a wildcard like "*.example.org"`, "[[tls.cert]]: name %q: %v", n, err)
				continue
			}
			sc.Names[j] = h
			if k, dup := seen[h]; dup {
				v.errAt(np, "each name may appear in one [[tls.cert]] only", "[[tls.cert]]: name %q is also listed in the [[tls.cert]]%s", h, v.line(fmt.Sprintf("tls.cert[%d]", k)))
				continue
			}
			seen[h] = i
		}
		if sc.CertFile == "" || sc.KeyFile == "" {
			v.errKey(p, "set both cert_file and key_file", "[[tls.cert]]: cert_file and key_file are required")
			continue
		}
		v.checkKeyPair(p, sc.CertFile, sc.KeyFile)
	}
	if !haveDefault && t.CertFile == "" && len(t.Certs) == 0 && !t.SelfSigned {
		for i, l := range c.Listeners {
			if v.badTLS[i] || l.TLS != TLSStartTLS && l.TLS != TLSImplicit {
				continue
			}
			path := fmt.Sprintf("listener[%d].tls", i)
			if _, ok := c.pos.Kind(path); !ok {
				path = fmt.Sprintf("listener[%d]", i)
			}
			v.errAt(path, "set tls.cert_file and tls.key_file, or tls.self_signed = true for testing", "listeners use TLS but no certificate is configured")
			break
		}
	}
}

// checkKeyPair loads a certificate and key so that `config check` finds a
// missing, unreadable or mismatched pair before the server starts.
func (v *validator) checkKeyPair(table, certFile, keyFile string) bool {
	hint := "or set tls.self_signed = true (and remove cert_file) to generate a certificate"
	if table != "tls" {
		hint = ""
	}
	ok := true
	for _, f := range []struct{ key, name string }{{"cert_file", certFile}, {"key_file", keyFile}} {
		st, err := os.Stat(f.name)
		if err != nil {
			ok = false
			v.errAt(table+"."+f.key, hint, "%s.%s %q: %v", table, f.key, f.name, unwrapPathError(err))
		} else if !st.Mode().IsRegular() {
			ok = false
			v.errAt(table+"."+f.key, "", "%s.%s %q is not a regular file", table, f.key, f.name)
		}
	}
	if !ok {
		return false
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		v.errAt(table+".cert_file", "cert_file must hold PEM certificates (leaf first) and key_file the matching PEM private key", "%s: loading %s and %s: %v", table, certFile, keyFile, err)
		return false
	}
	return true
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (v *validator) checkLimits() {
	l := &v.c.Limits
	sizeRange := func(key string, s Size, lo, hi Size) {
		if s < lo || s > hi {
			v.errAt("limits."+key, fmt.Sprintf("between %s and %s", lo, hi), "limits.%s = %s is out of range", key, s)
		}
	}
	intRange := func(key string, n, lo, hi int, zero string) {
		if n < lo || n > hi {
			v.errAt("limits."+key, fmt.Sprintf("between %d and %d%s", lo, hi, zero), "limits.%s = %d is out of range", key, n)
		}
	}
	durRange := func(key string, d Duration, lo, hi time.Duration) {
		if d.D() < lo || d.D() > hi {
			v.errAt("limits."+key, fmt.Sprintf("between %s and %s", Duration(lo), Duration(hi)), "limits.%s = %s is out of range", key, d)
		}
	}
	sizeRange("max_message_size", l.MaxMessageSize, 1<<10, 4<<30)
	sizeRange("max_line_length", l.MaxLineLength, 1000, 16<<20)
	intRange("max_recipients", l.MaxRecipients, 1, 100000, "")
	intRange("max_received_headers", l.MaxReceivedHeaders, 1, 1000, "")
	durRange("smtp_command_timeout", l.SMTPCommandTimeout, time.Second, 24*time.Hour)
	durRange("smtp_data_timeout", l.SMTPDataTimeout, time.Second, 24*time.Hour)
	intRange("max_connections_per_ip", l.MaxConnectionsPerIP, 0, 1000000, "; 0 is unlimited")
	durRange("imap_idle_timeout", l.IMAPIdleTimeout, time.Second, 24*time.Hour)
	sizeRange("imap_max_literal", l.IMAPMaxLiteral, 1<<10, 4<<30)
	sizeRange("imap_max_line", l.IMAPMaxLine, 1000, 16<<20)
	intRange("imap_connections_per_user_ip", l.IMAPConnectionsPerUserIP, 0, 1000000, "; 0 is unlimited")
	durRange("auth_failure_delay", l.AuthFailureDelay, 0, time.Minute)
	intRange("max_connections_per_network", l.MaxConnectionsPerNetwork, 0, 1000000, "; 0 is unlimited")
	intRange("connection_rate_per_ip", l.ConnectionRatePerIP, 0, 1000000, "; 0 is unlimited")
	intRange("max_messages_per_connection", l.MaxMessagesPerConnection, 0, 1000000, "; 0 is unlimited")
	intRange("max_errors_per_session", l.MaxErrorsPerSession, 0, 1000, "; 0 is unlimited")
	durRange("pregreet_wait", l.PregreetWait, 0, 30*time.Second)
	intRange("user_messages_per_hour", l.UserMessagesPerHour, 0, 1000000, "; 0 is unlimited")
	intRange("user_recipients_per_message", l.UserRecipientsPerMessage, 0, 100000, "; 0 is unlimited")
	intRange("user_recipients_per_day", l.UserRecipientsPerDay, 0, 100000000, "; 0 is unlimited")
	if l.MaxConnectionsPerNetwork > 0 && l.MaxConnectionsPerNetwork < l.MaxConnectionsPerIP {
		v.warn = append(v.warn, fmt.Sprintf("limits: max_connections_per_network (%d) is below max_connections_per_ip (%d); the network limit applies first", l.MaxConnectionsPerNetwork, l.MaxConnectionsPerIP))
	}
}

func (v *validator) checkStore() {
	s := &v.c.Store
	switch s.Backend {
	case "sqlite":
		if s.DSNFile != "" || s.DSNEnv != "" {
			k := "store.dsn_file"
			if s.DSNFile == "" {
				k = "store.dsn_env"
			}
			v.errKey(k, "remove it; the sqlite backend keeps its database in data_dir", "store: %s is only used by a database server backend", strings.TrimPrefix(k, "store."))
		}
	case "postgres":
		v.errAt("store.backend", `use "sqlite"`, "store: backend %q is not available yet", s.Backend)
	default:
		v.errAt("store.backend", didYouMeanOr(s.Backend, []string{"sqlite"}), "store: unknown backend %q", s.Backend)
	}
	v.checkSecret("store", s.DSN())
}

// checkSecret checks the shape of a secret's source; the value itself is
// read only when it is used.
func (v *validator) checkSecret(table string, s Secret) {
	stem := strings.TrimPrefix(s.Name, table+".")
	if s.File != "" && s.Env != "" {
		v.errKey(table+"."+stem+"_env", fmt.Sprintf("keep either %s_file or %s_env", stem, stem), "%s: both %s_file and %s_env are set", table, stem, stem)
	}
	if s.Env != "" && !validEnvName(s.Env) {
		v.errAt(table+"."+stem+"_env", "the name of an environment variable, e.g. \"MAILSTEAD_DSN\"", "%s.%s_env: %q is not a valid variable name", table, stem, s.Env)
	}
}

func (v *validator) checkAccounts() {
	a := &v.c.Accounts
	d := a.SubaddressDelimiter
	if utf8.RuneCountInString(d) > 8 {
		v.errAt("accounts.subaddress_delimiter", `usually "+" or "-"; empty disables subaddressing`, "accounts.subaddress_delimiter has more than 8 characters")
	}
	for _, r := range d {
		if r > 0x7e || r <= ' ' || r == '@' || r == '"' || r == '\\' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			v.errAt("accounts.subaddress_delimiter", `use punctuation such as "+" or "-"; letters, digits, '.', '@', quotes and spaces are not allowed`, "accounts.subaddress_delimiter: %q cannot be a delimiter", r)
			break
		}
	}
	if a.DefaultQuota < 0 {
		v.errAt("accounts.default_quota", "0 means unlimited", "accounts.default_quota is negative")
	}
	if a.Postmaster != "" {
		local, domain, ok := strings.Cut(a.Postmaster, "@")
		if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
			v.errAt("accounts.postmaster", `the address of an account, e.g. "admin@example.com"`, "accounts.postmaster %q is not an account address", a.Postmaster)
		} else if h, err := normalizeHostname(domain, false); err != nil {
			v.errAt("accounts.postmaster", `the address of an account, e.g. "admin@example.com"`, "accounts.postmaster %q: domain: %v", a.Postmaster, err)
		} else {
			a.Postmaster = local + "@" + h
		}
	}
}

// normalizeHostname lower-cases a host name and converts U-labels to IDNA
// A-labels. With wildcard, a leading "*." is allowed.
func normalizeHostname(s string, wildcard bool) (string, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" {
		return "", fmt.Errorf("empty")
	}
	prefix := ""
	if wildcard && strings.HasPrefix(s, "*.") {
		prefix, s = "*.", s[2:]
	}
	if _, err := netip.ParseAddr(s); err == nil && prefix == "" {
		return "", fmt.Errorf("is an IP address, not a host name")
	}
	for _, r := range s {
		if r >= utf8.RuneSelf {
			a, err := idna.Lookup.ToASCII(s)
			if err != nil {
				return "", fmt.Errorf("invalid internationalized name: %v", err)
			}
			s = a
			break
		}
	}
	s = strings.ToLower(s)
	if len(s) > 253 {
		return "", fmt.Errorf("longer than 253 characters")
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("label %q must be 1 to 63 characters", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("label %q starts or ends with '-'", label)
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				return "", fmt.Errorf("invalid character %q", ch)
			}
		}
	}
	return prefix + s, nil
}
