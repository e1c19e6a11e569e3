package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestReadStatOfThisProcess(t *testing.T) {
	// Spend CPU so that the counters have something to show, then hold
	// them to the kernel's other account of it, getrusage.
	var ru syscall.Rusage
	for ru.Utime.Sec == 0 && ru.Utime.Usec < 100000 {
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
	}
	s, err := readStat("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.ppid != os.Getppid() {
		t.Errorf("ppid = %d, want %d", s.ppid, os.Getppid())
	}
	used := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	if s.cpu < used-0.05 {
		t.Errorf("cpu = %.2fs, want about the %.2fs getrusage reported just before", s.cpu, used)
	}
	if s.rss < 1<<20 {
		t.Errorf("rss = %d bytes, want at least 1 MiB for a Go test binary", s.rss)
	}
}

// A command name with spaces and parentheses must not shift the fields.
func TestReadStatCommandName(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		wantPPID   int
		wantCPU    float64
		wantErr    bool
	}{
		{"plain", "42 (nginx) S 7 42 42 0 -1 4194560 1 0 0 0 150 50 0 0 20 0 1 0 1 1 1", 7, 2, false},
		{"spaces and parens", "42 (a (b) c) S 9 42 42 0 -1 4194560 1 0 0 0 1 2 0 0 20 0 1 0 1 1 1", 9, 0.03, false},
		{"truncated", "42 (x) S 9 42", 0, 0, true},
		{"no name", "42 x S 9", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "42")
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(p, "stat"), []byte(tc.stat), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(p, "status"), []byte("Name:\tx\nVmRSS:\t    2048 kB\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := readStat(dir, 42)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("readStat = %+v, want an error", s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.ppid != tc.wantPPID || s.cpu != tc.wantCPU || s.rss != 2048<<10 {
				t.Errorf("readStat = %+v, want ppid %d, cpu %.2f, rss 2 MiB", s, tc.wantPPID, tc.wantCPU)
			}
		})
	}
}

// treeUsage counts a master's workers, as nginx's cost is its master's and
// its worker's together.
func TestTreeUsageCountsChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 30 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	shell, err := readStat("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, rss, err := treeUsage("/proc", cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		// Two sleeps beside the shell: well over its own RSS.
		if rss > shell.rss+shell.rss/2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree RSS %d, shell alone %d: the children were not counted", rss, shell.rss)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
