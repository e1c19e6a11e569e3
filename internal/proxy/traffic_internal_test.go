package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
)

func TestBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	b := &budget{now: func() time.Time { return now }, started: now}
	b.configure(model.RetryBudget{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second})
	// 100 requests in the window: 20% of them plus 1/s over 10s = 30.
	for range 100 {
		b.deposit()
	}
	granted := 0
	for range 100 {
		if b.withdraw() {
			granted++
		}
	}
	if granted != 30 {
		t.Fatalf("granted %d retries for 100 requests, want 30", granted)
	}
	// Past the window, no request counts any more: only the floor is left.
	now = now.Add(11 * time.Second)
	granted = 0
	for range 100 {
		if b.withdraw() {
			granted++
		}
	}
	if granted != 10 {
		t.Fatalf("after the window, granted %d, want the floor of 10", granted)
	}
}

func TestRetryable(t *testing.T) {
	rp := &retrier{policy: &model.RetryPolicy{RetryOn: []string{model.RetryOnGatewayError, model.RetryOnUnavailable}}}
	tests := []struct {
		code int
		grpc string
		want bool
	}{
		{503, "", true}, {500, "", false}, {200, "14", true}, {200, "13", false}, {200, "", false},
	}
	for _, tc := range tests {
		resp := &http.Response{StatusCode: tc.code, Header: http.Header{}}
		if tc.grpc != "" {
			resp.Header.Set("Grpc-Status", tc.grpc)
		}
		if got := rp.retryable(resp, nil); got != tc.want {
			t.Errorf("%d grpc-status %q: retryable %v, want %v", tc.code, tc.grpc, got, tc.want)
		}
	}
	if !rp.retryable(nil, errPerTryTimeout) {
		t.Error("a per-try timeout is not retried on gateway-error")
	}
}
