package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/tlsutil"
)

// certPair generates a self-signed pair in a temporary directory.
func certPair(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	c, k, err := tlsutil.EnsureSelfSigned(t.TempDir(), []string{"mail.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() does not validate: %v", err)
	}
	if c.Hostname != "localhost" || c.DataDir != "./data" || !c.TLS.SelfSigned {
		t.Errorf("hostname %q data_dir %q self_signed %v", c.Hostname, c.DataDir, c.TLS.SelfSigned)
	}
	want := []struct {
		name, addr string
		p          Protocol
		tls        TLSMode
	}{
		{"smtp", "127.0.0.1:2525", ProtoSMTP, TLSStartTLS},
		{"submission", "127.0.0.1:2587", ProtoSubmission, TLSStartTLS},
		{"submissions", "127.0.0.1:2465", ProtoSubmissions, TLSImplicit},
		{"imap", "127.0.0.1:1143", ProtoIMAP, TLSStartTLS},
		{"imaps", "127.0.0.1:1993", ProtoIMAPS, TLSImplicit},
		{"managesieve", "127.0.0.1:4190", ProtoManageSieve, TLSStartTLS},
		{"admin", "127.0.0.1:8080", ProtoAdmin, TLSNone},
	}
	if len(c.Listeners) != len(want) {
		t.Fatalf("%d listeners, want %d", len(c.Listeners), len(want))
	}
	for i, w := range want {
		l := c.Listeners[i]
		if l.Name != w.name || l.Address != w.addr || l.Protocol != w.p || l.TLS != w.tls || l.Proxy != ProxyOff || l.AllowInsecureAuth {
			t.Errorf("listener %d = %+v, want %+v", i, l, w)
		}
	}
	if len(c.Warnings()) != 0 {
		t.Errorf("warnings for Default(): %v", c.Warnings())
	}
	if !c.NeedsTLS() || c.TLSDir() != filepath.Join("data", "tls") {
		t.Errorf("NeedsTLS %v TLSDir %q", c.NeedsTLS(), c.TLSDir())
	}
	// Each call returns an independent value.
	c.Listeners[0].Address = "x"
	if Default().Listeners[0].Address != "127.0.0.1:2525" {
		t.Error("Default() shares state between calls")
	}
}

// Tests set every address to port 0; that must validate, with no conflicts.
func TestValidatePortZero(t *testing.T) {
	c := Default()
	for i := range c.Listeners {
		c.Listeners[i].Address = "127.0.0.1:0"
	}
	c.Listeners = append(c.Listeners, Listener{Protocol: ProtoSMTP, Name: "mx2", Address: ":0"})
	if err := c.Validate(); err != nil {
		t.Fatalf("port 0 listeners: %v", err)
	}
	last := len(c.Listeners) - 1
	if c.Listeners[last].TLS != TLSStartTLS || c.Listeners[last].ProxyHeaderTimeout != defaultProxyHeaderTimeout {
		t.Errorf("defaults not filled by Validate: %+v", c.Listeners[last])
	}
	// A real conflict is still found, without positions.
	c.Listeners[1].Address = "127.0.0.1:2525"
	c.Listeners[0].Address = "127.0.0.1:2525"
	err := c.Validate()
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Msg, "conflicts") || e.Line != 0 {
		t.Fatalf("conflict: %v", err)
	}
	if got := err.Error(); !strings.HasPrefix(got, "config: ") {
		t.Errorf("error without file: %q", got)
	}
}

