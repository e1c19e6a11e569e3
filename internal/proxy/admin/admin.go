package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// Proxy is what the admin API reads.
type Proxy interface {
	Ready() bool
	ConfigDump() any
	// Metrics serves the proxy's metrics in the Prometheus text format.
	Metrics() http.Handler
}

// NewHandler serves
//
//	/live    200 while the process runs
//	/ready   200 once the proxy serves a config, else 503
//	/config  the proxy's ConfigDump as JSON
//	/metrics the proxy's Prometheus metrics
func NewHandler(p Proxy, logger *slog.Logger) http.Handler {
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
	return mux
}
