package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

type fakeProxy struct{ ready bool }

func (f *fakeProxy) Ready() bool     { return f.ready }
func (f *fakeProxy) ConfigDump() any { return map[string]any{"version": 7} }
func (f *fakeProxy) Metrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("weft_up 1\n")) })
}

func TestHandler(t *testing.T) {
	tests := []struct {
		desc   string
		ready  bool
		method string
		path   string
		want   int
	}{
		{desc: "live", path: "/live", want: 200},
		{desc: "not ready", path: "/ready", want: 503},
		{desc: "ready", ready: true, path: "/ready", want: 200},
		{desc: "config", path: "/config", want: 200},
		{desc: "unknown path", path: "/nope", want: 404},
		{desc: "wrong method", method: "POST", path: "/ready", want: 405},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			h := NewHandler(&fakeProxy{ready: tc.ready}, Options{})
			method := tc.method
			if method == "" {
				method = "GET"
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, tc.path, nil))
			if rec.Code != tc.want {
				t.Fatalf("%s %s = %d, want %d (%s)", method, tc.path, rec.Code, tc.want, rec.Body)
			}
		})
	}
	rec := httptest.NewRecorder()
	NewHandler(&fakeProxy{}, Options{}).ServeHTTP(rec, httptest.NewRequest("GET", "/config", nil))
	var got map[string]int
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got["version"] != 7 {
		t.Fatalf("/config body %q: %v", rec.Body, err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("/config Content-Type = %q", ct)
	}
}

var _ http.Handler = NewHandler(&fakeProxy{}, Options{})

func TestMetricsRoute(t *testing.T) {
	rec := httptest.NewRecorder()
	NewHandler(&fakeProxy{}, Options{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "weft_up 1\n" {
		t.Fatalf("GET /metrics: %d %q", rec.Code, rec.Body.String())
	}
}
