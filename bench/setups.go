package main

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"time"
)

//go:embed nginx/*.tmpl haproxy/*.tmpl caddy/*.tmpl gostd/*.tmpl
var peerConfigs embed.FS

// CPU budget: the two proxies of a setup share CPU 1; the load generator
// and the backend share CPU 0. Every setup gets exactly one core for its
// whole data path, and the client and backend never compete with it.
const (
	loadCPU  = 0
	proxyCPU = 1
)

// front is where the load generator sends each kind of traffic; 0 marks a
// workload the setup cannot carry.
type front struct {
	HTTP, H2, GRPC, GRPCStream, TCP int
}

// backend is the one backend of the whole run.
type backend struct {
	HTTP, GRPC, GRPCStream, TCP int
	procs                       []*proc
}

// running is a started setup: its fronts and its proxies, client side first.
type running struct {
	front   front
	proxies []*proc
	others  []*proc // not in the data path (weft's control plane)
}

func (r *running) stop() {
	for _, p := range append(r.proxies, r.others...) {
		p.stop()
	}
}

// env is what every setup starts from.
type env struct {
	dir     string // scratch directory of the run
	bin     string // weft's binaries
	tools   string // fortio, caddy
	self    string // this program, for the TCP bulk and gRPC stream backends and clients
	certs   *certs
	backend *backend
}

type setupFunc func(ctx context.Context, e *env, dir string) (*running, error)

var setups = []struct {
	name  string
	start setupFunc
}{
	{"direct", startDirect},
	{"weft", startWeft},
	{"nginx", startNginx},
	{"haproxy", startHAProxy},
	{"caddy", startCaddy},
	{"gostd", startGoStd},
}

func setupByName(name string) setupFunc {
	for _, x := range setups {
		if x.name == name {
			return x.start
		}
	}
	return nil
}

// nextPort hands out loopback ports below the kernel's ephemeral range
// (32768 up), where a port picked by the kernel could be taken by an
// outgoing connection before a server listens on it.
var nextPort atomic.Int64

func init() { nextPort.Store(int64(os.Getpid()*31) % 2000) }

