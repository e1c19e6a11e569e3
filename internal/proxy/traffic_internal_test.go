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

func TestOutlierEjection(t *testing.T) {
	now := time.Unix(1000, 0)
	o := &outliers{now: func() time.Time { return now }, cfg: &model.OutlierDetection{
		Consecutive5xx: 3, ConsecutiveConnectFailures: 1, BaseEjection: 10 * time.Second, MaxEjectionPercent: 50}}
	const total = 4
	// Two 5xx, a success, two more: no ejection (not in a row).
	for _, oc := range []outcome{outcome5xx, outcome5xx, outcomeSuccess, outcome5xx, outcome5xx} {
		if o.observe("a", oc, total) {
			t.Fatal("ejected without three failures in a row")
		}
	}
	if !o.observe("a", outcome5xx, total) || !o.ejected("a") {
		t.Fatal("not ejected after three 5xx in a row")
	}
	// One connect failure ejects b; then the 50% cap stops c.
	if !o.observe("b", outcomeConnect, total) {
		t.Fatal("b not ejected after a connect failure")
	}
	if o.observe("c", outcomeConnect, total) {
		t.Fatal("c ejected beyond the 50% cap")
	}
	// The time is up: a is back; ejected again, it stays out twice as long.
	now = now.Add(11 * time.Second)
	if o.ejected("a") {
		t.Fatal("a still ejected after its time")
	}
	for range 3 {
		o.observe("a", outcomeGateway, total)
	}
	now = now.Add(15 * time.Second)
	if !o.ejected("a") {
		t.Fatal("a's second ejection did not last twice the base")
	}
	// Never the last endpoint.
	lone := &outliers{now: func() time.Time { return now }, cfg: &model.OutlierDetection{ConsecutiveConnectFailures: 1, BaseEjection: time.Second, MaxEjectionPercent: 100}}
	if lone.observe("only", outcomeConnect, 1) {
		t.Fatal("ejected the only endpoint")
	}
}

func TestBreakerAdmits(t *testing.T) {
	b := &breaker{}
	r1, ok1 := b.admit(2)
	_, ok2 := b.admit(2)
	if _, ok3 := b.admit(2); !ok1 || !ok2 || ok3 {
		t.Fatalf("admitted %v %v %v, want the first two only", ok1, ok2, ok3)
	}
	r1()
	if _, ok := b.admit(2); !ok {
		t.Fatal("a place given back was not taken")
	}
}

func TestTokenBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := &tokenBucket{now: func() time.Time { return now }}
	b.configure(10, 5)
	taken := 0
	for range 20 {
		if b.take() {
			taken++
		}
	}
	if taken != 5 {
		t.Fatalf("took %d at once, want the burst of 5", taken)
	}
	now = now.Add(300 * time.Millisecond) // 3 tokens at 10/s
	taken = 0
	for range 20 {
		if b.take() {
			taken++
		}
	}
	if taken != 3 {
		t.Fatalf("took %d after 300ms, want 3", taken)
	}
	now = now.Add(time.Hour) // never more than the burst
	b.configure(10, 2)
	taken = 0
	for range 20 {
		if b.take() {
			taken++
		}
	}
	if taken != 2 {
		t.Fatalf("took %d after a long idle with burst 2, want 2", taken)
	}
}
