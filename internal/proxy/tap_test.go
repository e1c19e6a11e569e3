package proxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
	"github.com/weftmesh/weft/internal/proxy/tap"
)

// tapMesh is a CA and the identities of a tap test: the control plane, the
// tapped workload (demo/api-0, service account api) and a caller (web).
type tapMesh struct {
	td           spiffeid.TrustDomain
	cp, api, web *identity.Source
	apiID, webID spiffeid.ID
	proxy        *proxy.Proxy
	wl           *model.Workload
	appHits      atomic.Int64
	// appClientCert is the X-Forwarded-Client-Cert of the app's last request.
	appClientCert atomic.Value
	inbound       string
}

func newTapMesh(t *testing.T) *tapMesh {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("weft.test")
	authority, err := ca.LoadOrCreate(t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	source := func(id spiffeid.ID) *identity.Source {
		src := identity.NewSource(id, authority.Certifier(id, time.Hour), testLogger())
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go src.Run(ctx)
		select {
		case <-src.Ready():
		case <-time.After(10 * time.Second):
			t.Fatalf("no SVID for %s", id)
		}
		return src
	}
	m := &tapMesh{td: td}
	m.apiID, _ = identity.WorkloadID(td, "demo", "api")
	m.webID, _ = identity.WorkloadID(td, "demo", "web")
	m.cp, m.api, m.web = source(identity.ControlPlaneID(td)), source(m.apiID), source(m.webID)

	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.appHits.Add(1)
		m.appClientCert.Store(r.Header.Get(proxy.ClientCertHeader))
		io.WriteString(w, "app")
	}))
	m.proxy = newProxy(t, proxy.Options{InboundTLS: m.api.ServerTLSConfig(nil), TrustDomain: td.String()})
	m.wl = &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "api-0"}, ServiceAccount: "api", Address: "127.0.0.1",
		InboundPort: freePort(t), Ports: []model.WorkloadPort{{Name: "http", Port: app, Protocol: model.ProtocolHTTP1}}}
	// Permissive, so that a plaintext client gets as far as a request.
	if err := m.proxy.Apply(&model.ProxyConfig{Version: 1, Workload: m.wl, Authz: &model.Authz{Permissive: true}}); err != nil {
		t.Fatal(err)
	}
	m.inbound = net.JoinHostPort("127.0.0.1", strconv.Itoa(int(m.wl.InboundPort)))
	return m
}

// client speaks HTTP/2 over mTLS as src to the tapped proxy, checking it
// is demo/api.
func (m *tapMesh) client(src *identity.Source) *http.Client {
	var protos http.Protocols
	protos.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return src.DialTLS(ctx, network, addr, m.apiID)
		},
		Protocols: &protos,
	}}
}

