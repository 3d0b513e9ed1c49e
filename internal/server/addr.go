package server

import (
	"net"
	"net/netip"
)

func netAddrPort(a net.Addr) (netip.Addr, error) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(ta.IP)
		if ok {
			return ip.Unmap(), nil
		}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}
