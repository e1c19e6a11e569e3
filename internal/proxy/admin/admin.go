package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/weftmesh/weft/internal/appprobe"
)

// Proxy is what the admin API reads.
type Proxy interface {
	Ready() bool
	ConfigDump() any
	// Metrics serves the proxy's metrics in the Prometheus text format.
	Metrics() http.Handler
}

// Options are what the admin API serves besides the Proxy.
type Options struct {
	Logger *slog.Logger
	// AppProbes are the app's probes the injector moved onto the admin
	// port, sent to the app at AppAddress (127.0.0.1 when empty).
	AppProbes  appprobe.Set
	AppAddress string
}

// NewHandler serves
//
//	/live                          200 while the process runs
//	/ready                         200 once the proxy serves a config, else 503
//	/config                        the proxy's ConfigDump as JSON
//	/metrics                       the proxy's Prometheus metrics
//	/app-health/{container}/{kind} an app probe, answered with the app's status
func NewHandler(p Proxy, o Options) http.Handler {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("live\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !p.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: no config applied yet, or shutting down\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		body, err := json.MarshalIndent(p.ConfigDump(), "", "  ")
		if err != nil {
			logger.Error("admin: encode config dump", "error", err)
			http.Error(w, "encode config dump: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(body, '\n'))
	})
	mux.Handle("GET /metrics", p.Metrics())
	mux.Handle("GET "+appprobe.PathPrefix+"{container}/{kind}", newProber(o.AppProbes, o.AppAddress, logger))
	return mux
}
