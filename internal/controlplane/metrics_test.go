package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/proxy/control"
)

// families is one scrape of /metrics, parsed.
type families map[string]*dto.MetricFamily

// scrape fetches /metrics the way Prometheus does: no admin token.
func scrape(t *testing.T, cp *ControlPlane) families {
	t.Helper()
	resp, err := http.Get("http://" + cp.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(prommodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metric finds the series of name with the given label pairs (and any
// others), or nil.
func (f families) metric(name string, labels ...string) *dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value, -1 when the series is missing
// (so a comparison with what is expected fails, saying so).
func (f families) value(name string, labels ...string) float64 {
	m := f.metric(name, labels...)
	switch {
	case m == nil:
		return -1
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return -1
}

// want is one expected value: of the series, or of its rise since base.
type want struct {
	name   string
	labels []string
	value  float64
	rise   bool
}

func is(value float64, name string, labels ...string) want {
	return want{name: name, labels: labels, value: value}
}

func rose(by float64, name string, labels ...string) want {
	return want{name: name, labels: labels, value: by, rise: true}
}

// eventually scrapes until every expectation holds: the parts report
// after they act (a push is counted once Send returns, a sync after it
// applied), so a test that saw the effect may scrape a moment early.
func eventually(t *testing.T, cp *ControlPlane, base families, wants ...want) families {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := scrape(t, cp)
		var wrong []string
		for _, w := range wants {
			v := got.value(w.name, w.labels...)
			desc := fmt.Sprintf("%s%v = %v", w.name, w.labels, v)
			if w.rise {
				v -= base.value(w.name, w.labels...)
				desc = fmt.Sprintf("%s%v rose by %v", w.name, w.labels, v)
			}
			if v != w.value {
				wrong = append(wrong, fmt.Sprintf("%s, want %v", desc, w.value))
			}
		}
		if len(wrong) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics after 10s:\n  %s", strings.Join(wrong, "\n  "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// proxyStream is one discovery stream, as a proxy of shop/catalog-0 that
// calls shop/catalog opens it.
type proxyStream struct {
	cancel context.CancelFunc
	ch     chan *meshv1.StreamResponse
}

func openProxy(t *testing.T, conn *grpc.ClientConn) *proxyStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := meshv1.NewDiscoveryClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := &meshv1.StreamRequest{
		Workload:  &meshv1.Ref{Namespace: "shop", Name: "catalog-0"},
		Subscribe: []*meshv1.Ref{{Namespace: "shop", Name: "catalog"}},
	}
	if err := st.Send(first); err != nil {
		t.Fatal(err)
	}
	ps := &proxyStream{cancel: cancel, ch: make(chan *meshv1.StreamResponse, 100)}
	go func() {
		defer close(ps.ch)
		for {
			resp, err := st.Recv()
			if err != nil {
				return
			}
			ps.ch <- resp
		}
	}()
	return ps
}

func (ps *proxyStream) next(t *testing.T) *meshv1.StreamResponse {
	t.Helper()
	select {
	case resp, ok := <-ps.ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return resp
	case <-time.After(10 * time.Second):
		t.Fatal("no response within 10s")
	}
	return nil
}

func writeManifest(t *testing.T, dir, name, content string) {
	t.Helper()
	// Through a rename, so the watcher never reads half a file.
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// TestMetrics drives a real control plane (manifest directory, CA,
// discovery over mTLS) and checks that each metric moved by exactly what
// happened.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	writeManifest(t, dir, "mesh.yaml", meshYAML)
	// No periodic resync during the test: every sync is one the test causes.
	cp := runControlPlane(t, Options{ManifestDir: dir, StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Resync: time.Hour})

	start := eventually(t, cp, nil,
		is(0, "weft_control_proxies_connected"),
		is(1, "weft_control_manifest_syncs_total", "result", "ok"),
		is(0, "weft_control_manifest_problems"),
		is(0, "weft_control_routes_rejected"),
		is(float64(cp.Store().Snapshot().Version), "weft_control_model_version"),
		is(float64(cp.ca.ActiveRoot().NotAfter.Unix()), "weft_control_ca_root_expiry_timestamp_seconds", "active", "true"),
		is(float64(cp.ca.Intermediate().NotAfter.Unix()), "weft_control_ca_intermediate_expiry_timestamp_seconds"),
		is(0, "weft_control_certificates_issued_total", "auth", "join_token", "outcome", "issued"),
	)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if start[name] == nil {
			t.Errorf("%s missing: the Go and process collectors should be registered", name)
		}
	}
	if m := start.metric("weft_control_ca_root_expiry_timestamp_seconds", "active", "false"); m != nil {
		t.Errorf("an inactive root's expiry outside a rotation: %v", m)
	}

	// A workload's first certificate, with a join token, then a renewal
	// with its SVID.
	src, conn := joinAs(t, cp, token(t, cp, "shop", "catalog"))
	eventually(t, cp, start,
		rose(1, "weft_control_certificates_issued_total", "auth", "join_token", "outcome", "issued"),
		rose(0, "weft_control_certificates_issued_total", "auth", "svid", "outcome", "issued"),
	)
	src.RenewNow()
	base := eventually(t, cp, start,
		rose(1, "weft_control_certificates_issued_total", "auth", "join_token", "outcome", "issued"),
		rose(1, "weft_control_certificates_issued_total", "auth", "svid", "outcome", "issued"),
	)

	// N proxies connect; each gets one full response.
	const proxies = 3
	var streams []*proxyStream
	for range proxies {
		ps := openProxy(t, conn)
		if resp := ps.next(t); len(resp.GetServices()) != 1 || resp.GetWorkload() == nil {
			t.Fatalf("first response: %v", resp)
		}
		streams = append(streams, ps)
	}
	base = eventually(t, cp, base,
		is(proxies, "weft_control_proxies_connected"),
		rose(proxies, "weft_control_proxy_connects_total", "outcome", "ok"),
		rose(proxies, "weft_control_pushes_total", "kind", "full", "outcome", "sent"),
		rose(0, "weft_control_pushes_total", "kind", "incremental", "outcome", "sent"),
		// First responses are not caused by a snapshot: no latency.
		rose(0, "weft_control_push_duration_seconds_count"),
	)

	// The service changes N times; every proxy gets each change as one
	// delta, before the next change is made.
	const changes = 4
	for i := range changes {
		port := 81 + i
		writeManifest(t, dir, "mesh.yaml", strings.Replace(meshYAML, "port: 80,", fmt.Sprintf("port: %d,", port), 1))
		for _, ps := range streams {
			resp := ps.next(t)
			if len(resp.GetServices()) != 1 || resp.GetServices()[0].GetService().GetPorts()[0].GetPort() != uint32(port) {
				t.Fatalf("change %d: got %v, want the service with port %d", i, resp, port)
			}
		}
	}
	after := eventually(t, cp, base,
		rose(changes, "weft_control_model_version"),
		rose(changes, "weft_control_manifest_syncs_total", "result", "ok"),
		rose(proxies*changes, "weft_control_pushes_total", "kind", "incremental", "outcome", "sent"),
		rose(0, "weft_control_pushes_total", "kind", "full", "outcome", "sent"),
		rose(0, "weft_control_pushes_total", "kind", "incremental", "outcome", "error"),
		rose(0, "weft_control_proxy_disconnects_total", "reason", "ok"),
		is(proxies, "weft_control_proxies_connected"),
	)
	h := after.metric("weft_control_push_duration_seconds").GetHistogram()
	if got := h.GetSampleCount() - base.metric("weft_control_push_duration_seconds").GetHistogram().GetSampleCount(); got != proxies*changes {
		t.Errorf("push latency observed %d times, want %d (one per proxy and change)", got, proxies*changes)
	}
	if h.GetSampleSum() <= 0 || h.GetSampleSum() > 10*proxies*changes {
		t.Errorf("push latency sum %vs for %d pushes", h.GetSampleSum(), proxies*changes)
	}
	// The text format lists the +Inf bucket too: the last bound is before it.
	if b := h.GetBucket(); len(b) < 2 || b[0].GetUpperBound() != 0.0001 || b[len(b)-2].GetUpperBound() != 10 {
		t.Errorf("push latency buckets %v, want 0.1ms to 10s", b)
	}

	// A bad manifest is one problem; fixing it clears it. Neither changes
	// the model, so nothing is pushed.
	writeManifest(t, dir, "bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: shop}\nspec: {ports: [{port: 70000}]}\n")
	bad := eventually(t, cp, after,
		is(1, "weft_control_manifest_problems"),
		rose(1, "weft_control_manifest_syncs_total", "result", "problems"),
	)
	writeManifest(t, dir, "bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: shop}\nspec: {ports: [{port: 7000}]}\n")
	eventually(t, cp, bad,
		is(0, "weft_control_manifest_problems"),
		rose(1, "weft_control_manifest_syncs_total", "result", "ok"),
	)

	// A route to a backend that does not exist is rejected.
	writeManifest(t, dir, "route.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: typo, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules: [{backendRefs: [{name: catalog-v3, port: 80}]}]
`)
	eventually(t, cp, nil, is(1, "weft_control_routes_rejected"), is(0, "weft_control_manifest_problems"))
	if n := len(cp.Store().Snapshot().RouteRejections()); n != 1 {
		t.Errorf("the model rejects %d routes, want 1", n)
	}

	// Proxies leave by cancelling their streams, as weft-proxy does.
	beforeLeave := scrape(t, cp)
	for _, ps := range streams {
		ps.cancel()
	}
	eventually(t, cp, beforeLeave,
		is(0, "weft_control_proxies_connected"),
		rose(proxies, "weft_control_proxy_disconnects_total", "reason", "ok"),
		rose(0, "weft_control_proxy_disconnects_total", "reason", "error"),
	)

	// Refusals. A stream for a workload of another namespace is turned
	// away at its start, as is one without a certificate; one for a
	// workload of the same namespace but another service account is
	// accepted, then ended when the workload is to be sent. And
	// certificates: a CSR the CA will not sign, with a valid token, and a
	// caller with neither token nor certificate.
	beforeRefusals := scrape(t, cp)
	_, other := joinAs(t, cp, token(t, cp, "shop", "billing"))
	if _, err := firstResponse(t, other, "bank/vault-0"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stream for another namespace's workload: %v, want PermissionDenied", err)
	}
	if _, err := firstResponse(t, other, "shop/catalog-0"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stream for another service account's workload: %v, want PermissionDenied", err)
	}
	td := cp.ca.TrustDomain()
	trust, _, err := control.NewTrust(td, token(t, cp, "shop", "catalog"))
	if err != nil {
		t.Fatal(err)
	}
	bare, err := control.Dial(cp.GRPCAddr(), trust.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	tok := token(t, cp, "shop", "catalog")
	if _, err := meshv1.NewIdentityClient(bare).Certify(cctx, &meshv1.CertifyRequest{Csr: []byte("not a CSR"), Token: tok}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("certify a malformed CSR: %v, want PermissionDenied", err)
	}
	if _, err := meshv1.NewIdentityClient(bare).Certify(cctx, &meshv1.CertifyRequest{Csr: []byte("not a CSR")}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("certify with neither token nor SVID: %v, want Unauthenticated", err)
	}
	// A stream without a certificate is refused before discovery sees it.
	if _, err := firstResponse(t, bare, "shop/catalog-0"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("stream without an SVID: %v, want Unauthenticated", err)
	}
	eventually(t, cp, beforeRefusals,
		rose(2, "weft_control_proxy_connects_total", "outcome", "refused"),
		rose(1, "weft_control_proxy_connects_total", "outcome", "ok"),
		rose(1, "weft_control_proxy_disconnects_total", "reason", "refused"),
		rose(1, "weft_control_certificates_issued_total", "auth", "join_token", "outcome", "refused"),
		rose(1, "weft_control_certificates_issued_total", "auth", "join_token", "outcome", "issued"), // billing's
		rose(1, "weft_control_certificates_issued_total", "auth", "none", "outcome", "refused"),
		rose(0, "weft_control_certificates_issued_total", "auth", "svid", "outcome", "refused"),
		is(0, "weft_control_proxies_connected"),
	)
}

// TestMetricsNeedNoAdminToken: /metrics is read-only and open, like /live;
// the calls that change things still need the admin token.
func TestMetricsNeedNoAdminToken(t *testing.T) {
	cp := startControlPlane(t)
	resp, err := http.Get("http://" + cp.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /metrics without a token: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, path := range []string{"/api/v1/identity/tokens", "/api/v1/identity/tokens/revoke", "/api/v1/identity/rotate"} {
		resp, err := http.Post("http://"+cp.AdminAddr()+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s without the admin token: %s, want 401", path, resp.Status)
		}
	}
}
