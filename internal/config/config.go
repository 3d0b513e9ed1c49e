// Package config reads mailstead.toml, the server settings file.
//
// Only server settings live here: hostname, listeners, TLS certificates, data
// directory, limits. Mail data (domains, accounts, aliases, rules) lives in
// the store and is changed with the CLI or the admin API.
//
// Every problem is reported with the file, line and column it comes from and
// usually a hint, because a config file is edited by a person who wants to
// know what to change, not that "decoding failed". Unknown keys are errors:
// a silently ignored "max_mesage_size" is worse than a refused start.
//
// There are two starting points. Default is the embedded configuration used
// when no file is given: loopback listeners on high ports and a self-signed
// certificate, so that the server runs on a fresh machine with no setup.
// Parse/Load start from production-safe defaults instead: no listeners
// unless written, no self-signed certificate unless asked for, no
// authentication over plain text unless a listener opts in.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/mailstead/mailstead/internal/tomlpos"
)

// Config is the server configuration. The toml tags are the key names in
// mailstead.toml; docs/config.md describes each.
type Config struct {
	// Hostname is this server's name: SMTP banner, EHLO, Received headers,
	// and a SAN of the self-signed certificate. Stored as an IDNA A-label.
	Hostname string `toml:"hostname"`
	// DataDir holds the database, message bodies, the generated certificate
	// and the control socket.
	DataDir   string `toml:"data_dir"`
	LogLevel  string `toml:"log_level"`  // debug, info, warn, error
	LogFormat string `toml:"log_format"` // text, json

	TLS        TLS        `toml:"tls"`
	Listeners  []Listener `toml:"listener"`
	Limits     Limits     `toml:"limits"`
	Store      Store      `toml:"store"`
	Accounts   Accounts   `toml:"accounts"`
	Outbound   Outbound   `toml:"outbound"`
	API        API        `toml:"api"`
	Forwarding Forwarding `toml:"forwarding"`
	Webhooks   []Webhook  `toml:"webhook,omitempty"`
	Spam       Spam       `toml:"spam"`

	file     string         // config file name; "" for Default()
	pos      *tomlpos.Index // key positions in file; nil for Default()
	fromFile bool           // production rules apply
	// parseWarns are found by Parse, warnings by the last Validate (which
	// include parseWarns).
	parseWarns []string
	warnings   []string
}

// TLS holds the certificates. The default certificate (cert_file/key_file,
// or a generated self-signed one) is served to clients whose SNI matches no
// [[tls.cert]] entry, and to clients that send no SNI at all.
type TLS struct {
	CertFile string `toml:"cert_file,omitempty"`
	KeyFile  string `toml:"key_file,omitempty"`
	// SelfSigned generates a certificate for Hostname in DataDir/tls on
	// first start when no cert_file is given. True in Default(), false by
	// default in a config file.
	SelfSigned bool      `toml:"self_signed"`
	Certs      []SNICert `toml:"cert,omitempty"`
}

// SNICert is a certificate served for the listed SNI names. A name may be a
// wildcard "*.example.com", matching one label.
type SNICert struct {
	Names    []string `toml:"names"`
	CertFile string   `toml:"cert_file"`
	KeyFile  string   `toml:"key_file"`
}

// Listener is one listening socket.
type Listener struct {
	// Name identifies the listener in logs, metrics and the ready file.
	// Defaults to the protocol name; must be unique.
	Name     string   `toml:"name"`
	Protocol Protocol `toml:"protocol"`
	// Address is "ip:port" or ":port" (all interfaces). Port 0 picks a free
	// port (tests read the real one from the ready file).
	Address string  `toml:"address"`
	TLS     TLSMode `toml:"tls"`
	// Proxy expects a PROXY protocol header from the peers in
	// TrustedProxies; other peers are disconnected.
	Proxy              ProxyMode `toml:"proxy"`
	TrustedProxies     []CIDR    `toml:"trusted_proxies,omitempty"`
	ProxyHeaderTimeout Duration  `toml:"proxy_header_timeout"`
	// AllowInsecureAuth permits AUTH/LOGIN before TLS. Only for
	// loopback or trusted networks; Validate warns when it is set.
	AllowInsecureAuth bool `toml:"allow_insecure_auth"`
}

