package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
	"github.com/weftmesh/weft/internal/proxy/tap"
	"github.com/weftmesh/weft/internal/testutil/ports"
)

// tapMesh is a control plane with three workloads of namespace shop, each
// with a real proxy on its inbound port: catalog-0 and catalog-1 (service
// account catalog), and billing-0 (service account billing), whose proxy
// holds catalog's SVID: an impostor the control plane must not tap.
type tapMesh struct {
	cp      *ControlPlane
	stop    context.CancelFunc
	done    chan error
	app     uint32
	inbound map[string]string // workload name -> inbound address
	// conns carry discovery streams as catalog and as billing.
	catalogConn, billingConn *grpc.ClientConn
	web                      *identity.Source
	catalogID                spiffeid.ID
}

func startTapMesh(t *testing.T) *tapMesh {
	t.Helper()
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "app") })}
	go app.Serve(appLn)
	t.Cleanup(func() { app.Close() })
	m := &tapMesh{app: uint32(appLn.Addr().(*net.TCPAddr).Port), inbound: map[string]string{}}

	manifest := ""
	inPorts := map[string]uint32{}
	for _, w := range []struct{ name, sa string }{{"catalog-0", "catalog"}, {"catalog-1", "catalog"}, {"billing-0", "billing"}} {
		inPorts[w.name] = uint32(ports.Free(t))
		m.inbound[w.name] = model.HostPort("127.0.0.1", inPorts[w.name])
		manifest += fmt.Sprintf(`---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: %s, namespace: shop, labels: {app: %s}}
spec:
  serviceAccount: %s
  address: 127.0.0.1
  ports: [{name: http, port: %d}]
  proxy: {inboundPort: %d}
`, w.name, w.sa, w.sa, m.app, inPorts[w.name])
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	m.cp, err = New(Options{ManifestDir: dir, StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var ctx context.Context
	ctx, m.stop = context.WithCancel(context.Background())
	m.done = make(chan error, 1)
	go func() { m.done <- m.cp.Run(ctx) }()
	t.Cleanup(func() {
		m.stop()
		if err := <-m.done; err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	<-m.cp.Loaded()

	catalog, catalogConn := joinAs(t, m.cp, token(t, m.cp, "shop", "catalog"))
	_, billingConn := joinAs(t, m.cp, token(t, m.cp, "shop", "billing"))
	m.web, _ = joinAs(t, m.cp, token(t, m.cp, "shop", "web"))
	m.catalogConn, m.billingConn, m.catalogID = catalogConn, billingConn, catalog.ID()

	for name, port := range inPorts {
		// billing-0's proxy is catalog's: the impostor.
		p := proxy.New(proxy.Options{Logger: slog.New(slog.DiscardHandler), InboundTLS: catalog.ServerTLSConfig(nil),
			TrustDomain: m.cp.TrustDomain(), DrainTimeout: time.Second})
		t.Cleanup(func() { p.Shutdown(context.Background()) })
		wl := &model.Workload{Ref: model.Ref{Namespace: "shop", Name: name}, ServiceAccount: "catalog", Address: "127.0.0.1",
			InboundPort: port, Ports: []model.WorkloadPort{{Name: "http", Port: m.app}}}
		if err := p.Apply(&model.ProxyConfig{Version: 1, Workload: wl}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// connect opens workload's discovery stream, which makes its proxy
// connected as far as the control plane knows, until the returned cancel.
func (m *tapMesh) connect(t *testing.T, workload string) context.CancelFunc {
	t.Helper()
	conn := m.catalogConn
	if strings.HasPrefix(workload, "billing") {
		conn = m.billingConn
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := meshv1.NewDiscoveryClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&meshv1.StreamRequest{Workload: &meshv1.Ref{Namespace: "shop", Name: workload}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatalf("discovery stream of %s: %v", workload, err)
	}
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				return
			}
		}
	}()
	return cancel
}

// call sends a request as web to workload's proxy, which answers from the
// app; each call's path is unique to find its event.
func (m *tapMesh) call(t *testing.T, workload, path string) {
	t.Helper()
	var protos http.Protocols
	protos.SetHTTP2(true)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return m.web.DialTLS(ctx, network, addr, m.catalogID)
		},
		Protocols: &protos,
	}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://"+m.inbound[workload]+path+"?q=secret", nil)
	req.Header.Set(meshheader.TargetPort, strconv.Itoa(int(m.app)))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("call %s: %v", workload, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "app" {
		t.Fatalf("call %s: %s %q", workload, resp.Status, body)
	}
}

// tapClient is one GET /api/v1/tap.
type tapClient struct {
	t       *testing.T
	cancel  context.CancelFunc
	records chan tap.Record
	ended   chan error
}

// openTap taps the control plane with the admin token and query.
func (m *tapMesh) openTap(t *testing.T, query string) *tapClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp := m.tapRequest(t, ctx, query, m.cp.adminToken)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("tap: %s %s", resp.Status, body)
	}
	tc := &tapClient{t: t, cancel: cancel, records: make(chan tap.Record, 1024), ended: make(chan error, 1)}
	go func() {
		defer resp.Body.Close()
		tc.ended <- tap.Read(ctx, resp.Body, func(r tap.Record) error { tc.records <- r; return nil })
	}()
	return tc
}

func (m *tapMesh) tapRequest(t *testing.T, ctx context.Context, query, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.cp.AdminAddr()+"/api/v1/tap?"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// await reads records until one matches, failing after 10s.
func (tc *tapClient) await(what string, match func(tap.Record) bool) tap.Record {
	tc.t.Helper()
	var seen []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-tc.records:
			if match(r) {
				return r
			}
			seen = append(seen, fmt.Sprintf("%+v", r))
		case <-timeout:
			tc.t.Fatalf("no record %s within 10s; saw:\n%s", what, strings.Join(seen, "\n"))
		}
	}
}

// poll reads records until one matches or d passes.
func (tc *tapClient) poll(match func(tap.Record) bool, d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case r := <-tc.records:
			if match(r) {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

// callUntilTapped calls workload until a call's event arrives: a proxy's
// tap opens a moment after it joins, and requests before are not seen.
// Every record read on the way goes through check.
func (m *tapMesh) callUntilTapped(t *testing.T, tc *tapClient, workload, path string, check func(tap.Record)) *tap.Event {
	t.Helper()
	for i := range 50 {
		p := fmt.Sprintf("%s/%d", path, i)
		m.call(t, workload, p)
		var e *tap.Event
		if tc.poll(func(r tap.Record) bool {
			if check != nil {
				check(r)
			}
			if eventAt("shop/"+workload, p)(r) {
				e = r.Event
			}
			return e != nil
		}, 200*time.Millisecond) {
			return e
		}
	}
	t.Fatalf("no event of a call to %s", workload)
	return nil
}

func note(proxy, contains string) func(tap.Record) bool {
	return func(r tap.Record) bool { return r.Proxy == proxy && strings.Contains(r.Note, contains) }
}

func eventAt(proxy, path string) func(tap.Record) bool {
	return func(r tap.Record) bool { return r.Event != nil && r.Proxy == proxy && r.Event.Path == path }
}

// TestTapMergesTheConnectedProxies: one tap streams from every connected
// proxy, follows proxies as they connect and go, and says which it cannot
// tap: here, a proxy that is not its workload's service account.
func TestTapMergesTheConnectedProxies(t *testing.T) {
	m := startTapMesh(t)
	leave0 := m.connect(t, "catalog-0")
	m.connect(t, "billing-0")

	tc := m.openTap(t, "direction=inbound")
	tc.await("counting the proxies", note("", "tapping 2 proxies"))
	r := tc.await("about billing-0's impostor", note("shop/billing-0", "cannot tap"))
	if want := "want " + strings.Replace(m.catalogID.String(), "/sa/catalog", "/sa/billing", 1); !strings.Contains(r.Note, want) {
		t.Errorf("note about the impostor %q does not say %q", r.Note, want)
	}

	// catalog-0's requests arrive, once its tap is open.
	e := m.callUntilTapped(t, tc, "catalog-0", "/first", nil)
	if e.Proxy != "shop/catalog-0" || e.Direction != "inbound" || !e.TLS || e.Method != "GET" ||
		e.SourceIdentity != m.web.ID().String() || e.DestinationIdentity != m.catalogID.String() || e.Status != 200 {
		t.Errorf("event %+v", e)
	}

	// catalog-1 joins.
	m.connect(t, "catalog-1")
	tc.await("catalog-1 joining", note("shop/catalog-1", "joined"))
	m.callUntilTapped(t, tc, "catalog-1", "/joined", nil)

	// catalog-0 goes: its requests are no longer tapped, catalog-1's are.
	leave0()
	tc.await("catalog-0 leaving", note("shop/catalog-0", "left the tap"))
	m.call(t, "catalog-0", "/after-leave")
	m.call(t, "catalog-1", "/after-leave")
	tc.await("catalog-1's request", func(r tap.Record) bool {
		if eventAt("shop/catalog-0", "/after-leave")(r) {
			t.Error("a request to catalog-0 after it left the tap was streamed")
		}
		return eventAt("shop/catalog-1", "/after-leave")(r)
	})
}

// TestTapOneWorkload: a workload filter taps that workload's proxy alone,
// and waits for it when it is not connected.
func TestTapOneWorkload(t *testing.T) {
	m := startTapMesh(t)
	m.connect(t, "catalog-0")
	tc := m.openTap(t, "workload=shop/catalog-1")
	tc.await("waiting", note("", "no proxy of workload shop/catalog-1 is connected"))
	m.connect(t, "catalog-1")
	tc.await("catalog-1 joining", note("shop/catalog-1", "joined"))
	m.call(t, "catalog-0", "/not-this-one")
	m.callUntilTapped(t, tc, "catalog-1", "/this-one", func(r tap.Record) {
		if r.Event != nil && r.Proxy != "shop/catalog-1" {
			t.Errorf("tapping catalog-1 alone, got %+v", r)
		}
	})
}

// TestTapLimit: a tap streams from at most maxTapped proxies, and says so.
func TestTapLimit(t *testing.T) {
	defer func(n int) { maxTapped = n }(maxTapped)
	maxTapped = 1
	m := startTapMesh(t)
	m.connect(t, "catalog-0")
	m.connect(t, "catalog-1")
	tc := m.openTap(t, "")
	tc.await("counting", note("", "tapping 1 proxy"))
	tc.await("the limit", note("", "2 proxies match, and a tap streams from at most 1 at once"))
	m.callUntilTapped(t, tc, "catalog-0", "/within", func(r tap.Record) {
		if r.Event != nil && r.Proxy != "shop/catalog-0" {
			t.Errorf("event from %s, beyond the limit", r.Proxy)
		}
	})
	m.call(t, "catalog-1", "/beyond")
	m.callUntilTapped(t, tc, "catalog-0", "/after", func(r tap.Record) {
		if r.Event != nil && r.Proxy != "shop/catalog-0" {
			t.Errorf("event from %s, beyond the limit", r.Proxy)
		}
	})
}

// TestTapNeedsTheAdminToken: the tap shows who calls whom; only the
// operator may see it. A bad filter is refused before any proxy is tapped.
func TestTapNeedsTheAdminToken(t *testing.T) {
	m := startTapMesh(t)
	for _, tc := range []struct {
		query, token string
		want         int
	}{
		{"", "", http.StatusUnauthorized},
		{"", "not-the-token", http.StatusUnauthorized},
		{"direction=sideways", m.cp.adminToken, http.StatusBadRequest},
		{"workload=catalog-0", m.cp.adminToken, http.StatusBadRequest},
		{"service=shop/Catalog", m.cp.adminToken, http.StatusBadRequest},
		{"path=products", m.cp.adminToken, http.StatusBadRequest},
	} {
		resp := m.tapRequest(t, t.Context(), tc.query, tc.token)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("tap %q with token %q: %s %s, want %d", tc.query, tc.token, resp.Status, body, tc.want)
		}
	}
}

// TestTapEndsWhenTheControlPlaneStops: an open tap does not hold the
// control plane's shutdown.
func TestTapEndsWhenTheControlPlaneStops(t *testing.T) {
	m := startTapMesh(t)
	m.connect(t, "catalog-0")
	tc := m.openTap(t, "")
	tc.await("counting", note("", "tapping 1 proxy"))
	start := time.Now()
	m.stop()
	select {
	case err := <-m.done:
		m.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("control plane stopped with a tap open: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the control plane did not stop")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopping with a tap open took %s", took)
	}
	select {
	case <-tc.ended:
	case <-time.After(5 * time.Second):
		t.Error("the tap stream is still open")
	}
}
