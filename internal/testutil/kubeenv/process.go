package kubeenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is etcd or kube-apiserver, its output in a file of the Env's
// directory.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited
	waitErr error         // how it exited; read after done is closed
}

// childEnv is the environment the processes run with: this process's,
// less any HTTP proxy, so that the API server calls a test's webhook on
// loopback directly and not through a proxy the machine may name.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(name) {
		case "http_proxy", "https_proxy", "no_proxy", "all_proxy":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func startProcess(name, path string, args []string, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s's log: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = childEnv()
	// If the test binary dies (a panic, go test's -timeout) its cleanups
	// never run; the kernel then kills the children, so that no etcd or
	// API server outlives the test that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, path, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// kill ends the process at once: its state lives in a directory that is
// removed next, so nothing is gained by a graceful stop, which takes the
// API server seconds.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill() // fails only when it has exited already
	<-p.done
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n lines of the process's output.
func (p *process) tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// errPortTaken says a process could not listen on a port it was given: one
// of ports.Free's ports was taken between the check and the listen (by
// another test binary), so a start with other ports will do.
var errPortTaken = errors.New("a port was taken")

// waitReady polls url with client until it answers 200 with a body that
// contains want, the process exits, or ctx ends.
func (p *process) waitReady(ctx context.Context, client *http.Client, url, want string) error {
	// A probe in flight ends when the process does: something else on a
	// port it could not take may accept the probe and never answer.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var last string
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := probe(ctx, client, url, want)
		if ok {
			return nil
		}
		last = why
		// The process's end before ctx's: the one cancels the other.
		if p.exited() {
			out := p.tail(40)
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("%s: %w:\n%s", p.name, errPortTaken, out)
			}
			return fmt.Errorf("%s exited before it was ready (%v); its last output:\n%s", p.name, p.waitErr, out)
		}
		select {
		case <-ctx.Done():
			if p.exited() {
				continue // reported above
			}
			return fmt.Errorf("%s not ready at %s (last: %s): %w; its last output:\n%s", p.name, url, last, ctx.Err(), p.tail(40))
		case <-tick.C:
		}
	}
}

func probe(ctx context.Context, client *http.Client, url, want string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body) // a short read only makes the check fail
	if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), want) {
		return false, fmt.Sprintf("%s: %.200s", resp.Status, body.String())
	}
	return true, ""
}
