package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/testutil/tlstest"
)

// fakeNAT stands in for iptables and conntrack: the test dials the
// proxy's transparent port directly and says where the connection was
// going, as a REDIRECT rule would have recorded. The real thing is tested
// in package iptables and in the netns end-to-end test.
type fakeNAT struct {
	mu  sync.Mutex
	dst map[string]netip.AddrPort // by the client's local address
}

func newFakeNAT() *fakeNAT { return &fakeNAT{dst: map[string]netip.AddrPort{}} }

// dial connects to the proxy's port as if the client had opened a
// connection to dst.
func (n *fakeNAT) dial(ctx context.Context, proxyPort uint32, dst string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(int(proxyPort)))
	if err != nil {
		return nil, err
	}
	// "" records a connection no rule redirected.
	var orig netip.AddrPort
	if dst != "" {
		orig = netip.MustParseAddrPort(dst)
	}
	n.mu.Lock()
	n.dst[c.LocalAddr().String()] = orig
	n.mu.Unlock()
	return c, nil
}

// originalDst answers what dial recorded, waiting for it a moment since
// the proxy may accept before dial has recorded it. A connection no rule
// redirected answers its own local address, as conntrack does.
func (n *fakeNAT) originalDst(c net.Conn) (netip.AddrPort, error) {
	deadline := time.Now().Add(time.Second)
	for {
		n.mu.Lock()
		dst, ok := n.dst[c.RemoteAddr().String()]
		n.mu.Unlock()
		switch {
		case ok && dst.IsValid():
			return dst, nil
		case ok:
			return c.LocalAddr().(*net.TCPAddr).AddrPort(), nil
		case time.Now().After(deadline):
			return netip.AddrPort{}, fmt.Errorf("no connection from %s was dialed", c.RemoteAddr())
		}
		time.Sleep(time.Millisecond)
	}
}

// client is an HTTP client whose every connection goes through the
// proxy's transparent outbound port, to the URL's host and port.
func (n *fakeNAT) client(port uint32) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return n.dial(ctx, port, addr) },
	}}
}

// appEcho answers what the app saw of a request.
type appEcho struct {
	Port        uint32 `json:"port"`
	Host        string `json:"host"`
	Path        string `json:"path"`
	MeshHeaders int    `json:"meshHeaders"`
}

func serveEcho(t *testing.T) uint32 {
	t.Helper()
	var port uint32
	port = serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 0
		for k := range r.Header {
			if strings.HasPrefix(k, "Weft-") {
				n++
			}
		}
		json.NewEncoder(w).Encode(appEcho{Port: port, Host: r.Host, Path: r.URL.Path, MeshHeaders: n})
	}))
	return port
}

// serveGreeter speaks first, as SMTP or MySQL do, then echoes lines.
func serveGreeter(t *testing.T, name string) uint32 {
	t.Helper()
	return serveTCP(t, func(c net.Conn) {
		fmt.Fprintf(c, "220 %s ready\n", name)
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			fmt.Fprintf(c, "%s: %s\n", name, sc.Text())
		}
	})
}

func getEcho(t *testing.T, c *http.Client, url string) (appEcho, int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e appEcho
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, body)
		}
	}
	return e, resp.StatusCode, string(body)
}

// closedSoon reports whether the proxy closes c without a byte; a reset
// (it closed with the client's bytes unread) is a close.
func closedSoon(c net.Conn) error {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("not closed: %v", err)
	}
	if len(b) > 0 {
		return fmt.Errorf("answered %q", b)
	}
	return nil
}

// transparentClient is a client workload with no outbound list: only the
// control plane's services, reached by cluster IP.
func transparentClient(t *testing.T, nat *fakeNAT, opts proxy.Options, services ...*model.ServiceState) (*proxy.Proxy, *proxy.Transparent, func(...*model.ServiceState)) {
	t.Helper()
	tr := &proxy.Transparent{OutboundPort: freePort(t), InboundPort: freePort(t), OriginalDst: nat.originalDst}
	opts.Transparent = tr
	p := newProxy(t, opts)
	wl := &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "web-0"}, Address: "127.0.0.1", InboundPort: freePort(t)}
	version := uint64(0)
	apply := func(services ...*model.ServiceState) {
		t.Helper()
		version++
		cfg := &model.ProxyConfig{Version: version, Workload: wl, Services: map[model.Ref]*model.ServiceState{}}
		for _, ss := range services {
			cfg.Services[ss.Service.Ref] = ss
		}
		if err := p.Apply(cfg); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	apply(services...)
	return p, tr, apply
}