// tapSend sends a request to the tapped proxy's inbound port and returns the
// status and body; a response that streams (a tap) is returned open.
func tapSend(t *testing.T, ctx context.Context, c *http.Client, method, url string, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func tapBody(t *testing.T, resp *http.Response) (int, string) {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var tapHeader = http.Header{meshheader.Tap: {meshheader.TapValue}}

// TestTapServedOnlyToTheControlPlane: the control plane's SVID gets the
// stream, with verified identities and no query strings; anyone else, a
// workload's SVID or a plaintext client, gets 403, counted and streamed
// like any refusal, and nothing reaches the app.
func TestTapServedOnlyToTheControlPlane(t *testing.T) {
	m := newTapMesh(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	tapResp := tapSend(t, ctx, m.client(m.cp), http.MethodGet, "https://"+m.inbound+"/tap?direction=inbound", tapHeader)
	defer tapResp.Body.Close()
	if tapResp.StatusCode != http.StatusOK || tapResp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("the control plane's tap: %s %s", tapResp.Status, tapResp.Header.Get("Content-Type"))
	}
	records := make(chan tap.Record, 16)
	go tap.Read(ctx, tapResp.Body, func(r tap.Record) error { records <- r; return nil })
	next := func(what string) *tap.Event {
		t.Helper()
		select {
		case r := <-records:
			if r.Event == nil {
				t.Fatalf("%s: record without an event: %+v", what, r)
			}
			return r.Event
		case <-ctx.Done():
			t.Fatalf("%s: no event", what)
			return nil
		}
	}

	// The tap itself is not a request the workload is taking.
	if got := tapMetric(t, m.proxy, `weft_requests_in_flight{direction="inbound"}`); got != "0" {
		t.Errorf("with a tap open, inbound requests in flight = %s, want 0", got)
	}

	target := http.Header{meshheader.TargetPort: {strconv.Itoa(int(m.wl.Ports[0].Port))}}
	if code, body := tapBody(t, tapSend(t, ctx, m.client(m.web), http.MethodGet, "https://"+m.inbound+"/products/7?token=secret", target)); code != 200 || body != "app" {
		t.Fatalf("web's request: %d %q", code, body)
	}
	e := next("web's request")
	want := tap.Event{Proxy: "demo/api-0", Direction: "inbound", Protocol: "http2", Method: "GET", Authority: m.inbound,
		Path: "/products/7", Status: 200, SourceIdentity: m.webID.String(), DestinationIdentity: m.apiID.String(),
		DestinationWorkload: "demo/api-0", TLS: true}
	got := *e
	got.Time, got.Latency = time.Time{}, 0
	if got != want {
		t.Errorf("event\n got %+v\nwant %+v", got, want)
	}
	if e.Latency <= 0 || time.Since(e.Time) > 10*time.Second {
		t.Errorf("event time %s, latency %s", e.Time, e.Latency)
	}

	refusals := []struct {
		name   string
		client *http.Client
		method string
		url    string
		source string
		why    string
	}{
		{"a workload's SVID", m.client(m.web), http.MethodGet, "https://" + m.inbound + "/tap", m.webID.String(), "served only to the control plane"},
		{"a plaintext client", &http.Client{}, http.MethodGet, "http://" + m.inbound + "/tap", "unauthenticated", "not to a plaintext client"},
		{"the control plane, not GET", m.client(m.cp), http.MethodPost, "https://" + m.inbound + "/tap", identity.ControlPlaneID(m.td).String(), "want GET"},
	}
	for _, tc := range refusals {
		code, body := tapBody(t, tapSend(t, ctx, tc.client, tc.method, tc.url, tapHeader))
		if code != http.StatusForbidden || !strings.Contains(body, tc.why) {
			t.Errorf("tap by %s: %d %q, want 403 saying %q", tc.name, code, body, tc.why)
		}
		// Refusals show in the tap, like any request the inbound refuses.
		e := next("refusal of " + tc.name)
		if e.Status != http.StatusForbidden || e.SourceIdentity != tc.source || e.TLS != (tc.source != "unauthenticated") {
			t.Errorf("refusal of %s in the tap: status %d, source %q, tls %v", tc.name, e.Status, e.SourceIdentity, e.TLS)
		}
	}
	if n := m.appHits.Load(); n != 1 {
		t.Errorf("the app took %d requests, want 1: a tap request must never reach it", n)
	}
	metrics := tapMetrics(t, m.proxy)
	for _, source := range []string{m.webID.String(), "unauthenticated"} {
		if !strings.Contains(metrics, `source_identity="`+source+`",source_workload="",status_class="4xx",status_code="403"`) {
			t.Errorf("no 403 counted from %s in\n%s", source, tapLines(metrics, "weft_responses_total"))
		}
	}
}

// TestTapEndsWhenTheProxyDrains: a tap stream never ends by itself, so a
// drain ends it rather than wait for it its whole timeout.
func TestTapEndsWhenTheProxyDrains(t *testing.T) {
	m := newTapMesh(t)
	resp := tapSend(t, t.Context(), m.client(m.cp), http.MethodGet, "https://"+m.inbound+"/tap", tapHeader)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tap: %s", resp.Status)
	}
	ended := make(chan error, 1)
	go func() { ended <- tap.Read(t.Context(), resp.Body, func(tap.Record) error { return nil }) }()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.proxy.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a tap open: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown with a tap open took %s", took)
	}
	select {
	case err := <-ended:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("tap stream ended with %v, want the end of the stream", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the tap stream is still open after the proxy shut down")
	}
}

// TestTapHeaderNeverReachesTheApp: a request that names an app port and
// carries the tap header from a workload is refused, not forwarded with the
// header stripped.
func TestTapHeaderNeverReachesTheApp(t *testing.T) {
	m := newTapMesh(t)
	h := http.Header{meshheader.Tap: {"0"}, meshheader.TargetPort: {strconv.Itoa(int(m.wl.Ports[0].Port))}}
	code, _ := tapBody(t, tapSend(t, t.Context(), m.client(m.web), http.MethodGet, "https://"+m.inbound+"/", h))
	if code != http.StatusForbidden || m.appHits.Load() != 0 {
		t.Errorf("tap header with a target port: %d, app hits %d; want 403 and none", code, m.appHits.Load())
	}
}

func tapMetrics(t *testing.T, p *proxy.Proxy) string {
	t.Helper()
	rec := httptest.NewRecorder()
	p.Metrics().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// tapMetric is the value of the series named exactly so, "" if absent.
func tapMetric(t *testing.T, p *proxy.Proxy, series string) string {
	t.Helper()
	for _, l := range strings.Split(tapMetrics(t, p), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

func tapLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
