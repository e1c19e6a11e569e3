//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpDemo runs the README's first command the way a user does, checks
// the demo answers through the mesh, and that Ctrl-C leaves nothing behind.
func TestUpDemo(t *testing.T) {
	stateDir := t.TempDir()
	// Below the kernel's ephemeral range (32768 and up), where any socket
	// could take a demo port first.
	portBase := 21000 + (os.Getpid()%20)*500
	grpcPort, adminPort := freePort(t), freePort(t)
	up := start(t, "weft up --demo", "weft", "up", "--demo", "--port-base", strconv.Itoa(portBase),
		"--state-dir", stateDir, "--grpc-addr", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--admin-addr", fmt.Sprintf("127.0.0.1:%d", adminPort))
	var tryURL string
	eventually(t, 60*time.Second, "weft up prints how to reach the demo", func() error {
		m := regexp.MustCompile(`curl (http://127\.0\.0\.1:\d+/\S*)`).FindStringSubmatch(up.Output())
		if m == nil {
			return fmt.Errorf("output so far:\n%s", up.Output())
		}
		tryURL = m[1]
		return nil
	})
	if strings.Contains(up.Output(), "not ready") {
		t.Errorf("some proxy was not ready:\n%s", up.Output())
	}

	var products map[string]any
	eventually(t, 20*time.Second, "the demo answers through the mesh", func() error {
		resp, err := http.Get(tryURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, body)
		}
		return json.Unmarshal(body, &products)
	})
	t.Logf("demo answered: %v", products)

	m := &mesh{t: t, adminPort: adminPort}
	eventually(t, 20*time.Second, "every demo proxy connected", func() error {
		out, err := m.weft("get", "proxies")
		if err != nil {
			return err
		}
		for _, w := range []string{"web-0", "catalog-v1-0", "catalog-v2-0", "stock-0", "audit-0", "loadgen-0"} {
			if !strings.Contains(out, "demo/"+w) {
				return fmt.Errorf("%s not connected:\n%s", w, out)
			}
		}
		return nil
	})
	demoRoutes(t, filepath.Join(stateDir, "manifests"), tryURL, portBase)
	eventually(t, 30*time.Second, "the load generator's requests succeed", func() error {
		log, err := os.ReadFile(filepath.Join(stateDir, "logs", "app-loadgen.log"))
		if err != nil {
			return err
		}
		if !regexp.MustCompile(`ok=[1-9]`).Match(log) {
			return fmt.Errorf("load generator log:\n%s", log)
		}
		return nil
	})

	// Ctrl-C stops every process weft up started.
	if err := up.stop(syscall.SIGINT, 60*time.Second); err != nil {
		t.Fatalf("weft up: %v", err)
	}
	if !strings.Contains(up.Output(), "stopped.") {
		t.Errorf("weft up did not say it stopped:\n%s", up.Output())
	}
	if left := processesWith(t, fmt.Sprintf("127.0.0.1:%d", grpcPort), stateDir); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
	for port := portBase; port < portBase+500; port++ {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("something still listens on demo port %d", port)
		}
	}
}

// processesWith lists the command lines that contain any of the needles
// (weft up carries its state directory, the proxies it started the control
// plane's address; the demo apps are checked by their ports).
func processesWith(t *testing.T, needles ...string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(raw), "\x00", " ")
		if !strings.Contains(cmdline, "weft") {
			continue
		}
		for _, n := range needles {
			if strings.Contains(cmdline, n) {
				out = append(out, cmdline)
				break
			}
		}
	}
	return out
}

// demoCatalogRoute sends alice to catalog v2 and splits everyone else's
// calls 90/10 between v1 and v2: the canary of docs/traffic.md.
const demoCatalogRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules:
  - matches: [{headers: [{name: x-user, value: alice}]}]
    backendRefs: [{name: catalog-v2, port: 80}]
  - backendRefs:
    - {name: catalog-v1, port: 80, weight: 90}
    - {name: catalog-v2, port: 80, weight: 10}
`

// demoRoutes measures a 90/10 split of catalog on the running demo,
// through web, and a header route sending one user to v2.
func demoRoutes(t *testing.T, manifests, webURL string, portBase int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(manifests, "catalog-canary.yaml"), []byte(demoCatalogRoute), 0o644); err != nil {
		t.Fatal(err)
	}
	// web's own outbound port for catalog (the demo layout: base+300).
	catalogVia := fmt.Sprintf("http://127.0.0.1:%d/products", portBase+300)
	version := func(user string) (string, error) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, catalogVia, nil)
		if user != "" {
			req.Header.Set("X-User", user)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("catalog answered %s", resp.Status)
		}
		return resp.Header.Get("X-Demo-Version"), nil
	}
	eventually(t, 20*time.Second, "alice routed to catalog v2", func() error {
		for range 10 {
			if v, err := version("alice"); err != nil || v != "v2" {
				return fmt.Errorf("alice got %q: %v", v, err)
			}
		}
		return nil
	})
	const n = 400
	v2 := 0
	for range n {
		resp, err := http.Get(webURL)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			CatalogVersion string `json:"catalog_version"`
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("web: %s, %v", resp.Status, err)
		}
		if p.CatalogVersion == "v2" {
			v2++
		}
	}
	// 10% of 400 is 40, with a standard deviation of 6.
	if v2 < 16 || v2 > 64 {
		t.Errorf("catalog v2 answered %d of %d calls through web, want about 10%%", v2, n)
	} else {
		t.Logf("catalog v2 answered %d of %d calls through web", v2, n)
	}
}
