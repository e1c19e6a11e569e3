package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/tap"
)

// fakeTap is an admin API that serves a canned tap stream to the right
// token, then holds the stream open (hold) or ends it.
func fakeTap(t *testing.T, records []tap.Record, hold bool) (addr, stateDir string, query chan string) {
	t.Helper()
	stateDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(stateDir, "admin.token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	query = make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/tap" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "this call needs the admin token"})
			return
		}
		query <- r.URL.RawQuery
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, rec := range records {
			enc.Encode(rec)
		}
		w.(http.Flusher).Flush()
		if hold {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), stateDir, query
}

// tapRun runs the CLI with standard output and error apart.
func tapRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := NewRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

var tapT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func catalogCall(path string, status int, latency time.Duration) *tap.Event {
	return &tap.Event{Time: tapT0, Proxy: "demo/web-0", Direction: "outbound", Protocol: "http1", Method: "GET",
		Authority: "catalog", Path: path, Status: status, Latency: latency,
		SourceIdentity: "spiffe://weft.local/ns/demo/sa/web", SourceWorkload: "demo/web-0",
		DestinationIdentity: "spiffe://weft.local/ns/demo/sa/catalog", DestinationService: "demo/catalog", TLS: true}
}

func TestTapPrintsEachRequest(t *testing.T) {
	grpc := catalogCall("/weft.demo.v1.Stock/GetStock", 200, 1500*time.Microsecond)
	grpc.Method, grpc.GRPCStatus, grpc.Direction = "POST", "14", "inbound"
	records := []tap.Record{
		{Note: "tapping 2 proxies"},
		{Event: catalogCall("/products", 200, 12345*time.Microsecond)},
		{Proxy: "demo/web-0", Dropped: 3},
		{Event: grpc},
		{Proxy: "demo/stock-0", Note: "cannot tap: connection refused"},
	}
	addr, stateDir, query := fakeTap(t, records, false)
	out, errOut, err := tapRun(t, "tap", "--admin", addr, "--state-dir", stateDir,
		"--service", "demo/catalog", "--direction", "outbound", "--path", "/products", "--method", "GET")
	if err == nil || !strings.Contains(err.Error(), "ended the stream") {
		t.Errorf("a stream the control plane ends: %v, want an error saying so", err)
	}
	if q := <-query; q != "direction=outbound&method=GET&path=%2Fproducts&service=demo%2Fcatalog" {
		t.Errorf("query %s", q)
	}
	local := tapT0.Local().Format("15:04:05.000")
	want := local + " outbound proxy=demo/web-0 GET catalog/products status=200 latency=12.35ms src=spiffe://weft.local/ns/demo/sa/web dst=spiffe://weft.local/ns/demo/sa/catalog tls=true\n" +
		local + " inbound  proxy=demo/web-0 POST catalog/weft.demo.v1.Stock/GetStock status=200 grpc-status=14 latency=1.5ms src=spiffe://weft.local/ns/demo/sa/web dst=spiffe://weft.local/ns/demo/sa/catalog tls=true\n"
	if out != want {
		t.Errorf("output\n%s\nwant\n%s", out, want)
	}
	wantErr := "# tapping 2 proxies\n# demo/web-0: 3 requests not shown: the tap fell behind\n# demo/stock-0: cannot tap: connection refused\n"
	if errOut != wantErr {
		t.Errorf("standard error\n%s\nwant\n%s", errOut, wantErr)
	}

	// -o json: the events as they came, one per line.
	addr, stateDir, _ = fakeTap(t, records, false)
	out, _, _ = tapRun(t, "tap", "--admin", addr, "--state-dir", stateDir, "-o", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("-o json printed %d lines, want 2:\n%s", len(lines), out)
	}
	var e tap.Event
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e != *records[1].Event {
		t.Errorf("-o json line %s: %+v, %v", lines[0], e, err)
	}
}

