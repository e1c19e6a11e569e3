package up

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
)

func TestTracingValidate(t *testing.T) {
	for _, tc := range []struct {
		desc string
		t    Tracing
		want string // "" for valid
	}{
		{"off", Tracing{}, ""},
		{"off, ratio checked anyway", Tracing{SampleRatio: 2}, "--trace-sample-ratio 2: want 0 to 1"},
		{"grpc", Tracing{Collector: "127.0.0.1:4317", Protocol: "grpc", SampleRatio: 1}, ""},
		{"grpc by default", Tracing{Collector: "collector.local:4317", SampleRatio: 0.25}, ""},
		{"ipv6", Tracing{Collector: "[::1]:4317", SampleRatio: 0}, ""},
		{"http", Tracing{Collector: "http://127.0.0.1:4318", Protocol: "http", SampleRatio: 1}, ""},
		{"https with path", Tracing{Collector: "https://otel.example/v1/traces", Protocol: "http", SampleRatio: 1}, ""},
		{"unknown protocol", Tracing{Collector: "127.0.0.1:4317", Protocol: "zipkin"}, `--trace-protocol "zipkin": want grpc or http`},
		{"negative ratio", Tracing{Collector: "127.0.0.1:4317", SampleRatio: -0.1}, "--trace-sample-ratio -0.1: want 0 to 1"},
		{"NaN ratio", Tracing{Collector: "127.0.0.1:4317", SampleRatio: math.NaN()}, "--trace-sample-ratio NaN: want 0 to 1"},
		{"grpc given a URL", Tracing{Collector: "http://127.0.0.1:4317"}, `--trace-collector "http://127.0.0.1:4317": with --trace-protocol grpc, want host:port`},
		{"grpc without port", Tracing{Collector: "127.0.0.1"}, `--trace-collector "127.0.0.1": want host:port`},
		{"grpc without host", Tracing{Collector: ":4317"}, "no host"},
		{"grpc bad port", Tracing{Collector: "127.0.0.1:99999"}, `port "99999" is not 1..65535`},
		{"http given host:port", Tracing{Collector: "127.0.0.1:4318", Protocol: "http"}, `--trace-collector "127.0.0.1:4318": with --trace-protocol http, want a URL`},
		{"http without host", Tracing{Collector: "http:///v1/traces", Protocol: "http"}, "with --trace-protocol http, want a URL"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.t.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRunPassesTracingToProxies runs a mesh of one workload whose
// "weft-proxy" is a script writing down its command line, and checks the
// tracing flags are on it, or, with tracing off, that none is.
func TestRunPassesTracingToProxies(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		tracing Tracing
		want    []string // the trace flags expected, in order
		summary string
	}{
		{"off", Tracing{}, nil, ""},
		{"grpc by default", Tracing{Collector: "127.0.0.1:4317", SampleRatio: 1},
			[]string{"--trace-collector", "127.0.0.1:4317", "--trace-protocol", "grpc", "--trace-sample-ratio", "1"},
			"tracing         OTLP/grpc 127.0.0.1:4317, sample ratio 1"},
		{"http, sampling a tenth", Tracing{Collector: "http://127.0.0.1:4318", Protocol: "http", SampleRatio: 0.1},
			[]string{"--trace-collector", "http://127.0.0.1:4318", "--trace-protocol", "http", "--trace-sample-ratio", "0.1"},
			"tracing         OTLP/http http://127.0.0.1:4318, sample ratio 0.1"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			args, out := runFakeMesh(t, tc.tracing)
			if tc.summary != "" && !strings.Contains(out, tc.summary) || tc.summary == "" && strings.Contains(out, "tracing") {
				t.Errorf("summary, want tracing line %q:\n%s", tc.summary, out)
			}
			var got []string
			for i, a := range args {
				if strings.HasPrefix(a, "--trace-") && i+1 < len(args) {
					got = append(got, a, args[i+1])
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("proxy's trace flags %q, want %q (whole command line %q)", got, tc.want, args)
			}
			if !slices.Contains(args, "--workload") {
				t.Errorf("proxy's command line %q lacks its usual flags", args)
			}
		})
	}
}

func TestRunRefusesBadTracing(t *testing.T) {
	err := Run(context.Background(), Options{ProxyPath: "/nonexistent", Tracing: Tracing{Collector: "localhost", SampleRatio: 1}})
	if err == nil || !strings.Contains(err.Error(), "--trace-collector") {
		t.Fatalf("Run: %v, want the --trace-collector error before anything else", err)
	}
}

// runFakeMesh runs Run with one declared workload until its proxy has
// started, and returns the proxy's arguments and what Run printed.
func runFakeMesh(t *testing.T, tracing Tracing) ([]string, string) {
	t.Helper()
	dir, manifests := t.TempDir(), t.TempDir()
	argsFile := filepath.Join(dir, "args")
	proxy := filepath.Join(dir, "weft-proxy")
	// exec, so that the SIGTERM weft up sends on stopping ends the sleep.
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + ".tmp && mv " + argsFile + ".tmp " + argsFile + "\nexec sleep 60\n"
	if err := os.WriteFile(proxy, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	const workload = `apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: app-0, namespace: test, labels: {app: app}}
spec:
  serviceAccount: app
  address: 127.0.0.1
  ports: [{name: http, port: 8080, protocol: http}]
  proxy: {inboundPort: 4143}
`
	if err := os.WriteFile(filepath.Join(manifests, "app.yaml"), []byte(workload), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	opts := Options{
		ControlPlane: controlplane.Options{ManifestDir: manifests, StateDir: filepath.Join(dir, "state"),
			GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)},
		ProxyPath: proxy,
		Out:       &out,
		StopGrace: 5 * time.Second,
		Tracing:   tracing,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	var args []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		if args, err = os.ReadFile(argsFile); err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			cancel()
			t.Fatalf("the proxy did not start: %v (run: %v)", err, <-done)
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended before starting the proxy: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(args), "\n"), "\n"), out.String()
}