func TestTransparentOutbound(t *testing.T) {
	httpPort, detectPort, greeter := serveEcho(t), serveEcho(t), serveGreeter(t, "api-0")
	s := newServer(t, "api-0",
		model.WorkloadPort{Name: "http", Port: httpPort, Protocol: model.ProtocolHTTP1},
		model.WorkloadPort{Name: "other", Port: detectPort},
		model.WorkloadPort{Name: "smtp", Port: greeter})
	svc := service(
		model.ServicePort{Name: "http", Port: 80, Protocol: model.ProtocolHTTP1},
		model.ServicePort{Name: "other", Port: 8080},
		model.ServicePort{Name: "smtp", Port: 25})
	svc.ClusterIPs = []string{"198.19.0.10", "fd00:19::a"}
	api := &model.ServiceState{Service: svc, Endpoints: []*model.Endpoint{s.endpoint(map[uint32]uint32{80: httpPort, 8080: detectPort, 25: greeter})}}
	nat := newFakeNAT()
	const detectTimeout = 50 * time.Millisecond
	_, tr, apply := transparentClient(t, nat, proxy.Options{DetectTimeout: detectTimeout}, api)
	c := nat.client(tr.OutboundPort)

	// A cluster IP and a service port: the service, through the mesh, in
	// the port's protocol or the one detected; the app sees the request
	// as the client sent it.
	for _, tc := range []struct {
		url  string
		port uint32
	}{
		{"http://198.19.0.10/a", httpPort},
		{"http://198.19.0.10:8080/b", detectPort},
		{"http://[fd00:19::a]:80/c", httpPort},
	} {
		e, code, body := getEcho(t, c, tc.url)
		if code != http.StatusOK || e.Port != tc.port || e.MeshHeaders != 0 || !strings.HasPrefix(tc.url, "http://"+e.Host) {
			t.Errorf("GET %s: %d %s, %+v; want the app on port %d, the client's Host, no mesh headers", tc.url, code, body, e, tc.port)
		}
	}

	// A server that speaks first, on a port with no declared protocol: the
	// proxy waits for the client only the detect timeout, then tunnels.
	start := time.Now()
	conn, err := nat.dial(t.Context(), tr.OutboundPort, "198.19.0.10:25")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	greeting, err := br.ReadString('\n')
	if err != nil || greeting != "220 api-0 ready\n" {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	if waited := time.Since(start); waited > detectTimeout+time.Second {
		t.Errorf("the greeting took %s: the proxy stalled on a server-speaks-first protocol", waited)
	}
	fmt.Fprintln(conn, "EHLO web")
	if line, err := br.ReadString('\n'); err != nil || line != "api-0: EHLO web\n" {
		t.Errorf("echo %q, %v", line, err)
	}
	conn.Close()

	// Anywhere else: untouched, straight to the destination.
	world := serveTCP(t, func(c net.Conn) { io.Copy(c, c) })
	conn, err = nat.dial(t.Context(), tr.OutboundPort, "127.0.0.1:"+strconv.Itoa(int(world)))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	// An HTTP request, so that a proxy that meddled would show it.
	const raw = "GET / HTTP/1.1\r\nHost: example\r\n\r\n"
	io.WriteString(conn, raw)
	conn.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(conn); err != nil || string(got) != raw {
		t.Errorf("pass-through echoed %q, %v; want %q", got, err, raw)
	}
	conn.Close()

	// The mesh's address on a port its service lacks goes nowhere, and a
	// connection nothing redirected is not relayed.
	for _, dst := range []string{"198.19.0.10:81", ""} {
		conn, err := nat.dial(t.Context(), tr.OutboundPort, dst)
		if err != nil {
			t.Fatal(err)
		}
		if err := closedSoon(conn); err != nil {
			t.Errorf("connection to %q: %v", dst, err)
		}
	}

	// A kept-alive connection follows the config: the same service after
	// its cluster IP moved, then 503 once the service is gone; the new
	// cluster IP leads to it at once.
	keep := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return nat.dial(ctx, tr.OutboundPort, addr)
		}}}
	if _, code, body := getEcho(t, keep, "http://198.19.0.10/"); code != http.StatusOK {
		t.Fatalf("before the move: %d %s", code, body)
	}
	moved := *svc
	moved.ClusterIPs = []string{"198.19.0.20"}
	apply(&model.ServiceState{Service: &moved, Endpoints: api.Endpoints})
	if e, code, body := getEcho(t, keep, "http://198.19.0.10/"); code != http.StatusOK || e.Port != httpPort {
		t.Errorf("kept-alive connection after the move: %d %s", code, body)
	}
	if e, code, body := getEcho(t, c, "http://198.19.0.20/"); code != http.StatusOK || e.Port != httpPort {
		t.Errorf("the new cluster IP: %d %s", code, body)
	}
	apply()
	if _, code, body := getEcho(t, keep, "http://198.19.0.10/"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no longer leads to a service") {
		t.Errorf("kept-alive connection after the service went: %d %s, want 503", code, body)
	}
}

