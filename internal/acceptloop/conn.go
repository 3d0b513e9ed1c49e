package acceptloop

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"time"
)

// RemoteIP returns a connection's client address, unmapped from IPv4-in-
// IPv6. On a PROXY listener, RemoteAddr reads the header: call it only in
// the connection's own goroutine, never in the accept loop.
func RemoteIP(c net.Conn) netip.Addr { return AddrIP(c.RemoteAddr()) }

// AddrIP returns the IP of a network address, unmapped.
func AddrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// HandshakeTimeout bounds the TLS handshake of an implicit-TLS connection.
const HandshakeTimeout = 30 * time.Second

// ServerTLS runs the server side of an implicit-TLS handshake, bounded by
// HandshakeTimeout, and returns the TLS connection.
func ServerTLS(c net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	tc := tls.Server(c, cfg)
	tc.SetDeadline(time.Now().Add(HandshakeTimeout))
	if err := tc.HandshakeContext(context.Background()); err != nil {
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}
