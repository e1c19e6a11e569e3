package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/stats"
	"github.com/weftmesh/weft/internal/testutil/ports"
)

// TestStatsFromRealProxies runs two real proxies, web-0 calling service
// demo/catalog served by catalog-0, each serving its metrics on the admin
// port its workload declares, and reads what the control plane scraped
// from them at the admin API, without the admin token.
func TestStatsFromRealProxies(t *testing.T) {
	// The app fails every fifth call.
	var calls atomic.Int64
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1)%5 == 0 {
			http.Error(w, "injected", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})}
	go app.Serve(appLn)
	t.Cleanup(func() { app.Close() })
	appPort := uint32(appLn.Addr().(*net.TCPAddr).Port)

	port := func() uint32 { return uint32(ports.Free(t)) }
	catalog := &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "catalog-0"}, Labels: map[string]string{"app": "catalog"},
		ServiceAccount: "catalog", Address: "127.0.0.1", InboundPort: port(), AdminPort: port(),
		Ports: []model.WorkloadPort{{Name: "http", Port: appPort, Protocol: model.ProtocolHTTP1}}}
	catalogSvc := &model.Service{Ref: model.Ref{Namespace: "demo", Name: "catalog"}, Selector: map[string]string{"app": "catalog"},
		Ports: []model.ServicePort{{Name: "http", Port: 80, Protocol: model.ProtocolHTTP1, TargetPortName: "http"}}}
	web := &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "web-0"}, ServiceAccount: "web", Address: "127.0.0.1",
		InboundPort: port(), AdminPort: port(), Outbound: []model.Outbound{{Service: catalogSvc.Ref, Port: 80, LocalPort: port()}}}

	dir := t.TempDir()
	manifest := `apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: demo}
spec:
  selector: {app: catalog}
  ports: [{name: http, port: 80, targetPort: http, appProtocol: http}]
`
	for _, w := range []*model.Workload{catalog, web} {
		manifest += fmt.Sprintf(`---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: %s, namespace: demo, labels: {app: %s}}
spec:
  serviceAccount: %s
  address: 127.0.0.1
  proxy: {inboundPort: %d, adminPort: %d}
`, w.Ref.Name, w.ServiceAccount, w.ServiceAccount, w.InboundPort, w.AdminPort)
	}
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	cp := runControlPlane(t, Options{ManifestDir: dir, StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler), StatsInterval: 100 * time.Millisecond})

	// The proxies get their configs by hand: the control plane only reads
	// their metrics here. Plain TCP between them, so the edge is not mTLS.
	start := func(w *model.Workload, svcs map[model.Ref]*model.ServiceState) {
		p := proxy.New(proxy.Options{Logger: slog.New(slog.DiscardHandler), DrainTimeout: time.Second})
		t.Cleanup(func() { p.Shutdown(context.Background()) })
		if err := p.Apply(&model.ProxyConfig{Version: 1, Workload: w, Services: svcs}); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", model.HostPort(w.Address, w.AdminPort))
		if err != nil {
			t.Fatal(err)
		}
		admin := &http.Server{Handler: p.Metrics()}
		go admin.Serve(ln)
		t.Cleanup(func() { admin.Close() })
	}
	start(catalog, nil)
	start(web, map[model.Ref]*model.ServiceState{catalogSvc.Ref: {Service: catalogSvc, Version: 1, Endpoints: []*model.Endpoint{{
		ID: catalog.Ref.String(), Workload: catalog.Ref, Address: catalog.Address, ProxyPort: catalog.InboundPort,
		Labels: catalog.Labels, ServiceAccount: catalog.Identity(), TargetPorts: map[uint32]uint32{80: appPort},
	}}}})

	base := "http://" + cp.AdminAddr()
	get := func(path string, into any) int {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if into != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	// Before any call, the model's service has a history, of nothing.
	var h stats.History
	if code := get("/api/v1/stats/history?service=demo/catalog", &h); code != http.StatusOK || h.Service != "demo/catalog" {
		t.Fatalf("history before any call: %d %+v", code, h)
	}
	// Wait for the proxies' baselines, so that every call below counts.
	waitFor(t, "both proxies scraped", func() error {
		var s stats.Summary
		get("/api/v1/stats?window=1h", &s)
		if s.Proxies.Scraped != 2 || len(s.Proxies.Failed) != 0 {
			return fmt.Errorf("proxies %+v", s.Proxies)
		}
		return nil
	})

	const n = 50
	client := &http.Client{Timeout: 10 * time.Second}
	failed := 0
	for range n {
		resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(int(web.Outbound[0].LocalPort)) + "/products")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed++
		}
	}
	if failed != n/5 {
		t.Fatalf("%d of %d calls failed, want %d", failed, n, n/5)
	}

	var s stats.Summary
	waitFor(t, "the calls counted", func() error {
		s = stats.Summary{}
		get("/api/v1/stats?window=1h", &s)
		// The callee's proxy counts a call after the caller's may have:
		// wait for both.
		if len(s.Services) != 1 || s.Services[0].Requests != n || len(s.Workloads) == 0 || s.Workloads[0].Requests != n {
			return fmt.Errorf("services %+v, workloads %+v", s.Services, s.Workloads)
		}
		return nil
	})
	c := s.Services[0]
	if c.Name != "demo/catalog" || c.Successes != n-n/5 || *c.SuccessRate != 0.8 || c.LatencyMs == nil || c.TCP == nil || c.TCP.Opened < 1 {
		t.Errorf("catalog: %+v", c)
	}
	if want := float64(n) / s.Seconds; c.RPS != want {
		t.Errorf("rps %v, want %v over %vs", c.RPS, want, s.Seconds)
	}
	if len(s.Edges) != 1 || s.Edges[0].Source != "demo/web-0" || s.Edges[0].Destination != "demo/catalog" ||
		s.Edges[0].MTLS == nil || *s.Edges[0].MTLS || s.Edges[0].Requests != n {
		t.Errorf("edges: %+v", s.Edges)
	}
	if len(s.Workloads) != 2 || s.Workloads[0].Name != "demo/catalog-0" || s.Workloads[0].Requests != n ||
		s.Workloads[0].Successes != n-n/5 || s.Workloads[1].Name != "demo/web-0" || s.Workloads[1].Requests != 0 {
		t.Errorf("workloads: %+v", s.Workloads)
	}
	if s.Window != "1h0m0s" || s.Interval != "100ms" || s.To.Before(s.From) || s.LastScrape.IsZero() {
		t.Errorf("summary: %+v", s)
	}

	h = stats.History{}
	if code := get("/api/v1/stats/history?service=demo/catalog", &h); code != http.StatusOK {
		t.Fatalf("history: %d", code)
	}
	var total int64
	for _, p := range h.Points {
		total += p.Requests
	}
	if total != n {
		t.Errorf("history counts %d calls, want %d: %+v", total, n, h)
	}

	for path, want := range map[string]int{
		"/api/v1/stats":                            http.StatusOK,
		"/api/v1/stats?window=10s":                 http.StatusOK,
		"/api/v1/stats?window=ten":                 http.StatusBadRequest,
		"/api/v1/stats?window=-5s":                 http.StatusBadRequest,
		"/api/v1/stats/history":                    http.StatusBadRequest,
		"/api/v1/stats/history?service=catalog":    http.StatusBadRequest,
		"/api/v1/stats/history?service=demo/Bad":   http.StatusBadRequest,
		"/api/v1/stats/history?service=demo/other": http.StatusNotFound,
	} {
		if code := get(path, nil); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
	var def stats.Summary
	if get("/api/v1/stats", &def); def.Window != "30s" {
		t.Errorf("default window %q, want 30s", def.Window)
	}
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
