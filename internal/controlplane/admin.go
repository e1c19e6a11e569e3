package controlplane

import (
	"encoding/json"
	"net/http"
)

func (cp *ControlPlane) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	// Read-only, like /live: a scraper needs no admin token.
	mux.Handle("GET /metrics", cp.metrics.handler(cp.opts.Logger.With("component", "metrics")))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, cp.Status()) })
	mux.HandleFunc("GET /api/v1/services", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, cp.Services()) })
	mux.HandleFunc("GET /api/v1/workloads", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, cp.Workloads()) })
	mux.HandleFunc("GET /api/v1/policies", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, cp.Policies()) })
	mux.HandleFunc("GET /api/v1/routes", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, cp.Routes()) })
	// Live request metadata from the proxies: only the operator, who holds
	// the admin token, may see who calls whom.
	mux.Handle("GET /api/v1/tap", cp.requireAdmin(http.HandlerFunc(cp.serveTap)))
	cp.identityRoutes(mux)
	cp.statsRoutes(mux)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Status reports the model, the manifest directory and the connected proxies.
func (cp *ControlPlane) Status() Status {
	snap := cp.store.Snapshot()
	st := Status{
		Version:   snap.Version,
		Services:  len(snap.Services()),
		Workloads: len(snap.Workloads()),
		Proxies:   []Proxy{},
	}
	if cp.files != nil {
		fs := cp.files.Status()
		st.Manifests = &fs
	}
	if cp.kube != nil {
		st.Kubernetes = &KubernetesStatus{Status: cp.kube.Status(), Leadership: cp.leadership()}
	}
	for _, p := range cp.discovery.Connected() {
		subs := make([]string, len(p.Subscriptions))
		for i, s := range p.Subscriptions {
			subs[i] = s.String()
		}
		st.Proxies = append(st.Proxies, Proxy{Workload: p.Workload.String(), Subscriptions: subs, Version: p.Version, Since: p.Since})
	}
	return st
}

// Services lists every service with its endpoints.
func (cp *ControlPlane) Services() []Service {
	out := []Service{}
	for _, st := range cp.store.Snapshot().Services() {
		s := Service{Name: st.Service.Ref.String(), Endpoints: []Endpoint{}}
		for _, p := range st.Service.Ports {
			s.Ports = append(s.Ports, Port{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol)})
		}
		for _, e := range st.Endpoints {
			s.Endpoints = append(s.Endpoints, Endpoint{Workload: e.ID, Address: e.HostPort(), Identity: e.ServiceAccount.String()})
		}
		out = append(out, s)
	}
	return out
}

// Workloads lists every workload and the source that declared it.
func (cp *ControlPlane) Workloads() []Workload {
	out := []Workload{}
	for _, w := range cp.store.Snapshot().Workloads() {
		owner, _ := cp.store.WorkloadOwner(w.Ref)
		wl := Workload{
			Name: w.Ref.String(), Labels: w.Labels, ServiceAccount: w.Identity().Name, Address: w.Address,
			InboundPort: w.InboundPort, AdminPort: w.AdminPort, Source: owner,
		}
		for _, p := range w.Ports {
			wl.Ports = append(wl.Ports, Port{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol)})
		}
		for _, o := range w.Outbound {
			wl.Outbound = append(wl.Outbound, Outbound{Service: o.Service.String(), Port: o.Port, LocalPort: o.LocalPort})
		}
		out = append(out, wl)
	}
	return out
}
