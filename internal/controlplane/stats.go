package controlplane

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/stats"
)

// The control plane scrapes every proxy's admin /metrics (internal/stats)
// and serves the golden signals computed from them, so that `weft stat`
// and the dashboard need no Prometheus:
//
//	GET /api/v1/stats?window=30s                    stats.Summary
//	GET /api/v1/stats/history?service=ns/name       stats.History
//
// Both are read-only, like the rest of the model's listing, and need no
// admin token: they say how much traffic flows between workloads, never
// what a request carried.

// DefaultStatsWindow is the window of GET /api/v1/stats without one.
const DefaultStatsWindow = 30 * time.Second

func (cp *ControlPlane) newStats() {
	cp.stats = stats.New(stats.Options{
		Targets:  cp.statsTargets,
		Interval: cp.opts.StatsInterval,
		Logger:   cp.opts.Logger.With("component", "stats"),
	})
}

// statsTargets are the proxies of the model's workloads that say where
// their admin listener is: the workload's address and admin port, which
// `weft up` binds on loopback beside the workload.
func (cp *ControlPlane) statsTargets() []stats.Target {
	var out []stats.Target
	for _, w := range cp.store.Snapshot().Workloads() {
		if w.AdminPort == 0 || w.Address == "" {
			continue
		}
		out = append(out, stats.Target{
			Workload: w.Ref.String(),
			Addr:     net.JoinHostPort(w.Address, strconv.FormatUint(uint64(w.AdminPort), 10)),
		})
	}
	return out
}

func (cp *ControlPlane) statsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/stats", cp.serveStats)
	mux.HandleFunc("GET /api/v1/stats/history", cp.serveStatsHistory)
}

func (cp *ControlPlane) serveStats(w http.ResponseWriter, r *http.Request) {
	window := DefaultStatsWindow
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("window %q: want a positive duration such as 30s or 5m", v))
			return
		}
		window = d
	}
	writeJSON(w, cp.stats.Summary(window))
}

func (cp *ControlPlane) serveStatsHistory(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("service")
	ref, err := model.ParseRef(name, "")
	if err != nil || name != ref.String() {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("service %q: want namespace/name", name))
		return
	}
	// A service the model no longer has may still have calls in the
	// samples kept; one neither knows is most likely misspelt.
	if _, ok := cp.store.Snapshot().Service(ref); !ok && !cp.stats.Known(name) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("service %s: not in the model and no calls to it in the samples kept", name))
		return
	}
	writeJSON(w, cp.stats.History(name))
}
