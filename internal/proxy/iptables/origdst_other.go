//go:build !linux

package iptables

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// OriginalDst is where a redirected connection was going; iptables and
// conntrack are Linux's, so elsewhere there is no such thing.
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, fmt.Errorf("original destination of %s: %w", c.RemoteAddr(), errors.ErrUnsupported)
}