// Limits bounds what clients can make the server do.
type Limits struct {
	MaxMessageSize           Size     `toml:"max_message_size"`
	MaxLineLength            Size     `toml:"max_line_length"`
	MaxRecipients            int      `toml:"max_recipients"`
	MaxReceivedHeaders       int      `toml:"max_received_headers"`
	SMTPCommandTimeout       Duration `toml:"smtp_command_timeout"`
	SMTPDataTimeout          Duration `toml:"smtp_data_timeout"`
	MaxConnectionsPerIP      int      `toml:"max_connections_per_ip"`
	IMAPIdleTimeout          Duration `toml:"imap_idle_timeout"`
	IMAPMaxLiteral           Size     `toml:"imap_max_literal"`
	IMAPMaxLine              Size     `toml:"imap_max_line"`
	IMAPConnectionsPerUserIP int      `toml:"imap_connections_per_user_ip"`
	AuthFailureDelay         Duration `toml:"auth_failure_delay"`

	// Abuse limits. Per network: IPv4 /24, IPv6 /48; per IP counts an
	// IPv6 client's whole /64, which one host controls.
	MaxConnectionsPerNetwork int `toml:"max_connections_per_network"` // MX
	// ConnectionRatePerIP is new connections per minute (MX).
	ConnectionRatePerIP      int `toml:"connection_rate_per_ip"`
	MaxMessagesPerConnection int `toml:"max_messages_per_connection"`
	// MaxErrorsPerSession: the reply after this many error replies is
	// 421 4.7.0 and the connection is closed.
	MaxErrorsPerSession int `toml:"max_errors_per_session"`
	// PregreetWait holds the MX banner back this long; a client that talks
	// first is refused, as postscreen does. 0 disables.
	PregreetWait Duration `toml:"pregreet_wait"`
	// ExemptNetworks skip the connection limits above (and
	// max_connections_per_ip), the pre-greet wait and the per-session
	// limits, like Postfix's mynetworks.
	ExemptNetworks []CIDR `toml:"exempt_networks"`

	// Sending limits per authenticated user (submission), against a
	// compromised account. 0 is unlimited.
	UserMessagesPerHour      int `toml:"user_messages_per_hour"`
	UserRecipientsPerMessage int `toml:"user_recipients_per_message"`
	UserRecipientsPerDay     int `toml:"user_recipients_per_day"`
}

// Store selects the storage backend.
type Store struct {
	Backend string `toml:"backend"` // "sqlite"; "postgres" in a later issue
	// DSNFile/DSNEnv name the database connection string of a server
	// backend (a Secret, see DSN).
	DSNFile string `toml:"dsn_file,omitempty"`
	DSNEnv  string `toml:"dsn_env,omitempty"`
	// ExpungeRetention is how long the record of an expunged message is
	// kept for QRESYNC clients (RFC 7162 VANISHED); a client offline
	// longer still resyncs correctly, with a longer answer. "0s" keeps
	// them forever. Default 90 days.
	ExpungeRetention Duration `toml:"expunge_retention"`
}

// DSN returns the connection string secret.
func (s *Store) DSN() Secret { return Secret{Name: "store.dsn", File: s.DSNFile, Env: s.DSNEnv} }

// Accounts holds server-wide account settings.
type Accounts struct {
	// SubaddressDelimiter: each character in it starts a subaddress, so
	// with "+" user+tag@example.com is delivered to user@example.com.
	// Empty disables subaddressing.
	SubaddressDelimiter string `toml:"subaddress_delimiter"`
	// DefaultQuota for new accounts; 0 is unlimited.
	DefaultQuota Size `toml:"default_quota"`
	// Postmaster is the account that receives postmaster@ and abuse@ mail
	// for domains without an account or alias of that name.
	Postmaster string `toml:"postmaster"`
}

// maxFileSize bounds the config file; a real one is a few kilobytes.
const maxFileSize = 1 << 20

// baseDefaults are the defaults shared by Default and Parse.
func baseDefaults() *Config {
	return &Config{
		DataDir:   "data",
		LogLevel:  "info",
		LogFormat: "text",
		Limits: Limits{
			MaxMessageSize:           25 * 1000 * 1000,
			MaxLineLength:            64 << 10,
			MaxRecipients:            100,
			MaxReceivedHeaders:       50,
			SMTPCommandTimeout:       Duration(5 * time.Minute),
			SMTPDataTimeout:          Duration(10 * time.Minute),
			MaxConnectionsPerIP:      20,
			IMAPIdleTimeout:          Duration(30 * time.Minute),
			IMAPMaxLiteral:           64 * 1000 * 1000,
			IMAPMaxLine:              64 << 10,
			IMAPConnectionsPerUserIP: 50,
			AuthFailureDelay:         Duration(2 * time.Second),
			MaxConnectionsPerNetwork: 50,
			ConnectionRatePerIP:      60,
			MaxMessagesPerConnection: 1000,
			MaxErrorsPerSession:      20,
			PregreetWait:             Duration(500 * time.Millisecond),
			ExemptNetworks:           []CIDR{mustCIDR("127.0.0.0/8"), mustCIDR("::1/128")},
			UserMessagesPerHour:      200,
			UserRecipientsPerMessage: 100,
			UserRecipientsPerDay:     1000,
		},
		Store:    Store{Backend: "sqlite", ExpungeRetention: Duration(90 * 24 * time.Hour)},
		Accounts: Accounts{SubaddressDelimiter: "+"},
		Outbound: defaultOutbound(),
		Spam:     defaultSpam(),
	}
}

