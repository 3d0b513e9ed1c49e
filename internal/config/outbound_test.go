package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const outboundListener = `
[[listener]]
protocol = "admin"
address = "127.0.0.1:8080"
`

func TestOutboundDefaults(t *testing.T) {
	c, err := Parse(filepath.Join(t.TempDir(), "m.toml"), []byte(outboundListener))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Outbound
	if o.Mode != OutboundDirect || o.MaxAge.D() != 120*time.Hour || o.DelayWarning.D() != 4*time.Hour || len(o.RetrySchedule) != 5 ||
		o.RetrySchedule[0].D() != time.Minute || !o.MTASTS || o.MaxConcurrency != 50 || o.MaxPerDestination != 10 || o.IPPreference != "ipv4" {
		t.Fatalf("defaults %+v", o)
	}
	if Default().Outbound.Mode != OutboundDirect {
		t.Fatal("embedded default is not direct mode")
	}
}

func TestOutboundSmarthost(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte("secret\n"), 0o600)
	doc := outboundListener + `
[outbound]
mode = "smarthost"
ehlo_name = "Mail.Example.COM"
retry_schedule = ["30s", "2m"]
max_age = "48h"
delay_warning = "0s"
source_ipv4 = "192.0.2.1"

[outbound.smarthost]
host = "smtp.provider.example"
username = "apikey"
password_file = "pw"

[[outbound.route]]
domains = ["partner.example", "*.internal.example"]
host = "10.0.0.5"
port = 25
tls = "none"

[[outbound.dkim]]
domain = "example.com"
selector = "2025b"
`
	c, err := Parse(filepath.Join(dir, "m.toml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Outbound
	if o.Smarthost.RelayPort() != 587 || o.Smarthost.TLS != TLSStartTLS || o.EHLOName != "mail.example.com" || o.DelayWarning != 0 {
		t.Fatalf("%+v", o)
	}
	pw, err := o.Smarthost.Password("outbound.smarthost").Value()
	if err != nil || pw != "secret" {
		t.Fatalf("password %q %v (password_file relative to the config)", pw, err)
	}
	if r := o.Routes[0].Relay(); r.Host != "10.0.0.5" || r.RelayPort() != 25 || o.Routes[0].Domains[1] != "*.internal.example" {
		t.Fatalf("route %+v", o.Routes[0])
	}
	if !hasWarning(c, `tls = "none"`) {
		t.Fatalf("no warning for a plain-text relay: %v", c.Warnings())
	}
	if strings.Contains(c.Effective(), "secret\n") {
		t.Fatal("secret value in effective config")
	}
	roundTrip(t, c)
}

func TestOutboundErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`[outbound]
mode = "relay"`, `unknown mode "relay"`},
		{`[outbound]
mode = "smarthost"`, "needs outbound.smarthost.host"},
		{`[outbound]
retry_schedule = ["0s"]`, "out of range"},
		{`[outbound]
max_age = "1s"`, "max_age"},
		{`[outbound]
source_ipv4 = "2001:db8::1"`, "not an IPv4"},
		{`[outbound]
ip_preference = "v6"`, "ip_preference"},
		{`[outbound.smarthost]
host = "smtp.example"
username = "u"`, "username without a password"},
		{`[outbound.smarthost]
host = "smtp.example"
password = "x"`, "password_file"},
		{`[outbound.smarthost]
host = "smtp.example"
tls = "ssl"`, `did you mean "implicit"`},
		{`[[outbound.route]]
domains = ["a.example"]`, "host is not set"},
		{`[[outbound.route]]
domains = ["a.example"]
host = "x.example"
[[outbound.route]]
domains = ["A.example"]
host = "y.example"`, "already routed"},
		{`[[outbound.dkim]]
domain = "example.com"
selector = "../etc"`, "not a valid selector"},
		{`[outbound]
max_concurrency = 0`, "max_concurrency"},
	} {
		_, err := Parse(filepath.Join(t.TempDir(), "m.toml"), []byte(outboundListener+tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s\n  error %v, want %q", tc.doc, err, tc.want)
		}
	}
}
