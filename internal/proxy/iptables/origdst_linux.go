package iptables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// OriginalDst is where a connection the rules redirected was going, as
// conntrack remembers it: SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST
// for IPv6. c must be an accepted *net.TCPConn (or another syscall.Conn).
// A connection nothing redirected answers its own local address.
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T has no socket", c)
	}
	local, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T is not TCP", c.LocalAddr())
	}
	// The socket's family decides the option; an IPv4 connection on a
	// dual-stack socket answers the IPv4 one too.
	v6 := local.AddrPort().Addr().Unmap().Is6()
	raw, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	var dst netip.AddrPort
	var opErr error
	err = raw.Control(func(fd uintptr) {
		if v6 {
			dst, opErr = originalDst6(int(fd))
		} else {
			dst, opErr = originalDst4(int(fd))
		}
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w (conntrack has no entry for the connection)", err)
		}
		return netip.AddrPort{}, fmt.Errorf("original destination of %s: %w", c.RemoteAddr(), err)
	}
	return dst, nil
}

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/
// ip6_tables.h), which x/sys does not define.
const ip6tSOOriginalDst = 80

// The kernel writes a sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes);
// x/sys has getters for structs at least that large, used here as
// buffers: IPv6Mreq is 20 bytes, IPv6MTUInfo holds a RawSockaddrInet6.

func originalDst4(fd int) (netip.AddrPort, error) {
	m, err := unix.GetsockoptIPv6Mreq(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", err)
	}
	// sockaddr_in: family (2 bytes), port (network order), address.
	sa := m.Multiaddr
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(sa[4:8])), binary.BigEndian.Uint16(sa[2:4])), nil
}

func originalDst6(fd int) (netip.AddrPort, error) {
	info, err := unix.GetsockoptIPv6MTUInfo(fd, unix.SOL_IPV6, ip6tSOOriginalDst)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt IP6T_SO_ORIGINAL_DST: %w", err)
	}
	// The port field holds network-order bytes whatever the host's order.
	var port [2]byte
	binary.NativeEndian.PutUint16(port[:], info.Addr.Port)
	return netip.AddrPortFrom(netip.AddrFrom16(info.Addr.Addr), binary.BigEndian.Uint16(port[:])), nil
}
