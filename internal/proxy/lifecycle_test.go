package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/balance"
	"github.com/weftmesh/weft/internal/proxy/pool"
	"github.com/weftmesh/weft/internal/proxy/tunnel"
)

func TestEndpointRemoval(t *testing.T) {
	portA, portB := serveHTTP(t, echoApp("a")), serveHTTP(t, echoApp("b"))
	a := newServer(t, "api-0", model.WorkloadPort{Port: portA, Protocol: model.ProtocolHTTP1})
	b := newServer(t, "api-1", model.WorkloadPort{Port: portB, Protocol: model.ProtocolHTTP1})
	svc := service(model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1})
	epA, epB := a.endpoint(map[uint32]uint32{80: portA}), b.endpoint(map[uint32]uint32{80: portB})
	c := newClient(t, proxy.Options{Balancer: balance.RoundRobin}, svc, []uint32{80}, epA, epB)
	client := h1Client()
	hits := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			resp := do(t, client, mustRequest("GET", "http://"+c.addr(80)+"/"))
			seen[resp.Header.Get("X-Backend")]++
		}
		return seen
	}
	if seen := hits(10); seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("with two endpoints, hits = %v, want both", seen)
	}
	if err := c.apply(svc, epA); err != nil {
		t.Fatal(err)
	}
	if seen := hits(20); seen["b"] != 0 {
		t.Fatalf("after removing b, hits = %v, want none on b", seen)
	}
	// Its idle pooled connection goes too.
	deadline := time.Now().Add(5 * time.Second)
	for {
		peers := c.proxy.ConfigDump().(proxy.Dump).Peers
		if _, ok := peers[b.inboundAddr()]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool still holds %v after b was removed", peers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnavailable(t *testing.T) {
	appPort := serveHTTP(t, echoApp("a"))
	s := newServer(t, "api-0", model.WorkloadPort{Port: appPort, Protocol: model.ProtocolHTTP1})
	deadPort := freePort(t)
	dead := &model.Endpoint{ID: "demo/gone", Address: "127.0.0.1", ProxyPort: deadPort, TargetPorts: map[uint32]uint32{80: appPort}}
	tests := []struct {
		desc     string
		svc      *model.Service
		eps      []*model.Endpoint
		wantCode int
		wantBody string
	}{
		{desc: "no endpoints", svc: service(model.ServicePort{Port: 80}), wantCode: 503, wantBody: "no endpoints"},
		{desc: "endpoints serve another port", svc: service(model.ServicePort{Port: 80}),
			eps: []*model.Endpoint{s.endpoint(map[uint32]uint32{81: appPort})}, wantCode: 503, wantBody: "no endpoints"},
		{desc: "service unknown", wantCode: 503, wantBody: "demo/api is not known to the mesh"},
		{desc: "service lacks the port", svc: service(model.ServicePort{Port: 81}), wantCode: 503, wantBody: "has no port 80"},
		{desc: "peer proxy unreachable", svc: service(model.ServicePort{Port: 80}),
			eps: []*model.Endpoint{dead}, wantCode: 502, wantBody: "cannot reach endpoint demo/gone"},
		{desc: "healthy endpoint", svc: service(model.ServicePort{Port: 80}),
			eps: []*model.Endpoint{s.endpoint(map[uint32]uint32{80: appPort})}, wantCode: 200},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := newClient(t, proxy.Options{}, tc.svc, []uint32{80}, tc.eps...)
			for _, client := range []*http.Client{h1Client(), h2cClient()} {
				resp, err := client.Get("http://" + c.addr(80) + "/")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				client.CloseIdleConnections()
				if resp.StatusCode != tc.wantCode || !strings.Contains(string(body), tc.wantBody) {
					t.Fatalf("%s: got %d %q, want %d containing %q", resp.Proto, resp.StatusCode, body, tc.wantCode, tc.wantBody)
				}
			}
		})
	}

	t.Run("app refuses connections", func(t *testing.T) {
		closed := freePort(t)
		s := newServer(t, "api-2", model.WorkloadPort{Port: closed, Protocol: model.ProtocolHTTP1})
		c := newClient(t, proxy.Options{}, service(model.ServicePort{Port: 80}), []uint32{80}, s.endpoint(map[uint32]uint32{80: closed}))
		resp, err := h1Client().Get("http://" + c.addr(80) + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 502 || !strings.Contains(string(body), "weft inbound: app at") {
			t.Fatalf("got %d %q, want 502 from the inbound naming the app", resp.StatusCode, body)
		}
	})
}

