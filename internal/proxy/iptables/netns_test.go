//go:build linux

package iptables

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	netnsutil "github.com/weftmesh/weft/internal/testutil/netns"
	"github.com/weftmesh/weft/internal/testutil/tcpserver"
)

// These tests install the rules in real network namespaces and send real
// connections through them. They need root, ip(8) and iptables; without
// them they are skipped, except in CI, where they must run. Addresses are
// 198.18.7.0/24 and, for IPv6, 2001:2::/48 (RFC 5180's benchmarking range,
// IPv6's counterpart of 198.18.0.0/15), on a veth pair between two
// namespaces that have no other link: nothing leaves them.

// netns is a test namespace with what these tests do in it.
type netns struct{ *netnsutil.NS }

func requireNetns(t *testing.T) {
	netnsutil.Require(t, "iptables-restore", "iptables-save", "ip6tables-restore", "ip6tables-save")
}

func newNetns(t *testing.T, role string) *netns { return &netns{netnsutil.New(t, "weft-ipt", role)} }

func (n *netns) listen(addr string, serve func(net.Conn)) {
	network := "tcp4"
	if strings.HasPrefix(addr, "[") {
		network = "tcp6"
	}
	tcpserver.Accept(n.Listen(network, addr), serve)
}

// answer is what a test server writes to whoever connects.
func answer(s string) func(net.Conn) {
	return func(c net.Conn) { io.WriteString(c, s) }
}

