package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

func breakerWith(maxRequests, maxConnections, maxPending uint32) *breaker {
	b := &breaker{service: "demo/api"}
	b.configure(&model.CircuitBreakerPolicy{MaxRequests: maxRequests, MaxConnections: maxConnections, MaxPendingRequests: maxPending})
	return b
}

// reasonOf is the reason of a circuit breaker's refusal, or "".
func reasonOf(err error) string {
	var oe *circuitOpenError
	if errors.As(err, &oe) {
		return oe.reason
	}
	return ""
}

func TestBreakerWithoutQueueRefusesAtOnce(t *testing.T) {
	b := breakerWith(2, 0, 0)
	ctx := context.Background()
	r1, err1 := b.admit(ctx)
	_, err2 := b.admit(ctx)
	_, err3 := b.admit(ctx)
	if err1 != nil || err2 != nil || reasonOf(err3) != openRequests {
		t.Fatalf("admitted %v %v %v, want the first two, the third refused for requests in flight", err1, err2, err3)
	}
	if want := "circuit breaker of service demo/api open: 2 requests in flight"; err3.Error() != want {
		t.Errorf("refusal says %q, want %q", err3, want)
	}
	r1()
	if _, err := b.admit(ctx); err != nil {
		t.Fatalf("a place given back was not taken: %v", err)
	}
	// Without a queue, a request needing a connection is refused too.
	if _, err := breakerWith(0, 3, 0).Wait(); reasonOf(err) != openConnections || !strings.Contains(err.Error(), "3 connections open") {
		t.Fatalf("Wait without a queue = %v, want refused for connections", err)
	}
}

func TestBreakerQueue(t *testing.T) {
	b := breakerWith(1, 4, 2)
	ctx := context.Background()
	release, err := b.admit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two wait, in order; a third finds the queue full.
	got := make(chan int, 2)
	for i := range 2 {
		go func() {
			r, err := b.admit(ctx)
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			got <- i
			r()
		}()
		waitUntil(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.pending == int64(i+1) })
	}
	if _, err := b.admit(ctx); reasonOf(err) != openPending || !strings.Contains(err.Error(), "2 requests waiting already") {
		t.Fatalf("admit with the queue full = %v, want refused as pending", err)
	}
	// A connection wait shares the queue.
	if _, err := b.Wait(); reasonOf(err) != openPending {
		t.Fatalf("Wait with the queue full = %v, want refused as pending", err)
	}
	release()
	if first, second := <-got, <-got; first != 0 || second != 1 {
		t.Fatalf("waiters admitted in order %d, %d; want 0, 1", first, second)
	}
	b.mu.Lock()
	inflight, pending := b.inflight, b.pending
	b.mu.Unlock()
	if inflight != 0 || pending != 0 {
		t.Fatalf("all done: %d in flight, %d waiting; want 0 and 0", inflight, pending)
	}
	leave, err := b.Wait()
	if err != nil {
		t.Fatalf("Wait with room in the queue: %v", err)
	}
	leave()
}

func TestBreakerWaitEndsWithItsContext(t *testing.T) {
	b := breakerWith(1, 0, 5)
	release, _ := b.admit(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.admit(ctx); !errors.Is(err, context.DeadlineExceeded) || isCircuitOpen(err) {
		t.Fatalf("a wait past its deadline = %v, want DeadlineExceeded", err)
	}
	b.mu.Lock()
	pending, waiters := b.pending, len(b.waiters)
	b.mu.Unlock()
	if pending != 0 || waiters != 0 {
		t.Fatalf("after the deadline: %d pending, %d waiters; want none", pending, waiters)
	}
	release()
	if _, err := b.admit(context.Background()); err != nil {
		t.Fatalf("the place given back was lost: %v", err)
	}
}

func TestBreakerRaisedBoundLetsWaitersIn(t *testing.T) {
	b := breakerWith(1, 0, 5)
	b.admit(context.Background())
	admitted := make(chan error, 1)
	go func() {
		_, err := b.admit(context.Background())
		admitted <- err
	}()
	waitUntil(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.pending == 1 })
	b.configure(&model.CircuitBreakerPolicy{MaxRequests: 2, MaxPendingRequests: 5})
	select {
	case err := <-admitted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter stayed out after the bound was raised")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOutcomeOfGRPC(t *testing.T) {
	tests := []struct {
		status string
		want   outcome
	}{
		{"0", outcomeSuccess},
		{"", outcomeSuccess},
		{"5", outcomeSuccess},  // NOT_FOUND: the caller's doing
		{"3", outcomeSuccess},  // INVALID_ARGUMENT
		{"8", outcomeSuccess},  // RESOURCE_EXHAUSTED: a limit, not a failure
		{"12", outcomeSuccess}, // UNIMPLEMENTED
		{"14", outcomeGateway}, // UNAVAILABLE
		{"4", outcomeGateway},  // DEADLINE_EXCEEDED
		{"13", outcome5xx},     // INTERNAL
		{"2", outcome5xx},      // UNKNOWN
		{"15", outcome5xx},     // DATA_LOSS
	}
	for _, tc := range tests {
		// A trailers-only answer: the status in the headers of a 200.
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/grpc"}}}
		if tc.status != "" {
			resp.Header.Set("Grpc-Status", tc.status)
		}
		if got := outcomeOf(resp, nil); got != tc.want {
			t.Errorf("grpc-status %q in the headers: outcome %d, want %d", tc.status, got, tc.want)
		}
		if got := grpcOutcome(tc.status); got != tc.want {
			t.Errorf("grpc-status %q: outcome %d, want %d", tc.status, got, tc.want)
		}
	}
	// Not gRPC: a grpc-status header means nothing.
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}, "Grpc-Status": {"14"}}}
	if got := outcomeOf(resp, nil); got != outcomeSuccess {
		t.Errorf("a plain answer with grpc-status 14: outcome %d, want success", got)
	}
	if got := outcomeOf(nil, &circuitOpenError{reason: openConnections}); got != outcomeCanceled {
		t.Errorf("a circuit breaker's refusal: outcome %d, want it to say nothing of the endpoint", got)
	}
}

