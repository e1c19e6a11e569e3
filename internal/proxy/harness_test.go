package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/testutil/ports"
	"github.com/weftmesh/weft/internal/testutil/tcpserver"
)

// The harness builds real proxies on loopback with hand-made configs:
// a server side (one workload, its app ports) and a client side (one
// workload calling service demo/api through local outbound ports).

var apiRef = model.Ref{Namespace: "demo", Name: "api"}

func testLogger() *slog.Logger {
	if os.Getenv("WEFT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t testing.TB) uint32 {
	t.Helper()
	return uint32(ports.Free(t))
}

func newProxy(t testing.TB, opts proxy.Options) *proxy.Proxy {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 5 * time.Second
	}
	p := proxy.New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return p
}

// serverSide is a workload with its proxy in front of app ports.
type serverSide struct {
	proxy *proxy.Proxy
	wl    *model.Workload
}

func newServer(t testing.TB, name string, ports ...model.WorkloadPort) *serverSide {
	t.Helper()
	return newServerWith(t, proxy.Options{}, name, ports...)
}

// newServerWith is newServer with options for the proxy.
func newServerWith(t testing.TB, opts proxy.Options, name string, ports ...model.WorkloadPort) *serverSide {
	t.Helper()
	s := &serverSide{
		proxy: newProxy(t, opts),
		wl: &model.Workload{
			Ref:         model.Ref{Namespace: "demo", Name: name},
			Labels:      map[string]string{"app": "api"},
			Address:     "127.0.0.1",
			Ports:       ports,
			InboundPort: freePort(t),
		},
	}
	if err := s.proxy.Apply(&model.ProxyConfig{Version: 1, Workload: s.wl}); err != nil {
		t.Fatalf("apply server config: %v", err)
	}
	return s
}

func (s *serverSide) inboundAddr() string {
	return net.JoinHostPort(s.wl.Address, strconv.Itoa(int(s.wl.InboundPort)))
}

// endpoint is s as an endpoint of a service, serving service port sp on
// workload port wp, for each pair in targets.
func (s *serverSide) endpoint(targets map[uint32]uint32) *model.Endpoint {
	return &model.Endpoint{
		ID:          s.wl.Ref.String(),
		Workload:    s.wl.Ref,
		Address:     s.wl.Address,
		ProxyPort:   s.wl.InboundPort,
		Labels:      s.wl.Labels,
		TargetPorts: targets,
	}
}

// clientSide is the calling workload's proxy.
type clientSide struct {
	t       testing.TB
	proxy   *proxy.Proxy
	wl      *model.Workload
	version uint64
	local   map[uint32]uint32 // service port -> local port
}

// newClient makes a client proxy with an outbound port for each port of
// svc, and applies svc with the given endpoints (svc nil: the service is
// unknown to the mesh).
func newClient(t testing.TB, opts proxy.Options, svc *model.Service, ports []uint32, eps ...*model.Endpoint) *clientSide {
	t.Helper()
	c := &clientSide{
		t:     t,
		proxy: newProxy(t, opts),
		wl: &model.Workload{
			Ref:         model.Ref{Namespace: "demo", Name: "web-0"},
			Address:     "127.0.0.1",
			InboundPort: freePort(t),
		},
		local: map[uint32]uint32{},
	}
	for _, port := range ports {
		lp := freePort(t)
		c.local[port] = lp
		c.wl.Outbound = append(c.wl.Outbound, model.Outbound{Service: apiRef, Port: port, LocalPort: lp})
	}
	if err := c.apply(svc, eps...); err != nil {
		t.Fatalf("apply client config: %v", err)
	}
	return c
}

func (c *clientSide) apply(svc *model.Service, eps ...*model.Endpoint) error {
	c.version++
	cfg := &model.ProxyConfig{Version: c.version, Workload: c.wl, Services: map[model.Ref]*model.ServiceState{}}
	if svc != nil {
		cfg.Services[svc.Ref] = &model.ServiceState{Service: svc, Endpoints: eps, Version: c.version}
	}
	return c.proxy.Apply(cfg)
}

// addr is where the app calls service port port.
func (c *clientSide) addr(port uint32) string {
	return "127.0.0.1:" + strconv.Itoa(int(c.local[port]))
}

func service(ports ...model.ServicePort) *model.Service {
	return &model.Service{Ref: apiRef, Selector: map[string]string{"app": "api"}, Ports: ports}
}

// meshPair is the common case: service demo/api port 80 (protocol
// svcProto) served by one workload on appPort (protocol appProto).
func meshPair(t testing.TB, svcProto, appProto model.Protocol, appPort uint32) (*clientSide, *serverSide) {
	t.Helper()
	s := newServer(t, "api-0", model.WorkloadPort{Name: "web", Port: appPort, Protocol: appProto})
	c := newClient(t, proxy.Options{}, service(model.ServicePort{Name: "web", Port: 80, Protocol: svcProto}),
		[]uint32{80}, s.endpoint(map[uint32]uint32{80: appPort}))
	return c, s
}

// serveHTTP starts an app HTTP server speaking HTTP/1.1 and h2c on a
// loopback port and returns the port.
func serveHTTP(t testing.TB, h http.Handler) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &protos}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

// serveTCP runs handle for each connection to a loopback port.
func serveTCP(t *testing.T, handle func(net.Conn)) uint32 {
	t.Helper()
	return uint32(tcpserver.Serve(t, func(c *net.TCPConn) { handle(c) }).Port)
}

func h1Client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 20 * time.Second}
}

func h2cClient() *http.Client {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &protos}, Timeout: 20 * time.Second}
}

// withReuse records in *reused whether the request went on a reused
// connection.
func withReuse(ctx context.Context, reused *bool) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { *reused = info.Reused },
	})
}