// exampleDoc returns the commented example config with its certificate
// paths pointing at generated files.
func exampleDoc(t testing.TB) []byte {
	data, err := os.ReadFile("testdata/mailstead.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	cert, key := certPair(t)
	s := string(data)
	for _, f := range []string{"fullchain.pem", "example.org.pem"} {
		s = strings.ReplaceAll(s, "/etc/mailstead/tls/"+f, cert)
	}
	for _, f := range []string{"privkey.pem", "example.org.key"} {
		s = strings.ReplaceAll(s, "/etc/mailstead/tls/"+f, key)
	}
	return []byte(s)
}

func TestExampleFile(t *testing.T) {
	c, err := Parse("mailstead.example.toml", exampleDoc(t))
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if c.Hostname != "mail.example.com" || c.DataDir != "/var/lib/mailstead" || c.TLS.SelfSigned {
		t.Errorf("globals: %q %q %v", c.Hostname, c.DataDir, c.TLS.SelfSigned)
	}
	if len(c.Listeners) != 7 {
		t.Fatalf("%d listeners", len(c.Listeners))
	}
	p := c.Listeners[1]
	if p.Proxy != ProxyV2 || len(p.TrustedProxies) != 2 || p.TrustedProxies[0].Prefix != netip.MustParsePrefix("10.0.0.0/8") || p.ProxyHeaderTimeout.D() != 3*time.Second {
		t.Errorf("proxied listener: %+v", p)
	}
	if c.Listeners[3].TLS != TLSImplicit || c.Listeners[2].TLS != TLSStartTLS {
		t.Errorf("tls defaults: %v %v", c.Listeners[3].TLS, c.Listeners[2].TLS)
	}
	if c.Limits.MaxMessageSize != 25_000_000 || c.Limits.MaxLineLength != 65536 || c.Limits.SMTPDataTimeout.D() != 10*time.Minute {
		t.Errorf("limits: %+v", c.Limits)
	}
	if got := c.TLS.Certs[0].Names; !reflect.DeepEqual(got, []string{"mail.example.org", "*.example.org"}) {
		t.Errorf("sni names %v", got)
	}
	if c.Accounts.Postmaster != "admin@example.com" {
		t.Errorf("postmaster %q", c.Accounts.Postmaster)
	}
	// Every field of the schema appears in the example, so the example
	// really documents every key.
	doc := string(exampleDoc(t))
	for _, path := range []string{"", "tls", "tls.cert", "listener", "limits", "store", "accounts", "outbound", "outbound.smarthost", "outbound.route", "outbound.dkim"} {
		for _, k := range keysAtPath(path) {
			if !strings.Contains(doc, k) {
				t.Errorf("key %s.%s is not documented in the example", path, k)
			}
		}
	}
}

func TestGoodConfigs(t *testing.T) {
	cert, key := certPair(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		doc   string
		check func(t *testing.T, c *Config)
	}{
		{"minimal", `
[[listener]]
protocol = "admin"
address = "127.0.0.1:8080"
`, func(t *testing.T, c *Config) {
			h, _ := os.Hostname()
			if c.Hostname != strings.ToLower(h) {
				t.Errorf("hostname %q, want os.Hostname %q", c.Hostname, h)
			}
			if c.DataDir != filepath.Join(dir, "data") {
				t.Errorf("data_dir %q not relative to the config file", c.DataDir)
			}
			if c.TLS.SelfSigned || c.Listeners[0].Name != "admin" || c.Listeners[0].TLS != TLSNone || c.Listeners[0].AllowInsecureAuth {
				t.Errorf("production defaults: %+v %+v", c.TLS, c.Listeners[0])
			}
			if !reflect.DeepEqual(c.Limits, baseDefaults().Limits) || c.Store.Backend != "sqlite" || c.Accounts.SubaddressDelimiter != "+" {
				t.Errorf("defaults: %+v %+v %+v", c.Limits, c.Store, c.Accounts)
			}
			if !hasWarning(c, "data_dir is not set") || hasWarning(c, "postmaster") {
				t.Errorf("warnings: %v", c.Warnings())
			}
		}},
		{"self signed and per-protocol tls", `
hostname = "Mail.Example.COM."
data_dir = "var"
[tls]
self_signed = true
[[listener]]
protocol = "smtp"
address = ":25"
[[listener]]
protocol = "imaps"
address = "[::]:993"
[[listener]]
protocol = "managesieve"
address = "[2001:db8::1]:4190"
tls = "none"
allow_insecure_auth = true
`, func(t *testing.T, c *Config) {
			if c.Hostname != "mail.example.com" || c.DataDir != filepath.Join(dir, "var") {
				t.Errorf("hostname %q data_dir %q", c.Hostname, c.DataDir)
			}
			if c.Listeners[0].TLS != TLSStartTLS || c.Listeners[1].TLS != TLSImplicit || c.Listeners[2].TLS != TLSNone {
				t.Errorf("tls modes %+v", c.Listeners)
			}
			if !c.Listeners[2].AllowInsecureAuth || !hasWarning(c, "allow_insecure_auth") {
				t.Errorf("insecure auth not warned: %v", c.Warnings())
			}
		}},
		{"idn hostname", `
hostname = "mäil.bücher.example"
[[listener]]
protocol = "admin"
address = "127.0.0.1:0"
`, func(t *testing.T, c *Config) {
			if c.Hostname != "xn--mil-qla.xn--bcher-kva.example" {
				t.Errorf("hostname %q", c.Hostname)
			}
		}},
		{"cert files and sni", `
hostname = "mx.example"
[tls]
cert_file = "` + cert + `"
key_file = "` + key + `"
[[tls.cert]]
names = ["Mail.Example.ORG", "*.example.net"]
cert_file = "` + cert + `"
key_file = "` + key + `"
[[listener]]
protocol = "submissions"
address = "0.0.0.0:465"
`, func(t *testing.T, c *Config) {
			if c.TLS.CertFile != cert || !reflect.DeepEqual(c.TLS.Certs[0].Names, []string{"mail.example.org", "*.example.net"}) {
				t.Errorf("tls %+v", c.TLS)
			}
		}},
		{"sizes durations cidrs", `
hostname = "mx.example"
[limits]
max_message_size = 1048576
max_line_length = "1 MiB"
imap_max_literal = "2gb"
smtp_command_timeout = "90s"
imap_idle_timeout = "1h30m"
auth_failure_delay = "0s"
max_connections_per_ip = 0
pregreet_wait = "0s"
exempt_networks = []
user_recipients_per_day = 5
[accounts]
subaddress_delimiter = "+-"
default_quota = "1GiB"
postmaster = "Admin@Example.ORG"
[[listener]]
protocol = "smtp"
address = "0.0.0.0:2525"
tls = "none"
proxy = "any"
trusted_proxies = ["192.0.2.7", "::ffff:10.0.0.0/104", "2001:db8::/32"]
proxy_header_timeout = "500ms"
`, func(t *testing.T, c *Config) {
			l := c.Limits
			if l.MaxMessageSize != 1<<20 || l.MaxLineLength != 1<<20 || l.IMAPMaxLiteral != 2e9 {
				t.Errorf("sizes %v %v %v", l.MaxMessageSize, l.MaxLineLength, l.IMAPMaxLiteral)
			}
			if l.SMTPCommandTimeout.D() != 90*time.Second || l.IMAPIdleTimeout.D() != 90*time.Minute || l.AuthFailureDelay != 0 {
				t.Errorf("durations %v %v %v", l.SMTPCommandTimeout, l.IMAPIdleTimeout, l.AuthFailureDelay)
			}
			if l.PregreetWait != 0 || len(l.ExemptNetworks) != 0 || l.UserRecipientsPerDay != 5 || l.UserMessagesPerHour != 200 {
				t.Errorf("abuse limits %v %v %v %v", l.PregreetWait, l.ExemptNetworks, l.UserRecipientsPerDay, l.UserMessagesPerHour)
			}
			tp := c.Listeners[0].TrustedProxies
			want := []string{"192.0.2.7/32", "10.0.0.0/8", "2001:db8::/32"}
			for i, w := range want {
				if tp[i].String() != w {
					t.Errorf("trusted_proxies[%d] = %s, want %s", i, tp[i], w)
				}
			}
			if c.Accounts.DefaultQuota != 1<<30 || c.Accounts.Postmaster != "Admin@example.org" {
				t.Errorf("accounts %+v", c.Accounts)
			}
		}},
		{"inline listener tables", `
hostname = "mx.example"
listener = [
  { protocol = "admin", address = "127.0.0.1:8080" },
  { name = "h", protocol = "http", address = "127.0.0.1:8081" },
]
`, func(t *testing.T, c *Config) {
			if len(c.Listeners) != 2 || c.Listeners[1].Name != "h" {
				t.Errorf("listeners %+v", c.Listeners)
			}
		}},
		{"same port distinct ips", `
hostname = "mx.example"
[[listener]]
name = "a"
protocol = "admin"
address = "127.0.0.1:8080"
[[listener]]
name = "b"
protocol = "admin"
address = "127.0.0.2:8080"
[[listener]]
name = "c"
protocol = "admin"
address = "[::1]:8080"
`, nil},
		{"bom and crlf", "\xef\xbb\xbfhostname = \"mx.example\"\r\n[[listener]]\r\nprotocol = \"admin\"\r\naddress = \"127.0.0.1:1\"\r\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := filepath.Join(dir, "mailstead.toml")
			c, err := Parse(name, []byte(tc.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
			roundTrip(t, c)
		})
	}
}

func hasWarning(c *Config, sub string) bool {
	for _, w := range c.Warnings() {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// roundTrip checks that Effective parses back to the same configuration.
func roundTrip(t testing.TB, c *Config) {
	t.Helper()
	eff := c.Effective()
	c2, err := Parse(c.File(), []byte(eff))
	if err != nil {
		t.Fatalf("Effective() does not parse: %v\n%s", err, eff)
	}
	if !equalConfig(c, c2) {
		t.Fatalf("Effective() round trip differs:\n%+v\n%+v\n%s", *c, *c2, eff)
	}
}

// equalConfig compares the exported fields.
func equalConfig(a, b *Config) bool {
	norm := func(c *Config) Config {
		x := *c
		x.file, x.pos, x.fromFile, x.parseWarns, x.warnings = "", nil, false, nil, nil
		if len(x.Listeners) == 0 {
			x.Listeners = nil
		}
		x.Listeners = append([]Listener(nil), x.Listeners...)
		for i := range x.Listeners {
			if len(x.Listeners[i].TrustedProxies) == 0 {
				x.Listeners[i].TrustedProxies = nil
			}
		}
		if len(x.TLS.Certs) == 0 {
			x.TLS.Certs = nil
		}
		return x
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func TestErrors(t *testing.T) {
	cert, key := certPair(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	const admin = "[[listener]]\nprotocol = \"admin\"\naddress = \"127.0.0.1:8080\"\n"
	for _, tc := range []struct {
		name string
		doc  string
		pos  string // "line:col", or "" for no position
		msg  string // substring of the message
		hint string // substring of the hint
		// which is the index of the error checked; the document has
		// which+1 errors in all.
		which int
	}{
		// Syntax and types, reported by go-toml.
		{"syntax", "hostname = = 1\n", "1:12", "unexpected character", "", 0},
		{"unterminated string", "hostname = \"x\n", "1:", "", "", 0},
		{"type string", "hostname = 5\n" + admin, "1:12", "hostname: expected a string", "", 0},
		{"type int", admin + "[limits]\nmax_recipients = \"many\"\n", "5:18", "limits.max_recipients: expected an integer", "", 0},
		{"type table", "[tls]\ncert = 5\n" + admin, "2:8", "tls.cert: expected an array of tables", "", 0},
		{"duplicate key", "hostname = \"a.example\"\nhostname = \"b.example\"\n" + admin, "2:1", "hostname", "", 0},

		{"protocol number", "[[listener]]\nprotocol = 5\naddress = \":25\"\n", "2:12", "listener.protocol: expected a string", "", 0},
		{"bool duration", admin + "[limits]\nsmtp_data_timeout = true\n", "5:21", "a duration must be a string", "", 0},
		{"float size", admin + "[limits]\nmax_message_size = 1.5\n", "5:20", `limits.max_message_size: expected a size like "25MB"`, "", 0},
		{"cidr not array", "[[listener]]\nprotocol = \"admin\"\naddress = \":25\"\ntrusted_proxies = \"10.0.0.0/8\"\n", "4:19", "listener.trusted_proxies: expected an array of strings", "", 0},
		{"array of tables as table", admin + "[[limits]]\nmax_recipients = 1\n", "4:3", "limits: expected a table", "", 0},

		// Unknown keys.
		{"unknown top", "hostnme = \"x\"\n" + admin, "1:1", "unknown key 'hostnme' at top level", "did you mean 'hostname'?", 0},
		{"unknown listener key", "[[listener]]\nprotocol = \"admin\"\nadress = \"127.0.0.1:8080\"\n", "3:1", "unknown key 'adress' in [[listener]]", "did you mean 'address'?", 0},
		{"unknown limits key", admin + "[limits]\nmax_mesage_size = \"1MB\"\n", "5:1", "unknown key 'max_mesage_size' in [limits]", "did you mean 'max_message_size'?", 0},
		{"unknown table", admin + "[limit]\nmax_recipients = 5\n", "4:2", "unknown key 'limit' at top level", "did you mean 'limits'?", 0},
		{"unknown no close match", admin + "[limits]\nfrobnicate = 1\n", "5:1", "unknown key 'frobnicate'", "known keys: max_message_size", 0},
		{"inline table unknown key", admin + "[tls]\ncert = [{ names = [\"a.example\"], cert_file = \"c\", key_file = \"k\", kye_file = \"k\" }]\n", "5:67", "unknown key 'kye_file' in [[tls.cert]]", "did you mean 'key_file'?", 0},
		{"protocol as table", admin + "[imap]\naddress = \":143\"\n", "4:2", "unknown key 'imap' at top level", `[[listener]] tables with protocol = "imap"`, 0},
		{"misplaced key", "max_recipients = 5\n" + admin, "1:1", "unknown key 'max_recipients' at top level", "belongs in the [limits] table", 0},
		{"inline secret", admin + "[store]\ndsn = \"postgres://u:pw@h/db\"\n", "5:1", "unknown key 'dsn' in [store]", "use 'dsn_file' or 'dsn_env'", 0},
		{"unknown sni key", admin + "[[tls.cert]]\nname = [\"a.example\"]\n", "5:1", "unknown key 'name' in [[tls.cert]]", "did you mean 'names'?", 0},

		// Values checked while decoding.
		{"bad duration", admin + "[limits]\nsmtp_data_timeout = \"10 minutes\"\n", "5:21", `invalid duration "10 minutes"`, `"30s"`, 0},
		{"duration without unit", admin + "[limits]\nsmtp_data_timeout = \"600\"\n", "5:21", `duration "600" has no unit`, `"600s"`, 0},
		{"integer duration", admin + "[limits]\nsmtp_data_timeout = 600\n", "5:21", "limits.smtp_data_timeout: a duration must be a string with a unit", `"30s"`, 0},
		{"integer proxy timeout", "[[listener]]\nprotocol = \"admin\"\naddress = \"127.0.0.1:8080\"\nproxy_header_timeout = 3\n", "4:24", "listener.proxy_header_timeout: a duration must be a string", "", 0},
		{"negative duration", admin + "[limits]\nauth_failure_delay = \"-1s\"\n", "5:22", "negative", "", 0},
		{"bad size unit", admin + "[limits]\nmax_message_size = \"25MBB\"\n", "5:20", `invalid size unit "MBB"`, "units are B, KB", 0},
		{"size typo", admin + "[limits]\nmax_message_size = \"25 MiBs\"\n", "5:20", `invalid size unit "MiBs"`, "did you mean 'MiB'?", 0},
		{"fractional size", admin + "[limits]\nmax_message_size = \"1.5GB\"\n", "5:20", "invalid size", `"1536MB"`, 0},
		{"negative size string", admin + "[limits]\nmax_message_size = \"-5\"\n", "5:20", "negative", "", 0},
		{"size overflow", admin + "[limits]\nmax_message_size = \"99999999999TB\"\n", "5:20", "too large", "", 0},
		{"protocol typo", "[[listener]]\nprotocol = \"smpt\"\naddress = \":25\"\n", "2:12", `unknown protocol "smpt"`, "did you mean 'smtp'?", 0},
		{"protocol unknown", "[[listener]]\nprotocol = \"pop3\"\naddress = \":110\"\n", "2:12", `unknown protocol "pop3"`, "one of: smtp, submission", 0},
		{"tls mode alias", "[[listener]]\nprotocol = \"imap\"\naddress = \":143\"\ntls = \"ssl\"\n", "4:7", `unknown tls mode "ssl"`, `did you mean "implicit"?`, 0},
		{"tls mode typo", "[[listener]]\nprotocol = \"imap\"\naddress = \":143\"\ntls = \"startls\"\n", "4:7", `unknown tls mode "startls"`, "did you mean 'starttls'?", 0},
		{"proxy mode", "[[listener]]\nprotocol = \"smtp\"\naddress = \":25\"\ntls = \"none\"\nproxy = \"v3\"\n", "5:9", `unknown proxy mode "v3"`, "did you mean 'v1'?", 0},
		{"bad cidr", "[[listener]]\nprotocol = \"admin\"\naddress = \":25\"\nproxy = \"v2\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n", "5:34", `invalid network "10.0.0.0/33"`, `"10.0.0.0/8"`, 0},
		{"cidr host bits", "[[listener]]\nprotocol = \"admin\"\naddress = \":25\"\nproxy = \"v2\"\ntrusted_proxies = [\"10.1.2.3/8\"]\n", "5:20", "host bits set", `did you mean "10.0.0.0/8"?`, 0},

		// Values checked by Validate.
		{"bad hostname", "hostname = \"mail_server.example\"\n" + admin, "1:12", `hostname "mail_server.example": invalid character '_'`, "fully qualified", 0},
		{"ip hostname", "hostname = \"192.0.2.1\"\n" + admin, "1:12", "is an IP address", "", 0},
		{"log level", "log_level = \"verbose\"\n" + admin, "1:13", `unknown log_level "verbose"`, "one of: debug, info, warn, error", 0},
		{"log format", "log_format = \"jsn\"\n" + admin, "1:14", `unknown log_format "jsn"`, "did you mean 'json'?", 0},
		{"no listeners", "hostname = \"mx.example\"\n", "", "no listeners configured", "add at least one [[listener]]", 0},
		{"no protocol", "hostname = \"mx.example\"\n[[listener]]\naddress = \":25\"\n", "2:3", "listener has no protocol", "protocol is one of", 0},
		{"no address", "[[listener]]\nname = \"mx\"\nprotocol = \"admin\"\n", "1:3", `listener "mx": address is not set`, `address = "127.0.0.1:8080"`, 0},
		{"address without port", "[[listener]]\nprotocol = \"admin\"\naddress = \"127.0.0.1\"\n", "3:11", `invalid address "127.0.0.1"`, `"127.0.0.1:25"`, 0},
		{"address host name", "[[listener]]\nprotocol = \"admin\"\naddress = \"localhost:8080\"\n", "3:11", `"localhost" is not an IP address`, `"127.0.0.1" or "[::1]"`, 0},
		{"address bad port", "[[listener]]\nprotocol = \"admin\"\naddress = \"127.0.0.1:99999\"\n", "3:11", `invalid port "99999"`, "0 to 65535", 0},
		{"port conflict", admin + "[[listener]]\nname = \"a2\"\nprotocol = \"admin\"\naddress = \"127.0.0.1:8080\"\n", "7:11", `listener "a2": address "127.0.0.1:8080" conflicts with listener "admin" (127.0.0.1:8080) at line 3`, "own port", 0},
		{"wildcard conflict", admin + "[[listener]]\nname = \"a2\"\nprotocol = \"admin\"\naddress = \":8080\"\n", "7:11", `conflicts with listener "admin"`, "", 0},
		{"ipv6 wildcard conflict", "[[listener]]\nprotocol = \"admin\"\naddress = \"[::]:80\"\n[[listener]]\nprotocol = \"http\"\naddress = \"192.0.2.1:80\"\n", "6:11", `listener "http": address "192.0.2.1:80" conflicts`, "", 0},
		{"duplicate name", admin + "[[listener]]\nname = \"admin\"\nprotocol = \"admin\"\naddress = \"127.0.0.1:8081\"\n", "5:8", `listener "admin": name already used by the listener at line 1`, "unique name", 0},
		{"duplicate default name", admin + admin[:len(admin)-5] + "1\"\n", "4:3", `listener "admin": name already used`, "defaults to the protocol", 0},
		{"bad name", "[[listener]]\nname = \"mx 1\"\nprotocol = \"admin\"\naddress = \":1\"\n", "2:8", `listener "mx 1": invalid name`, "letters, digits", 0},
		{"tls not possible", "[[listener]]\nprotocol = \"smtp\"\naddress = \":25\"\ntls = \"implicit\"\n", "4:7", `listener "smtp": tls = "implicit" is not possible with protocol smtp`, `protocol "submissions"`, 0},
		{"imaps plain", "[[listener]]\nprotocol = \"imaps\"\naddress = \":993\"\ntls = \"none\"\n", "4:7", "not possible with protocol imaps", "always implicit TLS", 0},
		{"admin starttls", "[[listener]]\nprotocol = \"admin\"\naddress = \":993\"\ntls = \"starttls\"\n", "4:7", "not possible with protocol admin", "no STARTTLS", 0},
		{"proxy without trusted", "[[listener]]\nprotocol = \"admin\"\naddress = \":1\"\nproxy = \"v1\"\n", "4:9", `proxy = "v1" needs trusted_proxies`, "forge client addresses", 0},
		{"proxy timeout range", "[[listener]]\nprotocol = \"admin\"\naddress = \":1\"\nproxy_header_timeout = \"5m\"\n", "4:24", "proxy_header_timeout 5m out of range", "between 100ms and 1m", 0},
		{"tls without cert", "hostname = \"mx.example\"\n[[listener]]\nprotocol = \"smtp\"\naddress = \":25\"\n", "2:3", "listeners use TLS but no certificate is configured", "self_signed = true", 0},
		{"tls without cert explicit mode", "[[listener]]\nprotocol = \"imap\"\naddress = \":143\"\ntls = \"starttls\"\n", "4:7", "no certificate is configured", "", 0},
		{"missing cert file", "[tls]\ncert_file = \"" + missing + "\"\nkey_file = \"" + key + "\"\n" + admin, "2:13", "tls.cert_file \"" + missing + "\": no such file or directory", "self_signed = true", 0},
		{"cert without key", "[tls]\ncert_file = \"" + cert + "\"\n" + admin, "2:1", "cert_file is set but key_file is not", "key_file", 0},
		{"key without cert", "[tls]\nkey_file = \"" + key + "\"\n" + admin, "2:1", "key_file is set but cert_file is not", "cert_file", 0},
		{"cert is directory", "[tls]\ncert_file = \"" + filepath.Dir(cert) + "\"\nkey_file = \"" + key + "\"\n" + admin, "2:13", "is not a regular file", "", 0},
		{"key mismatch", "[tls]\ncert_file = \"" + cert + "\"\nkey_file = \"" + cert + "\"\n" + admin, "2:13", "tls: loading", "matching PEM private key", 0},
		{"self signed and cert", "[tls]\nself_signed = true\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n" + admin, "2:15", "self_signed = true and cert_file are both set", "remove self_signed", 0},
		{"sni no names", admin + "[[tls.cert]]\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n", "4:3", "[[tls.cert]]: names is empty", "names = ", 0},
		{"sni bad name", admin + "[[tls.cert]]\nnames = [\"ok.example\", \"bad..example\"]\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n", "5:24", `name "bad..example"`, "wildcard", 0},
		{"sni duplicate", admin + "[[tls.cert]]\nnames = [\"a.example\"]\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n[[tls.cert]]\nnames = [\"A.example\"]\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n", "9:10", `name "a.example" is also listed in the [[tls.cert]] at line 4`, "", 0},
		{"sni missing key", admin + "[[tls.cert]]\nnames = [\"a.example\"]\ncert_file = \"" + cert + "\"\n", "4:3", "cert_file and key_file are required", "", 0},
		{"limit range", admin + "[limits]\nmax_recipients = 0\n", "5:18", "limits.max_recipients = 0 is out of range", "between 1 and 100000", 0},
		{"size range", admin + "[limits]\nmax_line_length = \"100B\"\n", "5:19", "limits.max_line_length = 100B is out of range", "between 1KB and 16MiB", 0},
		{"negative int size", admin + "[limits]\nimap_max_literal = -1\n", "5:20", "limits.imap_max_literal = -1B is out of range", "", 0},
		{"tls reports without organization", admin + "[outbound.tls_reports]\nenabled = true\ncontact = \"pm@example.org\"\n", "4:2", "enabled needs organization", "organization =", 0},
		{"tls reports bad contact", admin + "[outbound.tls_reports]\nenabled = true\norganization = \"X\"\ncontact = \"Post Master <pm@example.org>\"\n", "7:11", "is not an e-mail address", "plain address", 0},
		{"tls reports retention", admin + "[outbound.tls_reports]\nretention = \"1d\"\n", "5:13", "retention = 1d is out of range", "between 3d and 365d", 0},
		{"expunge retention unit", admin + "[store]\nexpunge_retention = \"90 days\"\n", "5:21", "invalid duration", "90d", 0},
		{"duration range", admin + "[limits]\nsmtp_command_timeout = \"100ms\"\n", "5:24", "limits.smtp_command_timeout = 100ms is out of range", "between 1s and 1d", 0},
		{"pregreet range", admin + "[limits]\npregreet_wait = \"1m\"\n", "5:17", "limits.pregreet_wait = 1m is out of range", "between 0s and 30s", 0},
		{"errors range", admin + "[limits]\nmax_errors_per_session = -1\n", "5:26", "limits.max_errors_per_session = -1 is out of range", "0 is unlimited", 0},
		{"exempt network", admin + "[limits]\nexempt_networks = [\"10.0.0.1/8\"]\n", "5:20", "host bits set", "10.0.0.0/8", 0},
		{"store backend", admin + "[store]\nbackend = \"sqlte\"\n", "5:11", `store: unknown backend "sqlte"`, "did you mean 'sqlite'?", 0},
		{"store postgres", admin + "[store]\nbackend = \"postgres\"\n", "5:11", `backend "postgres" is not available yet`, `"sqlite"`, 0},
		{"dsn with sqlite", admin + "[store]\ndsn_env = \"DSN\"\n", "5:1", "dsn_env is only used by a database server backend", "", 0},
		{"bad env name", admin + "[store]\nbackend = \"postgres\"\ndsn_env = \"1-X\"\n", "6:11", `store.dsn_env: "1-X" is not a valid variable name`, "", 1},
		{"both secret sources", admin + "[store]\nbackend = \"postgres\"\ndsn_file = \"/x\"\ndsn_env = \"X\"\n", "7:1", "both dsn_file and dsn_env are set", "keep either", 1},
		{"delimiter", admin + "[accounts]\nsubaddress_delimiter = \"a\"\n", "5:24", "'a' cannot be a delimiter", "punctuation", 0},
		{"postmaster", admin + "[accounts]\npostmaster = \"admin\"\n", "5:14", `accounts.postmaster "admin" is not an account address`, "admin@example.com", 0},
		{"negative quota", admin + "[accounts]\ndefault_quota = -5\n", "5:17", "default_quota is negative", "unlimited", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("m.toml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T %v is not an ErrorList", err, err)
			}
			if len(list) != tc.which+1 {
				t.Fatalf("%d errors, want %d:\n%v", len(list), tc.which+1, err)
			}
			e := list[tc.which]
			if e.File != "m.toml" {
				t.Errorf("file %q", e.File)
			}
			pos := ""
			if e.Line > 0 {
				pos = strings.TrimPrefix(e.Error(), "m.toml:")
				pos = pos[:strings.Index(pos, ": ")]
			}
			if tc.pos == "1:" {
				if e.Line != 1 {
					t.Errorf("position %q, want line 1", pos)
				}
			} else if pos != tc.pos {
				t.Errorf("position %q, want %q (%v)", pos, tc.pos, e)
			}
			if !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("message %q does not contain %q", e.Msg, tc.msg)
			}
			if !strings.Contains(e.Hint, tc.hint) {
				t.Errorf("hint %q does not contain %q", e.Hint, tc.hint)
			}
			if tc.hint != "" && !strings.HasSuffix(e.Error(), " (hint: "+e.Hint+")") {
				t.Errorf("formatted error %q lacks the hint", e.Error())
			}
			want := "m.toml:" + tc.pos + ": "
			if tc.pos == "" {
				want = "m.toml: "
			}
			if tc.pos != "1:" && !strings.HasPrefix(e.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}

// Several mistakes are reported together, in file order.
func TestErrorsCollected(t *testing.T) {
	doc := `hostname = "mx.example"
log_level = "loud"
[[listener]]
protocol = "admin"
address = "localhost:1"
[[listener]]
protocol = "smtp"
address = ":25"
tls = "implicit"
[limits]
max_recipients = 0
`
	_, err := Parse("m.toml", []byte(doc))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("%v", err)
	}
	var got []int
	for _, e := range list {
		got = append(got, e.Line)
	}
	// The smtp listener's impossible TLS mode (line 9) is reported once,
	// not again as "no certificate".
	if want := []int{2, 5, 9, 11}; !reflect.DeepEqual(got, want) {
		t.Errorf("error lines %v, want %v\n%v", got, want, err)
	}
	if n := strings.Count(err.Error(), "\n"); n != len(list)-1 {
		t.Errorf("ErrorList prints %d lines for %d errors", n+1, len(list))
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 {
		t.Errorf("errors.As finds %v", e)
	}
}

// Unknown keys in several places are all reported.
func TestUnknownKeysCollected(t *testing.T) {
	doc := "hostnam = \"x\"\n[[listener]]\nprotocl = \"smtp\"\n[limits]\nmax_recipient = 1\n"
	_, err := Parse("m.toml", []byte(doc))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 3 {
		t.Fatalf("%v", err)
	}
	for i, want := range []string{"'hostname'", "'protocol'", "'max_recipients'"} {
		if !strings.Contains(list[i].Hint, want) {
			t.Errorf("error %d hint %q, want %s", i, list[i].Hint, want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	cert, key := certPair(t)
	// Relative paths are relative to the config file's directory.
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{cert: "tls/c.pem", key: "tls/k.pem"} {
		b, _ := os.ReadFile(src)
		os.WriteFile(filepath.Join(dir, dst), b, 0o600)
	}
	doc := "hostname = \"mx.example\"\ndata_dir = \"d\"\n[tls]\ncert_file = \"tls/c.pem\"\nkey_file = \"tls/k.pem\"\n[[listener]]\nprotocol = \"smtp\"\naddress = \"127.0.0.1:0\"\n"
	path := filepath.Join(dir, "mailstead.toml")
	os.WriteFile(path, []byte(doc), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "d") || c.TLS.CertFile != filepath.Join(dir, "tls/c.pem") || c.File() != path {
		t.Errorf("paths: %q %q %q", c.DataDir, c.TLS.CertFile, c.File())
	}
	if _, err := Load(filepath.Join(dir, "nope.toml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.toml")
	os.WriteFile(big, []byte("# "+strings.Repeat("x", maxFileSize)+"\n"), 0o600)
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
	// An error from Load names the file.
	os.WriteFile(path, []byte("bogus = 1\n"), 0o600)
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), path+":1:1: ") {
		t.Errorf("error: %v", err)
	}
}

func TestEffective(t *testing.T) {
	c := Default()
	eff := c.Effective()
	for _, want := range []string{"hostname = 'localhost'", "max_message_size = '25MB'", "smtp_data_timeout = '10m'", "[[listener]]", "self_signed = true", "embedded default"} {
		if !strings.Contains(eff, want) {
			t.Errorf("Effective() lacks %q:\n%s", want, eff)
		}
	}
	// Secrets: only where they come from is printed.
	t.Setenv("MAILSTEAD_TEST_DSN", "postgres://u:hunter2@db/mail")
	c.Store.DSNEnv = "MAILSTEAD_TEST_DSN"
	eff = c.Effective()
	if strings.Contains(eff, "hunter2") || !strings.Contains(eff, "dsn_env = 'MAILSTEAD_TEST_DSN'") {
		t.Errorf("secret handling in Effective():\n%s", eff)
	}
	if v, err := c.Store.DSN().Value(); err != nil || v != "postgres://u:hunter2@db/mail" {
		t.Errorf("DSN value %q, %v", v, err)
	}

	// The example file round-trips through Effective.
	ex, err := Parse(filepath.Join(t.TempDir(), "m.toml"), exampleDoc(t))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, ex)
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		str  string
	}{
		{"0", 0, "0"},
		{"1", 1, "1B"},
		{"1000", 1000, "1KB"},
		{"1001", 1001, "1001B"},
		{"25MB", 25_000_000, "25MB"},
		{"25mb", 25_000_000, "25MB"},
		{" 25 MB ", 25_000_000, "25MB"},
		{"64KiB", 65536, "64KiB"},
		{"64kib", 65536, "64KiB"},
		{"1_000_000", 1_000_000, "1MB"},
		{"1GiB", 1 << 30, "1GiB"},
		{"3GB", 3e9, "3GB"},
		{"2TiB", 2 << 40, "2TiB"},
		{"1024000", 1024000, "1000KiB"},
		{"10B", 10, "10B"},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("Size(%d).String() = %q, want %q", got, got.String(), tc.str)
		}
		back, err := ParseSize(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q: %d, %v", got.String(), back, err)
		}
	}
	for _, bad := range []string{"", "MB", "-1", "1.5MB", "1 XB", "9223372036854775808", "9999999999TB", "1e6"} {
		if v, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", bad, v)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"30s", 30 * time.Second, "30s"},
		{"5m", 5 * time.Minute, "5m"},
		{"1h", time.Hour, "1h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"90m", 90 * time.Minute, "1h30m"},
		{"1h0m5s", time.Hour + 5*time.Second, "1h0m5s"},
		{"500ms", 500 * time.Millisecond, "500ms"},
		{"0s", 0, "0s"},
		{"90d", 90 * 24 * time.Hour, "90d"},
		{"2w", 14 * 24 * time.Hour, "14d"},
		{"1w2d", 9 * 24 * time.Hour, "9d"},
		{"1d12h", 36 * time.Hour, "36h"},
		{"48h", 48 * time.Hour, "2d"},
	} {
		var d Duration
		if err := d.UnmarshalText([]byte(tc.in)); err != nil || d.D() != tc.want {
			t.Errorf("%q: %v, %v", tc.in, d, err)
			continue
		}
		if d.String() != tc.str {
			t.Errorf("%q: String %q, want %q", tc.in, d.String(), tc.str)
		}
		var back Duration
		if err := back.UnmarshalText([]byte(d.String())); err != nil || back != d {
			t.Errorf("round trip %q: %v %v", d.String(), back, err)
		}
	}
	for _, bad := range []string{"", "5", "5 minutes", "-1s", "d", "1x", "1d-1h", "2d1w", "99999999999999w", "1.5d", "15250w106751d"} {
		var d Duration
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted as %v", bad, d)
		}
	}
}

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("MS_SECRET", "from-env")
	t.Setenv("MS_EMPTY", "")
	for _, tc := range []struct {
		name string
		s    Secret
		want string
		err  string
	}{
		{"file newline", Secret{Name: "x", File: write("a", "s3cret\n")}, "s3cret", ""},
		{"file crlf", Secret{Name: "x", File: write("b", "s3cret\r\n")}, "s3cret", ""},
		{"file one newline only", Secret{Name: "x", File: write("c", "s3cret\n\n")}, "s3cret\n", ""},
		{"file keeps spaces", Secret{Name: "x", File: write("d", " pw ")}, " pw ", ""},
		{"env", Secret{Name: "x", Env: "MS_SECRET"}, "from-env", ""},
		{"env unset", Secret{Name: "x", Env: "MS_NOT_SET_ANYWHERE"}, "", "not set"},
		{"env empty", Secret{Name: "x", Env: "MS_EMPTY"}, "", "empty"},
		{"empty file", Secret{Name: "x", File: write("e", "\n")}, "", "empty"},
		{"missing file", Secret{Name: "x", File: filepath.Join(dir, "nope")}, "", "no such file"},
		{"too large", Secret{Name: "x", File: write("f", strings.Repeat("x", maxSecretSize+1))}, "", "larger than"},
		{"both", Secret{Name: "x", File: "a", Env: "B"}, "", "both x_file and x_env"},
		{"neither", Secret{Name: "x"}, "", "neither x_file nor x_env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.s.Value()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Value() = %q, %v; want error containing %q", v, err, tc.err)
				}
				if strings.Contains(err.Error(), "from-env") {
					t.Errorf("error reveals the secret: %v", err)
				}
				return
			}
			if err != nil || v != tc.want {
				t.Fatalf("Value() = %q, %v; want %q", v, err, tc.want)
			}
			if strings.Contains(tc.s.String(), v) {
				t.Errorf("String() %q reveals the value", tc.s.String())
			}
		})
	}
}

func TestNewCertStore(t *testing.T) {
	// Embedded default: a self-signed certificate is generated in
	// data_dir/tls and reused.
	c := Default()
	c.DataDir = t.TempDir()
	s, err := c.NewCertStore(nil)
	if err != nil || s == nil {
		t.Fatalf("NewCertStore: %v, %v", s, err)
	}
	leaf := s.Certificate("").Leaf
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(c.TLSDir(), tlsutil.SelfSignedKeyFile)); err != nil {
		t.Error(err)
	}
	s2, err := c.NewCertStore(nil)
	if err != nil || !s2.Certificate("").Leaf.Equal(leaf) {
		t.Errorf("second start did not reuse the certificate: %v", err)
	}

	// Per-SNI certificates from a file.
	cert, key := certPair(t)
	doc := "hostname = \"mx.example\"\n[[tls.cert]]\nnames = [\"mail.example.org\"]\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n[[listener]]\nprotocol = \"imaps\"\naddress = \"127.0.0.1:0\"\n"
	fc, err := Parse(filepath.Join(t.TempDir(), "m.toml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s3, err := fc.NewCertStore(nil)
	if err != nil || s3 == nil || s3.Certificate("mail.example.org") == nil {
		t.Fatalf("sni store: %v %v", s3, err)
	}
	if _, err := os.Stat(fc.TLSDir()); !os.IsNotExist(err) {
		t.Errorf("self-signed directory created although not asked for: %v", err)
	}

	// No TLS at all: no store, no error.
	doc = "hostname = \"mx.example\"\n[[listener]]\nprotocol = \"admin\"\naddress = \"127.0.0.1:0\"\n"
	nc, err := Parse(filepath.Join(t.TempDir(), "m.toml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if s4, err := nc.NewCertStore(nil); s4 != nil || err != nil {
		t.Errorf("no-TLS config: %v %v", s4, err)
	}
}
