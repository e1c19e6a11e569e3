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
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	netnsutil "github.com/weftmesh/weft/internal/testutil/netns"
)

// Transparent interception in real network namespaces: pods are network
// namespaces on a bridge, each with `weft-proxy init`'s iptables rules, a
// weft-proxy running as its own user in --transparent mode, and an app
// that knows nothing of the mesh.
//
//	netns hub:     bridge 198.18.0.1/24, the control plane (weft control)
//	netns client:  198.18.0.2, workload e2e/client-0, curl
//	netns server:  198.18.0.3, workload e2e/web-0: an HTTP app and a
//	               greeter that speaks first (SMTP-like)
//	netns outside: 198.18.0.4, a plain HTTP server outside the mesh
//
// Services web (198.19.0.10:80, http) and mail (198.19.0.11:25, protocol
// left to detection) select web-0. The namespaces have no link but the
// bridge, and cluster IPs are routed onto it, where nothing answers them:
// no packet can leave.

const (
	proxyUID  = 1337
	meshPort  = 15008
	adminPort = 15100
	cpGRPC    = "198.18.0.1:15010"
	cpAdmin   = "198.18.0.1:15011"
)

// netns is a test namespace with what this test does in it.
type netns struct {
	*netnsutil.NS
	t *testing.T
}

func requireNetns(t *testing.T) {
	netnsutil.Require(t, "iptables-restore", "iptables-save", "curl")
}

func newNetns(t *testing.T, role string) *netns {
	return &netns{NS: netnsutil.New(t, "weft-e2e", role), t: t}
}

// exec runs a command in the namespace, as root, and returns its output.
func (n *netns) exec(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...).CombinedOutput()
	return string(out), err
}

// start runs bin in the namespace, as uid when it is not 0, until the
// test ends.
func (n *netns) start(name string, uid uint32, env []string, bin string, args ...string) *process {
	n.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: uid}
	}
	return runProcess(n.t, name, n.Name, cmd, func() error { return n.Do(cmd.Start) })
}

// runProcess starts cmd, named name, with start (cmd.Start, or one that
// starts it in network namespace where), and kills it when t ends,
// showing its output if t failed. cmd's SysProcAttr puts it in a process
// group of its own that dies with the test binary.
func runProcess(t *testing.T, name, where string, cmd *exec.Cmd, start func() error) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p, p
	if err := start(); err != nil {
		t.Fatalf("starting %s in %s: %v", name, where, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("---- output of %s ----\n%s", name, p.Output())
		}
	})
	return p
}

// listen opens a listener in the namespace.
func (n *netns) listen(addr string) net.Listener { return n.Listen("tcp", addr) }

// dial connects from the namespace, as root: an app, redirected.
func (n *netns) dial(ctx context.Context, addr string) (net.Conn, error) {
	return n.Dial(ctx, "tcp", addr)
}

// httpClient makes its connections from the namespace.
func (n *netns) httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return n.dial(ctx, addr)
	}}}
}

// seen is what a test HTTP server saw of a request.
type seen struct {
	Server string              `json:"server"`
	Host   string              `json:"host"`
	Path   string              `json:"path"`
	Remote string              `json:"remote"`
	Header map[string][]string `json:"header"`
}

func serveSeen(ln net.Listener, name string) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(seen{Server: name, Host: r.Host, Path: r.URL.Path, Remote: r.RemoteAddr, Header: r.Header})
	})}
	go srv.Serve(ln)
}

// serveGreeter talks like an SMTP server: it greets first.
func serveGreeter(ln net.Listener, name string) {
	serveGreeting(ln, "220 "+name+" ESMTP ready\r\n", func(line string) string { return "250 " + line + "\r\n" })
}

func netnsManifests(mode string) string {
	annotations := ""
	if mode != "" {
		annotations = ", annotations: {weft.dev/mtls-mode: " + mode + "}"
	}
	return `apiVersion: v1
kind: Service
metadata: {name: web, namespace: e2e` + annotations + `}
spec:
  clusterIP: 198.19.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: mail, namespace: e2e}
spec:
  clusterIP: 198.19.0.11
  selector: {app: web}
  ports: [{name: smtp, port: 25, targetPort: smtp}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: web-0, namespace: e2e, labels: {app: web}}
spec:
  serviceAccount: web
  address: 198.18.0.3
  ports:
  - {name: http, port: 8080, protocol: http}
  - {name: smtp, port: 2525}
  proxy: {inboundPort: 15008, adminPort: 15100}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: client-0, namespace: e2e, labels: {app: client}}
spec:
  serviceAccount: client
  address: 198.18.0.2
  proxy: {inboundPort: 15008, adminPort: 15100}
  # The services a transparent proxy routes by cluster IP are those it
  # subscribes to: its outbound list (and their routes' backends).
  outbound:
  - {service: web, port: 80, localPort: 16001}
  - {service: mail, port: 25, localPort: 16002}
`
}