// TestTransparentExplicitAndRoutes: a service of the outbound list is
// reachable both ways, and a route's backend by its own cluster IP.
func TestTransparentExplicitAndRoutes(t *testing.T) {
	app := serveEcho(t)
	s := newServer(t, "api-0", model.WorkloadPort{Name: "http", Port: app, Protocol: model.ProtocolHTTP1})
	svc := service(model.ServicePort{Name: "http", Port: 80, Protocol: model.ProtocolHTTP1})
	svc.ClusterIPs = []string{"198.19.0.10"}
	nat := newFakeNAT()
	tr := &proxy.Transparent{OutboundPort: freePort(t), InboundPort: freePort(t), OriginalDst: nat.originalDst}
	c := newClient(t, proxy.Options{Transparent: tr}, svc, []uint32{80}, s.endpoint(map[uint32]uint32{80: app}))
	if e, code, body := getEcho(t, nat.client(tr.OutboundPort), "http://198.19.0.10/x"); code != http.StatusOK || e.Port != app {
		t.Errorf("by cluster IP: %d %s", code, body)
	}
	if e, code, body := getEcho(t, h1Client(), "http://"+c.addr(80)+"/y"); code != http.StatusOK || e.Port != app {
		t.Errorf("by the explicit port: %d %s", code, body)
	}
	// Two services claiming one cluster IP: the first by name keeps it.
	other := &model.Service{Ref: model.Ref{Namespace: "demo", Name: "zzz"}, Ports: []model.ServicePort{{Port: 80}}, ClusterIPs: []string{"198.19.0.10"}}
	cfg := &model.ProxyConfig{Version: 9, Workload: c.wl, Services: map[model.Ref]*model.ServiceState{
		svc.Ref:   {Service: svc, Endpoints: []*model.Endpoint{s.endpoint(map[uint32]uint32{80: app})}},
		other.Ref: {Service: other},
	}}
	if err := c.proxy.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if e, code, body := getEcho(t, nat.client(tr.OutboundPort), "http://198.19.0.10/z"); code != http.StatusOK || e.Port != app {
		t.Errorf("a contested cluster IP: %d %s, want demo/api's", code, body)
	}
}

