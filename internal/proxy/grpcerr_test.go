package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestParseGRPCTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{in: "1S", want: time.Second, ok: true},
		{in: "250m", want: 250 * time.Millisecond, ok: true},
		{in: "99999999n", want: 99999999, ok: true},
		{in: "2H", want: 2 * time.Hour, ok: true},
		{in: "", ok: false},
		{in: "S", ok: false},
		{in: "10", ok: false},
		{in: "10s", ok: false},
		{in: "123456789S", ok: false},
		{in: "-1S", ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := parseGRPCTimeout(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("parseGRPCTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestGRPCErrors(t *testing.T) {
	if got := encodeGRPCMessage("no endpoints: 100%\nné"); got != "no endpoints: 100%25%0An%C3%A9" {
		t.Fatalf("encodeGRPCMessage = %q", got)
	}
	p := New(Options{})
	tests := []struct {
		desc       string
		ct         string
		timeout    string
		age        time.Duration
		wantStatus string
		wantHTTP   int
	}{
		{desc: "plain HTTP gets 502", ct: "text/plain", wantHTTP: 502},
		{desc: "gRPC gets UNAVAILABLE", ct: "application/grpc", wantHTTP: 200, wantStatus: "14"},
		{desc: "gRPC+proto too", ct: "application/grpc+proto", timeout: "10S", wantHTTP: 200, wantStatus: "14"},
		{desc: "gRPC past its deadline", ct: "application/grpc", timeout: "100m", age: time.Second, wantHTTP: 200, wantStatus: "4"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/svc/Method", nil)
			r.Header.Set("Content-Type", tc.ct)
			if tc.timeout != "" {
				r.Header.Set("Grpc-Timeout", tc.timeout)
			}
			rec := httptest.NewRecorder()
			p.upstreamFailed(rec, r, time.Now().Add(-tc.age), "outbound", "reset")
			if rec.Code != tc.wantHTTP || rec.Header().Get("Grpc-Status") != tc.wantStatus {
				t.Fatalf("got HTTP %d grpc-status %q, want %d %q", rec.Code, rec.Header().Get("Grpc-Status"), tc.wantHTTP, tc.wantStatus)
			}
		})
	}
}

func TestKeepGRPCStatus(t *testing.T) {
	tests := []struct {
		desc        string
		header      http.Header
		wantTrailer string
	}{
		{"trailers-only gRPC response", http.Header{"Content-Type": {"application/grpc"}, "Grpc-Status": {"7"}, "Grpc-Message": {"denied"}}, "7"},
		{"gRPC response with a body", http.Header{"Content-Type": {"application/grpc+proto"}}, ""},
		{"not gRPC", http.Header{"Content-Type": {"text/plain"}, "Grpc-Status": {"7"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			resp := &http.Response{Header: tc.header}
			if err := keepGRPCStatus(resp); err != nil {
				t.Fatal(err)
			}
			if got := resp.Trailer.Get("Grpc-Status"); got != tc.wantTrailer {
				t.Fatalf("trailer grpc-status %q, want %q", got, tc.wantTrailer)
			}
			if tc.wantTrailer != "" && (resp.Header.Get("Grpc-Status") != "" || resp.Trailer.Get("Grpc-Message") != "denied") {
				t.Fatalf("status not moved whole: header %v trailer %v", resp.Header, resp.Trailer)
			}
		})
	}
}
