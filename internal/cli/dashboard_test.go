package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/dashboard"
)

// syncBuffer is a bytes.Buffer the command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDashboard runs `weft dashboard` until the test ends and returns its
// URL, a function that stops it and returns its error, and its output.
func startDashboard(t *testing.T, args ...string) (string, func() error, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := NewRootCommand()
	out := &syncBuffer{}
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs(append([]string{"dashboard", "--listen", "127.0.0.1:0"}, args...))
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			done <- err
			return err
		case <-time.After(10 * time.Second):
			return errors.New("weft dashboard did not stop within 10s of its context ending")
		}
	}
	t.Cleanup(func() { _ = stop() })
	url := regexp.MustCompile(`weft dashboard: (http://127\.0\.0\.1:\d+/)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := url.FindStringSubmatch(out.String()); m != nil {
			return m[1], stop, out
		}
		select {
		case err := <-done:
			t.Fatalf("weft dashboard ended: %v\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("weft dashboard printed no URL:\n%s", out)
		}
	}
}

func TestDashboardCommand(t *testing.T) {
	cp := startControlPlane(t, nil)
	url, stop, out := startDashboard(t, "--admin", cp.AdminAddr())
	if !strings.Contains(out.String(), cp.AdminAddr()) {
		t.Errorf("the banner does not name the control plane it reads:\n%s", out)
	}

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "weft dashboard") {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}

	// The snapshot is the control plane's mesh (testdata/mesh.yaml).
	resp, err = http.Get(url + "snapshot")
	if err != nil {
		t.Fatal(err)
	}
	var snap dashboard.Snapshot
	err = json.NewDecoder(resp.Body).Decode(&snap)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Errors) != 0 {
		t.Errorf("snapshot errors: %v", snap.Errors)
	}
	var nodes []string
	for _, n := range snap.Topology.Nodes {
		nodes = append(nodes, n.ID)
	}
	for _, want := range []string{"shop/catalog", "shop/stock"} {
		if !strings.Contains(strings.Join(nodes, " "), want) {
			t.Errorf("topology nodes %v lack %s", nodes, want)
		}
	}
	if len(snap.Topology.Edges) == 0 {
		t.Errorf("no edges in the topology of %s", nodes)
	}

	// The admin API passes through, read-only.
	resp, err = http.Post(url+"api/v1/identity/tokens", "application/json", strings.NewReader(`{"namespace":"shop","serviceAccount":"catalog"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST through the dashboard: %s, want 405", resp.Status)
	}

	// An open event stream does not hold up the stop.
	events, err := http.Get(url + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer events.Body.Close()
	if err := stop(); err != nil {
		t.Errorf("weft dashboard: %v\n%s", err, out)
	}
}

func TestDashboardServesOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "[::]:0", "example.com:0", "nonsense"} {
		out, err := run(t, "dashboard", "--listen", addr, "--admin", "127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("weft dashboard --listen %s: %v (%s), want refused", addr, err, out)
		}
	}
	if out, err := run(t, "dashboard", "--window", "0s"); err == nil || !strings.Contains(err.Error(), "--window") {
		t.Errorf("weft dashboard --window 0s: %v (%s), want refused", err, out)
	}
}

func TestDashboardOpen(t *testing.T) {
	for _, open := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		var opened []string
		opener := func(_ context.Context, url string) error {
			opened = append(opened, url)
			cancel() // the dashboard is up: stop it
			return nil
		}
		if !open {
			// Nothing stops it but the timeout: it must not have opened
			// anything by then.
			time.AfterFunc(300*time.Millisecond, cancel)
		}
		var out bytes.Buffer
		f := &dashboardFlags{listen: "127.0.0.1:0", admin: "127.0.0.1:1", window: time.Second, open: open}
		err := runDashboard(ctx, f, &out, slog.New(slog.DiscardHandler), opener)
		cancel()
		if err != nil {
			t.Fatalf("--open=%v: %v", open, err)
		}
		url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(out.String())
		switch {
		case open && (len(opened) != 1 || opened[0] != url):
			t.Errorf("--open: opened %v, want the dashboard's %s", opened, url)
		case !open && len(opened) != 0:
			t.Errorf("--open=false: opened %v", opened)
		}
	}
}