func mustCIDR(s string) CIDR {
	c, err := ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return c
}

// Default returns the embedded configuration used when no config file is
// given: data in ./data, a self-signed certificate generated on first start,
// and listeners on loopback high ports so that nothing needs root and
// nothing is reachable from the network:
//
//	smtp        127.0.0.1:2525  starttls
//	submission  127.0.0.1:2587  starttls
//	submissions 127.0.0.1:2465  implicit
//	imap        127.0.0.1:1143  starttls
//	imaps       127.0.0.1:1993  implicit
//	managesieve 127.0.0.1:4190  starttls
//	admin       127.0.0.1:8080  none
func Default() *Config {
	c := baseDefaults()
	c.Hostname = "localhost"
	c.DataDir = "./data"
	c.TLS.SelfSigned = true
	l := func(p Protocol, addr string) Listener {
		return Listener{Name: string(p), Protocol: p, Address: addr, TLS: p.DefaultTLS(), Proxy: ProxyOff, ProxyHeaderTimeout: defaultProxyHeaderTimeout}
	}
	c.Listeners = []Listener{
		l(ProtoSMTP, "127.0.0.1:2525"),
		l(ProtoSubmission, "127.0.0.1:2587"),
		l(ProtoSubmissions, "127.0.0.1:2465"),
		l(ProtoIMAP, "127.0.0.1:1143"),
		l(ProtoIMAPS, "127.0.0.1:1993"),
		l(ProtoManageSieve, "127.0.0.1:4190"),
		l(ProtoAdmin, "127.0.0.1:8080"),
	}
	return c
}

const defaultProxyHeaderTimeout = Duration(3 * time.Second)

// Load reads, checks and returns the config file at path. Relative paths
// inside it (data_dir, cert_file, ...) are relative to the file's directory,
// so a config works the same whatever the working directory of the process.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(ioLimit(f, maxFileSize+1)); err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	return Parse(path, buf.Bytes())
}

// Parse parses and checks a config document. name is the file name used in
// error messages and as the base for relative paths. The result has
// per-listener defaults filled in and has passed Validate. On error it
// returns an ErrorList.
func Parse(name string, data []byte) (*Config, error) {
	if len(data) > maxFileSize {
		return nil, ErrorList{{File: name, Msg: fmt.Sprintf("config file is larger than %d bytes", maxFileSize)}}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM some editors add
	c := baseDefaults()
	c.file = name
	c.fromFile = true

	c.pos = tomlpos.Build(data)
	if c.pos.Complete {
		// Before decoding: go-toml reports a number given to a
		// TextUnmarshaler (protocol = 5) without a position, and stores a
		// bare integer into a Duration as nanoseconds.
		if errs := kindErrors(name, c.pos); len(errs) > 0 {
			return nil, errs
		}
	}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, decodeErrors(name, err, c.pos)
	}

	base := filepath.Dir(name)
	c.resolvePaths(base)
	if _, ok := c.pos.Kind("hostname"); !ok {
		if h, err := os.Hostname(); err == nil && h != "" {
			c.Hostname = strings.ToLower(h)
		} else {
			c.Hostname = "localhost"
		}
	}
	if _, ok := c.pos.Kind("data_dir"); !ok {
		c.parseWarns = append(c.parseWarns, fmt.Sprintf("data_dir is not set; using %s", c.DataDir))
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// resolvePaths makes relative paths in a config file relative to its
// directory.
func (c *Config) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.TLS.CertFile)
	abs(&c.TLS.KeyFile)
	for i := range c.TLS.Certs {
		abs(&c.TLS.Certs[i].CertFile)
		abs(&c.TLS.Certs[i].KeyFile)
	}
	abs(&c.Store.DSNFile)
}

// File returns the name of the file the config was read from, or "" for
// Default().
func (c *Config) File() string { return c.file }

// Warnings returns the non-fatal problems found by the last Validate, such
// as listeners that allow authentication over plain text. The caller logs
// them at startup and `mailstead config check` prints them.
func (c *Config) Warnings() []string { return append([]string(nil), c.warnings...) }

// TLSDir is where the self-signed certificate is kept.
func (c *Config) TLSDir() string { return filepath.Join(c.DataDir, "tls") }