func TestWatchTrailersCountsAtTheEnd(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		trailer string
		readErr error
		want    outcome
	}{
		{"UNAVAILABLE in trailers", "14", nil, outcomeGateway},
		{"OK in trailers", "0", nil, outcomeSuccess},
		{"broken off", "", errors.New("stream reset"), outcomeGateway},
		{"canceled", "", context.Canceled, outcomeCanceled},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/grpc"}}, Trailer: http.Header{}}
			body := &scriptedBody{chunks: []string{"msg1", "msg2"}, end: tc.readErr, atEnd: func() {
				if tc.trailer != "" {
					resp.Trailer.Set("Grpc-Status", tc.trailer)
				}
			}}
			var seen []outcome
			w := &watchTrailers{ReadCloser: body, resp: resp, done: func(oc outcome) { seen = append(seen, oc) }}
			buf := make([]byte, 16)
			for {
				if _, err := w.Read(buf); err != nil {
					break
				}
				if len(seen) > 0 {
					t.Fatal("counted before the body ended")
				}
			}
			w.Read(buf)
			w.Close()
			if len(seen) != 1 || seen[0] != tc.want {
				t.Fatalf("counted %v, want once %d", seen, tc.want)
			}
		})
	}
	// Closed before its end: nothing to say.
	var seen []outcome
	w := &watchTrailers{ReadCloser: &scriptedBody{chunks: []string{"msg"}}, resp: &http.Response{Trailer: http.Header{}}, done: func(oc outcome) { seen = append(seen, oc) }}
	w.Read(make([]byte, 16))
	w.Close()
	if len(seen) != 0 {
		t.Fatalf("an abandoned answer counted %v", seen)
	}
}

// scriptedBody returns chunks, then end (io.EOF when nil), calling atEnd
// first as the HTTP/2 transport fills trailers.
type scriptedBody struct {
	chunks []string
	end    error
	atEnd  func()
}

func (b *scriptedBody) Read(p []byte) (int, error) {
	if len(b.chunks) > 0 {
		n := copy(p, b.chunks[0])
		b.chunks = b.chunks[1:]
		return n, nil
	}
	if b.atEnd != nil {
		b.atEnd()
		b.atEnd = nil
	}
	if b.end != nil {
		return 0, b.end
	}
	return 0, io.EOF
}

func (b *scriptedBody) Close() error { return nil }

func TestEncodeGRPCTimeout(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "1n"},
		{-time.Second, "1n"},
		{1500 * time.Nanosecond, "1500n"},
		{99999999 * time.Nanosecond, "99999999n"},
		{100 * time.Millisecond, "100000u"},
		{1700*time.Millisecond + 999*time.Nanosecond, "1700000u"}, // rounded down
		{2 * time.Minute, "120000m"},
		{100000 * time.Second, "100000S"},
		{300 * time.Hour, "1080000S"},
		{30000 * time.Hour, "1800000M"},
		{1e8 * time.Minute, "1666666H"},
	}
	for _, tc := range tests {
		got := encodeGRPCTimeout(tc.d)
		if got != tc.want {
			t.Errorf("encodeGRPCTimeout(%s) = %q, want %q", tc.d, got, tc.want)
		}
		if back, ok := parseGRPCTimeout(got); !ok || back > max(tc.d, time.Nanosecond) {
			t.Errorf("%q reads back as %s (%v): longer than %s", got, back, ok, tc.d)
		}
	}
}

func TestPropagateGRPCTimeout(t *testing.T) {
	req := func(ctx context.Context, timeout string) *http.Request {
		r := httptest.NewRequestWithContext(ctx, "POST", "/pkg.Svc/M", nil)
		if timeout != "" {
			r.Header.Set("Grpc-Timeout", timeout)
		}
		return r
	}
	arrived := time.Now().Add(-300 * time.Millisecond)
	// 2s asked, 300ms spent here: about 1.7s left.
	r := req(context.Background(), "2S")
	if err := propagateGRPCTimeout(r, arrived); err != nil {
		t.Fatal(err)
	}
	if d, _ := parseGRPCTimeout(r.Header.Get("Grpc-Timeout")); d > 1700*time.Millisecond || d < 1600*time.Millisecond {
		t.Errorf("2S after 300ms in the proxy passed on as %s", r.Header.Get("Grpc-Timeout"))
	}
	// A route timeout with less left bounds it.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r = req(ctx, "2S")
	propagateGRPCTimeout(r, arrived)
	if d, _ := parseGRPCTimeout(r.Header.Get("Grpc-Timeout")); d > 500*time.Millisecond || d < 400*time.Millisecond {
		t.Errorf("2S under a 500ms route timeout passed on as %s", r.Header.Get("Grpc-Timeout"))
	}
	// Nothing left: not sent at all.
	r = req(context.Background(), "200m")
	if err := propagateGRPCTimeout(r, arrived); !errors.Is(err, errGRPCDeadline) {
		t.Errorf("a call whose 200ms passed in the proxy: %v, want errGRPCDeadline", err)
	}
	// No grpc-timeout: none is made up, the route's timeout included.
	r = req(ctx, "")
	if err := propagateGRPCTimeout(r, arrived); err != nil || r.Header.Get("Grpc-Timeout") != "" {
		t.Errorf("a call without grpc-timeout: %v, header %q", err, r.Header.Get("Grpc-Timeout"))
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
