//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tapEvent is what `weft tap -o json` prints per request, as a script
// reads it.
type tapEvent struct {
	Time                time.Time `json:"time"`
	Proxy               string    `json:"proxy"`
	Direction           string    `json:"direction"`
	Method              string    `json:"method"`
	Authority           string    `json:"authority"`
	Path                string    `json:"path"`
	Status              int       `json:"status"`
	LatencyNs           int64     `json:"latencyNs"`
	SourceIdentity      string    `json:"sourceIdentity"`
	DestinationIdentity string    `json:"destinationIdentity"`
	DestinationService  string    `json:"destinationService"`
	TLS                 bool      `json:"tls"`
}

// TestTap runs `weft tap` and `weft top` as an operator does, against
// `weft up --demo` with its load generator running: tap streams the calls
// to catalog with verified identities and without query strings, only to
// the holder of the admin token, and top lists the demo's paths.
func TestTap(t *testing.T) {
	d := startDemo(t)
	stateDir := filepath.Dir(d.manifests)
	admin := d.cp.adminAddr()
	catalogVia := d.workloads["demo/web-0"].calls["demo/catalog:80"]

	// top runs beside tap: both tap every proxy at once.
	type result struct {
		out string
		err error
	}
	topDone := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(binDir(t), "weft"), "top", "--once-after", "5s",
			"--admin", admin, "--state-dir", stateDir).CombinedOutput()
		topDone <- result{string(out), err}
	}()

	tap := start(t, "weft tap", "weft", "tap", "--service", "demo/catalog", "-o", "json", "--admin", admin, "--state-dir", stateDir)
	var events []tapEvent
	eventually(t, 15*time.Second, "weft tap streams calls to catalog, one with a query", func() error {
		// A call with a secret in its query, which tap must not show.
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/products?token=hunter2", catalogVia))
		if err != nil {
			return err
		}
		resp.Body.Close()
		events = events[:0]
		queried := false
		for _, line := range strings.Split(tap.Output(), "\n") {
			if !strings.HasPrefix(line, "{") {
				continue // notes on standard error: "# tapping 6 proxies"
			}
			var e tapEvent
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				return fmt.Errorf("weft tap printed %q: %v", line, err)
			}
			events = append(events, e)
			queried = queried || e.Authority == fmt.Sprintf("127.0.0.1:%d", catalogVia)
		}
		if len(events) < 5 || !queried {
			return fmt.Errorf("%d events, the test's own call among them: %v; output:\n%s", len(events), queried, tap.Output())
		}
		return nil
	})
	if strings.Contains(tap.Output(), "hunter2") {
		t.Errorf("weft tap shows a query string:\n%s", tap.Output())
	}
	spiffe := regexp.MustCompile(`^spiffe://weft\.local/ns/demo/sa/[a-z0-9-]+$`)
	for _, e := range events {
		if e.Proxy != "demo/web-0" || e.Direction != "outbound" || e.DestinationService != "demo/catalog" ||
			e.Method != http.MethodGet || e.Path != "/products" || e.Status != http.StatusOK || !e.TLS || e.LatencyNs <= 0 ||
			e.SourceIdentity != "spiffe://weft.local/ns/demo/sa/web" || !spiffe.MatchString(e.DestinationIdentity) ||
			e.DestinationIdentity != "spiffe://weft.local/ns/demo/sa/catalog" || time.Since(e.Time) > time.Minute {
			t.Errorf("event %+v", e)
		}
	}
	if !strings.Contains(tap.Output(), "# tapping 6 proxies") {
		t.Errorf("weft tap did not say how many proxies it taps:\n%s", tap.Output())
	}
	t.Logf("weft tap: %d events of calls to demo/catalog, e.g. %+v", len(events), events[0])

	// Only the holder of the admin token may tap.
	resp, err := http.Get("http://" + admin + "/api/v1/tap")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/tap without the admin token: %s, want 401", resp.Status)
	}
	wrong := t.TempDir()
	if err := os.WriteFile(filepath.Join(wrong, "admin.token"), []byte("not-the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := (&mesh{t: t, adminPort: d.cp.adminPort}).weft("tap", "--state-dir", wrong)
	if err == nil || !strings.Contains(out, "401 Unauthorized") {
		t.Errorf("weft tap with a wrong admin token: %v\n%s", err, out)
	}

	top := <-topDone
	if top.err != nil {
		t.Fatalf("weft top --once-after 5s: %v\n%s", top.err, top.out)
	}
	t.Logf("weft top --once-after 5s:\n%s", top.out)
	for _, path := range []string{"/api/products", "/products", "/weft.demo.v1.Stock/GetStock"} {
		row := regexp.MustCompile(`(?m)^(GET|POST)\s+` + regexp.QuoteMeta(path) + `\s+([1-9]\d*)\s+[\d.]+/s\s+[\d.]+%\s+\S+\s+\S+$`)
		if !row.MatchString(top.out) {
			t.Errorf("weft top has no row with requests for %s", path)
		}
	}
}
