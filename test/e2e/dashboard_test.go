//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The demo's services and calls, as the README describes them: every one
// must be on the dashboard's graph.
var (
	dashDemoServices = []string{"demo/web", "demo/catalog", "demo/catalog-v1", "demo/catalog-v2", "demo/stock", "demo/audit"}
	dashDemoEdges    = []string{
		"demo/loadgen-0->demo/web",
		"demo/web-0->demo/catalog",
		"demo/web-0->demo/audit",
		"demo/catalog-v1-0->demo/stock",
		"demo/catalog-v2-0->demo/stock",
	}
)

// TestDashboard loads `weft dashboard` in a real browser (Debian's
// chromium, headless) against a running `weft up --demo`, as a user would
// a few seconds after starting the demo: the graph has the demo's services
// and calls, the calls carry their request rates and mTLS, a click on a
// service opens its page with charts of its history, a canary route shows
// there in force and on the graph as calls to catalog's versions, and a
// broken manifest shows in the problems panel; what changes shows without
// a reload. Screenshots and the DOM
// are saved in $WEFT_ARTIFACTS (else a temporary directory); with
// $WEFT_DOCS_IMAGES set, the screenshots are also written there, which is
// how docs/images/dashboard*.png are made.
func TestDashboard(t *testing.T) {
	chromium := dashChromium(t)
	out := dashArtifacts(t)

	d := startDemo(t)
	admin := d.cp.adminAddr()
	// The control plane scrapes the proxies every few seconds and needs two
	// scrapes for a rate: wait for the demo's load to show in its stats, so
	// the page is checked with numbers on it.
	eventually(t, 60*time.Second, "the control plane's stats show the load generator's calls", func() error {
		var sum struct {
			Edges []struct {
				Source, Destination string
				Requests            int64
			} `json:"edges"`
		}
		if err := dashGetJSON("http://"+admin+"/api/v1/stats?window=30s", &sum); err != nil {
			return err
		}
		for _, e := range sum.Edges {
			if e.Source == "demo/loadgen-0" && e.Destination == "demo/web" && e.Requests > 0 {
				return nil
			}
		}
		return fmt.Errorf("no requests from loadgen to web yet: %+v", sum.Edges)
	})

	port := freePort(t)
	dash := start(t, "weft dashboard", "weft", "dashboard", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--admin", admin)
	var url string
	eventually(t, 10*time.Second, "weft dashboard prints its URL", func() error {
		m := regexp.MustCompile(`weft dashboard: (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(dash.Output())
		if m == nil {
			return fmt.Errorf("output so far:\n%s", dash.Output())
		}
		url = m[1]
		return nil
	})

	b := dashLaunch(t, chromium)
	b.navigate(t, url)

	// The topology, as the browser rendered it.
	var graph struct {
		State    string   `json:"state"`
		Services []string `json:"services"`
		Edges    []struct {
			ID    string `json:"id"`
			RPS   string `json:"rps"`
			MTLS  string `json:"mtls"`
			Label string `json:"label"`
			Class string `json:"class"`
		} `json:"edges"`
	}
	eventually(t, 30*time.Second, "the dashboard shows the demo's services and calls, with request rates", func() error {
		if err := b.evalJSON(t, `({
			state: document.body.dataset.state,
			services: [...document.querySelectorAll('#topology [data-service]')].map(e => e.dataset.service),
			edges: [...document.querySelectorAll('#topology g[data-edge]')].map(e => {
				const label = document.querySelector('#topology [data-label-for="' + CSS.escape(e.dataset.edge) + '"]');
				return {id: e.dataset.edge, rps: e.dataset.rps || '', mtls: e.dataset.mtls || '', class: e.dataset.class,
					label: label ? label.textContent : ''};
			}),
		})`, &graph); err != nil {
			return err
		}
		if graph.State != "live" {
			return fmt.Errorf("page state %q, want live", graph.State)
		}
		for _, s := range dashDemoServices {
			if !slices.Contains(graph.Services, s) {
				return fmt.Errorf("service %s not on the graph (it has %v)", s, graph.Services)
			}
		}
		var ids []string
		withRPS := 0
		for _, e := range graph.Edges {
			ids = append(ids, e.ID)
			if rps, err := strconv.ParseFloat(e.RPS, 64); err == nil && rps > 0 {
				withRPS++
				if !strings.Contains(e.Label, "rps · p99") {
					return fmt.Errorf("edge %s carries %s rps but is labelled %q", e.ID, e.RPS, e.Label)
				}
			}
		}
		for _, want := range dashDemoEdges {
			if !slices.Contains(ids, want) {
				return fmt.Errorf("edge %s not on the graph (it has %v)", want, ids)
			}
		}
		if withRPS == 0 {
			return fmt.Errorf("no edge carries a request rate yet: %+v", graph.Edges)
		}
		return nil
	})
	for _, e := range graph.Edges {
		// Every hop of the demo is between two proxies, so mTLS.
		if e.MTLS == "false" {
			t.Errorf("edge %s: not over mTLS on the dashboard: %+v", e.ID, e)
		}
		if e.ID == "demo/loadgen-0->demo/web" && (e.MTLS != "true" || e.Class != "ok") {
			t.Errorf("loadgen -> web: mTLS %q, class %q; want true, ok (the demo's calls succeed): %+v", e.MTLS, e.Class, e)
		}
	}
	t.Logf("graph: %+v", graph)
	dom := b.eval(t, `document.documentElement.outerHTML`)
	dashSave(t, out, "dashboard.html", []byte(dom), false)
	dashSave(t, out, "dashboard.png", b.screenshot(t, false), true)

	// A click on catalog opens its page, with charts of its history.
	b.click(t, `#topology [data-service="demo/catalog"] > a`)
	var page struct {
		Title  string            `json:"title"`
		Charts map[string]int    `json:"charts"`
		Hash   string            `json:"hash"`
		Rows   []string          `json:"rows"`
		Routes map[string]string `json:"routes"`
	}
	readPage := func() error {
		if err := b.evalJSON(t, `({
			hash: location.hash,
			title: (document.querySelector('[data-service-page]') || {dataset: {}}).dataset.servicePage || '',
			charts: Object.fromEntries([...document.querySelectorAll('[data-chart]')].map(c => [c.dataset.chart, Number(c.dataset.points)])),
			rows: [...document.querySelectorAll('[data-endpoint]')].map(r => r.dataset.endpoint),
			routes: Object.fromEntries([...document.querySelectorAll('[data-route]')].map(r =>
				[r.dataset.route, [...r.querySelectorAll('[data-status]')].map(s => s.dataset.status).join(',')])),
		})`, &page); err != nil {
			return err
		}
		if page.Title != "demo/catalog" {
			return fmt.Errorf("page %q (location %q), want catalog's", page.Title, page.Hash)
		}
		return nil
	}
	// A line needs two points; the docs' picture is better with a minute.
	minPoints, wait := 2, 30*time.Second
	if os.Getenv("WEFT_DOCS_IMAGES") != "" {
		minPoints, wait = 12, 90*time.Second
	}
	eventually(t, wait, "catalog's page shows its golden signals over time", func() error {
		if err := readPage(); err != nil {
			return err
		}
		for _, c := range []string{"rps", "success", "latency"} {
			if page.Charts[c] < minPoints {
				return fmt.Errorf("chart %s has %d points, want %d: %v", c, page.Charts[c], minPoints, page.Charts)
			}
		}
		return nil
	})
	if want := []string{"demo/catalog-v1-0", "demo/catalog-v2-0"}; !slices.Equal(page.Rows, want) {
		t.Errorf("catalog's endpoints on its page: %v, want %v", page.Rows, want)
	}

	// The canary route of docs/traffic.md shows on the open page, in force,
	// without a reload.
	if err := os.WriteFile(filepath.Join(d.manifests, "catalog-canary.yaml"), []byte(demoCatalogRoute), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "catalog's page shows the canary route in force", func() error {
		if err := readPage(); err != nil {
			return err
		}
		if st := page.Routes["HTTPRoute demo/catalog-canary"]; st != "in-force" {
			return fmt.Errorf("the canary route's status on catalog's page: %q (routes %v), want in-force", st, page.Routes)
		}
		return nil
	})
	dashSave(t, out, "dashboard-service.png", b.screenshot(t, true), true)

	// The route splits catalog's calls between its versions' services: the
	// calls to each show as edges of their own, into the versions drawn
	// within catalog.
	b.navigate(t, url)
	eventually(t, 30*time.Second, "web's calls to catalog v1 through the canary route show on the graph", func() error {
		var rps string
		if err := b.evalJSON(t, `(document.querySelector('#topology g[data-edge="demo/web-0->demo/catalog-v1"]') || {dataset: {}}).dataset.rps || ''`, &rps); err != nil {
			return err
		}
		if v, err := strconv.ParseFloat(rps, 64); err != nil || v <= 0 {
			return fmt.Errorf("edge demo/web-0->demo/catalog-v1: rps %q", rps)
		}
		return nil
	})

	// Live: a broken manifest shows in the problems panel, without a
	// reload, and goes away when fixed.
	bad := filepath.Join(d.manifests, "broken.yaml")
	if err := os.WriteFile(bad, []byte("kind: Nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	problems := func(want bool) func() error {
		return func() error {
			var got []string
			if err := b.evalJSON(t, `[...document.querySelectorAll('#problems [data-problem]')].map(p => p.textContent)`, &got); err != nil {
				return err
			}
			has := slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, "broken.yaml") })
			if has != want {
				return fmt.Errorf("problems panel: %q", got)
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "the problems panel names broken.yaml", problems(true))
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the problems panel is clear again", problems(false))

	if err := dash.stop(syscall.SIGINT, 10*time.Second); err != nil {
		t.Errorf("weft dashboard on Ctrl-C, with a browser's event stream open: %v", err)
	}
}

// dashChromium finds Debian's chromium. Without one the test skips, unless
// in CI, which must have it (scripts/install-deps.sh installs it).
func dashChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" {
		t.Fatal("chromium is not installed, and CI must run the dashboard's browser test: scripts/install-deps.sh (make deps) installs Debian's chromium")
	}
	t.Skip("chromium is not installed: the dashboard's browser test needs Debian's chromium (make deps, or apt-get install chromium)")
	return ""
}

// dashArtifacts is where the screenshots go: $WEFT_ARTIFACTS when CI or a
// developer sets it, else a directory the test removes.
func dashArtifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WEFT_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("WEFT_ARTIFACTS: %v", err)
	}
	return dir
}

