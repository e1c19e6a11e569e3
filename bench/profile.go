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
	"time"
)

// weft-proxy serves no pprof endpoint, so its CPU profile comes from
// Linux's perf (Debian's linux-perf): a sampling of both proxies, call
// graphs by frame pointer, which Go keeps on amd64 and arm64.

// profiler records the proxies of one run while it lasts.
type profiler struct {
	cmd  *exec.Cmd
	data string
}

func startProfile(dir string, proxies []*proc, d time.Duration) (*profiler, error) {
	pids := make([]string, len(proxies))
	for i, p := range proxies {
		pids[i] = strconv.Itoa(p.pid())
	}
	data := filepath.Join(dir, "perf.data")
	// Software clock samples: hardware counters are often missing in VMs.
	// perf runs on the load generator's CPU, not the proxies'.
	cmd := exec.Command("taskset", "-c", strconv.Itoa(loadCPU), "perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g",
		"-o", data, "-p", strings.Join(pids, ","), "--", "sleep", strconv.Itoa(max(1, int(d.Seconds()))))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	return &profiler{cmd: cmd, data: data}, nil
}

// finish waits for the recording and writes two of perf's reports to out:
// where the time went including callees (which request-path and runtime
// functions cost most), then excluding them (the hot functions).
func (p *profiler) finish(ctx context.Context, out, header string) error {
	if err := p.cmd.Wait(); err != nil {
		return fmt.Errorf("perf record: %w", err)
	}
	text := []byte(header)
	for _, r := range []struct {
		title string
		args  []string
	}{
		{"Including callees (--children), functions over 4%", []string{"--children", "--sort", "symbol", "--percent-limit", "4"}},
		{"Excluding callees (--no-children), functions over 0.7%", []string{"--no-children", "--sort", "comm,dso,symbol", "--percent-limit", "0.7"}},
	} {
		args := append([]string{"report", "-i", p.data, "--stdio", "-g", "none"}, r.args...)
		rep, err := exec.CommandContext(ctx, "perf", args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, lastLines(string(ee.Stderr), 3))
			}
			return fmt.Errorf("perf report of %s: %w", p.data, err)
		}
		text = append(text, "## "+r.title+"\n\n"...)
		for _, line := range strings.Split(string(rep), "\n") {
			// perf's comment lines are its help, not the profile.
			if line != "" && !strings.HasPrefix(line, "#") {
				text = append(text, strings.TrimRight(line, " -")+"\n"...)
			}
		}
		text = append(text, '\n')
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := os.WriteFile(out, text, 0o644); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	return nil
}
