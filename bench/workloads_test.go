package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// h2loadOutput is the summary h2load 1.52 prints, with the counts filled in.
func h2loadOutput(finished, requests, status, reqTime string) string {
	return "starting benchmark...\nspawning thread #0: 1 total client(s). Timing-based test with 0s of warm-up time and 1s of main duration for measurements.\n" +
		"Main benchmark duration is over for thread #0. Stopping all clients.\n\n" +
		finished + "\n" + requests + "\n" + status + "\n" +
		"traffic: 16.32MB (17108481) total, 63.93KB (65468) headers (space savings 95.87%), 15.97MB (16748544) data\n" +
		"                     min         max         mean         sd        +/- sd\n" +
		reqTime + "\n" +
		"time for connect:       95us        95us        95us         0us   100.00%\n"
}

func TestParseH2load(t *testing.T) {
	const (
		fin    = "finished in 1.00s, 16356.00 req/s, 16.32MB/s"
		ok     = "requests: 16356 total, 16456 started, 16356 done, 16356 succeeded, 0 failed, 0 errored, 0 timeout"
		status = "status codes: 16356 2xx, 0 3xx, 0 4xx, 0 5xx"
		rt     = "time for request:      318us     67.13ms      5.99ms      5.97ms    95.19%"
	)
	for _, tc := range []struct {
		name       string
		out        string
		wantQPS    float64
		wantErrors int64
		wantMean   float64
		wantErr    bool
	}{
		{"clean run", h2loadOutput(fin, ok, status, rt), 16356, 0, 5.99, false},
		{"server errors and failures count", h2loadOutput(fin,
			"requests: 1040 total, 1140 started, 1040 done, 960 succeeded, 80 failed, 10 errored, 0 timeout",
			"status codes: 960 2xx, 0 3xx, 4 4xx, 66 5xx", rt), 16356, 80, 5.99, false},
		{"mean in microseconds, run in ms", h2loadOutput("finished in 950.12ms, 100.00 req/s, 1MB/s", ok, status,
			"time for request:      318us     900us      512.5us      5.97us    95.19%"), 100, 0, 0.5125, false},
		{"nothing done", h2loadOutput(fin, "requests: 0 total, 0 started, 0 done, 0 succeeded, 0 failed, 0 errored, 0 timeout",
			"status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx", rt), 0, 0, 0, true},
		{"not h2load", "connect to 127.0.0.1:1 failed\n", 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseH2load(tc.out)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if r.ActualQPS != tc.wantQPS || r.Errors != tc.wantErrors || r.Mean != tc.wantMean {
				t.Errorf("got qps %v errors %d mean %v ms, want %v, %d, %v", r.ActualQPS, r.Errors, r.Mean, tc.wantQPS, tc.wantErrors, tc.wantMean)
			}
		})
	}
}

// tool finds a tool the suite drives, as `make bench-tools` installs it.
func tool(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{filepath.Join("..", ".tools", name), name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skipf("%s is not installed: run `make bench-tools`", name)
	return ""
}

// A real fortio server and client, and the parse of what the client wrote.
func TestParseFortioRealRun(t *testing.T) {
	fortio := tool(t, "fortio")
	dir := t.TempDir()
	httpPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(fortio, "server", "-http-port", addr(httpPort), "-grpc-port", "disabled", "-redirect-port", "disabled",
		"-tcp-port", "disabled", "-udp-port", "disabled")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitFor(ctx, "fortio server", 10*time.Second, nil, func() error { return httpOK(ctx, "http://"+addr(httpPort)+"/") }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		path       string
		wantErrors bool
	}{
		{"1 KiB answers", payloadPath, false},
		// fortio's echo answers 503 to about half the requests.
		{"503 answers are errors", "/echo?status=503:50", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out.json")
			// Without -allow-initial-errors fortio stops at a warm-up error.
			args := append(fortioArgs(100, 2, 500*time.Millisecond, out), "-allow-initial-errors", "http://"+addr(httpPort)+tc.path)
			if b, err := exec.CommandContext(ctx, fortio, args...).CombinedOutput(); err != nil {
				t.Fatalf("fortio: %v\n%s", err, b)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			r, err := parseFortio(data, "200")
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests < 20 || (r.Errors > 0) != tc.wantErrors || r.Errors == r.Requests {
				t.Errorf("%d requests, %d errors; want some requests, some of them errors: %v", r.Requests, r.Errors, tc.wantErrors)
			}
			if !(r.P50 > 0 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.P999) {
				t.Errorf("percentiles p50 %v p90 %v p99 %v p99.9 %v: want positive and ordered", r.P50, r.P90, r.P99, r.P999)
			}
			if len(r.CDF) == 0 || r.CDF[len(r.CDF)-1].Percent != 100 {
				t.Errorf("distribution %v does not reach 100%%", r.CDF)
			}
		})
	}
	if _, err := parseFortio([]byte(`{"DurationHistogram":{"Count":0}}`), "200"); err == nil || !strings.Contains(err.Error(), "no request") {
		t.Errorf("a run of no request parsed with err = %v", err)
	}
}
