package config

import (
	"os"
	"testing"
)

// FuzzParse feeds arbitrary documents to Parse. It must never panic, every
// error must be an ErrorList with sane positions, and every accepted config
// must survive a round trip through Effective.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/mailstead.example.toml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"hostname = \"mx.example\"\n[[listener]]\nprotocol = \"admin\"\naddress = \"127.0.0.1:0\"\n",
		"hostname = \"mx.example\"\n[tls]\nself_signed = true\n[[listener]]\nprotocol = \"smtp\"\naddress = \":25\"\nproxy = \"v2\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
		"listener = [{protocol = \"admin\", address = \":1\"}, {protocol = \"http\", address = \":2\"}]\n",
		"[limits]\nmax_message_size = \"25MB\"\nsmtp_data_timeout = 600\nimap_max_line = -1\n",
		"[[tls.cert]]\nnames = [\"*.example.org\", \"mäil.example\"]\n[[tls.cert]]\n[tls]\n",
		"[[listener]]\n[listener.x]\ny = 1\n[[listener.z]]\n",
		"a.b.c = 1\n\"quoted.key\" = 2\n[\"x\".y]\n",
		"[store]\ndsn = \"x\"\ndsn_env = \"A\"\ndsn_file = \"b\"\n",
		"hostname = = 1",
		"\xef\xbb\xbf[accounts]\npostmaster = \"a@b\"\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			list, ok := err.(ErrorList)
			if !ok || len(list) == 0 || len(list) > maxErrors {
				t.Fatalf("error %T with %d entries: %v", err, len(list), err)
			}
			lines := 1
			for _, b := range data {
				if b == '\n' {
					lines++
				}
			}
			for _, e := range list {
				if e.Line < 0 || e.Line > lines || e.Column < 0 || e.File != "fuzz.toml" || e.Msg == "" {
					t.Fatalf("bad error %+v for a %d-line document", e, lines)
				}
			}
			_ = err.Error()
			return
		}
		eff := c.Effective()
		c2, err := Parse("fuzz.toml", []byte(eff))
		if err != nil {
			t.Fatalf("Effective() does not parse: %v\n%s", err, eff)
		}
		if !equalConfig(c, c2) {
			t.Fatalf("round trip differs\n%s", eff)
		}
	})
}
