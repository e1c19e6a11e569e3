package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/stats"
)

// DefaultStatsWindow is the window of the topology's rates, success rates
// and latencies: long enough to smooth a few scrapes, short enough that a
// change shows within it.
const DefaultStatsWindow = 30 * time.Second

// adminTimeout bounds one read of the admin API: a snapshot comes every
// couple of seconds, and one that waits longer shows nothing new.
const adminTimeout = 3 * time.Second

// adminClient reads the control plane's admin API.
type adminClient struct {
	base   string // http://host:port
	client *http.Client
}

func (c *adminClient) get(ctx context.Context, path string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("GET %s: decoding: %w", path, err)
	}
	return nil
}

// Snapshot is what /events pushes: everything the topology, the problems
// panel and the service pages show, read from the admin API at one time.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Admin is the control plane's admin API address.
	Admin string `json:"admin"`
	// Errors say what could not be read this time; what was read is
	// still shown.
	Errors []string `json:"errors,omitempty"`
	// Version is the model's version; Proxies the proxies connected.
	Version  uint64    `json:"version"`
	Proxies  int       `json:"proxies"`
	Topology Topology  `json:"topology"`
	Problems []Problem `json:"problems"`
	// Services, Workloads, Routes and Policies are the admin API's, for
	// the service and workload pages.
	Services  []controlplane.Service  `json:"services"`
	Workloads []controlplane.Workload `json:"workloads"`
	Routes    []controlplane.Route    `json:"routes"`
	Policies  []controlplane.Policy   `json:"policies"`
	// Stats says where the topology's numbers come from, or why there
	// are none.
	Stats Stats `json:"stats"`
	// RouteStats are the routes' signals over the window, by route
	// ("HTTPRoute demo/catalog-canary").
	RouteStats []stats.RouteStats `json:"routeStats"`
}

// Stats is about the golden signals of a snapshot.
type Stats struct {
	// Available is true once the control plane has two samples of the
	// proxies' metrics to compute rates from; until then the UI says
	// there is no traffic data yet, rather than show zeros.
	Available bool `json:"available"`
	// Window is what the numbers are computed over, e.g. "30s"; Interval
	// how often the control plane scrapes the proxies.
	Window   string `json:"window,omitempty"`
	Interval string `json:"interval,omitempty"`
	// Seconds is the time the window's samples span, which is less than
	// the window until the control plane has run that long.
	Seconds float64   `json:"seconds,omitempty"`
	To      time.Time `json:"to,omitzero"`
	// Scrapes say how the newest scrape of the proxies went.
	Scrapes *stats.Scrapes `json:"scrapes,omitempty"`
	// Error is why the stats could not be read.
	Error string `json:"error,omitempty"`
}

// Problem is one entry of the problems panel.
type Problem struct {
	// Kind is "manifest" (a file or object the control plane could not
	// take), "route" (a route rejected or not in force on a parent) or
	// "policy" (a traffic policy not in force).
	Kind string `json:"kind"`
	// Object is "Kind namespace/name" when known.
	Object string `json:"object,omitempty"`
	// File is the manifest file of a manifest problem.
	File    string `json:"file,omitempty"`
	Message string `json:"message"`
	// Services are the services the problem concerns, namespace/name, so
	// a service's page can show its own.
	Services []string `json:"services,omitempty"`
}

// collect reads the admin API and builds a snapshot; what fails to read
// is named in Errors and the rest is shown.
func (h *Handler) collect(ctx context.Context) *Snapshot {
	var (
		status    controlplane.Status
		services  []controlplane.Service
		workloads []controlplane.Workload
		routes    []controlplane.Route
		policies  []controlplane.Policy
		summary   stats.Summary
	)
	reads := []struct {
		path string
		into any
	}{
		{"/api/v1/status", &status},
		{"/api/v1/services", &services},
		{"/api/v1/workloads", &workloads},
		{"/api/v1/routes", &routes},
		{"/api/v1/policies", &policies},
		{"/api/v1/stats?window=" + h.opts.StatsWindow.String(), &summary},
	}
	errs := make([]error, len(reads))
	var wg sync.WaitGroup
	for i, r := range reads {
		wg.Go(func() { errs[i] = h.admin.get(ctx, r.path, r.into) })
	}
	wg.Wait()

	snap := &Snapshot{Time: time.Now().UTC(), Admin: h.opts.Admin, Version: status.Version, Proxies: len(status.Proxies)}
	statsErr := errs[len(errs)-1]
	for _, err := range errs[:len(errs)-1] {
		if err != nil {
			snap.Errors = append(snap.Errors, err.Error())
		}
	}
	var sum *stats.Summary
	switch {
	case statsErr != nil:
		// A control plane without stats (an older one answers 404) is not
		// an error of the dashboard's: the UI says there is no data.
		snap.Stats.Error = statsErr.Error()
	case summary.To.IsZero():
		snap.Stats = Stats{Window: summary.Window, Interval: summary.Interval, Scrapes: &summary.Proxies}
	default:
		sum = &summary
		snap.Stats = Stats{Available: true, Window: summary.Window, Interval: summary.Interval, Seconds: summary.Seconds,
			To: summary.To, Scrapes: &summary.Proxies}
	}
	connected := map[string]bool{}
	for _, p := range status.Proxies {
		connected[p.Workload] = true
	}
	snap.Topology = buildTopology(services, workloads, connected, sum)
	snap.Problems = problems(status.Manifests, routes, policies)
	snap.Services = orEmpty(services)
	snap.Workloads = orEmpty(workloads)
	snap.Routes = orEmpty(routes)
	snap.Policies = orEmpty(policies)
	snap.RouteStats = []stats.RouteStats{}
	if sum != nil {
		snap.RouteStats = orEmpty(sum.Routes)
	}
	return snap
}

// orEmpty makes a nil list [] in JSON, so the UI needs no null checks.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