func TestInboundRefusesBadRequests(t *testing.T) {
	appPort := serveHTTP(t, echoApp("a"))
	anyPort := serveHTTP(t, echoApp("any"))
	s := newServer(t, "api-0", model.WorkloadPort{Port: appPort, Protocol: model.ProtocolHTTP1}, model.WorkloadPort{Port: anyPort})
	undeclared := serveHTTP(t, echoApp("secret")) // listening, but not declared
	p := pool.New(pool.Options{})
	defer p.Close()
	tests := []struct {
		desc     string
		method   string
		header   http.Header
		wantCode int
	}{
		{desc: "declared port", header: http.Header{"Weft-Target-Port": {itoa(appPort)}}, wantCode: 200},
		{desc: "no target port", header: http.Header{}, wantCode: 400},
		{desc: "malformed target port", header: http.Header{"Weft-Target-Port": {"80a"}}, wantCode: 400},
		{desc: "two target ports", header: http.Header{"Weft-Target-Port": {itoa(appPort), itoa(appPort)}}, wantCode: 400},
		{desc: "undeclared port", header: http.Header{"Weft-Target-Port": {itoa(undeclared)}}, wantCode: 403},
		{desc: "proto header ignored on a port with a protocol", header: http.Header{"Weft-Target-Port": {itoa(appPort)}, "Weft-Proto": {"spdy"}}, wantCode: 200},
		{desc: "bad proto header", header: http.Header{"Weft-Target-Port": {itoa(anyPort)}, "Weft-Proto": {"spdy"}}, wantCode: 400},
		{desc: "no proto header means HTTP/1.1", header: http.Header{"Weft-Target-Port": {itoa(anyPort)}}, wantCode: 200},
		{desc: "CONNECT to undeclared port", method: "CONNECT", header: http.Header{"Weft-Target-Port": {itoa(undeclared)}}, wantCode: 403},
		{desc: "CONNECT without target", method: "CONNECT", header: http.Header{}, wantCode: 400},
		// A tunnel needs a connection of its own, which a stream is not.
		{desc: "CONNECT as an HTTP/2 stream", method: "CONNECT-h2", header: http.Header{"Weft-Target-Port": {itoa(appPort)}}, wantCode: 400},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.method == "CONNECT" {
				_, err := tunnel.Dial(context.Background(), p.DialTunnel, s.inboundAddr(), tc.header)
				var se *tunnel.StatusError
				if !errors.As(err, &se) || se.Code != tc.wantCode {
					t.Fatalf("CONNECT: err = %v, want status %d", err, tc.wantCode)
				}
				return
			}
			req := mustRequest("GET", "http://"+s.inboundAddr()+"/")
			if tc.method == "CONNECT-h2" {
				req = mustRequest("CONNECT", "http://"+s.inboundAddr())
			}
			req.Header = tc.header
			resp, err := p.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tc.wantCode)
			}
			if strings.Contains(resp.Header.Get("X-Backend"), "secret") {
				t.Fatal("reached an undeclared port")
			}
		})
	}
	t.Run("HTTP/1 naming no port, to a workload of two", func(t *testing.T) {
		// HTTP/1 is for plaintext clients from outside the mesh; they reach
		// a workload with one port only.
		resp, err := h1Client().Get("http://" + s.inboundAddr() + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "Weft-Target-Port") {
			t.Fatalf("got %d %q, want 400 asking for the port", resp.StatusCode, body)
		}
	})
}

func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{}, 1)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(500 * time.Millisecond)
		w.Write([]byte("finished"))
	})
	c, s := meshPair(t, model.ProtocolHTTP1, model.ProtocolHTTP1, serveHTTP(t, slow))

	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := h1Client().Get("http://" + c.addr(80) + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{body: string(b), err: err}
	}()
	<-started

	shut := make(chan error, 2)
	for _, p := range []*proxy.Proxy{c.proxy, s.proxy} {
		go func() { shut <- p.Shutdown(context.Background()) }()
	}
	// Listeners close at once, while the request is still in flight.
	waitRefused(t, c.addr(80))
	waitRefused(t, s.inboundAddr())
	if c.proxy.Ready() {
		t.Fatal("Ready() during shutdown")
	}

	res := <-done
	if res.err != nil || res.body != "finished" {
		t.Fatalf("in-flight request: body %q, err %v; want it to finish", res.body, res.err)
	}
	for range 2 {
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	if err := c.proxy.Apply(&model.ProxyConfig{Workload: c.wl}); !errors.Is(err, proxy.ErrShutdown) {
		t.Fatalf("Apply after Shutdown = %v, want ErrShutdown", err)
	}
}

