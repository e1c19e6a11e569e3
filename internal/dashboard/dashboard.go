package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed assets
var assetFS embed.FS

// DefaultInterval is how often /events pushes a snapshot: often enough to
// feel live, rarely enough that a few open tabs cost the control plane
// nothing.
const DefaultInterval = 2 * time.Second

// Options configure a Handler.
type Options struct {
	// Admin is the control plane's admin API, host:port.
	Admin string
	// Interval between two snapshots on /events; 0 means DefaultInterval.
	Interval time.Duration
	// StatsWindow is the window the topology's rates and latencies are
	// computed over; 0 means DefaultStatsWindow.
	StatsWindow time.Duration
	// Client reads the admin API; nil means a client of its own.
	Client *http.Client
	Logger *slog.Logger
}

// Handler serves the dashboard: the embedded UI at / and /assets/, the
// admin API read-only at /api/, and live snapshots at /events.
type Handler struct {
	opts   Options
	admin  *adminClient
	assets map[string]asset
	mux    *http.ServeMux
}

type asset struct {
	data        []byte
	contentType string
	etag        string
}

// contentTypes are the types of the files the UI is made of; an asset of
// any other kind is a mistake New reports, rather than something served
// with whatever type the host's MIME tables guess.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// contentSecurityPolicy keeps the UI offline and self-contained: scripts,
// styles, images and connections from the dashboard itself only, so a
// CDN link added by mistake fails in every browser, tests included.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// New returns the dashboard's handler.
func New(opts Options) (*Handler, error) {
	if opts.Admin == "" {
		return nil, errors.New("dashboard: no admin API address")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.StatsWindow <= 0 {
		opts.StatsWindow = DefaultStatsWindow
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, admin: &adminClient{base: "http://" + opts.Admin, client: opts.Client}, assets: map[string]asset{}}
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return nil, fmt.Errorf("dashboard: embedded assets: %w", err)
	}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("asset %s: no content type for its extension", p)
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		h.assets[p] = asset{data: data, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: embedded assets: %w", err)
	}
	if _, ok := h.assets["index.html"]; !ok {
		return nil, errors.New("dashboard: embedded assets: no index.html")
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { h.serveAsset(w, r, "index.html") })
	mux.HandleFunc("GET /assets/{file...}", func(w http.ResponseWriter, r *http.Request) { h.serveAsset(w, r, r.PathValue("file")) })
	mux.HandleFunc("GET /events", h.events)
	mux.HandleFunc("GET /snapshot", h.snapshot)
	// Every method, so that the refusal of a write says why instead of
	// the mux's bare 405.
	mux.HandleFunc("/api/", h.api)
	h.mux = mux
	return h, nil
}

// ServeHTTP answers requests addressed to a loopback host only: the
// dashboard has no authentication and reads the admin API for whoever
// asks, so a web page elsewhere must not reach it through DNS rebinding
// (a name of the attacker's resolving to 127.0.0.1).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !loopbackHost(r.Host) {
		http.Error(w, "weft dashboard answers requests for a loopback host only (127.0.0.1, [::1] or localhost)", http.StatusMisdirectedRequest)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := h.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	// Revalidated each time, so a newer weft binary's UI shows at once;
	// the ETag makes that a 304.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
}

// api passes reads of the admin API through, so the UI needs one origin.
// It refuses anything but GET and HEAD: the admin API also mints join
// tokens and rotates the CA, which no page of the dashboard may do.
func (h *Handler) api(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "weft dashboard only reads the admin API", http.StatusMethodNotAllowed)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/v1/") {
		http.NotFound(w, r)
		return
	}
	target := h.admin.base + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, target, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.admin.client.Do(req)
	if err != nil {
		h.opts.Logger.Debug("admin API unreachable", "path", r.URL.Path, "err", err)
		http.Error(w, fmt.Sprintf("control plane admin API at %s: %v", h.opts.Admin, err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, k := range []string{"Content-Type", "Content-Length"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		h.opts.Logger.Debug("passing an admin API answer on", "path", r.URL.Path, "err", err)
	}
}

// snapshot is one snapshot, as /events pushes them, for scripts and for a
// page that cannot keep a stream open.
func (h *Handler) snapshot(w http.ResponseWriter, r *http.Request) {
	snap := h.collect(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(snap); err != nil {
		h.opts.Logger.Debug("writing a snapshot", "err", err)
	}
}

// writeTimeout bounds each write to an event stream: a client that stops
// reading is dropped rather than holding its handler forever.
const writeTimeout = 10 * time.Second

// events streams a snapshot at once and then every interval, as
// server-sent events named "snapshot" whose data is the snapshot's JSON.
// Each stream polls the admin API itself: a few tabs on loopback cost
// little, and no goroutine outlives the requests that need it.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	// Tells a reverse proxy in front, if any, to pass events on at once.
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	ctx := r.Context()
	ticker := time.NewTicker(h.opts.Interval)
	defer ticker.Stop()
	// A browser reconnects on its own after a broken stream; retry tells
	// it to wait one interval, not its default of a few seconds.
	retry := fmt.Sprintf("retry: %d\n\n", h.opts.Interval.Milliseconds())
	if err := h.send(rc, w, []byte(retry)); err != nil {
		return
	}
	for id := 1; ; id++ {
		snap := h.collect(ctx)
		if ctx.Err() != nil {
			return
		}
		data, err := json.Marshal(snap)
		if err != nil {
			h.opts.Logger.Error("encoding a snapshot", "err", err)
			return
		}
		if err := h.send(rc, w, eventFrame("snapshot", strconv.Itoa(id), data)); err != nil {
			h.opts.Logger.Debug("event stream ended", "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (h *Handler) send(rc *http.ResponseController, w io.Writer, frame []byte) error {
	// Not every ResponseWriter has deadlines (httptest's has not); a
	// stream without one still ends with its request's context.
	if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := w.Write(frame); err != nil {
		return err
	}
	return rc.Flush()
}

// eventFrame is one server-sent event. Each line of data gets a "data:"
// field of its own, as the format has no escaping: a raw newline in a
// single field would end the event early (and so would a carriage
// return, which the format also takes for the end of a line).
func eventFrame(event, id string, data []byte) []byte {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	var b bytes.Buffer
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}
