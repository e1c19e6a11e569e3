package admin

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/appprobe"
)

func portOf(t *testing.T, rawURL string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return int32(n)
}

func TestAppProbes(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte("ok"))
		case "/sick":
			http.Error(w, "sick", http.StatusServiceUnavailable)
		case "/checked":
			// The probe's headers and query reach the app.
			if r.Host != "shop.local" || r.Header.Get("X-Probe") != "1" || r.URL.Query().Get("full") != "1" || !strings.HasPrefix(r.UserAgent(), "kube-probe/") {
				http.Error(w, "want Host shop.local, X-Probe 1, ?full=1, a kube-probe agent", http.StatusBadRequest)
			}
		case "/moved":
			http.Redirect(w, r, "http://elsewhere.example/", http.StatusFound)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	plain := httptest.NewServer(app)
	defer plain.Close()
	secure := httptest.NewTLSServer(app)
	defer secure.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	down := portOf(t, "http://"+closed.Addr().String())
	closed.Close()
	port, tlsPort := portOf(t, plain.URL), portOf(t, secure.URL)

	probes := appprobe.Set{
		"app/readiness": {Port: port, Path: "/healthz"},
		"app/liveness":  {Port: port, Path: "/sick"},
		"app/startup":   {Port: port, Path: "/checked?full=1", Headers: []appprobe.Header{{Name: "Host", Value: "shop.local"}, {Name: "X-Probe", Value: "1"}}},
		"tls/readiness": {Port: tlsPort, Path: "/healthz", Scheme: "HTTPS"},
		"moved/startup": {Port: port, Path: "/moved"},
		"slow/liveness": {Port: port, Path: "/slow", TimeoutSeconds: 1},
		"down/liveness": {Port: down, Path: "/healthz"},
		"tcp/readiness": {Port: port, Scheme: "TCP"},
		"tcp/liveness":  {Port: down, Scheme: "TCP"},
	}
	h := NewHandler(&fakeProxy{}, Options{AppProbes: probes, AppAddress: "127.0.0.1"})
	for _, tc := range []struct {
		path     string
		want     int
		bodyWant string
	}{
		{"/app-health/app/readiness", 200, "the app answered 200"},
		{"/app-health/app/liveness", 503, "the app answered 503"},
		{"/app-health/app/startup", 200, ""},
		{"/app-health/tls/readiness", 200, ""},
		{"/app-health/moved/startup", 302, ""},
		{"/app-health/slow/liveness", 503, "deadline exceeded"},
		{"/app-health/down/liveness", 503, "app probe down/liveness"},
		{"/app-health/app/other", 404, "no app probe app/other"},
		{"/app-health/tcp/readiness", 200, ""},
		{"/app-health/tcp/liveness", 503, "connect to"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			start := time.Now()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.bodyWant) {
				t.Fatalf("GET %s = %d %q, want %d with %q", tc.path, rec.Code, rec.Body.String(), tc.want, tc.bodyWant)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("GET %s took %v: the probe's timeout did not bound it", tc.path, time.Since(start))
			}
		})
	}
}
