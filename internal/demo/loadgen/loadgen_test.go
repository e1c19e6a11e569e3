package loadgen_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo/app"
	"github.com/weftmesh/weft/internal/demo/fault"
	"github.com/weftmesh/weft/internal/demo/loadgen"
)

func serve(t *testing.T, fn func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server on %s: %v", ln.Addr(), err)
		}
	})
	return ln.Addr().String()
}

var quiet = slog.New(slog.DiscardHandler)

// startWeb starts the real demo application (web, catalog v1, stock, audit)
// and returns web's /api/products URL and web's fault switches.
func startWeb(t *testing.T) (string, *fault.Injector) {
	t.Helper()
	stock := serve(t, app.NewStock(app.StockConfig{Log: quiet}).Serve)
	audit := serve(t, app.NewAudit(app.AuditConfig{Log: quiet}).Serve)
	catalog, err := app.NewCatalog(app.CatalogConfig{Version: "v1", StockAddr: stock, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catalog.Close() })
	catalogAddr := serve(t, catalog.Serve)
	in, err := fault.New(fault.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	web, err := app.NewWeb(app.WebConfig{CatalogURL: "http://" + catalogAddr, AuditAddr: audit, Faults: in, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + serve(t, web.Serve) + "/api/products", in
}

func TestRunCount(t *testing.T) {
	target, _ := startWeb(t)
	var logs bytes.Buffer
	sum, err := loadgen.Run(t.Context(), loadgen.Config{
		Target: target, Rate: 200, Concurrency: 4, Requests: 20,
		ReportEvery: 20 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 20 || sum.Successes != 20 || sum.Failures != 0 {
		t.Fatalf("summary %+v, want 20 successes", sum)
	}
	if sum.P50 <= 0 || sum.P99 < sum.P50 {
		t.Fatalf("latencies p50 %s p99 %s", sum.P50, sum.P99)
	}
	if !strings.Contains(logs.String(), `msg="load done" requests=20 ok=20 failed=0`) {
		t.Fatalf("no final summary line in:\n%s", logs.String())
	}
}

func TestRunCountsFailures(t *testing.T) {
	target, faults := startWeb(t)
	if err := faults.Set(fault.Settings{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	sum, err := loadgen.Run(t.Context(), loadgen.Config{Target: target, Rate: 200, Requests: 10, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 10 || sum.Failures != 10 || sum.Successes != 0 {
		t.Fatalf("summary %+v, want 10 failures", sum)
	}
}

func TestRunDurationAndRate(t *testing.T) {
	target, _ := startWeb(t)
	start := time.Now()
	sum, err := loadgen.Run(t.Context(), loadgen.Config{Target: target, Rate: 50, Duration: 400 * time.Millisecond, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 5*time.Second {
		t.Fatalf("run took %s, want about 400ms", d)
	}
	// 50 rps for 400ms is 20 ticks; allow for timer slack.
	if sum.Requests < 12 || sum.Requests > 21 || sum.Failures != 0 {
		t.Fatalf("summary %+v, want about 20 successes", sum)
	}
}

func TestRunSkipsWhenSaturated(t *testing.T) {
	target, faults := startWeb(t)
	if err := faults.Set(fault.Settings{Latency: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	sum, err := loadgen.Run(t.Context(), loadgen.Config{
		Target: target, Rate: 100, Concurrency: 1, Duration: 300 * time.Millisecond, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped == 0 || sum.Requests > 2 || sum.Failures != 0 {
		t.Fatalf("summary %+v, want skipped ticks and at most 2 requests", sum)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	target, faults := startWeb(t)
	if err := faults.Set(fault.Settings{Latency: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	sum, err := loadgen.Run(ctx, loadgen.Config{Target: target, Rate: 100, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Run took %s after cancel", d)
	}
	// Requests cut short by the caller are not the target's failures.
	if sum.Requests != 0 || sum.Failures != 0 {
		t.Fatalf("summary %+v, want nothing counted", sum)
	}
}

func TestRunRefusesRemoteTarget(t *testing.T) {
	// Refused before anything is dialled: this test sends no traffic.
	for _, target := range []string{"http://198.18.0.1/api/products", "http://example.com/"} {
		if _, err := loadgen.Run(t.Context(), loadgen.Config{Target: target, Requests: 1, Log: quiet}); err == nil {
			t.Errorf("Run(%q) accepted a non-loopback target", target)
		}
	}
	// A target that refuses connections is counted as failures.
	sum, err := loadgen.Run(t.Context(), loadgen.Config{Target: "http://127.0.0.1:1/", Rate: 100, Requests: 3, Log: quiet})
	if err != nil || sum.Failures != 3 {
		t.Fatalf("summary %+v, %v; want 3 failures", sum, err)
	}
}
