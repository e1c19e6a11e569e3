package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process of the run, pinned to one CPU, its output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startPinned runs bin with args under `taskset -c cpu` (taskset execs bin,
// so the PID is the program's own), logging to dir/<name>.log.
func startPinned(dir, name string, cpu int, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log")
	out, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	defer out.Close()
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, killed with the runner: nothing outlives a run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports an error if the process has ended, with its log's tail.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v): %s", p.name, p.err, p.tail())
	default:
		return nil
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop asks the process group to end, then kills it after a grace period.
func (p *proc) stop() {
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// run runs a short command pinned to cpu and returns its standard output.
func runPinned(ctx context.Context, cpu int, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "taskset", append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, lastLines(stderr.String(), 5))
	}
	return out, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go runs on.
const clockTicks = 100

// procStat is what the run samples of one process.
type procStat struct {
	ppid int
	cpu  float64 // user+system seconds
	rss  int64   // bytes
}

// readStat reads /proc/<pid>/stat and /proc/<pid>/status.
func readStat(proc string, pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	var s procStat
	// The command name (field 2) may hold spaces; the fields after it
	// start past its closing parenthesis.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return s, fmt.Errorf("process %d: stat %q has no command name", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return s, fmt.Errorf("process %d: stat has %d fields after the name, want 13 or more", pid, len(f))
	}
	if s.ppid, err = strconv.Atoi(f[1]); err != nil {
		return s, fmt.Errorf("process %d: stat ppid: %w", pid, err)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("process %d: stat utime/stime: %w", pid, err)
	}
	s.cpu = float64(utime+stime) / clockTicks
	st, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "status"))
	if err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("process %d: VmRSS %q: %w", pid, v, err)
			}
			s.rss = kb << 10
		}
	}
	return s, nil
}

// treeUsage sums CPU seconds and RSS over a process and its descendants
// (nginx's worker under its master), as one hop's cost.
func treeUsage(proc string, root int) (cpu float64, rss int64, err error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return 0, 0, fmt.Errorf("listing %s: %w", proc, err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(proc, pid)
		if err != nil {
			continue // gone since the listing
		}
		children[s.ppid] = append(children[s.ppid], pid)
	}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		s, err := readStat(proc, pid)
		if err != nil {
			if pid == root {
				return 0, 0, err
			}
			continue
		}
		cpu += s.cpu
		rss += s.rss
		queue = append(queue, children[pid]...)
	}
	return cpu, rss, nil
}