func TestTapRefusals(t *testing.T) {
	addr, stateDir, _ := fakeTap(t, nil, false)
	wrong := t.TempDir()
	os.WriteFile(filepath.Join(wrong, "admin.token"), []byte("guess"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tap", "--admin", addr, "--state-dir", wrong}, "401 Unauthorized: this call needs the admin token"},
		{[]string{"top", "--admin", addr, "--state-dir", wrong, "--once-after", "5s"}, "401 Unauthorized"},
		{[]string{"tap", "--admin", addr, "--state-dir", t.TempDir()}, "admin token"},
		{[]string{"tap", "--admin", addr, "--state-dir", stateDir, "--direction", "up"}, "want inbound or outbound"},
		{[]string{"tap", "--admin", addr, "--state-dir", stateDir, "-o", "yaml"}, "--output"},
		{[]string{"top", "--admin", addr, "--state-dir", stateDir, "--interval", "0s"}, "must be positive"},
	} {
		_, _, err := tapRun(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("weft %s: %v, want an error with %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

func TestTopOnce(t *testing.T) {
	var records []tap.Record
	for i := range 100 {
		// 100 calls to /orders/<n>, one in ten failing, latencies 1..100ms.
		status := 200
		if i%10 == 0 {
			status = 503
		}
		records = append(records, tap.Record{Event: catalogCall(fmt.Sprintf("/orders/%d", i), status, time.Duration(i+1)*time.Millisecond)})
		// The same calls seen by the callee's proxy: not counted again.
		in := *records[len(records)-1].Event
		in.Direction = "inbound"
		records = append(records, tap.Record{Event: &in})
	}
	for range 3 {
		records = append(records, tap.Record{Event: catalogCall("/items/3f2b8c4e-1a2b-4c3d-9e8f-0a1b2c3d4e5f/price", 200, time.Millisecond)})
	}
	// A plaintext client's call is seen only inbound: it counts.
	outside := catalogCall("/health", 200, 100*time.Microsecond)
	outside.Direction, outside.TLS, outside.SourceIdentity = "inbound", false, ""
	records = append(records, tap.Record{Event: outside}, tap.Record{Note: "tapping 6 proxies"})

	addr, stateDir, _ := fakeTap(t, records, true)
	start := time.Now()
	out, _, err := tapRun(t, "top", "--admin", addr, "--state-dir", stateDir, "--once-after", "500ms", "--interval", "100ms")
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("top --once-after 500ms took %s", took)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 6 || !strings.Contains(lines[0], "104 requests over the last 30s, 3 paths") {
		t.Fatalf("top printed:\n%s", out)
	}
	// Rates are over the time tapped (about 0.5s), not measured here.
	fields := func(l string) []string { f := strings.Fields(l); return append(f[:3:3], f[4:]...) }
	want := [][]string{
		{"METHOD", "PATH", "COUNT", "SUCCESS", "P50", "P99"},
		{"GET", "/orders/{id}", "100", "90.00%", "50ms", "99ms"},
		{"GET", "/items/{id}/price", "3", "100.00%", "1ms", "1ms"},
		{"GET", "/health", "1", "100.00%", "100µs", "100µs"},
	}
	for i, w := range want {
		if got := fields(lines[1+i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("row %d: %q, want %q\n%s", i, got, w, out)
		}
	}
	if !strings.Contains(out, "# tapping 6 proxies") {
		t.Errorf("top does not show the notes:\n%s", out)
	}
}

func TestTopWindowSlides(t *testing.T) {
	tt := newTopTable(10*time.Second, false, tapT0)
	tt.add(tap.Record{Event: catalogCall("/a", 200, time.Millisecond)}, tapT0)
	tt.add(tap.Record{Event: catalogCall("/a", 500, 3*time.Millisecond)}, tapT0.Add(6*time.Second))
	tt.add(tap.Record{Event: catalogCall("/b", 200, time.Millisecond)}, tapT0.Add(8*time.Second))
	lines := tt.lines(tapT0.Add(12 * time.Second))
	if len(lines) != 2 || lines[0].path != "/a" || lines[0].count != 1 || lines[0].success != 0 || lines[0].p50 != 3*time.Millisecond {
		t.Fatalf("after 12s of a 10s window: %+v", lines)
	}
	if lines[0].rate != 0.1 {
		t.Errorf("rate %v, want 1 request over the 10s window", lines[0].rate)
	}
	if lines := tt.lines(tapT0.Add(20 * time.Second)); len(lines) != 0 {
		t.Errorf("after the window passed: %+v", lines)
	}
}

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "/",
		"/":                  "/",
		"/api/products":      "/api/products",
		"/orders/42":         "/orders/{id}",
		"/orders/42/items/7": "/orders/{id}/items/{id}",
		"/users/3F2B8C4E-1A2B-4C3D-9E8F-0A1B2C3D4E5F": "/users/{id}",
		"/blobs/0123456789abcdef0123":                 "/blobs/{id}",
		"/blobs/cafe":                                 "/blobs/cafe",
		"/v2/things":                                  "/v2/things",
		"/weft.demo.v1.Stock/GetStock":                "/weft.demo.v1.Stock/GetStock",
	} {
		if got := normalizePath(in); got != want {
			t.Errorf("normalizePath(%q) = %q, want %q", in, got, want)
		}
	}
}
