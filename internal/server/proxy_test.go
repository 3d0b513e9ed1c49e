package server

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/mailstead/mailstead/internal/config"
)

func header(t *testing.T, version byte, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), &net.TCPAddr{IP: net.IPv4(192, 0, 2, 254), Port: 25})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProxyListener: trusted peers get their header checked against the
// configured version; untrusted peers never come out of Accept.
func TestProxyListener(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mode    config.ProxyMode
		trusted string
		version byte
		want    string // client address seen, "" for refused
	}{
		{"v2 on v2", config.ProxyV2, "127.0.0.1/32", 2, "192.0.2.1"},
		{"v1 on v1", config.ProxyV1, "127.0.0.1/32", 1, "192.0.2.1"},
		{"v1 on any", config.ProxyAny, "127.0.0.0/8", 1, "192.0.2.1"},
		{"v2 on any", config.ProxyAny, "127.0.0.0/8", 2, "192.0.2.1"},
		{"v1 on v2", config.ProxyV2, "127.0.0.1/32", 1, ""},
		{"v2 on v1", config.ProxyV1, "127.0.0.1/32", 2, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			cidr, _ := config.ParseCIDR(tt.trusted)
			pl := proxyListener(l, config.Listener{Proxy: tt.mode, TrustedProxies: []config.CIDR{cidr}, ProxyHeaderTimeout: config.Duration(2 * time.Second)}, slog.New(slog.DiscardHandler))
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(header(t, tt.version, "192.0.2.1:1000"))
			sc, err := pl.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			h := sc.(*proxyproto.Conn).ProxyHeader()
			if tt.want == "" {
				if h != nil {
					t.Fatalf("header accepted: %+v", h)
				}
				if _, err := sc.Write(nil); err == nil {
					t.Fatal("no error for a refused header")
				}
				return
			}
			if h == nil {
				_, err := sc.Write(nil)
				t.Fatalf("header refused: %v", err)
			}
			if ap, _ := netip.ParseAddrPort(sc.RemoteAddr().String()); ap.Addr().String() != tt.want {
				t.Fatalf("client %s, want %s", sc.RemoteAddr(), tt.want)
			}
		})
	}
}

func TestProxyListenerUntrusted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cidr, _ := config.ParseCIDR("192.0.2.0/24")
	pl := proxyListener(l, config.Listener{Proxy: config.ProxyV2, TrustedProxies: []config.CIDR{cidr}, ProxyHeaderTimeout: config.Duration(time.Second)}, slog.New(slog.DiscardHandler))
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := pl.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(header(t, 2, "198.51.100.1:1000"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Closed either way: a FIN (EOF), or a reset when the close found our
	// header still unread in the server's socket.
	if b, err := io.ReadAll(c); (err != nil && !errors.Is(err, syscall.ECONNRESET)) || len(b) != 0 {
		t.Fatalf("untrusted peer: read %q, %v; want a close", b, err)
	}
	select {
	case sc := <-accepted:
		sc.Close()
		t.Fatal("Accept returned an untrusted peer")
	case <-time.After(100 * time.Millisecond):
	}
}