func TestShutdownCutsTunnelsAtDrainTimeout(t *testing.T) {
	hold := serveTCP(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	s := newServer(t, "api-0", model.WorkloadPort{Port: hold, Protocol: model.ProtocolTCP})
	c := newClient(t, proxy.Options{DrainTimeout: 200 * time.Millisecond},
		service(model.ServicePort{Port: 80, Protocol: model.ProtocolTCP}), []uint32{80}, s.endpoint(map[uint32]uint32{80: hold}))
	conn := dial(t, c.addr(80))
	conn.Write([]byte("never ends"))
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	err := c.proxy.Shutdown(context.Background())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want a drain deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown took %v with a 200ms drain timeout", d)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the tunnel survived Shutdown")
	}
}

func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections during shutdown", addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestApply(t *testing.T) {
	appPort := serveHTTP(t, echoApp("a"))
	s := newServer(t, "api-0", model.WorkloadPort{Port: appPort, Protocol: model.ProtocolHTTP1})
	svc := service(model.ServicePort{Name: "a", Port: 80}, model.ServicePort{Name: "b", Port: 81})
	ep := s.endpoint(map[uint32]uint32{80: appPort, 81: appPort})

	p := newProxy(t, proxy.Options{})
	if p.Ready() {
		t.Fatal("Ready() before any config")
	}
	for _, bad := range []*model.ProxyConfig{nil, {Version: 1}, {Version: 1, Workload: &model.Workload{Ref: apiRef}}} {
		if err := p.Apply(bad); err == nil {
			t.Fatalf("Apply(%+v) succeeded, want an error", bad)
		}
	}
	if p.Ready() {
		t.Fatal("Ready() after only bad configs")
	}

	c := newClient(t, proxy.Options{}, svc, []uint32{80}, ep)
	if !c.proxy.Ready() {
		t.Fatal("not Ready() after a good config")
	}
	client := h1Client()
	conn80 := "http://" + c.addr(80) + "/"
	do(t, client, mustRequest("GET", conn80))

	t.Run("a port in use keeps the old config", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		old := c.wl
		c.wl = cloneWorkload(old)
		c.wl.Outbound = append(c.wl.Outbound, model.Outbound{Service: apiRef, Port: 81, LocalPort: uint32(busy.Addr().(*net.TCPAddr).Port)})
		err = c.apply(svc, ep)
		if err == nil || !strings.Contains(err.Error(), "outbound listener for demo/api:81") {
			t.Fatalf("Apply = %v, want an error naming the outbound listener", err)
		}
		c.wl = old
		dump := c.proxy.ConfigDump().(proxy.Dump)
		if dump.Version != 1 || len(dump.Listeners) != 2 {
			t.Fatalf("after a failed Apply, dump = version %d, %d listeners; want the old config", dump.Version, len(dump.Listeners))
		}
		do(t, client, mustRequest("GET", conn80))
	})

	t.Run("adding a listener keeps existing connections", func(t *testing.T) {
		var reused bool
		c.wl = cloneWorkload(c.wl)
		c.local[81] = freePort(t)
		c.wl.Outbound = append(c.wl.Outbound, model.Outbound{Service: apiRef, Port: 81, LocalPort: c.local[81]})
		if err := c.apply(svc, ep); err != nil {
			t.Fatal(err)
		}
		req := mustRequest("GET", conn80)
		req = req.WithContext(withReuse(req.Context(), &reused))
		do(t, client, req)
		if !reused {
			t.Fatal("the keep-alive connection to the unchanged listener was dropped")
		}
		do(t, client, mustRequest("GET", "http://"+c.addr(81)+"/"))
	})

	t.Run("removing a listener stops it", func(t *testing.T) {
		c.wl = cloneWorkload(c.wl)
		c.wl.Outbound = c.wl.Outbound[1:]
		if err := c.apply(svc, ep); err != nil {
			t.Fatal(err)
		}
		client.CloseIdleConnections()
		waitRefused(t, c.addr(80))
		do(t, client, mustRequest("GET", "http://"+c.addr(81)+"/"))
	})

	t.Run("config dump", func(t *testing.T) {
		raw, err := json.Marshal(c.proxy.ConfigDump())
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Ready     bool
			Version   uint64
			Listeners []struct{ Role, Address, Service string }
			Services  []struct{ Ref string }
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		if !d.Ready || d.Version != c.version || len(d.Listeners) != 2 || len(d.Services) != 1 || d.Services[0].Ref != "demo/api" {
			t.Fatalf("dump = %s", raw)
		}
	})
}

