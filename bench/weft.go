package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// weftManifests declares the benchmark's mesh: one Service per kind of
// traffic, all served by the backend behind the server workload, and a
// client workload calling each through a local port. The HTTP/2 service
// ends at the backend's HTTP/1.1 port, as it does behind every peer.
const weftManifests = `apiVersion: v1
kind: Service
metadata: {name: http, namespace: bench}
spec:
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: http1, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: h2, namespace: bench}
spec:
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: http1, appProtocol: http2}]
---
apiVersion: v1
kind: Service
metadata: {name: grpc, namespace: bench}
spec:
  selector: {app: server}
  ports: [{name: grpc, port: 9090, targetPort: grpc, appProtocol: grpc}]
---
apiVersion: v1
kind: Service
metadata: {name: grpc-stream, namespace: bench}
spec:
  selector: {app: server}
  ports: [{name: grpc, port: 9091, targetPort: grpc-stream, appProtocol: grpc}]
---
apiVersion: v1
kind: Service
metadata: {name: tcp, namespace: bench}
spec:
  selector: {app: server}
  ports: [{name: tcp, port: 7000, targetPort: tcp, appProtocol: tcp}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: server-0, namespace: bench, labels: {app: server}}
spec:
  serviceAccount: server
  address: 127.0.0.1
  ports:
  - {name: http1, port: %[1]d, protocol: http}
  - {name: grpc, port: %[2]d, protocol: grpc}
  - {name: grpc-stream, port: %[12]d, protocol: grpc}
  - {name: tcp, port: %[3]d}
  proxy: {inboundPort: %[4]d, adminPort: %[5]d}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: client-0, namespace: bench, labels: {app: client}}
spec:
  serviceAccount: client
  address: 127.0.0.1
  proxy: {inboundPort: %[6]d, adminPort: %[7]d}
  outbound:
  - {service: http, port: 80, localPort: %[8]d}
  - {service: h2, port: 80, localPort: %[9]d}
  - {service: grpc, port: 9090, localPort: %[10]d}
  - {service: grpc-stream, port: 9091, localPort: %[13]d}
  - {service: tcp, port: 7000, localPort: %[11]d}
`

// startWeft starts `weft control` on a manifest directory and the two
// weft-proxies of the manifests' workloads, each joining with a token minted
// by the real CLI, as test/e2e's harness and `weft up` do.
func startWeft(ctx context.Context, e *env, dir string) (*running, error) {
	var grpcPort, adminPort, srvInbound, srvAdmin, cliInbound, cliAdmin int
	var f front
	if err := freePorts(&grpcPort, &adminPort, &srvInbound, &srvAdmin, &cliInbound, &cliAdmin, &f.HTTP, &f.H2, &f.GRPC, &f.TCP, &f.GRPCStream); err != nil {
		return nil, err
	}
	manifests, state := filepath.Join(dir, "manifests"), filepath.Join(dir, "state")
	for _, d := range []string{manifests, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("weft setup: %w", err)
		}
	}
	b := e.backend
	mesh := fmt.Sprintf(weftManifests, b.HTTP, b.GRPC, b.TCP, srvInbound, srvAdmin, cliInbound, cliAdmin, f.HTTP, f.H2, f.GRPC, f.TCP,
		b.GRPCStream, f.GRPCStream)
	if err := os.WriteFile(filepath.Join(manifests, "bench.yaml"), []byte(mesh), 0o644); err != nil {
		return nil, fmt.Errorf("weft setup: %w", err)
	}
	weft := filepath.Join(e.bin, "weft")
	// The control plane is not in the request path: it shares the load
	// generator's CPU and its cost is not counted.
	cp, err := startPinned(dir, "weft-control", loadCPU, nil, weft, "control", "--manifests", manifests, "--state-dir", state,
		"--grpc-addr", addr(grpcPort), "--admin-addr", addr(adminPort))
	if err != nil {
		return nil, err
	}
	r := &running{front: f, others: []*proc{cp}}
	if err := waitFor(ctx, "weft control", 20*time.Second, r.others, func() error {
		resp, err := http.Get("http://" + addr(adminPort) + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		r.stop()
		return nil, err
	}
	for _, w := range []struct{ workload, sa string }{{"bench/client-0", "client"}, {"bench/server-0", "server"}} {
		token, err := exec.CommandContext(ctx, weft, "identity", "token", "--state-dir", state, "--namespace", "bench",
			"--service-account", w.sa, "--admin", addr(adminPort)).Output()
		if err != nil {
			r.stop()
			return nil, fmt.Errorf("weft identity token for %s: %w", w.workload, err)
		}
		admin := cliAdmin
		if w.sa == "server" {
			admin = srvAdmin
		}
		p, err := startPinned(dir, "weft-proxy-"+w.sa, proxyCPU, []string{"WEFT_JOIN_TOKEN=" + strings.TrimSpace(string(token))},
			filepath.Join(e.bin, "weft-proxy"), "--control-plane", addr(grpcPort), "--workload", w.workload,
			"--admin", addr(admin), "--log-level", "warn")
		if err != nil {
			r.stop()
			return nil, err
		}
		r.proxies = append(r.proxies, p)
	}
	if err := waitThrough(ctx, "weft", r); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}
