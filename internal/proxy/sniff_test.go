package proxy

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/testutil/ports"
	"github.com/weftmesh/weft/internal/testutil/tlstest"
)

func TestMixedListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var permissive atomic.Bool
	l := newMixedListener(inner, tlstest.SelfSigned(t).TLS, permissive.Load, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { l.Close() })
	addr := l.Addr().String()

	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			if tc, ok := c.(*tls.Conn); ok {
				go tc.Handshake() // as the HTTP server does, on the connection's goroutine
			}
			accepted <- c
		}
	}()
	next := func(desc string) net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing accepted", desc)
			return nil
		}
	}

	// A silent client holds up no one.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// TLS clients get a TLS server connection.
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	defer tc.Close()
	if _, ok := next("TLS client").(*tls.Conn); !ok {
		t.Fatal("a TLS client's connection is not TLS on the server side")
	}

	// Strict: plaintext is closed, never accepted.
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	plain.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	plain.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := plain.Read(make([]byte, 1)); err == nil {
		t.Fatalf("strict mode: plaintext client read %d bytes, want the connection closed", n)
	}
	plain.Close()

	// Permissive: plaintext is accepted with its first bytes intact.
	permissive.Store(true)
	plain, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.Write([]byte("GET /"))
	c := next("plaintext client in permissive mode")
	if _, ok := c.(*tls.Conn); ok {
		t.Fatal("a plaintext client got a TLS connection")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "GET /" {
		t.Fatalf("plaintext bytes %q, %v", got, err)
	}

	// Close ends Accept.
	l.Close()
	for range accepted {
	}
}

// TestPlaintextFollowsTheModeInForce: a plaintext client let in while the
// workload was permissive loses it on its open connection when the
// workload turns strict, and never gets a tunnel.
func TestPlaintextFollowsTheModeInForce(t *testing.T) {
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "app") })}
	go app.Serve(appLn)
	t.Cleanup(func() { app.Close() })
	appPort := uint32(appLn.Addr().(*net.TCPAddr).Port)

	inPort := uint32(ports.Free(t))

	p := New(Options{Logger: slog.New(slog.DiscardHandler), InboundTLS: tlstest.SelfSigned(t).TLS, DrainTimeout: time.Second})
	t.Cleanup(func() { p.Shutdown(t.Context()) })
	wl := &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "api-0"}, Address: "127.0.0.1", InboundPort: inPort,
		Ports: []model.WorkloadPort{{Port: appPort, Protocol: model.ProtocolHTTP1}}}
	apply := func(v uint64, a *model.Authz) {
		t.Helper()
		if err := p.Apply(&model.ProxyConfig{Version: v, Workload: wl, Authz: a}); err != nil {
			t.Fatal(err)
		}
	}
	apply(1, &model.Authz{Permissive: true})

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	do := func(method string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+model.HostPort("127.0.0.1", inPort)+"/", nil)
		if method == http.MethodConnect {
			req.Host = "127.0.0.1:1"
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := do("GET"); code != 200 || body != "app" {
		t.Fatalf("permissive plaintext GET: %d %q", code, body)
	}
	if code, body := do(http.MethodConnect); code != 403 || !strings.Contains(body, "may not open tunnels") {
		t.Fatalf("permissive plaintext CONNECT: %d %q, want 403", code, body)
	}
	apply(2, nil)
	if code, body := do("GET"); code != 403 || !strings.Contains(body, "strict mTLS mode") {
		t.Fatalf("plaintext GET on a connection opened while permissive, now strict: %d %q, want 403", code, body)
	}
}