// dashSave writes an artifact, and a screenshot also to $WEFT_DOCS_IMAGES
// when set.
func dashSave(t *testing.T, dir, name string, data []byte, screenshot bool) {
	t.Helper()
	dirs := []string{dir}
	if docs := os.Getenv("WEFT_DOCS_IMAGES"); docs != "" && screenshot {
		dirs = append(dirs, docs)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatalf("saving %s: %v", name, err)
		}
		t.Logf("saved %s (%d bytes)", p, len(data))
	}
}

func dashGetJSON(url string, into any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// browser is a headless chromium driven over the DevTools protocol on a
// pipe (--remote-debugging-pipe: commands on its fd 3, answers and events
// on its fd 4, each message ended by a NUL), attached to one page.
//
// Not chromium's --dump-dom and --screenshot switches: they wait for a
// page by --virtual-time-budget, whose virtual clock stands still while a
// request is open, and the dashboard's event stream always is, so they
// would never finish; nor would they let the test click.
type browser struct {
	cmd     *exec.Cmd
	in      *os.File // to chromium
	stderr  *process
	mu      sync.Mutex
	next    int
	waiting map[int]chan cdpAnswer
	closed  chan struct{}
	session string
}

type cdpAnswer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func dashLaunch(t *testing.T, chromium string) *browser {
	t.Helper()
	toBrowser, commands, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	answers, fromBrowser, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{in: commands, waiting: map[int]chan cdpAnswer{}, closed: make(chan struct{}), stderr: &process{name: "chromium", done: make(chan struct{})}}
	b.cmd = exec.Command(chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
		"--user-data-dir="+t.TempDir(), "--window-size=1400,900", "--hide-scrollbars", "--no-first-run",
		"--no-default-browser-check", "--disable-extensions", "--disable-background-networking", "--mute-audio",
		"--lang=en-US", "about:blank")
	b.cmd.ExtraFiles = []*os.File{toBrowser, fromBrowser} // its fd 3 and 4
	b.cmd.Stdout, b.cmd.Stderr = b.stderr, b.stderr
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	toBrowser.Close()
	fromBrowser.Close()
	go b.read(answers)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = b.call(ctx, "", "Browser.close", nil)
		commands.Close()
		done := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("---- output of chromium ----\n%s", b.stderr.Output())
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.must(t, ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.must(t, ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	b.must(t, ctx, b.session, "Page.enable", nil, nil)
	b.must(t, ctx, b.session, "Runtime.enable", nil, nil)
	return b
}

// read hands each answer to its caller; events are not needed.
func (b *browser) read(from *os.File) {
	defer close(b.closed)
	r := bufio.NewReader(from)
	for {
		msg, err := r.ReadBytes(0)
		if err != nil {
			return
		}
		var m struct {
			ID int `json:"id"`
			cdpAnswer
		}
		if json.Unmarshal(bytes.TrimSuffix(msg, []byte{0}), &m) != nil || m.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.cdpAnswer
		}
	}
}

func (b *browser) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpAnswer, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if _, err := b.in.Write(append(data, 0)); err != nil {
		return nil, fmt.Errorf("%s: writing to chromium: %w", method, err)
	}
	select {
	case a := <-ch:
		if a.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, a.Error.Message, a.Error.Code)
		}
		return a.Result, nil
	case <-b.closed:
		return nil, fmt.Errorf("%s: chromium closed its pipe", method)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (b *browser) must(t *testing.T, ctx context.Context, session, method string, params, into any) {
	t.Helper()
	res, err := b.call(ctx, session, method, params)
	if err != nil {
		t.Fatal(err)
	}
	if into != nil {
		if err := json.Unmarshal(res, into); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
	}
}

func (b *browser) navigate(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	b.must(t, ctx, b.session, "Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		t.Fatalf("loading %s: %s", url, nav.ErrorText)
	}
}

// evalJSON evaluates a JavaScript expression in the page and decodes its
// value.
func (b *browser) evalJSON(t *testing.T, expr string, into any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := b.call(ctx, b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err != nil {
		return err
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("%s: %s", r.Exception.Text, r.Exception.Exception.Description)
	}
	if len(r.Result.Value) == 0 {
		return errors.New("the expression has no value")
	}
	return json.Unmarshal(r.Result.Value, into)
}

func (b *browser) eval(t *testing.T, expr string) string {
	t.Helper()
	var s string
	if err := b.evalJSON(t, expr, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// click clicks the middle of the element selector finds, as a mouse does.
func (b *browser) click(t *testing.T, selector string) {
	t.Helper()
	var at struct{ X, Y float64 }
	expr := fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return null;
		el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();
		return {x: r.left + r.width / 2, y: r.top + Math.min(r.height / 2, 20)}; })()`, selector)
	if err := b.evalJSON(t, expr, &at); err != nil {
		t.Fatalf("finding %s: %v", selector, err)
	}
	if at.X == 0 && at.Y == 0 {
		t.Fatalf("no %s on the page", selector)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		b.must(t, ctx, b.session, "Input.dispatchMouseEvent", map[string]any{
			"type": typ, "x": at.X, "y": at.Y, "button": "left", "clickCount": 1,
		}, nil)
	}
}

// screenshot takes a PNG of the window, or of the whole page.
func (b *browser) screenshot(t *testing.T, fullPage bool) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	params := map[string]any{"format": "png"}
	if fullPage {
		var size struct{ W, H float64 }
		if err := b.evalJSON(t, `({w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight})`, &size); err != nil {
			t.Fatal(err)
		}
		params["captureBeyondViewport"] = true
		params["clip"] = map[string]any{"x": 0, "y": 0, "width": size.W, "height": size.H, "scale": 1}
	}
	var shot struct {
		Data string `json:"data"`
	}
	b.must(t, ctx, b.session, "Page.captureScreenshot", params, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("the screenshot is not a PNG (%d bytes)", len(png))
	}
	return png
}