func TestTransparentInbound(t *testing.T) {
	httpPort, otherHTTP, greeter := serveEcho(t), serveEcho(t), serveGreeter(t, "api-0")
	undeclared := serveEcho(t)
	nat := newFakeNAT()
	tr := &proxy.Transparent{OutboundPort: freePort(t), InboundPort: freePort(t), OriginalDst: nat.originalDst}
	p := newProxy(t, proxy.Options{InboundTLS: tlstest.SelfSigned(t).TLS, Transparent: tr})
	wl := &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "api-0"}, Address: "127.0.0.1", InboundPort: freePort(t), AdminPort: freePort(t),
		Ports: []model.WorkloadPort{
			{Name: "http", Port: httpPort, Protocol: model.ProtocolHTTP1},
			{Name: "other", Port: otherHTTP},
			{Name: "smtp", Port: greeter, Protocol: model.ProtocolTCP},
		}}
	apply := func(a *model.Authz) {
		t.Helper()
		if err := p.Apply(&model.ProxyConfig{Version: 1, Workload: wl, Authz: a}); err != nil {
			t.Fatal(err)
		}
	}
	// The client calls the pod's address; the proxy uses only the port.
	to := func(port uint32) string { return "198.18.0.2:" + strconv.Itoa(int(port)) }
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return nat.dial(ctx, tr.InboundPort, addr)
		}}}
	get := func(port uint32, header http.Header) (appEcho, int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+to(port)+"/p", nil)
		maps := header
		for k, v := range maps {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			return appEcho{}, 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e appEcho
		json.Unmarshal(body, &e)
		return e, resp.StatusCode, string(body)
	}

	// Strict: plaintext from outside the mesh is refused, whatever port.
	apply(nil)
	for _, port := range []uint32{httpPort, greeter} {
		conn, err := nat.dial(t.Context(), tr.InboundPort, to(port))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if err := closedSoon(conn); err != nil {
			t.Errorf("strict workload, port %d: %v", port, err)
		}
	}

	// Permissive: served on the port called, HTTP by declaration or by
	// detection, TCP spliced; a mesh header cannot send it elsewhere.
	apply(&model.Authz{Permissive: true})
	if e, code, body := get(httpPort, nil); code != http.StatusOK || e.Port != httpPort || e.MeshHeaders != 0 {
		t.Errorf("declared http: %d %s", code, body)
	}
	if e, code, body := get(otherHTTP, http.Header{"Weft-Target-Port": {strconv.Itoa(int(httpPort))}}); code != http.StatusOK || e.Port != otherHTTP {
		t.Errorf("detected http naming another port: %d %s, want the port called", code, body)
	}
	conn, err := nat.dial(t.Context(), tr.InboundPort, to(greeter))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if greeting, err := bufio.NewReader(conn).ReadString('\n'); err != nil || greeting != "220 api-0 ready\n" {
		t.Errorf("tcp port: %q, %v", greeting, err)
	}
	conn.Close()
	// Never a port the workload does not declare, nor the proxy's own.
	for _, port := range []uint32{undeclared, wl.InboundPort, wl.AdminPort, tr.OutboundPort} {
		conn, err := nat.dial(t.Context(), tr.InboundPort, to(port))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if err := closedSoon(conn); err != nil {
			t.Errorf("port %d: %v", port, err)
		}
	}

	// Authorization holds for clients outside the mesh: an allow policy
	// naming identities shuts them out, HTTP with 403, TCP by closing.
	apply(&model.Authz{Permissive: true, Selected: true})
	if _, code, body := get(httpPort, nil); code != http.StatusForbidden {
		t.Errorf("http under an allow policy: %d %s, want 403", code, body)
	}
	conn, err = nat.dial(t.Context(), tr.InboundPort, to(greeter))
	if err != nil {
		t.Fatal(err)
	}
	if err := closedSoon(conn); err != nil {
		t.Errorf("tcp under an allow policy: %v", err)
	}

	// Turning strict again ends plaintext at the next request.
	apply(&model.Authz{Permissive: true})
	keep := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return nat.dial(ctx, tr.InboundPort, addr)
		}}}
	url := "http://" + to(httpPort) + "/"
	if resp, err := keep.Get(url); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("permissive: %v", err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	apply(nil)
	if resp, err := keep.Get(url); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("kept-alive plaintext after turning strict: %s, want 403 or a closed connection", resp.Status)
		}
	}
}

// TestTransparentLifecycle: the listeners come with the first config,
// are refused on a port in use, and close on shutdown.
func TestTransparentLifecycle(t *testing.T) {
	nat := newFakeNAT()
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tr := &proxy.Transparent{OutboundPort: uint32(busy.Addr().(*net.TCPAddr).Port), InboundPort: freePort(t), OriginalDst: nat.originalDst}
	p := proxy.New(proxy.Options{Logger: testLogger(), Transparent: tr, DrainTimeout: time.Second})
	wl := &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "web-0"}, Address: "127.0.0.1", InboundPort: freePort(t)}
	if err := p.Apply(&model.ProxyConfig{Version: 1, Workload: wl}); err == nil || !strings.Contains(err.Error(), "transparent outbound listener") {
		t.Fatalf("apply with the transparent port in use: %v", err)
	}
	if p.Ready() {
		t.Fatal("ready without its listeners")
	}
	// The inbound listener of the failed apply was let go.
	tr.OutboundPort = freePort(t)
	p = proxy.New(proxy.Options{Logger: testLogger(), Transparent: tr, DrainTimeout: time.Second})
	if err := p.Apply(&model.ProxyConfig{Version: 1, Workload: wl}); err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint32{tr.OutboundPort, tr.InboundPort} {
		c, err := nat.dial(t.Context(), port, "")
		if err != nil {
			t.Fatalf("transparent port %d: %v", port, err)
		}
		if err := closedSoon(c); err != nil {
			t.Errorf("a connection to port %d nothing redirected: %v", port, err)
		}
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint32{tr.OutboundPort, tr.InboundPort} {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(port))); err == nil {
			c.Close()
			t.Errorf("transparent port %d still open after shutdown", port)
		}
	}
}
