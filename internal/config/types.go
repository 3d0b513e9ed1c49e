package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Duration is a time.Duration written in the config as a string with a unit,
// like "30s", "5m" or "1h30m". A bare TOML integer is refused (see Parse):
// "timeout = 30" is ambiguous and a classic source of 30 ns timeouts.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration but without the zero-valued trailing
// units that make "5m0s" hard to read: 5*time.Minute prints as "5m".
func (d Duration) String() string {
	const day = 24 * time.Hour
	if v := time.Duration(d); v >= day && v%day == 0 {
		return strconv.FormatInt(int64(v/day), 10) + "d"
	}
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. Negative durations are
// refused: no setting in mailstead has a meaning for them.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return errors.New(`empty duration` + hintSuffix(`write a number with a unit, e.g. "30s", "5m" or "1h"`))
	}
	v, err := parseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return fmt.Errorf("duration %q has no unit%s", s, hintSuffix(fmt.Sprintf(`write "%ss" for seconds or "%sm" for minutes`, s, s)))
		}
		return fmt.Errorf("invalid duration %q%s", s, hintSuffix(`units are ms, s, m, h, d (24h) and w (7d), e.g. "30s", "1h30m" or "90d"`))
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// parseDuration is time.ParseDuration that also takes a leading number of
// weeks and days ("2w", "90d", "1d12h"), which retention-style settings
// are naturally written in.
func parseDuration(s string) (time.Duration, error) {
	var total time.Duration
	for _, u := range []struct {
		unit byte
		d    time.Duration
	}{{'w', 7 * 24 * time.Hour}, {'d', 24 * time.Hour}} {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i >= len(s) || s[i] != u.unit {
			continue
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n > int64(math.MaxInt64/u.d) || time.Duration(n)*u.d > math.MaxInt64-total {
			return 0, fmt.Errorf("duration %q out of range", s)
		}
		total += time.Duration(n) * u.d
		s = s[i+1:]
	}
	if s == "" {
		return total, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if total > 0 && (v < 0 || v > math.MaxInt64-total) {
		return 0, fmt.Errorf("duration out of range")
	}
	return total + v, nil
}

// Size is a number of bytes, written in the config as a plain integer or as a
// string with a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB
// (powers of 1024). Units are case-insensitive, so "25mb" is 25,000,000 bytes
// and "64kib" is 65,536.
type Size int64

// Size units from largest to smallest; String picks the first that divides a
// value exactly, so every value round-trips.
var sizeUnits = []struct {
	name string
	mult int64
}{
	{"TiB", 1 << 40},
	{"TB", 1e12},
	{"GiB", 1 << 30},
	{"GB", 1e9},
	{"MiB", 1 << 20},
	{"MB", 1e6},
	{"KiB", 1 << 10},
	{"KB", 1e3},
	{"B", 1},
}

// String formats s with the largest unit that represents it exactly, e.g.
// "25MB", "64KiB", "1000" stays "1KB", 1001 prints as "1001B".
func (s Size) String() string {
	if s == 0 {
		return "0"
	}
	for _, u := range sizeUnits {
		if int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B" // not reached: B divides all
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSize parses a size as written in the config file, see Size.
func ParseSize(str string) (Size, error) {
	s := strings.TrimSpace(str)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	num, unit := strings.ReplaceAll(s[:i], "_", ""), strings.TrimSpace(s[i:])
	if num == "" {
		if strings.HasPrefix(s, "-") {
			return 0, fmt.Errorf("size %q is negative", str)
		}
		return 0, fmt.Errorf("invalid size %q%s", str, hintSuffix(`write a whole number with an optional unit, e.g. "25MB", "64KiB" or "1048576"`))
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is too large", str)
	}
	mult := int64(-1)
	if unit == "" {
		mult = 1
	}
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.name) {
			mult = u.mult
			break
		}
	}
	if mult < 0 {
		if strings.HasPrefix(unit, ".") || strings.HasPrefix(unit, ",") {
			return 0, fmt.Errorf("invalid size %q%s", str, hintSuffix(`use a whole number of a smaller unit, e.g. "1536MB" instead of "1.5GB"`))
		}
		return 0, fmt.Errorf("invalid size unit %q in %q%s", unit, str, hintSuffix(hintJoin(didYouMean(unit, sizeUnitNames()), "units are B, KB, MB, GB, TB (1000) and KiB, MiB, GiB, TiB (1024)")))
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", str)
	}
	return Size(n * mult), nil
}

func sizeUnitNames() []string {
	names := make([]string, len(sizeUnits))
	for i, u := range sizeUnits {
		names[i] = u.name
	}
	return names
}

// Protocol is what a listener speaks.
type Protocol string

// Protocols a listener may speak.
const (
	ProtoSMTP        Protocol = "smtp"        // MX: mail from other servers, port 25
	ProtoSubmission  Protocol = "submission"  // mail from users, STARTTLS, port 587
	ProtoSubmissions Protocol = "submissions" // mail from users, implicit TLS, port 465
	ProtoIMAP        Protocol = "imap"        // port 143, STARTTLS
	ProtoIMAPS       Protocol = "imaps"       // port 993, implicit TLS
	ProtoManageSieve Protocol = "managesieve" // port 4190, STARTTLS
	ProtoHTTP        Protocol = "http"        // public HTTP (autoconfig, API); a later issue
	ProtoAdmin       Protocol = "admin"       // health, readiness, metrics; keep it private
)

// Protocols lists every valid protocol in documentation order.
var Protocols = []Protocol{ProtoSMTP, ProtoSubmission, ProtoSubmissions, ProtoIMAP, ProtoIMAPS, ProtoManageSieve, ProtoHTTP, ProtoAdmin}

// DefaultTLS is the TLS mode a listener of protocol p gets when its tls key is
// not set.
func (p Protocol) DefaultTLS() TLSMode {
	switch p {
	case ProtoSubmissions, ProtoIMAPS:
		return TLSImplicit
	case ProtoHTTP, ProtoAdmin:
		return TLSNone
	default:
		return TLSStartTLS
	}
}

// AllowedTLS lists the TLS modes that make sense for p. STARTTLS exists only
// in the line protocols; the "s" protocols are implicit TLS by definition,
// and a plain-text listener of them is a mistake worth refusing.
func (p Protocol) AllowedTLS() []TLSMode {
	switch p {
	case ProtoSubmissions, ProtoIMAPS:
		return []TLSMode{TLSImplicit}
	case ProtoHTTP, ProtoAdmin:
		return []TLSMode{TLSNone, TLSImplicit}
	default:
		return []TLSMode{TLSNone, TLSStartTLS}
	}
}

// UnmarshalText implements encoding.TextUnmarshaler and accepts only the
// known protocols.
func (p *Protocol) UnmarshalText(b []byte) error {
	s := string(b)
	for _, v := range Protocols {
		if s == string(v) {
			*p = v
			return nil
		}
	}
	names := make([]string, len(Protocols))
	for i, v := range Protocols {
		names[i] = string(v)
	}
	return fmt.Errorf("unknown protocol %q%s", s, hintSuffix(didYouMeanOr(strings.ToLower(s), names)))
}

// TLSMode says whether and how a listener uses TLS.
type TLSMode string

// TLS modes.
const (
	TLSNone     TLSMode = "none"     // plain text only
	TLSStartTLS TLSMode = "starttls" // plain text, upgraded with STARTTLS
	TLSImplicit TLSMode = "implicit" // TLS from the first byte
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *TLSMode) UnmarshalText(b []byte) error {
	s := string(b)
	switch TLSMode(s) {
	case TLSNone, TLSStartTLS, TLSImplicit:
		*m = TLSMode(s)
		return nil
	}
	alias := map[string]TLSMode{"off": TLSNone, "false": TLSNone, "plain": TLSNone, "tls": TLSImplicit, "ssl": TLSImplicit, "on": TLSImplicit, "true": TLSImplicit, "start_tls": TLSStartTLS, "start-tls": TLSStartTLS}
	if a, ok := alias[strings.ToLower(s)]; ok {
		return fmt.Errorf("unknown tls mode %q%s", s, hintSuffix(fmt.Sprintf("did you mean %q?", a)))
	}
	return fmt.Errorf("unknown tls mode %q%s", s, hintSuffix(didYouMeanOr(strings.ToLower(s), []string{"none", "starttls", "implicit"})))
}

// ProxyMode says whether a listener expects a PROXY protocol header
// (HAProxy's) before the client speaks.
type ProxyMode string

// PROXY protocol modes.
const (
	ProxyOff ProxyMode = "off" // no header expected
	ProxyV1  ProxyMode = "v1"  // text header only
	ProxyV2  ProxyMode = "v2"  // binary header only
	ProxyAny ProxyMode = "any" // either version
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *ProxyMode) UnmarshalText(b []byte) error {
	s := string(b)
	switch ProxyMode(s) {
	case ProxyOff, ProxyV1, ProxyV2, ProxyAny:
		*m = ProxyMode(s)
		return nil
	}
	return fmt.Errorf("unknown proxy mode %q%s", s, hintSuffix(didYouMeanOr(strings.ToLower(s), []string{"off", "v1", "v2", "any"})))
}

// CIDR is an IP network like "10.0.0.0/8". A bare address ("192.0.2.1",
// "2001:db8::1") is accepted and means that single host.
type CIDR struct{ netip.Prefix }

// ParseCIDR parses s as CIDR does.
func ParseCIDR(s string) (CIDR, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return CIDR{}, fmt.Errorf("invalid network %q%s", s, hintSuffix(`write an address or a network, e.g. "10.0.0.0/8" or "2001:db8::/32"`))
		}
		a = a.Unmap()
		return CIDR{netip.PrefixFrom(a, a.BitLen())}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return CIDR{}, fmt.Errorf("invalid network %q%s", s, hintSuffix(`write an address or a network, e.g. "10.0.0.0/8" or "2001:db8::/32"`))
	}
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return CIDR{}, fmt.Errorf("invalid network %q: an IPv4-mapped prefix needs at least /96", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	if p.Masked() != p {
		return CIDR{}, fmt.Errorf("network %q has host bits set%s", s, hintSuffix(fmt.Sprintf("did you mean %q?", p.Masked())))
	}
	return CIDR{p}, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *CIDR) UnmarshalText(b []byte) error {
	v, err := ParseCIDR(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (c CIDR) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// String returns the network in CIDR notation.
func (c CIDR) String() string { return c.Prefix.String() }

// Secret names where a secret comes from; the config file never holds a
// secret itself. In the file a secret called "x" is written as one of two
// keys in the table that owns it:
//
//	x_file = "/run/secrets/x"   # read the file, one trailing newline removed
//	x_env  = "X"                # read the environment variable X
//
// Exactly one of them may be set. The owning struct keeps the two keys as
// plain string fields (so go-toml reports their positions and unknown-key
// checks work) and exposes the pair as a Secret through a method. Writing
// "x = ..." directly is an unknown-key error whose hint points at x_file and
// x_env.
type Secret struct {
	// Name is the config key stem, e.g. "store.dsn", used in errors.
	Name string
	File string
	Env  string
}

// maxSecretSize bounds a secret file: secrets are passwords, keys and DSNs,
// never megabytes, and an accidental "dsn_file = /var/log/syslog" must not be
// read whole.
const maxSecretSize = 64 << 10

// IsSet reports whether either source is configured.
func (s Secret) IsSet() bool { return s.File != "" || s.Env != "" }

// String describes the source, never the value, so a Secret can be logged.
func (s Secret) String() string {
	switch {
	case s.File != "":
		return "file " + s.File
	case s.Env != "":
		return "env " + s.Env
	}
	return "unset"
}

// Value reads the secret from its file or environment variable. A file may
// end in one newline (as editors and `echo` leave it); it is removed. An
// empty value is an error: an empty password is always a mistake.
func (s Secret) Value() (string, error) {
	switch {
	case s.File != "" && s.Env != "":
		return "", fmt.Errorf("secret %s: both %s_file and %s_env are set", s.Name, s.Name, s.Name)
	case s.File != "":
		f, err := os.Open(s.File)
		if err != nil {
			return "", fmt.Errorf("secret %s: %w", s.Name, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
		if err != nil {
			return "", fmt.Errorf("secret %s: reading %s: %w", s.Name, s.File, err)
		}
		if len(b) > maxSecretSize {
			return "", fmt.Errorf("secret %s: %s is larger than %d bytes", s.Name, s.File, maxSecretSize)
		}
		v := string(b)
		v = strings.TrimSuffix(v, "\n")
		v = strings.TrimSuffix(v, "\r")
		if v == "" {
			return "", fmt.Errorf("secret %s: %s is empty", s.Name, s.File)
		}
		return v, nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return "", fmt.Errorf("secret %s: environment variable %s is not set", s.Name, s.Env)
		}
		if v == "" {
			return "", fmt.Errorf("secret %s: environment variable %s is empty", s.Name, s.Env)
		}
		return v, nil
	}
	return "", fmt.Errorf("secret %s: neither %s_file nor %s_env is set", s.Name, s.Name, s.Name)
}

// validEnvName reports whether s can be an environment variable name as
// shells write them.
func validEnvName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i, r := range s {
		if r == '_' || r < unicode.MaxASCII && unicode.IsLetter(r) || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}
