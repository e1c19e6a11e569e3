package app

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	demov1 "github.com/weftmesh/weft/api/demo/v1"
	"github.com/weftmesh/weft/internal/demo/fault"
)

func dialStock(t *testing.T, addr string) (demov1.StockClient, *grpc.ClientConn) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return demov1.NewStockClient(conn), conn
}

func TestStockGetStock(t *testing.T) {
	c, _ := dialStock(t, serve(t, NewStock(StockConfig{}).Serve))
	tests := []struct {
		name string
		sku  string
		want codes.Code
	}{
		{name: "known", sku: "WEFT-001", want: codes.OK},
		{name: "unknown", sku: "NOPE", want: codes.NotFound},
		{name: "empty", sku: "", want: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.GetStock(t.Context(), &demov1.GetStockRequest{Sku: tt.sku})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("GetStock(%q): %v, want %s", tt.sku, err, tt.want)
			}
			if err == nil && (resp.GetLevel().GetSku() != tt.sku || resp.GetLevel().GetQuantity() < 0 || resp.GetLevel().GetObservedAt() == nil) {
				t.Fatalf("GetStock(%q) = %v", tt.sku, resp)
			}
		})
	}
}

func TestStockWatchUntilCancelled(t *testing.T) {
	c, _ := dialStock(t, serve(t, NewStock(StockConfig{}).Serve))
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := c.WatchStock(ctx, &demov1.WatchStockRequest{Sku: "WEFT-002", IntervalMs: 10})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 5 {
		lvl, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if lvl.GetSku() != "WEFT-002" {
			t.Fatalf("Recv %d: sku %q", i, lvl.GetSku())
		}
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("5 levels at 10ms came in %s, want >= 40ms", d)
	}
	cancel()
	for {
		if _, err := stream.Recv(); err != nil {
			if status.Code(err) != codes.Canceled {
				t.Fatalf("after cancel: %v, want Canceled", err)
			}
			break
		}
	}
}

func TestStockWatchHonoursDeadline(t *testing.T) {
	c, _ := dialStock(t, serve(t, NewStock(StockConfig{WatchInterval: 10 * time.Millisecond}).Serve))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	stream, err := c.WatchStock(ctx, &demov1.WatchStockRequest{Sku: "WEFT-003"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("stream ended with %v, want DeadlineExceeded", err)
			}
			break
		}
		n++
	}
	if n < 3 {
		t.Fatalf("got %d levels in 100ms at 10ms, want several", n)
	}
}

func TestStockWatchEndsWhenServerStops(t *testing.T) {
	s := NewStock(StockConfig{WatchInterval: 10 * time.Millisecond})
	// Stopped by this test, before the helper's own cleanup.
	ctx, stop := context.WithCancel(t.Context())
	addr := serve(t, func(_ context.Context, ln net.Listener) error { return s.Serve(ctx, ln) })
	c, _ := dialStock(t, addr)
	stream, err := c.WatchStock(t.Context(), &demov1.WatchStockRequest{Sku: "WEFT-001"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	stop()
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) != codes.Unavailable {
				t.Fatalf("stream ended with %v, want Unavailable", err)
			}
			return
		}
	}
}

func TestStockFaults(t *testing.T) {
	in := injector(t, fault.Settings{ErrorRate: 1})
	c, conn := dialStock(t, serve(t, NewStock(StockConfig{Faults: in}).Serve))

	if _, err := c.GetStock(t.Context(), &demov1.GetStockRequest{Sku: "WEFT-001"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("GetStock with error rate 1: %v, want Unavailable", err)
	}
	stream, err := c.WatchStock(t.Context(), &demov1.WatchStockRequest{Sku: "WEFT-001"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("WatchStock with error rate 1: %v, want Unavailable", err)
	}
	// Health is not the demo's API: faults leave it alone.
	h, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health with error rate 1: %v, %v", h, err)
	}

	if err := in.Set(fault.Settings{Latency: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := c.GetStock(t.Context(), &demov1.GetStockRequest{Sku: "WEFT-001"}); err != nil {
			t.Fatalf("GetStock with error rate 0: %v", err)
		}
	}
	start := time.Now()
	if _, err := c.GetStock(t.Context(), &demov1.GetStockRequest{Sku: "WEFT-001"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("GetStock took %s, want >= 50ms latency", d)
	}
	// The latency is bounded by the caller's deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := c.GetStock(ctx, &demov1.GetStockRequest{Sku: "WEFT-001"}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("GetStock with 10ms deadline and 50ms latency: %v, want DeadlineExceeded", err)
	}
}
