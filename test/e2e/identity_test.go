//go:build e2e

package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestInboundRequiresMutualTLS looks at a proxy's inbound from outside the
// mesh: it speaks TLS 1.3 with its workload's SVID, and refuses any client
// that cannot present one.
func TestInboundRequiresMutualTLS(t *testing.T) {
	f := serverSide(t)
	addr := fmt.Sprintf("127.0.0.1:%d", f.serverInbound)

	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	cs := conn.ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", cs.Version)
	}
	if len(cs.PeerCertificates) == 0 || len(cs.PeerCertificates[0].URIs) != 1 ||
		cs.PeerCertificates[0].URIs[0].String() != "spiffe://weft.local/ns/e2e/sa/server" {
		t.Fatalf("server certificate: %+v", cs.PeerCertificates)
	}
	// Without a client certificate the server ends the connection.
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	if _, err := conn.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("read after a handshake without a client certificate: %v, want the server's certificate-required alert", err)
	}

	// Plaintext HTTP/2 and HTTP/1.1 get nowhere either.
	for _, req := range []string{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(req))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		c.Close()
		// Go's TLS server may say, in plaintext, that this is a TLS port;
		// nothing else may come back, and nothing may reach the app.
		if answer := string(buf[:n]); strings.Contains(answer, "HTTP/") && !strings.Contains(answer, "Client sent an HTTP request to an HT") {
			t.Errorf("plaintext %q got an HTTP answer: %q", req[:8], answer)
		}
	}

	// Meanwhile, mesh traffic flows.
	if _, err := getEcho(t.Context(), fmt.Sprintf("http://127.0.0.1:%d/", f.c.http)); err != nil {
		t.Errorf("through the mesh: %v", err)
	}
}

// certificatesIssued counts the control plane's issuance log lines.
func certificatesIssued(m *mesh, id string) int {
	return strings.Count(m.cp.Output(), `"certificate issued" component=identity spiffe_id=`+id)
}

func TestLeafRotationUnderLoadLosesNothing(t *testing.T) {
	f := serverSide(t, "--leaf-ttl", "4s")
	tr := startTraffic(t, fmt.Sprintf("http://127.0.0.1:%d/", f.c.http))
	// Leaves renew at about half their life: each proxy renews several
	// times while traffic flows over connections made under older ones.
	eventually(t, 30*time.Second, "several renewals of both proxies", func() error {
		for _, sa := range []string{"client", "server"} {
			if n := certificatesIssued(f.m, "spiffe://weft.local/ns/e2e/sa/"+sa); n < 4 {
				return fmt.Errorf("%s: %d certificates", sa, n)
			}
		}
		return nil
	})
	// New connections still handshake with the current leaves.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", f.c.h2))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tr.check(t)
}

func TestRootRotationUnderLoadLosesNothing(t *testing.T) {
	f := serverSide(t, "--leaf-ttl", "6s")
	// A self-registered workload must keep its lease across the rotation:
	// its renewals go on connections made under its current certificate.
	registered(t, f.m, "server-r", startBackend(t, "server-r"), freePort(t), "3s")
	eventually(t, 15*time.Second, "server-r registered", func() error {
		if !strings.Contains(f.m.endpoints("e2e/http"), "server-r") {
			return fmt.Errorf("http endpoints: %s", f.m.endpoints("e2e/http"))
		}
		return nil
	})
	tr := startTraffic(t, fmt.Sprintf("http://127.0.0.1:%d/", f.c.http))
	rotate := func(step string, extra ...string) {
		t.Helper()
		out, err := f.m.weft(append([]string{"identity", "rotate", "--state-dir", f.m.stateDir, "--step", step}, extra...)...)
		if err != nil {
			t.Fatalf("rotate %s: %v\n%s", step, err, out)
		}
		t.Logf("rotate %s: %s", step, strings.TrimSpace(out))
	}
	roots := func() int {
		out, _ := f.m.weft("identity")
		return strings.Count(out, "\nroot ")
	}
	rotate("prepare")
	if n := roots(); n != 2 {
		t.Errorf("%d roots in the bundle after prepare, want 2", n)
	}
	time.Sleep(2 * time.Second)
	rotate("activate")
	// Every proxy renews under the new root at once; the old root's leaves
	// lapse within a leaf lifetime, and then the old root can go.
	eventually(t, 30*time.Second, "the old root's leaves lapse and it is removed", func() error {
		out, err := f.m.weft("identity", "rotate", "--state-dir", f.m.stateDir, "--step", "finish")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if n := roots(); n != 1 {
		t.Errorf("%d roots after finish, want 1", n)
	}
	// Longer than server-r's lease: it renewed under the new root.
	time.Sleep(5 * time.Second)
	if !strings.Contains(f.m.endpoints("e2e/http"), "server-r") {
		t.Errorf("server-r lost its registration after the rotation: %s", f.m.endpoints("e2e/http"))
	}
	tr.check(t)
}
