package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be the harness's proxies' process too.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// TestHarnessSmall runs the harness at a tiny scale and checks what it
// proves rather than how fast: every proxy got its full config (Run fails
// otherwise), every change reached each of its subscribers and no other
// proxy, and the report and results are written.
func TestHarnessSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{Scale: Scale{Namespaces: 5, Services: 50, Endpoints: 250, Proxies: 10, NewProxies: 5, MinSubs: 3, MaxSubs: 8, Changes: 20, Seed: 1}, Parallel: 4}
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Changes
	if c.Count != 20 || c.Subscribers == 0 {
		t.Fatalf("changes: %d made, %d subscriber updates expected; want 20 and some", c.Count, c.Subscribers)
	}
	if c.Missed != 0 || c.PerProxy.N != c.Subscribers {
		t.Errorf("changes: %d of %d subscriber updates arrived (%d missed)", c.PerProxy.N, c.Subscribers, c.Missed)
	}
	if c.Extra != 0 || c.Touched != c.Subscribers {
		t.Errorf("changes touched %d proxies, %d of them not subscribers; want exactly the %d subscribers", c.Touched, c.Extra, c.Subscribers)
	}
	if res.Bootstrap.ToFull.N != 10 || res.NewProxy.Total.N != 5 {
		t.Errorf("timed %d steady and %d new proxies, want 10 and 5", res.Bootstrap.ToFull.N, res.NewProxy.Total.N)
	}
	if res.Proxies.CPUSeconds <= 0 || res.Proxies.PeakRSSMiB <= 0 {
		t.Errorf("the proxies' process reported %.3f CPU seconds, peak RSS %.1f MiB: it did not run apart", res.Proxies.CPUSeconds, res.Proxies.PeakRSSMiB)
	}
	if len(res.Targets) != 3 {
		t.Errorf("targets: %+v, want the issue's three", res.Targets)
	}

	dir := t.TempDir()
	report := filepath.Join(dir, "report.md")
	if err := os.WriteFile(report, []byte("# by hand\n\n"+beginMark+"\nold\n"+endMark+"\n\n## kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(report, res); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	got := string(data)
	for _, want := range []string{"# by hand", "## kept", "endpoint change at every subscriber", "Work per change"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\nold\n") {
		t.Errorf("report kept the old generated section:\n%s", got)
	}
}

// TestNewMesh checks the generated mesh: proxies are workloads of their
// own services, subscriptions are distinct and in bounds, and addresses
// stay in 198.18.0.0/15.
func TestNewMesh(t *testing.T) {
	tests := []struct {
		name    string
		scale   Scale
		wantErr string
	}{
		{"small", Scale{Namespaces: 3, Services: 30, Endpoints: 90, Proxies: 10, NewProxies: 5, MinSubs: 2, MaxSubs: 6, Changes: 5}, ""},
		{"too few endpoints", Scale{Namespaces: 1, Services: 10, Endpoints: 20, Proxies: 1, MinSubs: 1, MaxSubs: 1}, "at least 3 per service"},
		{"more proxies than services", Scale{Namespaces: 1, Services: 10, Endpoints: 30, Proxies: 11, MinSubs: 1, MaxSubs: 1}, "must not exceed services"},
		{"addresses run out", Scale{Namespaces: 1, Services: 10, Endpoints: 1 << 17, Proxies: 1, MinSubs: 1, MaxSubs: 1}, "198.18.0.0/15"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newMesh(tc.scale)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(m.workloads) != tc.scale.Endpoints || len(m.proxies) != tc.scale.Proxies+tc.scale.NewProxies {
				t.Fatalf("%d workloads, %d proxies", len(m.workloads), len(m.proxies))
			}
			own := map[string]bool{}
			for _, p := range m.proxies {
				if own[p.workload.Ref.String()] {
					t.Errorf("workload %s has two proxies", p.workload.Ref)
				}
				own[p.workload.Ref.String()] = true
				if n := len(p.subs); n < tc.scale.MinSubs || n > tc.scale.MaxSubs {
					t.Errorf("proxy %s subscribes to %d services", p.workload.Ref, n)
				}
				seen := map[string]bool{}
				for _, r := range p.subs {
					if seen[r.String()] {
						t.Errorf("proxy %s subscribes twice to %s", p.workload.Ref, r)
					}
					seen[r.String()] = true
				}
			}
			if last := addr(tc.scale.Endpoints + tc.scale.Changes); !strings.HasPrefix(last, "198.18.") && !strings.HasPrefix(last, "198.19.") {
				t.Errorf("address %s is outside 198.18.0.0/15", last)
			}
		})
	}
}