func freePort() (int, error) {
	const first, count = 30000, 2000
	for range count {
		p := first + int(nextPort.Add(1)%count)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free loopback port in %d-%d", first, first+count-1)
}

func freePorts(ps ...*int) error {
	for _, p := range ps {
		var err error
		if *p, err = freePort(); err != nil {
			return err
		}
	}
	return nil
}

// startBackend starts fortio's server (HTTP/1.1 and h2c on one port, gRPC
// ping on another), the gRPC echo stream and the TCP bulk source, on the
// load generator's CPU.
func startBackend(ctx context.Context, e *env) (*backend, error) {
	b := &backend{}
	if err := freePorts(&b.HTTP, &b.GRPC, &b.GRPCStream, &b.TCP); err != nil {
		return nil, err
	}
	f, err := startPinned(e.dir, "backend-fortio", loadCPU, nil, filepath.Join(e.tools, "fortio"), "server",
		"-http-port", addr(b.HTTP), "-grpc-port", addr(b.GRPC), "-redirect-port", "disabled",
		"-tcp-port", "disabled", "-udp-port", "disabled", "-loglevel", "warning")
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, f)
	t, err := startPinned(e.dir, "backend-tcp", loadCPU, nil, e.self, "-bulk-serve", addr(b.TCP))
	if err != nil {
		b.stop()
		return nil, err
	}
	b.procs = append(b.procs, t)
	g, err := startPinned(e.dir, "backend-grpc-stream", loadCPU, nil, e.self, "-grpc-stream-serve", addr(b.GRPCStream))
	if err != nil {
		b.stop()
		return nil, err
	}
	b.procs = append(b.procs, g)
	if err := waitFor(ctx, "backend", 10*time.Second, b.procs, func() error {
		if err := httpOK(ctx, fmt.Sprintf("http://%s/echo?size=16", addr(b.HTTP))); err != nil {
			return err
		}
		for _, port := range []int{b.TCP, b.GRPCStream} {
			c, err := net.Dial("tcp", addr(port))
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	}); err != nil {
		b.stop()
		return nil, err
	}
	return b, nil
}

func (b *backend) stop() {
	for _, p := range b.procs {
		p.stop()
	}
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// waitFor retries check until it passes, any of procs exits, or limit
// passes.
func waitFor(ctx context.Context, what string, limit time.Duration, procs []*proc, check func() error) error {
	deadline := time.Now().Add(limit)
	for {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %w", what, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func httpOK(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// waitThrough waits until an HTTP request passes through the setup's front.
func waitThrough(ctx context.Context, name string, r *running) error {
	return waitFor(ctx, name, 30*time.Second, append(r.proxies, r.others...), func() error {
		return httpOK(ctx, fmt.Sprintf("http://%s/echo?size=16", addr(r.front.HTTP)))
	})
}

func startDirect(_ context.Context, e *env, _ string) (*running, error) {
	b := e.backend
	return &running{front: front{HTTP: b.HTTP, H2: b.HTTP, GRPC: b.GRPC, GRPCStream: b.GRPCStream, TCP: b.TCP}}, nil
}

// peerPorts are the ports a peer pair's configuration templates fill in.
type peerPorts struct {
	Dir                                                     string
	Certs                                                   *certs
	FrontHTTP, FrontH2, FrontGRPC, FrontGRPCStream          int
	FrontTCP                                                int
	Hop2HTTP, Hop2GRPC, Hop2GRPCStream, Hop2TCP             int
	BackendHTTP, BackendGRPC, BackendGRPCStream, BackendTCP int
}

func newPeerPorts(e *env, dir string) (*peerPorts, error) {
	p := &peerPorts{Dir: dir, Certs: e.certs, BackendHTTP: e.backend.HTTP, BackendGRPC: e.backend.GRPC,
		BackendGRPCStream: e.backend.GRPCStream, BackendTCP: e.backend.TCP}
	if err := freePorts(&p.FrontHTTP, &p.FrontH2, &p.FrontGRPC, &p.FrontGRPCStream, &p.FrontTCP,
		&p.Hop2HTTP, &p.Hop2GRPC, &p.Hop2GRPCStream, &p.Hop2TCP); err != nil {
		return nil, err
	}
	return p, nil
}

// render fills the template at name (under the embedded bench/ configs)
// and writes it into dir.
func render(name, dir string, data any) (string, error) {
	src, err := peerConfigs.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("config template %s: %w", name, err)
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("config template %s: %w", name, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return "", fmt.Errorf("config template %s: %w", name, err)
	}
	path := filepath.Join(dir, strings.ReplaceAll(strings.TrimSuffix(name, ".tmpl"), "/", "-"))
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

// startPair renders a peer's two configurations and starts the server-side
// hop, then the client-side hop, with argv built from each file's path.
func startPair(ctx context.Context, e *env, dir, name, clientTmpl, serverTmpl string, bin string, argv func(conf string) []string, f func(p *peerPorts) front) (*running, error) {
	p, err := newPeerPorts(e, dir)
	if err != nil {
		return nil, err
	}
	srvConf, err := render(serverTmpl, dir, p)
	if err != nil {
		return nil, err
	}
	cliConf, err := render(clientTmpl, dir, p)
	if err != nil {
		return nil, err
	}
	env := []string{"XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "HOME=" + dir}
	srv, err := startPinned(dir, name+"-server", proxyCPU, env, bin, argv(srvConf)...)
	if err != nil {
		return nil, err
	}
	cli, err := startPinned(dir, name+"-client", proxyCPU, env, bin, argv(cliConf)...)
	if err != nil {
		srv.stop()
		return nil, err
	}
	r := &running{front: f(p), proxies: []*proc{cli, srv}}
	if err := waitThrough(ctx, name, r); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

func allFronts(p *peerPorts) front {
	return front{HTTP: p.FrontHTTP, H2: p.FrontH2, GRPC: p.FrontGRPC, GRPCStream: p.FrontGRPCStream, TCP: p.FrontTCP}
}

func startNginx(ctx context.Context, e *env, dir string) (*running, error) {
	return startPair(ctx, e, dir, "nginx", "nginx/client.conf.tmpl", "nginx/server.conf.tmpl", "nginx",
		func(conf string) []string {
			return []string{"-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-startup.log")}
		}, allFronts)
}

func startHAProxy(ctx context.Context, e *env, dir string) (*running, error) {
	return startPair(ctx, e, dir, "haproxy", "haproxy/client.cfg.tmpl", "haproxy/server.cfg.tmpl", "haproxy",
		func(conf string) []string { return []string{"-db", "-f", conf} }, allFronts)
}

// startGoStd starts the gostd pair (see gostd.go): the runner itself, as
// each hop.
func startGoStd(ctx context.Context, e *env, dir string) (*running, error) {
	return startPair(ctx, e, dir, "gostd", "gostd/client.json.tmpl", "gostd/server.json.tmpl", e.self,
		func(conf string) []string { return []string{"-gostd-hop", conf} }, allFronts)
}

func startCaddy(ctx context.Context, e *env, dir string) (*running, error) {
	return startPair(ctx, e, dir, "caddy", "caddy/client.Caddyfile.tmpl", "caddy/server.Caddyfile.tmpl", filepath.Join(e.tools, "caddy"),
		func(conf string) []string { return []string{"run", "--config", conf, "--adapter", "caddyfile"} },
		func(p *peerPorts) front {
			return front{HTTP: p.FrontHTTP, H2: p.FrontH2, GRPC: p.FrontGRPC, GRPCStream: p.FrontGRPCStream}
		})
}
