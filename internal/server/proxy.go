package server

import (
	"fmt"
	"log/slog"
	"net"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/mailstead/mailstead/internal/acceptloop"
	"github.com/mailstead/mailstead/internal/config"
)

// proxyListener wraps l for a listener with proxy != "off": connections
// from peers outside trusted_proxies are closed as soon as they are
// accepted (one debug line: a port scan must not flood the log); the
// others must start with a PROXY header of the configured version within
// proxy_header_timeout.
//
// The header is read lazily by go-proxyproto, on the connection's first
// Read, Write or RemoteAddr, never in Accept, so a silent peer cannot stall
// the accept loop. The protocol servers force that read first thing in the
// connection's goroutine (smtpserver.Server.proxyHeader; the IMAP server
// calls RemoteAddr) and close a connection whose header is missing or
// invalid. A v2 LOCAL header (HAProxy's health checks) is valid: the
// connection is served with the socket's own addresses.
func proxyListener(l net.Listener, lc config.Listener, log *slog.Logger) net.Listener {
	trusted := lc.TrustedProxies
	return &proxyproto.Listener{
		Listener:          l,
		ReadHeaderTimeout: lc.ProxyHeaderTimeout.D(),
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if ap := acceptloop.AddrIP(o.Upstream); ap.IsValid() {
				for _, c := range trusted {
					if c.Prefix.Contains(ap) {
						return proxyproto.REQUIRE, nil
					}
				}
			}
			log.Debug("connection from untrusted peer on PROXY listener closed", "peer", o.Upstream)
			// Wrapping ErrInvalidUpstream makes Accept close the
			// connection and go on; any other error would be returned by
			// Accept and stop the listener.
			return proxyproto.REJECT, proxyproto.ErrInvalidUpstream
		},
		ValidateHeader: func(h *proxyproto.Header) error {
			switch {
			case lc.Proxy == config.ProxyV1 && h.Version != 1:
				return fmt.Errorf("PROXY v%d header on a v1 listener", h.Version)
			case lc.Proxy == config.ProxyV2 && h.Version != 2:
				return fmt.Errorf("PROXY v%d header on a v2 listener", h.Version)
			}
			return nil
		},
	}
}
