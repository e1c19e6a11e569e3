// Command weft-proxy is weft's data plane: the sidecar beside each
// workload. It only wires parts together; see internal/proxy.
//
// It must stay small: no Kubernetes packages, no control-plane halves of
// the API (TestImports checks).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/admin"
	"github.com/weftmesh/weft/internal/proxy/control"
)

// deregisterTimeout bounds the goodbye to the control plane on shutdown:
// an unreachable control plane must not hold up draining.
const deregisterTimeout = 3 * time.Second

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-proxy:", err)
		return 2
	}
	logger, err := newLogger(cfg.logLevel, cfg.logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-proxy:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	p := proxy.New(proxy.Options{
		Logger:        logger,
		AppAddress:    cfg.appAddress,
		DrainTimeout:  cfg.drainTimeout,
		DetectTimeout: cfg.detectTimeout,
	})

	// Admin first: /live answers, and /ready says 503, while the proxy
	// waits for its config.
	adminLn, err := net.Listen("tcp", cfg.admin)
	if err != nil {
		logger.Error("admin listener", "addr", cfg.admin, "error", err)
		return 1
	}
	adminSrv := &http.Server{Handler: admin.NewHandler(p, logger), ReadHeaderTimeout: 5 * time.Second}
	go adminSrv.Serve(adminLn)
	logger.Info("admin listening", "addr", adminLn.Addr().String())

	conn, err := control.Dial(cfg.controlPlane)
	if err != nil {
		logger.Error("control plane", "error", err)
		return 1
	}
	defer conn.Close()

	code := 0
	var lease *control.Lease
	keepErr := make(chan error, 1)
	if cfg.registered != nil {
		lease, err = control.Register(ctx, conn, cfg.registered, cfg.leaseTTL, logger)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			logger.Error("registration failed", "error", err)
			return 1
		}
		go func() { keepErr <- lease.Keep(ctx) }()
	}

	client := control.NewClient(conn, cfg.workload, logger)
	runErr := make(chan error, 1)
	go func() {
		runErr <- client.Run(ctx, func(pc *model.ProxyConfig) {
			if pc.Workload == nil {
				// Normal at start: the manifest or registration naming this
				// workload has not reached the control plane yet.
				logger.Info("waiting for the control plane to know this workload", "workload", cfg.workload)
				return
			}
			if err := p.Apply(pc); err != nil {
				logger.Error("config not applied; the previous one stays in force", "version", pc.Version, "error", err)
			}
			client.SetSubscriptions(outboundServices(pc.Workload))
		})
	}()

	select {
	case <-ctx.Done():
		logger.Info("signal received; shutting down")
	case err := <-runErr:
		logger.Error("discovery failed for good", "error", err)
		code = 1
	case err := <-keepErr:
		if err != nil {
			logger.Error("lease lost for good", "error", err)
			code = 1
		}
	}
	stop()
	<-runErr // Run returns once ctx ends; no Apply may race Shutdown

	if lease != nil {
		// Leave the mesh before draining, so peers stop picking us.
		dctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
		if err := lease.Deregister(dctx); err != nil {
			logger.Warn("deregistration failed; the lease will lapse", "error", err)
		}
		cancel()
	}
	if err := p.Shutdown(context.Background()); err != nil {
		logger.Warn("shutdown", "error", err)
	}
	actx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	adminSrv.Shutdown(actx)
	return code
}

// outboundServices are the services a workload calls: what the proxy
// subscribes to.
func outboundServices(w *model.Workload) []model.Ref {
	seen := map[model.Ref]bool{}
	var refs []model.Ref
	for _, o := range w.Outbound {
		if !seen[o.Service] {
			seen[o.Service] = true
			refs = append(refs, o.Service)
		}
	}
	return refs
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
}
