package config

import (
	"log/slog"

	"github.com/mailstead/mailstead/internal/tlsutil"
)

// CertFiles returns the certificate files of c in the form tlsutil takes,
// generating the self-signed certificate in TLSDir first when self_signed is
// set and no cert_file is given. ok is false when no certificate is
// configured at all (then no listener needs one: Validate checked).
func (c *Config) CertFiles() (def tlsutil.KeyPair, sni []tlsutil.SNICert, ok bool, err error) {
	def = tlsutil.KeyPair{CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile}
	if def.CertFile == "" && c.TLS.SelfSigned {
		def.CertFile, def.KeyFile, err = tlsutil.EnsureSelfSigned(c.TLSDir(), []string{c.Hostname})
		if err != nil {
			return def, nil, false, err
		}
	}
	for _, sc := range c.TLS.Certs {
		sni = append(sni, tlsutil.SNICert{Names: append([]string(nil), sc.Names...), KeyPair: tlsutil.KeyPair{CertFile: sc.CertFile, KeyFile: sc.KeyFile}})
	}
	return def, sni, def.CertFile != "" || len(sni) > 0, nil
}

// NewCertStore builds the certificate store for c (see CertFiles). It
// returns nil and no error when no certificate is configured. On SIGHUP,
// pass the new config's CertFiles to the store's Update.
func (c *Config) NewCertStore(log *slog.Logger) (*tlsutil.CertStore, error) {
	def, sni, ok, err := c.CertFiles()
	if err != nil || !ok {
		return nil, err
	}
	return tlsutil.NewCertStore(def, sni, log)
}