func cloneWorkload(w *model.Workload) *model.Workload {
	c := *w
	c.Outbound = append([]model.Outbound(nil), w.Outbound...)
	return &c
}

func mustRequest(method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		panic(err)
	}
	return req
}

func itoa(p uint32) string { return strconv.Itoa(int(p)) }

// An endpoint whose proxy is gone but which is still in the config (it
// left a moment ago) costs no request: reaching it fails before anything
// is sent, so the request, or the connection, goes to another endpoint.
func TestConnectFailureTriesAnotherEndpoint(t *testing.T) {
	appPort := serveHTTP(t, echoApp("a"))
	echoPort := serveTCP(t, func(c net.Conn) { io.Copy(c, c) })
	s := newServer(t, "api-0",
		model.WorkloadPort{Port: appPort, Protocol: model.ProtocolHTTP1},
		model.WorkloadPort{Port: echoPort, Protocol: model.ProtocolTCP})
	dead := &model.Endpoint{ID: "demo/gone", Address: "127.0.0.1", ProxyPort: freePort(t),
		TargetPorts: map[uint32]uint32{80: appPort, 7000: echoPort}}
	svc := service(model.ServicePort{Name: "http", Port: 80, Protocol: model.ProtocolHTTP1},
		model.ServicePort{Name: "tcp", Port: 7000, Protocol: model.ProtocolTCP})
	// Round-robin puts the dead endpoint first for every other request.
	c := newClient(t, proxy.Options{Balancer: balance.RoundRobin}, svc, []uint32{80, 7000},
		dead, s.endpoint(map[uint32]uint32{80: appPort, 7000: echoPort}))
	client := h1Client()
	for i := range 10 {
		body := strings.Repeat("x", 1000+i)
		req, err := http.NewRequest("POST", "http://"+c.addr(80)+"/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp := do(t, client, req)
		if resp.Header.Get("X-Backend") != "a" || resp.Header.Get("X-Body-Len") != strconv.Itoa(len(body)) {
			t.Fatalf("request %d: %q bytes at %q, want %d at a", i, resp.Header.Get("X-Body-Len"), resp.Header.Get("X-Backend"), len(body))
		}
	}
	for i := range 4 {
		conn, err := net.Dial("tcp", c.addr(7000))
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("hello %d\n", i)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("connection %d: echo %q, %v", i, got, err)
		}
		conn.Close()
	}
}