// dial connects from the namespace to addr and returns what it is told.
func (n *netns) dial(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := n.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func (n *netns) save(t *testing.T, f Family) string {
	t.Helper()
	var out string
	if err := n.Do(func() error {
		b, err := exec.Command(f.save(), "-t", "nat").Output()
		out = string(b)
		return err
	}); err != nil {
		t.Fatalf("%s in %s: %v", f.save(), n.Name, err)
	}
	// Comments carry a timestamp.
	var lines []string
	for l := range strings.Lines(out) {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "")
}

func TestNetnsRules(t *testing.T) {
	requireNetns(t)
	ctx := t.Context()
	pod, peer := newNetns(t, "pod"), newNetns(t, "peer")
	pod.IP("link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", peer.Name)
	for _, x := range []struct {
		n        *netns
		v4, v6   string
		hostPart string
	}{{pod, "198.18.7.2/24", "2001:2::2/64", "pod"}, {peer, "198.18.7.3/24", "2001:2::3/64", "peer"}} {
		x.n.IP("addr", "add", x.v4, "dev", "eth0")
		x.n.IP("addr", "add", x.v6, "dev", "eth0", "nodad")
		x.n.IP("link", "set", "eth0", "up")
	}

	// The peer is the world outside the pod.
	peer.listen("198.18.7.3:80", answer("peer"))
	peer.listen("[2001:2::3]:80", answer("peer"))
	// The pod's proxy: its transparent listeners tell where each
	// connection was going; its mesh port and a skipped port answer as
	// themselves, as does an app on loopback.
	origs := make(chan netip.AddrPort, 8)
	redirected := func(c net.Conn) {
		dst, err := OriginalDst(c)
		if err != nil {
			t.Errorf("OriginalDst: %v", err)
		}
		origs <- dst
		io.WriteString(c, "redirected")
	}
	pod.listen("127.0.0.1:15001", redirected)
	pod.listen("[::1]:15001", redirected)
	pod.listen("0.0.0.0:15006", redirected)
	pod.listen("198.18.7.2:15008", answer("mesh"))
	pod.listen("198.18.7.2:2222", answer("skipped"))
	pod.listen("127.0.0.1:8080", answer("app on loopback"))

	cfg := &Config{ProxyUID: 4242, InboundPort: 15006, OutboundPort: 15001, MeshPort: 15008, AdminPort: 15100, SkipInboundPorts: []uint16{2222}}
	install := func(c *Config) {
		t.Helper()
		if err := pod.Do(func() error { return Install(ctx, c, IPv4, IPv6) }); err != nil {
			t.Fatal(err)
		}
	}
	install(cfg)
	first4, first6 := pod.save(t, IPv4), pod.save(t, IPv6)
	install(cfg)
	if again := pod.save(t, IPv4); again != first4 {
		t.Errorf("installing twice changed the rules:\nfirst:\n%s\nagain:\n%s", first4, again)
	}
	if again := pod.save(t, IPv6); again != first6 {
		t.Errorf("installing twice changed the IPv6 rules:\nfirst:\n%s\nagain:\n%s", first6, again)
	}
	for _, jump := range []string{"-A PREROUTING -p tcp -j WEFT_INBOUND\n", "-A OUTPUT -p tcp -j WEFT_OUTPUT\n"} {
		if n := strings.Count(first4, jump); n != 1 {
			t.Errorf("%d copies of %q, want 1:\n%s", n, jump, first4)
		}
	}
	for _, want := range []string{"-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006", "--uid-owner 4242"} {
		if !strings.Contains(first4, want) || !strings.Contains(first6, want) {
			t.Errorf("saved rules lack %q:\n%s\n%s", want, first4, first6)
		}
	}
	if ok, err := Installed(ctx, IPv4); err != nil || ok {
		// The test's own namespace has none of it.
		t.Errorf("Installed in the test's namespace = %v, %v", ok, err)
	}

	check := func(from *netns, addr, want string, wantOrig string) {
		t.Helper()
		got, err := from.dial(addr)
		if err != nil || got != want {
			t.Errorf("from %s to %s: %q, %v; want %q", from.Name, addr, got, err, want)
			return
		}
		if wantOrig == "" {
			return
		}
		select {
		case dst := <-origs:
			if dst.String() != wantOrig {
				t.Errorf("from %s to %s: original destination %s, want %s", from.Name, addr, dst, wantOrig)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("from %s to %s: no original destination", from.Name, addr)
		}
	}
	// Outbound: the app's connections go to the proxy, which learns where
	// they were going, in either family; loopback stays loopback.
	check(pod, "198.18.7.3:80", "redirected", "198.18.7.3:80")
	check(pod, "[2001:2::3]:80", "redirected", "[2001:2::3]:80")
	check(pod, "127.0.0.1:8080", "app on loopback", "")
	check(pod, "198.18.7.2:15008", "mesh", "")
	// Inbound: arriving connections go to the proxy, but for its mesh
	// port and skipped ports.
	check(peer, "198.18.7.2:8080", "redirected", "198.18.7.2:8080")
	check(peer, "198.18.7.2:15008", "mesh", "")
	check(peer, "198.18.7.2:2222", "skipped", "")

	// A new config replaces the rules: now root is the proxy's user, so
	// this test's connections go out as they are.
	install(&Config{ProxyUID: 0, InboundPort: 15006, OutboundPort: 15001, MeshPort: 15008})
	if s := pod.save(t, IPv4); strings.Contains(s, "4242") || strings.Contains(s, "2222") || strings.Count(s, "-A OUTPUT -p tcp -j WEFT_OUTPUT") != 1 {
		t.Errorf("reinstalling did not replace the rules:\n%s", s)
	}
	check(pod, "198.18.7.3:80", "peer", "")
	check(pod, "[2001:2::3]:80", "peer", "")

	for range 2 { // removing twice is no error
		if err := pod.Do(func() error { return Remove(ctx, IPv4, IPv6) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []Family{IPv4, IPv6} {
		if s := pod.save(t, f); strings.Contains(s, "WEFT") {
			t.Errorf("%s rules left after Remove:\n%s", f, s)
		}
	}
	// Nothing listens on 8080 at the pod's address: without the rules,
	// the connection is refused.
	if got, err := peer.dial("198.18.7.2:8080"); err == nil {
		t.Errorf("after Remove, 198.18.7.2:8080 answered %q: still redirected", got)
	}
}
