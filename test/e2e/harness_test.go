//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/testutil/ports"
)

// binDir holds the binaries under test.
func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WEFT_BIN")
	if dir == "" {
		t.Fatal("WEFT_BIN is not set: run `make test-e2e`, or set it to the directory with weft and weft-proxy")
	}
	for _, b := range []string{"weft", "weft-proxy"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("binary under test: %v", err)
		}
	}
	return dir
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	return ports.Free(t)
}

// process is a binary under test, with its output kept for the failure log.
type process struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output is everything the process printed so far.
func (p *process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs bin (in WEFT_BIN) with args; it is killed when the test ends
// and its output is logged if the test failed.
func start(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	return startWithEnv(t, nil, name, bin, args...)
}

// startWithEnv is start with variables added to the environment.
func startWithEnv(t *testing.T, env []string, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir(t), bin), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("---- output of %s ----\n%s", name, p.Output())
		}
	})
	return p
}

// stop sends sig and waits up to limit for the process to exit; it returns
// how the process exited.
func (p *process) stop(sig syscall.Signal, limit time.Duration) error {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		return fmt.Errorf("%s did not exit within %s of %s", p.name, limit, sig)
	}
}

func (p *process) kill() {
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// eventually retries cond until it holds or the limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, limit, err)
}

func waitReady(t *testing.T, adminPort int) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/ready", adminPort)
	eventually(t, 20*time.Second, "proxy ready at "+url, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
}

// mesh is a control plane watching a manifest directory.
type mesh struct {
	t         *testing.T
	dir       string
	stateDir  string
	grpcPort  int
	adminPort int
	cp        *process
	// cpArgs are added to the control plane's command line.
	cpArgs []string
}

func newMesh(t *testing.T, cpArgs ...string) *mesh {
	m := &mesh{t: t, dir: t.TempDir(), stateDir: t.TempDir(), grpcPort: freePort(t), adminPort: freePort(t), cpArgs: cpArgs}
	m.startControlPlane()
	return m
}

func (m *mesh) startControlPlane() {
	m.t.Helper()
	m.cp = start(m.t, "weft control", "weft", append([]string{"control", "--manifests", m.dir, "--state-dir", m.stateDir,
		"--grpc-addr", m.grpcAddr(), "--admin-addr", m.adminAddr(), "--log-level", "debug"}, m.cpArgs...)...)
	eventually(m.t, 20*time.Second, "control plane up", func() error {
		resp, err := http.Get("http://" + m.adminAddr() + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

func (m *mesh) grpcAddr() string  { return "127.0.0.1:" + strconv.Itoa(m.grpcPort) }
func (m *mesh) adminAddr() string { return "127.0.0.1:" + strconv.Itoa(m.adminPort) }

// write puts a manifest file in the watched directory atomically, as an
// editor's save would.
func (m *mesh) write(name, content string) {
	m.t.Helper()
	tmp := filepath.Join(m.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, name)); err != nil {
		m.t.Fatal(err)
	}
}

func (m *mesh) remove(name string) {
	m.t.Helper()
	if err := os.Remove(filepath.Join(m.dir, name)); err != nil {
		m.t.Fatal(err)
	}
}

// proxy starts the weft-proxy of a declared workload, running as service
// account sa, with a join token minted by the real CLI.
func (m *mesh) proxy(workload, sa string, adminPort int) *process {
	m.t.Helper()
	return m.proxyWithToken(workload, m.joinToken(workload, sa), adminPort)
}

// proxyWithToken starts the weft-proxy of a declared workload with a join
// token minted earlier (the environment joinToken returns).
func (m *mesh) proxyWithToken(workload string, tokenEnv []string, adminPort int) *process {
	m.t.Helper()
	return startWithEnv(m.t, tokenEnv, "proxy "+workload, "weft-proxy", "--control-plane", m.grpcAddr(), "--workload", workload,
		"--admin", "127.0.0.1:"+strconv.Itoa(adminPort), "--drain-timeout", "10s", "--log-level", "debug")
}

// joinToken mints a join token with `weft identity token` and returns it
// as the environment a proxy reads it from.
func (m *mesh) joinToken(workload, sa string) []string {
	m.t.Helper()
	ns, _, _ := strings.Cut(workload, "/")
	out, err := m.weftOut("identity", "token", "--state-dir", m.stateDir, "--namespace", ns, "--service-account", sa)
	if err != nil {
		m.t.Fatalf("weft identity token: %v\n%s", err, out)
	}
	return []string{"WEFT_JOIN_TOKEN=" + strings.TrimSpace(out)}
}

// weft runs the CLI against this mesh and returns its output and error.
func (m *mesh) weft(args ...string) (string, error) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "--admin", m.adminAddr())
	out, err := exec.CommandContext(ctx, filepath.Join(binDir(m.t), "weft"), args...).CombinedOutput()
	return string(out), err
}

// weftOut is weft, with standard output alone.
func (m *mesh) weftOut(args ...string) (string, error) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "--admin", m.adminAddr())
	cmd := exec.CommandContext(ctx, filepath.Join(binDir(m.t), "weft"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// endpoints returns the workloads serving a service, per the control plane.
func (m *mesh) endpoints(service string) string {
	out, _ := m.weft("get", "services")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, service+" ") {
			return line
		}
	}
	return ""
}
