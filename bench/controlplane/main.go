// Command controlplane is the control plane's scale harness (issue 7): it
// starts a real control plane in process, loads a mesh of services and
// endpoints into its model store, connects simulated proxies that speak
// the real gRPC API with mTLS, and measures how fast new proxies get
// their config, how fast an endpoint change reaches every proxy that
// subscribes to its service, how many proxies each change touches, and
// what it all costs in memory and CPU.
//
//	go run ./bench/controlplane            # the scale
//	go run ./bench/controlplane -services 500 -endpoints 5000 -proxies 100
//
// Results go to bench/results/controlplane-<time>.json and into the
// generated section of docs/benchmarks-control-plane.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

func main() {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane bench:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	var (
		cfg        Config
		outDir     = flag.String("out", "bench/results", "directory of the JSON results (\"\" writes none)")
		report     = flag.String("report", "docs/benchmarks-control-plane.md", "Markdown report whose generated section is replaced (\"\" writes none)")
		cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		memProfile = flag.String("memprofile", "", "write a heap profile, taken after the endpoint changes, to this file")
		timeout    = flag.Duration("timeout", 15*time.Minute, "give up after this long")
		verbose    = flag.Bool("v", false, "log the control plane's and the proxies' warnings")
	)
	flag.IntVar(&cfg.Scale.Namespaces, "namespaces", 100, "namespaces the services are spread over")
	flag.IntVar(&cfg.Scale.Services, "services", 10000, "services")
	flag.IntVar(&cfg.Scale.Endpoints, "endpoints", 100000, "endpoints in total (one workload each, endpoints/services per service)")
	flag.IntVar(&cfg.Scale.Proxies, "proxies", 2000, "proxies connected throughout")
	flag.IntVar(&cfg.Scale.NewProxies, "new-proxies", 200, "proxies connected one at a time, each timed to its first full config")
	flag.IntVar(&cfg.Scale.MinSubs, "min-subs", 5, "fewest services a proxy subscribes to")
	flag.IntVar(&cfg.Scale.MaxSubs, "max-subs", 20, "most services a proxy subscribes to")
	flag.IntVar(&cfg.Scale.Changes, "changes", 300, "endpoint changes, one after another")
	flag.Uint64Var(&cfg.Scale.Seed, "seed", 7, "seed of the generated mesh")
	flag.IntVar(&cfg.Parallel, "parallel", 64, "proxies starting at once while the steady proxies connect")
	flag.StringVar(&cfg.Contention, "contention", "", "what else ran on the machine, recorded beside the figures")
	flag.Parse()

	level := slog.LevelError
	if *verbose {
		level = slog.LevelWarn
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Verbose = *verbose
	cfg.Progress = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		cfg.AfterChanges = func() error {
			f, err := os.Create(*memProfile)
			if err != nil {
				return fmt.Errorf("heap profile: %w", err)
			}
			defer f.Close()
			runtime.GC()
			return pprof.WriteHeapProfile(f)
		}
	}

	res, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	res.Command = "go run ./bench/controlplane " + quoteArgs(os.Args[1:])
	if *outDir != "" {
		path := filepath.Join(*outDir, "controlplane-"+res.Started.UTC().Format("20060102T150405Z")+".json")
		if err := writeJSON(path, res); err != nil {
			return err
		}
		cfg.Progress("results: %s", path)
	}
	if *report != "" {
		if err := writeReport(*report, res); err != nil {
			return err
		}
		cfg.Progress("report: %s", *report)
	}
	fmt.Println(res.summary())
	return nil
}
