package smtpserver

import (
	"github.com/mailstead/mailstead/internal/acceptloop"
	"net"
	"net/netip"

	proxyproto "github.com/pires/go-proxyproto"
)

// proxyHeader settles the client address of a connection from a PROXY
// protocol listener (internal/server wraps those with go-proxyproto).
//
// go-proxyproto reads the header lazily, on the first Read, Write or
// RemoteAddr, and a Write waits for it. For a server-speaks-first protocol
// that is fine as long as the read is forced here, in the connection's own
// goroutine (bounded by the listener's header timeout), before anything
// else: the greeting then goes out as soon as the header has arrived, and
// a connection whose header is missing, late or invalid is closed before
// go-smtp sees it, with one debug line and no reply (the peer is a proxy
// or a port probe, not an SMTP client). That is the only part of the
// library's behaviour that needed working around, so we keep its
// parser, which is fuzzed upstream, instead of writing our own.
//
// It returns the address to use for the client: the header's source, or
// for a LOCAL command (HAProxy's health checks since 2.2) or a header
// without a TCP source address (v1 "PROXY UNKNOWN", AF_UNIX) the socket's
// own peer, the proxy itself; local reports that case. ok is false when
// the connection must be closed.
func (s *Server) proxyHeader(c net.Conn) (ip netip.Addr, local, ok bool) {
	pc, isProxy := c.(*proxyproto.Conn)
	if !isProxy {
		return acceptloop.AddrIP(c.RemoteAddr()), false, true
	}
	peer := pc.Raw().RemoteAddr()
	h := pc.ProxyHeader()
	if h == nil {
		// The library keeps the header error and returns it from every
		// Read and Write; a Write of nothing fetches it and sends nothing.
		if _, err := pc.Write(nil); err != nil {
			s.cfg.Metrics.conns.WithLabelValues(s.cfg.Name, "proxy_header").Inc()
			s.log.Debug("connection without a valid PROXY header closed", "peer", peer, "err", err)
			return netip.Addr{}, false, false
		}
		// A policy that makes the header optional (we use none).
		return acceptloop.AddrIP(peer), false, true
	}
	if src, isTCP := h.SourceAddr.(*net.TCPAddr); isTCP && !h.Command.IsLocal() {
		return acceptloop.AddrIP(src), false, true
	}
	s.log.Debug("PROXY LOCAL connection (proxy health check)", "peer", peer, "version", h.Version)
	return acceptloop.AddrIP(peer), true, true
}
