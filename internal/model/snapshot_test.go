package model

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestSnapshotsStayAsPublished: each change copies only the maps of the
// namespaces it touches, and no snapshot published before it sees it,
// including when a namespace's last object goes and comes back; and
// ServicesChanged and WorkloadsChanged name exactly what a change did.
func TestSnapshotsStayAsPublished(t *testing.T) {
	w := func(ns, name, addr string) *Workload {
		return &Workload{Ref: Ref{ns, name}, Labels: map[string]string{"app": "a"}, Address: addr, InboundPort: 15006,
			Ports: []WorkloadPort{{Port: 80}}}
	}
	a := &Service{Ref: Ref{"one", "a"}, Selector: map[string]string{"app": "a"}, Ports: []ServicePort{{Port: 80}}}
	steps := []struct {
		name string
		c    Changes
		// want lists, per workload and service, what the snapshot holds;
		// services and workloads what changed since the one before.
		want, services, workloads string
	}{
		{"first", Changes{PutServices: []*Service{a}, PutWorkloads: []*Workload{w("one", "w1", "198.18.0.1"), w("two", "w2", "198.18.0.2")}},
			"one/w1@198.18.0.1 two/w2@198.18.0.2 one/a[one/w1]", "one/a", "one/w1 two/w2"},
		{"move w1", Changes{PutWorkloads: []*Workload{w("one", "w1", "198.18.0.9")}},
			"one/w1@198.18.0.9 two/w2@198.18.0.2 one/a[one/w1]", "one/a", "one/w1"},
		{"two's last goes", Changes{DeleteWorkloads: []Ref{{"two", "w2"}}},
			"one/w1@198.18.0.9 one/a[one/w1]", "", "two/w2"},
		{"two again", Changes{PutWorkloads: []*Workload{w("two", "w3", "198.18.0.3")}},
			"one/w1@198.18.0.9 two/w3@198.18.0.3 one/a[one/w1]", "", "two/w3"},
		{"service goes", Changes{DeleteServices: []Ref{{"one", "a"}}},
			"one/w1@198.18.0.9 two/w3@198.18.0.3", "one/a", ""},
	}
	s := NewStore()
	var snaps []*Snapshot
	for _, step := range steps {
		prev := s.Snapshot()
		if err := s.Apply("test", step.c); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		snaps = append(snaps, s.Snapshot())
		if got := joinRefs(s.Snapshot().ServicesChanged(prev)); got != step.services {
			t.Errorf("%s: services changed %q, want %q", step.name, got, step.services)
		}
		if got := joinRefs(s.Snapshot().WorkloadsChanged(prev)); got != step.workloads {
			t.Errorf("%s: workloads changed %q, want %q", step.name, got, step.workloads)
		}
		// Every snapshot so far still holds what it held when published.
		for i, snap := range snaps {
			if got := describeSnapshot(snap); got != steps[i].want {
				t.Errorf("after %q, snapshot of %q holds %q, want %q", step.name, steps[i].name, got, steps[i].want)
			}
		}
	}
}

func describeSnapshot(snap *Snapshot) string {
	var out []string
	for _, w := range snap.Workloads() {
		if got, ok := snap.Workload(w.Ref); !ok || got != w {
			out = append(out, "lookup of "+w.Ref.String()+" disagrees")
		}
		out = append(out, fmt.Sprintf("%s@%s", w.Ref, w.Address))
	}
	for _, st := range snap.Services() {
		if got, ok := snap.Service(st.Service.Ref); !ok || got != st {
			out = append(out, "lookup of "+st.Service.Ref.String()+" disagrees")
		}
		var eps []string
		for _, e := range st.Endpoints {
			eps = append(eps, e.ID)
		}
		out = append(out, fmt.Sprintf("%s%v", st.Service.Ref, eps))
	}
	return strings.Join(out, " ")
}

func joinRefs(refs []Ref) string {
	slices.SortFunc(refs, CompareRefs)
	var out []string
	for _, r := range slices.Compact(refs) {
		out = append(out, r.String())
	}
	return strings.Join(out, " ")
}
