package files

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
)

const svcYAML = `apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: demo}
spec:
  selector: {app: catalog}
  ports: [{name: http, port: 80, targetPort: 8080, appProtocol: http}]
`

func workloadYAML(name string, port int) string {
	return strings.NewReplacer("NAME", name, "PORT", strconv.Itoa(port)).Replace(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: NAME, namespace: demo, labels: {app: catalog}}
spec:
  address: 127.0.0.1
  ports: [{name: http, port: 8080}]
  proxy: {inboundPort: PORT}
`)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newSource(t *testing.T) (*Source, *model.Store, string) {
	t.Helper()
	dir := t.TempDir()
	store := model.NewStore()
	s, err := New(Options{Dir: dir, Store: store, Debounce: 10 * time.Millisecond, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s, store, dir
}

var catalog = model.Ref{Namespace: "demo", Name: "catalog"}

func endpointPorts(t *testing.T, store *model.Store) map[string]uint32 {
	t.Helper()
	st, ok := store.Snapshot().Service(catalog)
	if !ok {
		t.Fatal("service demo/catalog not in the model")
	}
	out := map[string]uint32{}
	for _, e := range st.Endpoints {
		out[e.ID] = e.ProxyPort
	}
	return out
}

func TestSyncKeepsLastGoodObject(t *testing.T) {
	s, store, dir := newSource(t)
	write(t, dir, "svc.yaml", svcYAML)
	write(t, dir, "w.yaml", workloadYAML("w1", 4001)+"---\n"+workloadYAML("w2", 4002))
	s.Sync()
	if st := s.Status(); len(st.Problems) != 0 || st.Objects != 3 || st.Files != 2 {
		t.Fatalf("status = %+v", st)
	}
	if got := endpointPorts(t, store); len(got) != 2 || got["demo/w1"] != 4001 {
		t.Fatalf("endpoints = %v", got)
	}

	// w1 becomes invalid and w2 changes: w2's change applies, w1 stays as it was.
	write(t, dir, "w.yaml", workloadYAML("w1", 0)+"---\n"+workloadYAML("w2", 4012))
	s.Sync()
	st := s.Status()
	if len(st.Problems) != 1 || st.Problems[0].Object != "workload demo/w1" ||
		!strings.Contains(st.Problems[0].Message, "spec.proxy.inboundPort") ||
		!strings.Contains(st.Problems[0].Message, "w.yaml") {
		t.Fatalf("problems = %+v", st.Problems)
	}
	if got := endpointPorts(t, store); got["demo/w1"] != 4001 || got["demo/w2"] != 4012 {
		t.Fatalf("endpoints = %v, want w1 kept at 4001 and w2 moved to 4012", got)
	}

	// A file that does not parse at all keeps every object it held.
	write(t, dir, "w.yaml", "kind: [\n")
	s.Sync()
	if got := endpointPorts(t, store); len(got) != 2 {
		t.Fatalf("endpoints after a broken file = %v, want both kept", got)
	}
	if st := s.Status(); len(st.Problems) != 1 || st.Problems[0].Object != "" {
		t.Fatalf("problems = %+v", st.Problems)
	}

	// Fixed: the error clears.
	write(t, dir, "w.yaml", workloadYAML("w1", 4021))
	s.Sync()
	if got := endpointPorts(t, store); len(got) != 1 || got["demo/w1"] != 4021 {
		t.Fatalf("endpoints = %v", got)
	}
	if st := s.Status(); len(st.Problems) != 0 {
		t.Fatalf("problems = %+v", st.Problems)
	}

	// Removing the file removes its objects.
	if err := os.Remove(filepath.Join(dir, "w.yaml")); err != nil {
		t.Fatal(err)
	}
	s.Sync()
	if got := endpointPorts(t, store); len(got) != 0 {
		t.Fatalf("endpoints = %v, want none", got)
	}
}

func TestDuplicateAcrossFiles(t *testing.T) {
	s, store, dir := newSource(t)
	write(t, dir, "a.yaml", svcYAML)
	write(t, dir, "b.yaml", strings.Replace(svcYAML, "port: 80", "port: 81", 1))
	s.Sync()
	st := s.Status()
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0].Message, "also declared in") || !strings.HasSuffix(st.Problems[0].File, "b.yaml") {
		t.Fatalf("problems = %+v", st.Problems)
	}
	svc, _ := store.Snapshot().Service(catalog)
	if svc.Service.Ports[0].Port != 80 {
		t.Errorf("port = %d, want the first file's 80", svc.Service.Ports[0].Port)
	}
}

func TestConflictWithAnotherSourceIsRetried(t *testing.T) {
	s, store, dir := newSource(t)
	reg := &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "w1"}, Address: "127.0.0.1", InboundPort: 9999}
	if err := store.Apply("registration", model.Changes{PutWorkloads: []*model.Workload{reg}}); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "svc.yaml", svcYAML)
	write(t, dir, "w.yaml", workloadYAML("w1", 4001))
	s.Sync()
	if st := s.Status(); len(st.Problems) != 1 || !strings.Contains(st.Problems[0].Message, "already declared by another source") {
		t.Fatalf("problems = %+v", st.Problems)
	}
	if err := store.Apply("registration", model.Changes{DeleteWorkloads: []model.Ref{reg.Ref}}); err != nil {
		t.Fatal(err)
	}
	s.Sync()
	if w, ok := store.Snapshot().Workload(reg.Ref); !ok || w.InboundPort != 4001 {
		t.Fatalf("workload = %+v, want the manifest's once the registration left", w)
	}
}

func TestRunWatchesChanges(t *testing.T) {
	s, store, dir := newSource(t)
	s.Sync()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Give the watcher a moment to start before writing; a missed event
	// would still be caught by resync, which this test sets to an hour.
	time.Sleep(100 * time.Millisecond)
	write(t, dir, "svc.yaml", svcYAML)
	sub := filepath.Join(dir, "more")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	write(t, sub, "w.yaml", workloadYAML("w1", 4001))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st, ok := store.Snapshot().Service(catalog); ok && len(st.Endpoints) == 1 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("changes in the directory never reached the store")
}

func TestOversizedFileKeepsObjectsAndClearsWhenRestored(t *testing.T) {
	s, store, dir := newSource(t)
	write(t, dir, "svc.yaml", svcYAML)
	content := workloadYAML("w1", 4001)
	write(t, dir, "w.yaml", content)
	s.Sync()
	write(t, dir, "w.yaml", content+"#"+strings.Repeat("x", maxFileSize)+"\n")
	s.Sync()
	st := s.Status()
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0].Message, "larger than") {
		t.Fatalf("problems = %+v, want the size error", st.Problems)
	}
	if got := endpointPorts(t, store); got["demo/w1"] != 4001 {
		t.Fatalf("endpoints = %v, want w1 kept", got)
	}
	write(t, dir, "w.yaml", content)
	s.Sync()
	if st := s.Status(); len(st.Problems) != 0 {
		t.Fatalf("problems = %+v after restoring the same content", st.Problems)
	}
}

// policyYAML is an AuthorizationPolicy allowing methods and a TCPRoute on
// port, in one file.
func policyYAML(methods string, port int) string {
	return strings.NewReplacer("METHODS", methods, "PORT", strconv.Itoa(port)).Replace(`apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: readers, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  rules: [{from: [{serviceAccount: web}], methods: [METHODS]}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: admin, namespace: demo}
spec:
  matches: {ports: [PORT]}
`)
}

func TestPolicyKeepsLastGood(t *testing.T) {
	s, store, dir := newSource(t)
	readers := model.PolicyKey{Kind: model.KindAuthorizationPolicy, Ref: model.Ref{Namespace: "demo", Name: "readers"}}
	admin := model.PolicyKey{Kind: model.KindTCPRoute, Ref: model.Ref{Namespace: "demo", Name: "admin"}}
	steps := []struct {
		desc string
		// content of policy.yaml; "" removes it.
		content string
		// wantMethods of the policy's rule and wantPort of the route; none
		// when the objects should be gone.
		wantMethods []string
		wantPort    uint32
		wantProblem string
	}{
		{"added", policyYAML("GET", 9000), []string{"GET"}, 9000, ""},
		{"changed", policyYAML("GET, HEAD", 9000), []string{"GET", "HEAD"}, 9000, ""},
		{"made invalid, beside a valid change", policyYAML("GET, get", 9001), []string{"GET", "HEAD"}, 9001,
			`policy.yaml: authorizationpolicy demo/readers: spec.rules[0].methods[1]: "get": want an HTTP method`},
		{"fixed", policyYAML("POST", 9001), []string{"POST"}, 9001, ""},
		{"removed", "", nil, 0, ""},
	}
	for _, step := range steps {
		path := filepath.Join(dir, "policy.yaml")
		if step.content == "" {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		} else {
			write(t, dir, "policy.yaml", step.content)
		}
		s.Sync()
		got := map[model.PolicyKey]model.Policy{}
		for _, p := range store.Snapshot().Policies() {
			got[p.Key()] = p
		}
		if step.wantMethods == nil {
			if len(got) != 0 {
				t.Errorf("%s: policies = %v, want none", step.desc, got)
			}
		} else {
			p, ok := got[readers].(*model.AuthorizationPolicy)
			if !ok || !slices.Equal(p.Rules[0].Methods, step.wantMethods) {
				t.Errorf("%s: policy = %+v, want methods %v", step.desc, got[readers], step.wantMethods)
			}
			if r, ok := got[admin].(*model.TCPRoute); !ok || !slices.Equal(r.Ports, []uint32{step.wantPort}) {
				t.Errorf("%s: route = %+v, want port %d", step.desc, got[admin], step.wantPort)
			}
		}
		st := s.Status()
		switch {
		case step.wantProblem == "" && len(st.Problems) != 0:
			t.Errorf("%s: problems = %+v, want none", step.desc, st.Problems)
		case step.wantProblem != "" && (len(st.Problems) != 1 || st.Problems[0].Object != "authorizationpolicy demo/readers" ||
			!strings.Contains(st.Problems[0].Message, step.wantProblem)):
			t.Errorf("%s: problems = %+v, want one with %q", step.desc, st.Problems, step.wantProblem)
		}
	}
}

// TestOnSync: every Sync reports how many problems the directory has now,
// and whether it could be read at all.
func TestOnSync(t *testing.T) {
	dir := t.TempDir()
	var got []SyncResult
	s, err := New(Options{Dir: dir, Store: model.NewStore(), Resync: time.Hour, OnSync: func(r SyncResult) { got = append(got, r) }})
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "svc.yaml", svcYAML)
	s.Sync()
	write(t, dir, "w.yaml", workloadYAML("w1", 70000)+"---\n"+workloadYAML("w2", 0))
	s.Sync()
	write(t, dir, "w.yaml", workloadYAML("w1", 4001))
	s.Sync()
	// An unreadable directory keeps everything and says so.
	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	s.Sync()

	want := []int{0, 2, 0, 1}
	if len(got) != len(want) {
		t.Fatalf("OnSync called %d times, want %d", len(got), len(want))
	}
	for i, r := range got[:3] {
		if r.Problems != want[i] || r.Err != nil {
			t.Errorf("sync %d: %+v, want %d problems and no error", i, r, want[i])
		}
	}
	if os.Geteuid() != 0 { // root reads the directory regardless
		if r := got[3]; r.Problems != 1 || r.Err == nil {
			t.Errorf("sync of an unreadable directory: %+v, want one problem and an error", r)
		}
	}
}
