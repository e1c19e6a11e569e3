package app

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo/fault"
)

// auditConn is a raw client connection to audit.
type auditConn struct {
	net.Conn
	r *bufio.Reader
}

func dialAudit(t *testing.T, addr string) *auditConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return &auditConn{Conn: conn, r: bufio.NewReader(conn)}
}

func (c *auditConn) line(t *testing.T) (string, error) {
	t.Helper()
	s, err := c.r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func (c *auditConn) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func TestAuditProtocol(t *testing.T) {
	a := NewAudit(AuditConfig{})
	addr := serve(t, a.Serve)

	c := dialAudit(t, addr)
	// The server speaks first, before the client sends anything.
	if got, err := c.line(t); err != nil || got != AuditGreeting {
		t.Fatalf("greeting %q, %v; want %q", got, err, AuditGreeting)
	}
	for _, want := range []string{"ok 1", "ok 2"} {
		c.send(t, "checkout order=17")
		if got, err := c.line(t); err != nil || got != want {
			t.Fatalf("reply %q, %v; want %q", got, err, want)
		}
	}
	// The count runs across connections.
	n, err := AppendAudit(t.Context(), addr, "another\nline")
	if err != nil || n != 3 {
		t.Fatalf("AppendAudit = %d, %v; want 3", n, err)
	}
	if a.Count() != 3 {
		t.Fatalf("Count() = %d, want 3", a.Count())
	}
}

func TestAuditFaults(t *testing.T) {
	in := injector(t, fault.Settings{ErrorRate: 1})
	addr := serve(t, NewAudit(AuditConfig{Faults: in}).Serve)

	// Error rate 1: the greeting comes, then the line closes the connection.
	c := dialAudit(t, addr)
	if got, err := c.line(t); err != nil || got != AuditGreeting {
		t.Fatalf("greeting %q, %v", got, err)
	}
	c.send(t, "x")
	if got, err := c.line(t); err == nil {
		t.Fatalf("with error rate 1 got reply %q, want the connection closed", got)
	}
	if _, err := AppendAudit(t.Context(), addr, "x"); err == nil {
		t.Fatal("AppendAudit with error rate 1 succeeded")
	}

	// Changed at runtime through the control endpoint on its own port.
	control := serve(t, func(ctx context.Context, ln net.Listener) error { return ServeControl(ctx, ln, in) })
	resp, err := http.Post("http://"+control+fault.ControlPath+"?error_rate=0&latency=50ms", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("control: status %d", resp.StatusCode)
	}
	for range 5 {
		if _, err := AppendAudit(t.Context(), addr, "x"); err != nil {
			t.Fatalf("AppendAudit with error rate 0: %v", err)
		}
	}
	start := time.Now()
	if _, err := AppendAudit(t.Context(), addr, "x"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("AppendAudit took %s, want >= 50ms latency", d)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := AppendAudit(ctx, addr, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AppendAudit past its deadline: %v, want DeadlineExceeded", err)
	}
}

func TestAuditClosesConnectionsOnStop(t *testing.T) {
	ctx, stop := context.WithCancel(t.Context())
	a := NewAudit(AuditConfig{})
	addr := serve(t, func(_ context.Context, ln net.Listener) error { return a.Serve(ctx, ln) })
	c := dialAudit(t, addr)
	if _, err := c.line(t); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := c.line(t); err == nil {
		t.Fatal("connection still open after the server stopped")
	}
}

func TestAppendAuditRejectsWrongGreeting(t *testing.T) {
	addr := serve(t, func(ctx context.Context, ln net.Listener) error {
		go func() { <-ctx.Done(); _ = ln.Close() }()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return nil
			}
			_, _ = io.WriteString(conn, "SSH-2.0-not-audit\r\n")
			_ = conn.Close()
		}
	})
	if _, err := AppendAudit(t.Context(), addr, "x"); err == nil || !strings.Contains(err.Error(), "greeting") {
		t.Fatalf("AppendAudit to a non-audit server: %v, want a greeting error", err)
	}
}
