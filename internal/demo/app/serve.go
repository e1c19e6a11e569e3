package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/demo/fault"
)

// VersionHeader is the response header by which catalog names its version.
const VersionHeader = "X-Demo-Version"

// shutdownGrace bounds how long a server waits for requests in flight when
// its context ends.
const shutdownGrace = 5 * time.Second

// ServeControl serves only the fault control endpoint on ln until ctx ends:
// the --control-addr of services that do not speak HTTP themselves.
func ServeControl(ctx context.Context, ln net.Listener, in *fault.Injector) error {
	mux := http.NewServeMux()
	mux.Handle(fault.ControlPath, in.ControlHandler())
	return serveHTTP(ctx, newHTTPServer(mux, nil), ln)
}

func newHTTPServer(h http.Handler, protocols *http.Protocols) *http.Server {
	return &http.Server{
		Handler:           h,
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// serveHTTP runs srv on ln until ctx ends, then shuts it down gracefully.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close() // grace is over: drop what is left
		err = fmt.Errorf("shut down http on %s: %w", ln.Addr(), err)
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve http on %s: %w", ln.Addr(), serr))
	}
	return err
}

// h2cOnly is HTTP/2 with prior knowledge over plaintext, and nothing else.
func h2cOnly() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// http1Only is plaintext HTTP/1.1, and nothing else.
func http1Only() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	return p
}

// newTransport is an HTTP client transport for loopback upstreams. It never
// uses a proxy from the environment: the demo calls only what it is told.
func newTransport(h2c bool) *http.Transport {
	p := http1Only()
	if h2c {
		p = h2cOnly()
	}
	return &http.Transport{
		Protocols:           p,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the status is sent; nothing to do on error
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// faultsOrNone returns in, or for nil a fresh Injector that injects nothing
// until its control endpoint says otherwise.
func faultsOrNone(in *fault.Injector) *fault.Injector {
	if in == nil {
		return new(fault.Injector)
	}
	return in
}

func logger(l *slog.Logger, service string) *slog.Logger {
	return orDefault(l, slog.Default()).With("service", service)
}
