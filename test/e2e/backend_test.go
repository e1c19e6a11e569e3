//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/weftmesh/weft/internal/testutil/tcpserver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// backend is one workload's application: a real server for each protocol
// the mesh carries, each telling in its answers which backend it is.
type backend struct {
	name string
	hits atomic.Int64
	// App ports.
	http1, h2c, grpc, ws, tcp int
}

// echo is what the HTTP backends answer.
type echo struct {
	Backend  string `json:"backend"`
	Proto    string `json:"proto"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	Host     string `json:"host"`
	BodySize int    `json:"bodySize"`
	// MeshHeaders lists request headers starting with "weft-" or "l5d-":
	// the mesh's own headers must never reach the application.
	MeshHeaders []string `json:"meshHeaders"`
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		hit := b.hits.Add(1)
		// ?fail=half answers every other request 503, ?fail=all every one,
		// ?fail=<name> every one that reaches this backend.
		if f := r.URL.Query().Get("fail"); f == "all" || f == name || f == "half" && hit%2 == 1 {
			http.Error(w, "failing as asked", http.StatusServiceUnavailable)
			return
		}
		// ?sleep=D waits D before answering; with ?slow=<name>, only on
		// that backend.
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil && (r.URL.Query().Get("slow") == "" || r.URL.Query().Get("slow") == name) {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		n, _ := io.Copy(io.Discard, r.Body)
		e := echo{Backend: name, Proto: r.Proto, Method: r.Method, Path: r.URL.Path, Host: r.Host, BodySize: int(n), MeshHeaders: []string{}}
		for k := range r.Header {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, "weft-") || strings.HasPrefix(lk, "l5d-") {
				e.MeshHeaders = append(e.MeshHeaders, k)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend", name)
		_ = json.NewEncoder(w).Encode(e)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		// A chunked response, flushed piece by piece.
		for i := range 5 {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte(name+": "), msg...)); err != nil {
				return
			}
		}
	})
	b.http1 = serveHTTP(t, mux, false)
	b.h2c = serveHTTP(t, mux, true)
	b.ws = serveHTTP(t, mux, false)
	b.grpc = serveGRPC(t)
	b.tcp = serveTCP(t, name)
	return b
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func serveHTTP(t *testing.T, h http.Handler, h2c bool) int {
	l := listen(t)
	srv := &http.Server{Handler: h}
	if h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func serveGRPC(t *testing.T) int {
	l := listen(t)
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().(*net.TCPAddr).Port
}

// serveTCP speaks first: it greets, then echoes each line back with its
// name, the way SMTP or MySQL servers talk before the client does.
func serveTCP(t *testing.T, name string) int {
	l := listen(t)
	serveGreeting(l, "hello from "+name+"\n", func(line string) string { return name + ": " + line + "\n" })
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// serveGreeting serves a protocol in which the server speaks first, on
// ln until it closes: greeting, then reply(line) to each line the client
// sends.
func serveGreeting(ln net.Listener, greeting string, reply func(line string) string) {
	tcpserver.Accept(ln, func(c net.Conn) {
		io.WriteString(c, greeting)
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			io.WriteString(c, reply(sc.Text()))
		}
	})
}

// Manifests.

const servicesYAML = `apiVersion: v1
kind: Service
metadata: {name: http, namespace: e2e}
spec:
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: http1, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: h2, namespace: e2e}
spec:
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: h2c, appProtocol: http2}]
---
apiVersion: v1
kind: Service
metadata: {name: grpc, namespace: e2e}
spec:
  selector: {app: server}
  ports: [{name: grpc, port: 9090, targetPort: grpc, appProtocol: grpc}]
---
apiVersion: v1
kind: Service
metadata: {name: ws, namespace: e2e}
spec:
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: ws}]
---
apiVersion: v1
kind: Service
metadata: {name: tcp, namespace: e2e}
spec:
  selector: {app: server}
  ports: [{name: tcp, port: 7000, targetPort: tcp, appProtocol: tcp}]
---
apiVersion: v1
kind: Service
metadata: {name: detect, namespace: e2e}
spec:
  selector: {app: server}
  ports: [{name: greet, port: 7001, targetPort: tcp}]
`

// serverYAML declares a server workload in front of a backend.
func serverYAML(name string, b *backend, inbound, admin int) string {
	return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: %s, namespace: e2e, labels: {app: server}}
spec:
  serviceAccount: server
  address: 127.0.0.1
  ports:
  - {name: http1, port: %d, protocol: http}
  - {name: h2c, port: %d, protocol: http2}
  - {name: grpc, port: %d, protocol: grpc}
  - {name: ws, port: %d}
  - {name: tcp, port: %d}
  proxy: {inboundPort: %d, adminPort: %d}
`, name, b.http1, b.h2c, b.grpc, b.ws, b.tcp, inbound, admin)
}

// client is the calling side: a workload with no app ports and an
// outbound local port per service.
type client struct {
	inbound, admin                  int
	http, h2, grpc, ws, tcp, detect int
}

func newClient(t *testing.T) *client {
	return &client{inbound: freePort(t), admin: freePort(t), http: freePort(t), h2: freePort(t),
		grpc: freePort(t), ws: freePort(t), tcp: freePort(t), detect: freePort(t)}
}

func (c *client) yaml() string {
	return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: client-0, namespace: e2e, labels: {app: client}}
spec:
  serviceAccount: client
  address: 127.0.0.1
  proxy: {inboundPort: %d, adminPort: %d}
  outbound:
  - {service: http, port: 80, localPort: %d}
  - {service: h2, port: 80, localPort: %d}
  - {service: grpc, port: 9090, localPort: %d}
  - {service: ws, port: 80, localPort: %d}
  - {service: tcp, port: 7000, localPort: %d}
  - {service: detect, port: 7001, localPort: %d}
`, c.inbound, c.admin, c.http, c.h2, c.grpc, c.ws, c.tcp, c.detect)
}

// get fetches a URL through the client's proxy and decodes the echo.
func getEcho(ctx context.Context, url string) (echo, error) {
	var e echo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return e, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return e, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return e, err
	}
	if resp.StatusCode != http.StatusOK {
		return e, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return e, json.Unmarshal(body, &e)
}

// fixture is a mesh with one server workload and the client, both proxies
// ready.
type fixture struct {
	m                        *mesh
	c                        *client
	b                        *backend
	clientProxy, serverProxy *process
	// serverInbound and serverAdmin are server-0's proxy's ports.
	serverInbound, serverAdmin int
}

func serverSide(t *testing.T, cpArgs ...string) *fixture {
	t.Helper()
	m := newMesh(t, cpArgs...)
	b := startBackend(t, "server-0")
	c := newClient(t)
	srvAdmin := freePort(t)
	m.write("services.yaml", servicesYAML)
	f0 := freePort(t)
	m.write("server-0.yaml", serverYAML("server-0", b, f0, srvAdmin))
	m.write("client.yaml", c.yaml())
	f := &fixture{m: m, c: c, b: b, serverInbound: f0, serverAdmin: srvAdmin}
	f.serverProxy = m.proxy("e2e/server-0", "server", srvAdmin)
	f.clientProxy = m.proxy("e2e/client-0", "client", c.admin)
	waitReady(t, srvAdmin)
	waitReady(t, c.admin)
	eventually(t, 10*time.Second, "first request through the mesh", func() error {
		_, err := getEcho(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/", c.http))
		return err
	})
	return f
}