// With p2c, an endpoint whose proxy refuses connections fails fast and so
// always looks the least loaded: retries must exclude it rather than hope
// the balancer picks something else. The calls overlap, so the live
// endpoint is loaded whenever the dead one is compared with it.
func TestConnectFailureUnderLoadWithP2C(t *testing.T) {
	const n = 20
	httpMet, tcpMet := meet(n), meet(n)
	appPort := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpMet()
		w.Header().Set("X-Backend", "a")
	}))
	echoPort := serveTCP(t, func(c net.Conn) { io.Copy(c, c) })
	s := newServer(t, "api-0",
		model.WorkloadPort{Port: appPort, Protocol: model.ProtocolHTTP1},
		model.WorkloadPort{Port: echoPort, Protocol: model.ProtocolTCP})
	dead := &model.Endpoint{ID: "demo/gone", Address: "127.0.0.1", ProxyPort: freePort(t),
		TargetPorts: map[uint32]uint32{80: appPort, 7000: echoPort}}
	svc := service(model.ServicePort{Name: "http", Port: 80, Protocol: model.ProtocolHTTP1},
		model.ServicePort{Name: "tcp", Port: 7000, Protocol: model.ProtocolTCP})
	c := newClient(t, proxy.Options{Balancer: balance.P2C}, svc, []uint32{80, 7000},
		dead, s.endpoint(map[uint32]uint32{80: appPort, 7000: echoPort}))

	tests := []struct {
		desc string
		call func(i int) error
	}{
		{desc: "http", call: func(int) error {
			resp, err := h1Client().Get("http://" + c.addr(80) + "/")
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "a" {
				return fmt.Errorf("got %d %q from %q, want 200 from a", resp.StatusCode, body, resp.Header.Get("X-Backend"))
			}
			return nil
		}},
		{desc: "tcp", call: func(i int) error {
			conn, err := net.Dial("tcp", c.addr(7000))
			if err != nil {
				return err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			msg := fmt.Sprintf("hello %d\n", i)
			if _, err := io.WriteString(conn, msg); err != nil {
				return err
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(conn, got); err != nil {
				return fmt.Errorf("echo of %q: %w", msg, err)
			}
			// Hold the tunnel open, and the endpoint loaded, until all are up.
			tcpMet()
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			errs := make(chan error, n)
			for i := range n {
				go func() { errs <- tc.call(i) }()
			}
			for range n {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// meet returns a func whose callers wait for each other: it returns once
// n calls are in it, or after a generous timeout when some never come.
func meet(n int) func() {
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	return func() {
		mu.Lock()
		if arrived++; arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
	}
}

// The inbound never relays to the proxy's own listeners, declared or not.
func TestInboundRefusesOwnPorts(t *testing.T) {
	svc := service(model.ServicePort{Port: 80})
	c := newClient(t, proxy.Options{}, svc, []uint32{80})
	c.wl = cloneWorkload(c.wl)
	c.wl.AdminPort = freePort(t)
	if err := c.apply(svc); err != nil {
		t.Fatal(err)
	}
	inbound := net.JoinHostPort(c.wl.Address, itoa(c.wl.InboundPort))
	p := pool.New(pool.Options{})
	defer p.Close()
	tests := []struct {
		desc string
		port uint32
		want string
	}{
		{desc: "inbound port", port: c.wl.InboundPort, want: "is the proxy's inbound port"},
		{desc: "admin port", port: c.wl.AdminPort, want: "is the proxy's admin port"},
		{desc: "outbound local port", port: c.local[80], want: "is the local port of outbound demo/api"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			h := http.Header{"Weft-Target-Port": {itoa(tc.port)}}
			req := mustRequest("GET", "http://"+inbound+"/")
			req.Header = h
			resp, err := p.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), tc.want) {
				t.Fatalf("GET: got %d %q, want 403 saying %q", resp.StatusCode, body, tc.want)
			}
			_, err = tunnel.Dial(context.Background(), p.DialTunnel, inbound, h)
			var se *tunnel.StatusError
			if !errors.As(err, &se) || se.Code != http.StatusForbidden || !strings.Contains(se.Msg, tc.want) {
				t.Fatalf("CONNECT: err = %v, want a 403 saying %q", err, tc.want)
			}
		})
	}
}

// TestServiceChoosesItsBalancer: a Service naming round-robin gets it in a
// proxy whose default is P2C, and strict turns; naming none again brings
// the default back.
func TestServiceChoosesItsBalancer(t *testing.T) {
	portA, portB := serveHTTP(t, echoApp("a")), serveHTTP(t, echoApp("b"))
	a := newServer(t, "api-0", model.WorkloadPort{Port: portA, Protocol: model.ProtocolHTTP1})
	b := newServer(t, "api-1", model.WorkloadPort{Port: portB, Protocol: model.ProtocolHTTP1})
	svc := service(model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1})
	svc.LoadBalancer = "round-robin"
	epA, epB := a.endpoint(map[uint32]uint32{80: portA}), b.endpoint(map[uint32]uint32{80: portB})
	c := newClient(t, proxy.Options{Balancer: balance.P2C}, svc, []uint32{80}, epA, epB)
	client := h1Client()
	backends := func(n int) string {
		var out []string
		for range n {
			resp := do(t, client, mustRequest("GET", "http://"+c.addr(80)+"/"))
			out = append(out, resp.Header.Get("X-Backend"))
		}
		return strings.Join(out, "")
	}
	got := backends(20)
	if got != strings.Repeat("ab", 10) && got != strings.Repeat("ba", 10) {
		t.Fatalf("round-robin service: backends %s, want strict turns", got)
	}
	balancer := func() string {
		for _, sd := range c.proxy.ConfigDump().(proxy.Dump).Services {
			if sd.Ref == svc.Ref.String() {
				return sd.Balancer
			}
		}
		return "none"
	}
	if got := balancer(); got != "round-robin" {
		t.Errorf("config dump: balancer %s, want round-robin", got)
	}
	svc.LoadBalancer = ""
	if err := c.apply(svc, epA, epB); err != nil {
		t.Fatal(err)
	}
	if got := balancer(); got != "p2c" {
		t.Errorf("config dump: balancer %s, want p2c back", got)
	}
	if got := backends(20); strings.Count(got, "a")+strings.Count(got, "b") != 20 {
		t.Errorf("after going back to p2c: %s", got)
	}
}