// SlogLevel returns LogLevel as a slog.Level (info if unset).
func (c *Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NeedsTLS reports whether any listener uses STARTTLS or implicit TLS, i.e.
// whether a certificate is needed at all.
func (c *Config) NeedsTLS() bool {
	for _, l := range c.Listeners {
		if l.TLS == TLSStartTLS || l.TLS == TLSImplicit {
			return true
		}
	}
	return false
}

// Listener returns the first listener with the given name.
func (c *Config) Listener(name string) (Listener, bool) {
	for _, l := range c.Listeners {
		if l.Name == name {
			return l, true
		}
	}
	return Listener{}, false
}

// Effective returns the configuration as TOML with every default filled in,
// for `mailstead config check`. Secrets appear only as the file or
// environment variable they come from, since that is all the config holds.
// The output parses back to the same configuration.
func (c *Config) Effective() string {
	var b strings.Builder
	b.WriteString("# effective configuration")
	if c.file != "" {
		b.WriteString(" of " + c.file)
	} else {
		b.WriteString(" (embedded default)")
	}
	b.WriteString("\n")
	enc := toml.NewEncoder(&b)
	enc.SetIndentTables(false)
	enc.SetArraysMultiline(false)
	if err := enc.Encode(c); err != nil {
		// Config holds only strings, numbers, bools and TextMarshalers
		// that never fail, so this does not happen; if it does, say so
		// in a form that does not parse as a valid config.
		b.WriteString("\n!! error encoding the effective config: " + err.Error() + "\n")
	}
	return b.String()
}

// decodeErrors turns go-toml's errors into an ErrorList with hints.
func decodeErrors(name string, err error, pos *tomlpos.Index) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var l ErrorList
		for i := range strict.Errors {
			if len(l) >= maxErrors {
				break
			}
			de := &strict.Errors[i]
			line, col := de.Position()
			key := []string(de.Key())
			if path, ok := pos.PathAtKey(tomlpos.Pos{Line: line, Col: col}); ok {
				key = strings.Split(path, ".")
			}
			l = append(l, unknownKeyError(name, line, col, key))
		}
		sortErrors(l)
		return l
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		msg, hint := splitHint(msg)
		if k := de.Key(); len(k) > 0 && !strings.Contains(msg, strings.Join(k, ".")) {
			msg = strings.Join(k, ".") + ": " + msg
		}
		msg, hint = improveDecodeMessage(msg, hint, de.Key())
		return ErrorList{{File: name, Line: line, Column: col, Msg: msg, Hint: hint}}
	}
	return ErrorList{{File: name, Msg: err.Error()}}
}

// improveDecodeMessage rewrites go-toml's type errors, which speak of Go
// types, into the config file's terms.
func improveDecodeMessage(msg, hint string, key []string) (string, string) {
	t := typeAtPath(configType, strings.Join(key, "."))
	if t == nil || !strings.Contains(msg, "cannot decode") && !strings.Contains(msg, "cannot store") {
		return msg, hint
	}
	want := tomlTypeName(t)
	if want == "" {
		return msg, hint
	}
	return fmt.Sprintf("%s: expected %s", strings.Join(key, "."), want), hint
}

// unknownKeyError builds the error for a key the schema does not have, with
// the closest known key at the same level as the hint.
func unknownKeyError(name string, line, col int, key []string) *Error {
	if len(key) == 0 {
		return &Error{File: name, Line: line, Column: col, Msg: "unknown key"}
	}
	last := key[len(key)-1]
	parent := strings.Join(key[:len(key)-1], ".")
	display := displayPath(parent)
	where := "at top level"
	if parent != "" {
		where = "in [" + display + "]"
		if t := typeAtPath(configType, display); t != nil && isSliceOfStruct(t) {
			where = "in [[" + display + "]]"
		}
	}
	e := &Error{File: name, Line: line, Column: col, Msg: fmt.Sprintf("unknown key '%s' %s", last, where)}
	known := keysAtPath(parent)
	for _, k := range known {
		// "dsn = ..." where dsn_file/dsn_env exist: a secret written inline.
		if k == last+"_file" {
			e.Hint = fmt.Sprintf("secrets are never written in the config; use '%s_file' or '%s_env'", last, last)
			return e
		}
	}
	if h := didYouMean(last, known); h != "" {
		e.Hint = h
	} else if parent == "" {
		if t := tableOfKey(last); t != "" {
			// A key that belongs in a table, e.g. "max_recipients".
			e.Hint = fmt.Sprintf("'%s' belongs in the [%s] table", last, t)
		} else if slices.Contains(Protocols, Protocol(last)) {
			// [admin], [smtp]: listeners are one array of tables.
			e.Hint = fmt.Sprintf("listeners are [[listener]] tables with protocol = %q and an address", last)
		}
	}
	if e.Hint == "" && len(known) > 0 {
		e.Hint = "known keys: " + strings.Join(known, ", ")
	}
	return e
}