// metric sums the samples of name whose labels include all of want.
func metric(exposition, name string, want ...string) float64 {
	var sum float64
	for line := range strings.Lines(exposition) {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimSpace(line), "} ")
		if !ok {
			continue
		}
		all := true
		for _, w := range want {
			all = all && strings.Contains(labels, w)
		}
		if v, err := strconv.ParseFloat(value, 64); all && err == nil {
			sum += v
		}
	}
	return sum
}

func TestNetnsTransparent(t *testing.T) {
	requireNetns(t)
	started := time.Now()
	bins := binDir(t)
	// The proxy runs as its own user, who must be able to reach the
	// binary: a copy in a directory anyone may enter.
	proxyDir, err := os.MkdirTemp("", "weft-netns-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(proxyDir) })
	os.Chmod(proxyDir, 0o755)
	proxyBin := filepath.Join(proxyDir, "weft-proxy")
	netnsutil.Run(t, "cp", filepath.Join(bins, "weft-proxy"), proxyBin)
	os.Chmod(proxyBin, 0o755)
	weftBin := filepath.Join(bins, "weft")

	hub, client, server, outside := newNetns(t, "hub"), newNetns(t, "client"), newNetns(t, "server"), newNetns(t, "outside")
	hub.IP("link", "add", "br0", "type", "bridge")
	hub.IP("addr", "add", "198.18.0.1/24", "dev", "br0")
	hub.IP("link", "set", "br0", "up")
	for i, n := range []*netns{client, server, outside} {
		veth := fmt.Sprintf("v%d", i)
		hub.IP("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", n.Name)
		hub.IP("link", "set", veth, "master", "br0")
		hub.IP("link", "set", veth, "up")
		n.IP("addr", "add", fmt.Sprintf("198.18.0.%d/24", i+2), "dev", "eth0")
		n.IP("link", "set", "eth0", "up")
		// Cluster IPs are virtual: routed on-link, where nothing answers,
		// so only the proxy's interception ever carries them.
		n.IP("route", "add", "198.19.0.0/16", "dev", "eth0")
	}

	// The apps: web-0's on loopback, as a sidecar's app is; the outside
	// server on its address.
	serveSeen(server.listen("127.0.0.1:8080"), "web-0")
	serveGreeter(server.listen("127.0.0.1:2525"), "web-0")
	serveSeen(outside.listen("198.18.0.4:8000"), "outside")

	// The control plane, in the hub.
	manifests, stateDir := t.TempDir(), t.TempDir()
	writeManifests := func(content string) {
		t.Helper()
		tmp := filepath.Join(manifests, ".mesh.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(manifests, "mesh.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	writeManifests(netnsManifests(""))
	hub.start("weft control", 0, nil, weftBin, "control", "--manifests", manifests, "--state-dir", stateDir,
		"--grpc-addr", cpGRPC, "--admin-addr", cpAdmin, "--log-level", "debug")
	hubHTTP := hub.httpClient()
	ready := func(url string) func() error {
		return func() error {
			resp, err := hubHTTP.Get(url)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", url, resp.Status)
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "control plane up", ready("http://"+cpAdmin+"/ready"))

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	token := func(sa string) []string {
		t.Helper()
		var out []byte
		err := hub.Do(func() (err error) {
			out, err = exec.CommandContext(ctx, weftBin, "identity", "token", "--admin", cpAdmin, "--state-dir", stateDir,
				"--namespace", "e2e", "--service-account", sa).Output()
			return err
		})
		if err != nil {
			t.Fatalf("weft identity token: %v", err)
		}
		return []string{"WEFT_JOIN_TOKEN=" + strings.TrimSpace(string(out))}
	}

	// Each pod: init's rules (twice: the second run must change nothing),
	// then its proxy as the user the rules exempt.
	initArgs := []string{"init", "--proxy-uid", strconv.Itoa(proxyUID), "--mesh-port", strconv.Itoa(meshPort), "--admin-port", strconv.Itoa(adminPort)}
	for _, p := range []struct {
		n        *netns
		workload string
		sa       string
		addr     string
	}{{client, "e2e/client-0", "client", "198.18.0.2"}, {server, "e2e/web-0", "web", "198.18.0.3"}} {
		if out, err := p.n.exec(ctx, proxyBin, initArgs...); err != nil {
			t.Fatalf("weft-proxy init in %s: %v\n%s", p.n.Name, err, out)
		}
		first, err := p.n.exec(ctx, "iptables-save", "-t", "nat")
		if err != nil {
			t.Fatal(err)
		}
		if out, err := p.n.exec(ctx, proxyBin, initArgs...); err != nil {
			t.Fatalf("weft-proxy init again in %s: %v\n%s", p.n.Name, err, out)
		}
		again, _ := p.n.exec(ctx, "iptables-save", "-t", "nat")
		if stripComments(first) != stripComments(again) || !strings.Contains(first, "--uid-owner 1337 -j WEFT_REDIRECT") {
			t.Errorf("init twice in %s:\nfirst:\n%s\nagain:\n%s", p.n.Name, first, again)
		}
		p.n.start("proxy "+p.workload, proxyUID, token(p.sa), proxyBin, "--control-plane", cpGRPC, "--workload", p.workload,
			"--admin", p.addr+":"+strconv.Itoa(adminPort), "--transparent", "--drain-timeout", "2s", "--log-level", "debug")
	}
	for _, addr := range []string{"198.18.0.2", "198.18.0.3"} {
		eventually(t, 20*time.Second, "proxy at "+addr+" ready", ready(fmt.Sprintf("http://%s:%d/ready", addr, adminPort)))
	}
	t.Logf("mesh up in %s", time.Since(started).Round(time.Millisecond))

	// An unmodified client calls the service's cluster IP: the request
	// reaches web-0's app over mTLS with the client's identity.
	curl := func(n *netns, url string) (seen, error) {
		var s seen
		out, err := n.exec(ctx, "curl", "-sS", "--fail-with-body", "--max-time", "5", url)
		if err != nil {
			return s, fmt.Errorf("curl %s: %v: %s", url, err, out)
		}
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			return s, fmt.Errorf("curl %s: %v: %s", url, err, out)
		}
		return s, nil
	}
	var got seen
	eventually(t, 10*time.Second, "curl to the cluster IP", func() (err error) {
		got, err = curl(client, "http://198.19.0.10/hello")
		return err
	})
	if got.Server != "web-0" || got.Path != "/hello" || got.Host != "198.19.0.10" {
		t.Errorf("the app saw %+v", got)
	}
	for k := range got.Header {
		if strings.HasPrefix(strings.ToLower(k), "weft-") {
			t.Errorf("mesh header %s reached the app", k)
		}
	}
	metrics := func(addr string) string {
		t.Helper()
		resp, err := hubHTTP.Get(fmt.Sprintf("http://%s:%d/metrics", addr, adminPort))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if n := metric(metrics("198.18.0.3"), "weft_requests_total", `direction="inbound"`, `tls="true"`,
		`source_identity="spiffe://weft.local/ns/e2e/sa/client"`, `destination_workload="e2e/web-0"`); n < 1 {
		t.Errorf("web-0's proxy counted %v inbound requests over mTLS from the client's identity, want at least 1:\n%s", n, metrics("198.18.0.3"))
	}

	// Outside the mesh: passed through untouched, from the pod's address.
	before := metric(metrics("198.18.0.2"), "weft_tcp_connections_opened_total", `direction="outbound"`, `destination_service=""`)
	out, err := curl(client, "http://198.18.0.4:8000/out")
	if err != nil {
		t.Fatal(err)
	}
	if out.Server != "outside" || out.Host != "198.18.0.4:8000" || !strings.HasPrefix(out.Remote, "198.18.0.2:") {
		t.Errorf("the outside server saw %+v", out)
	}
	for k := range out.Header {
		if strings.HasPrefix(strings.ToLower(k), "weft-") || k == "Traceparent" || k == "X-Forwarded-For" {
			t.Errorf("pass-through added %s", k)
		}
	}
	if after := metric(metrics("198.18.0.2"), "weft_tcp_connections_opened_total", `direction="outbound"`, `destination_service=""`); after <= before {
		t.Errorf("the client's proxy did not carry the pass-through connection (%v before, %v after)", before, after)
	}

	// A server that speaks first, through the mesh, on a port with no
	// declared protocol: the greeting comes without the client speaking.
	start := time.Now()
	conn, err := client.dial(ctx, "198.19.0.11:25")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	greeting, err := br.ReadString('\n')
	waited := time.Since(start)
	if err != nil || greeting != "220 web-0 ESMTP ready\r\n" {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	fmt.Fprintf(conn, "EHLO client\r\n")
	if line, err := br.ReadString('\n'); err != nil || line != "250 EHLO client\r\n" {
		t.Errorf("reply %q, %v", line, err)
	}
	conn.Close()
	t.Logf("server-speaks-first greeting after %s", waited.Round(time.Millisecond))
	if waited > time.Second {
		t.Errorf("the greeting took %s: the proxy stalled", waited)
	}

	// Inbound from outside the mesh: strict refuses plaintext; permissive
	// lets it reach the app on the port called.
	if _, err := curl(outside, "http://198.18.0.3:8080/direct"); err == nil {
		t.Error("a plaintext client reached a strict workload")
	}
	writeManifests(netnsManifests("permissive"))
	var direct seen
	eventually(t, 15*time.Second, "permissive mode in force", func() (err error) {
		direct, err = curl(outside, "http://198.18.0.3:8080/direct")
		return err
	})
	if direct.Server != "web-0" || direct.Path != "/direct" {
		t.Errorf("plaintext client in permissive mode: the app saw %+v", direct)
	}
	if n := metric(metrics("198.18.0.3"), "weft_requests_total", `direction="inbound"`, `tls="false"`); n < 1 {
		t.Error("web-0's proxy did not count the plaintext request")
	}
	t.Logf("done in %s", time.Since(started).Round(time.Millisecond))
}

func stripComments(s string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}
