package fault

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestControlHandler(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		query      string
		wantStatus int
		want       Settings
	}{
		{name: "get", method: http.MethodGet, wantStatus: 200, want: Settings{Latency: time.Millisecond}},
		{name: "post sets all", method: http.MethodPost, query: "latency=100ms&latency_jitter=5ms&error_rate=0.5",
			wantStatus: 200, want: Settings{Latency: 100 * time.Millisecond, Jitter: 5 * time.Millisecond, ErrorRate: 0.5}},
		{name: "post keeps the unnamed", method: http.MethodPost, query: "error_rate=1",
			wantStatus: 200, want: Settings{Latency: time.Millisecond, ErrorRate: 1}},
		{name: "post zero", method: http.MethodPost, query: "latency=0s&error_rate=0", wantStatus: 200},
		{name: "bad duration", method: http.MethodPost, query: "latency=soon&error_rate=1",
			wantStatus: 400, want: Settings{Latency: time.Millisecond}},
		{name: "rate out of range", method: http.MethodPost, query: "error_rate=1.5",
			wantStatus: 400, want: Settings{Latency: time.Millisecond}},
		{name: "negative latency", method: http.MethodPost, query: "latency=-1s",
			wantStatus: 400, want: Settings{Latency: time.Millisecond}},
		{name: "put", method: http.MethodPut, wantStatus: 405, want: Settings{Latency: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := New(Settings{Latency: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			in.ControlHandler().ServeHTTP(rec, httptest.NewRequest(tt.method, ControlPath+"?"+tt.query, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := in.Settings(); got != tt.want {
				t.Fatalf("settings %+v, want %+v", got, tt.want)
			}
			if rec.Code == 200 {
				var got Settings
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Fatalf("body %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestControlHandlerForm(t *testing.T) {
	in, err := New(Settings{})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, ControlPath, strings.NewReader(url.Values{"error_rate": {"0.75"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	in.ControlHandler().ServeHTTP(rec, req)
	if rec.Code != 200 || in.Settings().ErrorRate != 0.75 {
		t.Fatalf("status %d, settings %+v", rec.Code, in.Settings())
	}
}

// TestMiddleware runs a real server: faults apply to the app, never to the
// control endpoint, and the endpoint changes them at runtime.
func TestMiddleware(t *testing.T) {
	in, err := New(Settings{ErrorRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(in.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	})))
	defer srv.Close()

	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 500 || !strings.Contains(body, `"error"`) {
		t.Fatalf("with error rate 1: %d %q, want 500 with a JSON error", code, body)
	}
	resp, err := http.Post(srv.URL+ControlPath+"?error_rate=0&latency=30ms", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("control: status %d", resp.StatusCode)
	}
	start := time.Now()
	if code, body := get(); code != 200 || body != "hello" {
		t.Fatalf("with error rate 0: %d %q", code, body)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("request took %s, want >= 30ms latency", d)
	}
}

func FuzzControlHandler(f *testing.F) {
	for _, q := range []string{"", "latency=1s", "error_rate=0.5&latency_jitter=3ms", "error_rate=NaN", "latency=%zz", "error_rate=1e309"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		in, err := New(Settings{})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, ControlPath, nil)
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		in.ControlHandler().ServeHTTP(rec, req)
		if err := in.Settings().Validate(); err != nil {
			t.Fatalf("query %q left invalid settings: %v", query, err)
		}
		if rec.Code != 200 && in.Settings() != (Settings{}) {
			t.Fatalf("query %q: status %d but settings changed", query, rec.Code)
		}
	})
}
