package demo

import (
	"bufio"
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weftmesh/weft/internal/demo/app"
	"github.com/weftmesh/weft/internal/demo/fault"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Verbose() {
		slog.SetDefault(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// execute runs `demo args...` until the test ends, and waits until addr
// accepts connections.
func execute(t *testing.T, addr string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := NewCommand()
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo %s: %v", strings.Join(args, " "), err)
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("demo %s ended: %v", strings.Join(args, " "), err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo %s: %s never accepted: %v", strings.Join(args, " "), addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func httpClient(h2c bool) *http.Client {
	p := new(http.Protocols)
	if h2c {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	return &http.Client{Transport: &http.Transport{Protocols: p}}
}

// controlProto GETs the fault control endpoint at addr and returns the
// response's protocol major version.
func controlProto(t *testing.T, addr string, h2c bool) int {
	t.Helper()
	c := httpClient(h2c)
	// Idle h2 connections would hold the server's shutdown for a second.
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + addr + fault.ControlPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", fault.ControlPath, resp.StatusCode)
	}
	return resp.ProtoMajor
}

func TestServeCommands(t *testing.T) {
	t.Run("web", func(t *testing.T) {
		addr := freeAddr(t)
		execute(t, addr, "serve", "web", "--listen", addr, "--catalog-url", "http://127.0.0.1:1", "--audit-addr", "127.0.0.1:1")
		resp, err := http.Get("http://" + addr + "/api/products")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("with no upstreams: status %d, want 502", resp.StatusCode)
		}
	})
	t.Run("catalog v1 speaks HTTP/1.1", func(t *testing.T) {
		addr := freeAddr(t)
		execute(t, addr, "serve", "catalog", "--listen", addr, "--version", "v1")
		if p := controlProto(t, addr, false); p != 1 {
			t.Fatalf("HTTP/%d", p)
		}
	})
	t.Run("catalog v2 speaks h2c by default", func(t *testing.T) {
		addr := freeAddr(t)
		execute(t, addr, "serve", "catalog", "--listen", addr, "--version", "v2")
		if p := controlProto(t, addr, true); p != 2 {
			t.Fatalf("HTTP/%d", p)
		}
	})
	t.Run("stock with control port", func(t *testing.T) {
		addr, control := freeAddr(t), freeAddr(t)
		execute(t, addr, "serve", "stock", "--listen", addr, "--control-addr", control, "--error-rate", "1")
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		controlProto(t, control, false)
	})
	t.Run("audit greets", func(t *testing.T) {
		addr := freeAddr(t)
		execute(t, addr, "serve", "audit", "--listen", addr, "--latency", "1ms")
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if g, err := bufio.NewReader(conn).ReadString('\n'); err != nil || g != app.AuditGreeting+"\n" {
			t.Fatalf("greeting %q, %v", g, err)
		}
	})
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "error rate out of range", args: []string{"serve", "audit", "--listen", "127.0.0.1:0", "--error-rate", "2"}},
		{name: "negative latency", args: []string{"serve", "stock", "--listen", "127.0.0.1:0", "--latency", "-1s"}},
		{name: "bad listen address", args: []string{"serve", "audit", "--listen", "127.0.0.1:99999"}},
		{name: "unknown service", args: []string{"serve", "billing"}},
		{name: "no service", args: []string{"serve"}},
		{name: "unknown subcommand", args: []string{"bogus"}},
		{name: "remote load target", args: []string{"load", "--target", "http://198.18.0.1/", "--requests", "1"}},
		{name: "catalog with no version", args: []string{"serve", "catalog", "--listen", "127.0.0.1:0", "--version", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := NewCommand()
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := cmd.ExecuteContext(ctx); err == nil {
				t.Fatalf("demo %s succeeded", strings.Join(tt.args, " "))
			}
		})
	}
}
