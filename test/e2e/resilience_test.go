//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// traffic sends requests through the client's proxy in a loop, one every
// few milliseconds, counting answers per backend and keeping the failures.
type traffic struct {
	ok        atomic.Int64
	mu        sync.Mutex
	byBackend map[string]int
	failures  []string
	stop      context.CancelFunc
	done      chan struct{}
}

func startTraffic(t *testing.T, url string) *traffic {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{byBackend: map[string]int{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			e, err := getEcho(rctx, url)
			rcancel()
			tr.mu.Lock()
			switch {
			case ctx.Err() != nil:
			case err != nil:
				tr.failures = append(tr.failures, time.Now().Format("15:04:05.000")+" "+err.Error())
			default:
				tr.ok.Add(1)
				tr.byBackend[e.Backend]++
			}
			tr.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(tr.finish)
	return tr
}

func (tr *traffic) finish() {
	tr.stop()
	<-tr.done
}

func (tr *traffic) hits(backend string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.byBackend[backend]
}

// check fails the test if any request failed.
func (tr *traffic) check(t *testing.T) {
	t.Helper()
	tr.finish()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.failures) > 0 {
		t.Errorf("%d of %d requests failed; first: %v", len(tr.failures), int(tr.ok.Load())+len(tr.failures), tr.failures[:min(5, len(tr.failures))])
	}
	if tr.ok.Load() == 0 {
		t.Error("no request succeeded")
	}
	t.Logf("%d requests, by backend %v", tr.ok.Load(), tr.byBackend)
}

func TestControlPlaneDownAndBack(t *testing.T) {
	f := serverSide(t)
	m, c := f.m, f.c
	tr := startTraffic(t, fmt.Sprintf("http://127.0.0.1:%d/", c.http))
	time.Sleep(500 * time.Millisecond)

	// The operator minted server-1's token beforehand.
	token := m.joinToken("e2e/server-1", "server")
	// The control plane dies without a chance to say goodbye.
	m.cp.kill()
	time.Sleep(2 * time.Second)

	// While it is down, a new endpoint is declared and its proxy started:
	// the proxy waits for the control plane, as do the others.
	b1 := startBackend(t, "server-1")
	admin1 := freePort(t)
	m.write("server-1.yaml", serverYAML("server-1", b1, freePort(t), admin1))
	m.proxyWithToken("e2e/server-1", token, admin1)
	time.Sleep(time.Second)
	if tr.hits("server-1") != 0 {
		t.Fatal("traffic reached server-1 before any control plane knew of it")
	}

	m.startControlPlane()
	waitReady(t, admin1)
	eventually(t, 10*time.Second, "the new endpoint takes traffic", func() error {
		if n := tr.hits("server-1"); n < 10 {
			return fmt.Errorf("server-1 answered %d requests", n)
		}
		return nil
	})
	tr.check(t)
}

func TestWorkloadRemovedGetsNoNewRequests(t *testing.T) {
	f := serverSide(t)
	m, c := f.m, f.c
	b1 := startBackend(t, "server-1")
	admin1 := freePort(t)
	m.write("server-1.yaml", serverYAML("server-1", b1, freePort(t), admin1))
	p1 := m.proxy("e2e/server-1", "server", admin1)
	waitReady(t, admin1)

	tr := startTraffic(t, fmt.Sprintf("http://127.0.0.1:%d/", c.http))
	eventually(t, 10*time.Second, "both endpoints take traffic", func() error {
		if tr.hits("server-1") < 10 || tr.hits("server-0") < 10 {
			return fmt.Errorf("hits: %v", tr.byBackend)
		}
		return nil
	})

	m.remove("server-1.yaml")
	eventually(t, 10*time.Second, "server-1 leaves the service", func() error {
		if line := m.endpoints("e2e/http"); strings.Contains(line, "server-1") || line == "" {
			return fmt.Errorf("endpoints: %q", line)
		}
		return nil
	})
	// Give the update a moment to reach the client's proxy, then count.
	time.Sleep(500 * time.Millisecond)
	before := b1.hits.Load()
	okBefore := tr.ok.Load()
	eventually(t, 10*time.Second, "traffic goes on", func() error {
		if tr.ok.Load()-okBefore < 50 {
			return fmt.Errorf("%d more requests", tr.ok.Load()-okBefore)
		}
		return nil
	})
	if got := b1.hits.Load(); got != before {
		t.Errorf("server-1 got %d new requests after it was removed", got-before)
	}
	// Its proxy, no longer in the mesh, still exits cleanly.
	if err := p1.stop(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Errorf("proxy exit: %v", err)
	}
	tr.check(t)
}

// registered starts a proxy that registers its own workload.
func registered(t *testing.T, m *mesh, name string, b *backend, admin int, ttl string) *process {
	t.Helper()
	ports := fmt.Sprintf("http1=%d/http", b.http1)
	return startWithEnv(t, m.joinToken("e2e/"+name, "server"), "proxy (registered) "+name, "weft-proxy", "--control-plane", m.grpcAddr(), "--register",
		"--name", name, "--namespace", "e2e", "--labels", "app=server", "--service-account", "server",
		"--address", "127.0.0.1", "--port", ports, "--inbound-port", strconv.Itoa(freePort(t)),
		"--lease-ttl", ttl, "--admin", "127.0.0.1:"+strconv.Itoa(admin), "--drain-timeout", "5s", "--log-level", "debug")
}

func TestRegisteredWorkloads(t *testing.T) {
	f := serverSide(t)
	m, c := f.m, f.c
	tr := startTraffic(t, fmt.Sprintf("http://127.0.0.1:%d/", c.http))

	// A workload no manifest declares registers itself and takes traffic.
	b2 := startBackend(t, "server-2")
	admin2 := freePort(t)
	p2 := registered(t, m, "server-2", b2, admin2, "30s")
	eventually(t, 15*time.Second, "the registered workload takes traffic", func() error {
		if n := tr.hits("server-2"); n < 10 {
			return fmt.Errorf("server-2 answered %d", n)
		}
		return nil
	})
	if out, err := m.weft("get", "workloads"); err != nil || !strings.Contains(out, "e2e/server-2") || !strings.Contains(out, "registration") {
		t.Errorf("weft get workloads: %v\n%s", err, out)
	}

	// Shut down gracefully: it deregisters, and no request fails.
	if err := p2.stop(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Errorf("proxy exit: %v", err)
	}
	if line := m.endpoints("e2e/http"); strings.Contains(line, "server-2") {
		t.Errorf("server-2 still an endpoint after it deregistered: %q", line)
	}

	// One that dies without deregistering leaves when its lease lapses.
	b3 := startBackend(t, "server-3")
	p3 := registered(t, m, "server-3", b3, freePort(t), "2s")
	eventually(t, 15*time.Second, "server-3 takes traffic", func() error {
		if n := tr.hits("server-3"); n < 10 {
			return fmt.Errorf("server-3 answered %d", n)
		}
		return nil
	})
	tr.check(t)
	p3.kill()
	eventually(t, 15*time.Second, "server-3's lease lapses", func() error {
		if line := m.endpoints("e2e/http"); strings.Contains(line, "server-3") {
			return fmt.Errorf("endpoints: %q", line)
		}
		return nil
	})
}

func TestInvalidManifestKeepsServing(t *testing.T) {
	f := serverSide(t)
	m, c, b := f.m, f.c, f.b
	tr := startTraffic(t, fmt.Sprintf("http://127.0.0.1:%d/", c.http))
	time.Sleep(300 * time.Millisecond)

	m.write("server-0.yaml", serverYAML("server-0", b, 70000, freePort(t)))
	m.write("broken.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [\n")

	eventually(t, 10*time.Second, "weft status reports the problems", func() error {
		out, err := m.weft("status")
		if err == nil {
			return fmt.Errorf("weft status succeeded:\n%s", out)
		}
		for _, want := range []string{"server-0.yaml", "workload e2e/server-0", "spec.proxy.inboundPort: must be between 1 and 65535, got 70000", "broken.yaml: document 1"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		return nil
	})
	out, err := m.weft("get", "problems")
	if err != nil || !strings.Contains(out, "spec.proxy.inboundPort") {
		t.Errorf("weft get problems: %v\n%s", err, out)
	}
	if !strings.Contains(m.cp.Output(), "spec.proxy.inboundPort") {
		t.Error("the control plane's log does not name the bad field")
	}
	time.Sleep(time.Second)
	if line := m.endpoints("e2e/http"); !strings.Contains(line, "server-0") {
		t.Errorf("server-0 dropped from the service: %q", line)
	}
	tr.check(t)

	m.remove("broken.yaml")
	m.write("server-0.yaml", serverYAML("server-0", b, freePort(t), freePort(t)))
	eventually(t, 10*time.Second, "problems clear once fixed", func() error {
		out, err := m.weft("status")
		if err != nil {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		return nil
	})
}

func TestGracefulShutdownDrains(t *testing.T) {
	f := serverSide(t)
	m, c := f.m, f.c
	_ = m
	// A slow request is in flight when the client's proxy is told to stop.
	type result struct {
		e   echo
		err error
	}
	res := make(chan result, 1)
	go func() {
		e, err := getEcho(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/slow?sleep=1500ms", c.http))
		res <- result{e, err}
	}()
	time.Sleep(300 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- f.clientProxy.stop(syscall.SIGTERM, 20*time.Second) }()
	r := <-res
	if r.err != nil || r.e.Backend != "server-0" {
		t.Errorf("in-flight request: %+v, %v", r.e, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("proxy exit: %v", err)
	}
	if _, err := getEcho(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/", c.http)); err == nil {
		t.Error("a stopped proxy still accepts requests")
	}
}
