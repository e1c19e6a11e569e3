package up

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is one program to keep running.
type Process struct {
	Name string
	Path string
	Args []string
	// Env, if set, gives variables to add to the environment at each start
	// (secrets such as join tokens, which stay off command lines).
	Env func() ([]string, error)
}

// supervised runs a Process until its context ends, restarting it with
// backoff when it exits by itself.
type supervised struct {
	proc    Process
	log     *slog.Logger
	out     io.Writer
	stopped chan struct{}
	// stopGrace is how long a process has between SIGTERM and SIGKILL.
	stopGrace time.Duration
}

func (s *supervised) run(ctx context.Context) {
	defer close(s.stopped)
	backoff := 500 * time.Millisecond
	for {
		started := time.Now()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > 30*time.Second {
			backoff = 500 * time.Millisecond
		}
		s.log.Warn("process exited; restarting", "process", s.proc.Name, "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// runOnce starts the process and waits for it. The goroutine holds its OS
// thread, because the kernel's parent-death signal is tied to the thread
// that forked: if weft up dies, its children die with it.
func (s *supervised) runOnce(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(s.proc.Path, s.proc.Args...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if s.proc.Env != nil {
		env, err := s.proc.Env()
		if err != nil {
			return fmt.Errorf("starting %s: %w", s.proc.Name, err)
		}
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.proc.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Let it drain, then make sure it and anything it started are gone.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-done:
		return err
	case <-time.After(s.stopGrace):
		s.log.Warn("process did not stop in time; killing it", "process", s.proc.Name, "grace", s.stopGrace)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return <-done
	}
}

// openLog opens a process's log file for appending.
func openLog(dir, name string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(dir+"/"+name+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}
