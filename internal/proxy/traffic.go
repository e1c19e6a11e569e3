package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/match"
	"github.com/weftmesh/weft/internal/proxy/pool"
	"github.com/weftmesh/weft/internal/proxy/trace"
)

// maxReplayBody is the most of a request body the proxy keeps to send
// again on a retry; a request with more is not retried.
const maxReplayBody = 64 << 10

// retrier is a RetryPolicy compiled for one target, with the target's
// budget.
type retrier struct {
	policy *model.RetryPolicy
	budget *budget
}

// faulter is a FaultPolicy compiled.
type faulter struct {
	policy  *model.FaultPolicy
	headers []valueMatcher
}

// traffic compiles the traffic policy of rt's service; budgets are kept
// per target across configs, like balancers. Called with p.mu held.
func (p *Proxy) traffic(rt *route, key target) error {
	if rt.svc == nil || rt.svc.Traffic == nil {
		return nil
	}
	tp := rt.svc.Traffic
	if r := tp.Retry; r != nil {
		b := p.budgets[key]
		if b == nil {
			b = &budget{}
			p.budgets[key] = b
		}
		b.configure(r.Budget)
		rt.retry = &retrier{policy: r, budget: b}
	}
	if bp := tp.Breaker; bp != nil {
		b := p.breakers[key]
		if b == nil {
			b = &breaker{service: key.service.String()}
			b.outliers.now = time.Now
			p.breakers[key] = b
		}
		rt.breakerPolicy = bp
		b.configure(bp)
		b.outliers.mu.Lock()
		b.outliers.cfg = bp.Outlier
		b.outliers.mu.Unlock()
		var g *pool.Group
		if bp.MaxConnections > 0 || bp.MaxRequestsPerConnection > 0 {
			g = p.pool.Group(fmt.Sprintf("%s:%d", key.service, key.port),
				pool.Limits{MaxConns: bp.MaxConnections, MaxRequestsPerConn: bp.MaxRequestsPerConnection}, b)
			// Requests multiplex on one connection per endpoint, but each
			// needs one: with fewer, idle connections make way for each other
			// and requests wait for one.
			if n := len(rt.endpoints); bp.MaxConnections > 0 && n > int(bp.MaxConnections) && b.warned != [2]int{int(bp.MaxConnections), n} {
				b.warned = [2]int{int(bp.MaxConnections), n}
				p.log.Warn("circuit breaker allows fewer connections than the service has endpoints", "service", b.service,
					"policy", bp.Ref.String(), "max_connections", bp.MaxConnections, "endpoints", n)
			}
		}
		b.group.Store(g)
		rt.breaker = b
	}
	if f := tp.Fault; f != nil {
		fl := &faulter{policy: f}
		for _, v := range f.Headers {
			m, err := match.Value(v)
			if err != nil {
				return fmt.Errorf("fault policy %s: %w", f.Ref, err)
			}
			fl.headers = append(fl.headers, valueMatcher{name: v.Name, match: m})
		}
		rt.fault = fl
	}
	return nil
}

// inject delays and then maybe aborts r as the fault policy says. It
// reports whether it answered the request (or the client left). A route
// timeout (timeout, in r's context) that passes during the delay is
// answered as one.
func (p *Proxy) inject(w http.ResponseWriter, r *http.Request, rt *route, timeout time.Duration) bool {
	f := rt.fault
	if f == nil {
		return false
	}
	for _, h := range f.headers {
		if !anyMatch(r.Header.Values(h.name), h.match) {
			return false
		}
	}
	svc := rt.out.Service.String()
	if pc := f.policy.DelayPercent; pc > 0 && rand.Float64()*100 < pc {
		p.metrics.faults.WithLabelValues(svc, "delay").Inc()
		t := time.NewTimer(f.policy.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			if errors.Is(r.Context().Err(), context.DeadlineExceeded) {
				p.timedOut(w, r, rt, timeout)
			}
			return true
		}
	}
	if pc := f.policy.AbortPercent; pc > 0 && rand.Float64()*100 < pc {
		p.metrics.faults.WithLabelValues(svc, "abort").Inc()
		code := int(f.policy.AbortHTTPStatus)
		msg := fmt.Sprintf("weft outbound: fault injected by FaultPolicy %s", f.policy.Ref)
		if isGRPC(r) {
			g := int(f.policy.AbortGRPCCode)
			if g == 0 {
				g = grpcCodeOf(code)
			}
			writeGRPCError(w, g, msg)
			return true
		}
		http.Error(w, msg, code)
		return true
	}
	return false
}

// budget bounds retries to a share of recent requests plus a floor, so
// that retries can never multiply an outage. It counts in ten slots of a
// tenth of the window each.
type budget struct {
	mu      sync.Mutex
	cfg     model.RetryBudget
	slots   [10]struct{ requests, retries float64 }
	current int
	started time.Time // start of the current slot
	now     func() time.Time
}

func (b *budget) configure(cfg model.RetryBudget) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg = cfg
	if b.now == nil {
		b.now = time.Now
		b.started = b.now()
	}
}

// advance moves to the slot of now, clearing those it passes. Called with
// b.mu held.
func (b *budget) advance() {
	slot := b.cfg.Window / time.Duration(len(b.slots))
	now := b.now()
	for i := 0; now.Sub(b.started) >= slot && i <= len(b.slots); i++ {
		b.current = (b.current + 1) % len(b.slots)
		b.slots[b.current] = struct{ requests, retries float64 }{}
		b.started = b.started.Add(slot)
	}
	if now.Sub(b.started) >= slot {
		b.started = now // idle longer than the window: start over
	}
}

// deposit counts a request.
func (b *budget) deposit() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance()
	b.slots[b.current].requests++
}

// withdraw takes a retry from the budget, or reports there is none left.
func (b *budget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance()
	var requests, retries float64
	for _, s := range b.slots {
		requests += s.requests
		retries += s.retries
	}
	allowed := b.cfg.Ratio*requests + float64(b.cfg.MinPerSecond)*b.cfg.Window.Seconds()
	if retries+1 > allowed {
		return false
	}
	b.slots[b.current].retries++
	return true
}

// retryable reports whether the policy retries an answer or an error.
func (rp *retrier) retryable(resp *http.Response, err error) bool {
	on := func(c string) bool { return slices.Contains(rp.policy.RetryOn, c) }
	switch {
	case errors.Is(err, errPerTryTimeout):
		return on(model.RetryOn5xx) || on(model.RetryOnGatewayError)
	case isCircuitOpen(err):
		return false // a retry would only add to what the breaker bounds
	case err != nil:
		return on(model.RetryOnReset) && !errors.Is(err, context.Canceled)
	}
	switch code := resp.StatusCode; {
	case code >= 500 && on(model.RetryOn5xx):
		return true
	case (code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout) && on(model.RetryOnGatewayError):
		return true
	}
	// A gRPC status in the headers is a trailers-only answer: the call
	// failed before any message.
	switch g, _ := strconv.Atoi(resp.Header.Get("Grpc-Status")); g {
	case grpcUnavailable:
		return on(model.RetryOnUnavailable)
	case grpcResourceExhausted:
		return on(model.RetryOnResourceExhaust)
	case grpcCancelled:
		return on(model.RetryOnCancelled)
	}
	return false
}

// backoff is the wait before retry n (1 is the first): exponential from
// the base, capped, with full jitter.
func (rp *retrier) backoff(n int) time.Duration {
	d := rp.policy.BackoffBase << min(n-1, 20)
	if d > rp.policy.BackoffMax || d <= 0 {
		d = rp.policy.BackoffMax
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// replayBody passes a request body through, keeping up to maxReplayBody
// of it so that the request can be sent again.
type replayBody struct {
	src      io.ReadCloser
	buf      bytes.Buffer
	eof      bool
	overflow bool
}

func (b *replayBody) Read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	if b.buf.Len()+n > maxReplayBody {
		b.overflow = true
	} else {
		b.buf.Write(p[:n])
	}
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *replayBody) Close() error { return b.src.Close() }

// replay returns the body to send again, or false when it was not read
// to its end or was too long to keep.
func (b *replayBody) replay() (io.ReadCloser, bool) {
	if !b.eof || b.overflow {
		return nil, false
	}
	return io.NopCloser(bytes.NewReader(b.buf.Bytes())), true
}

// closeOnBody cancels a try's context once its response body is closed.
type closeOnBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c closeOnBody) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// errPerTryTimeout ends a try that got no answer within the retry
// policy's per-try timeout; it counts as a gateway error.
var errPerTryTimeout = errors.New("per-try timeout")

// withRetries sends req, and again as u.route's retry policy allows:
// only a body read to its end and short enough to keep is sent again,
// never past the request's deadline, and only within the budget.
func (rc retryConnect) withRetries(req *http.Request, u *upstream) (*http.Response, error) {
	rp := u.route.retry
	rp.budget.deposit()
	var body *replayBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &replayBody{src: req.Body}
		req = req.Clone(req.Context())
		req.Body = body
	}
	svc := u.route.out.Service.String()
	deadline, hasDeadline := req.Context().Deadline()
	if d, ok := parseGRPCTimeout(req.Header.Get("Grpc-Timeout")); ok && (!hasDeadline || u.start.Add(d).Before(deadline)) {
		deadline, hasDeadline = u.start.Add(d), true
	}
	for n := 1; ; n++ {
		perTry := rp.policy.PerTryTimeout
		if bt := u.backendTimeout(); bt > 0 && (perTry == 0 || bt < perTry) {
			perTry = bt
		}
		resp, err := rc.tryWithin(req, u, perTry)
		if n > int(rp.policy.Attempts) || req.Context().Err() != nil || !rp.retryable(resp, err) {
			return resp, err
		}
		wait := rp.backoff(n)
		var next io.ReadCloser
		outcome := "retried"
		if body != nil {
			b, ok := body.replay()
			if !ok {
				outcome = "not_replayable"
			}
			next = b
		}
		switch {
		case outcome != "retried":
		case hasDeadline && time.Until(deadline) <= wait:
			outcome = "deadline"
		case !rp.budget.withdraw():
			outcome = "budget_exhausted"
		}
		rc.p.metrics.retries.WithLabelValues(svc, outcome).Inc()
		if outcome != "retried" {
			return resp, err
		}
		trace.FromContext(req.Context()).AddRetry()
		failure := err
		if resp != nil {
			failure = fmt.Errorf("answered %d", resp.StatusCode)
			io.Copy(io.Discard, io.LimitReader(resp.Body, maxReplayBody))
			resp.Body.Close()
		}
		if u.done != nil {
			u.done(failure)
			u.done = nil
		}
		rc.p.log.Debug("retrying", "service", svc, "try", n+1, "after", failure, "backoff", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
		if body != nil {
			body = &replayBody{src: next}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// tryWithin is try bounded by a per-try timeout until the answer's
// headers; the body then has the request's own deadline.
func (rc retryConnect) tryWithin(req *http.Request, u *upstream, perTry time.Duration) (*http.Response, error) {
	if perTry <= 0 {
		return rc.try(req, u)
	}
	ctx, cancel := context.WithCancel(req.Context())
	timer := time.AfterFunc(perTry, cancel)
	resp, err := rc.try(req.WithContext(ctx), u)
	timedOut := !timer.Stop()
	if err == nil && timedOut {
		// The answer came as the timer fired: its body is cut off already.
		resp.Body.Close()
		err = context.Canceled
	}
	if err != nil {
		cancel()
		if timedOut && req.Context().Err() == nil {
			err = fmt.Errorf("%w (%s): %w", errPerTryTimeout, perTry, err)
		}
		return nil, err
	}
	resp.Body = closeOnBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// breaker is the state a target's CircuitBreakerPolicy keeps across
// configs: the requests in flight and waiting, the connections of the
// target's own, and the outliers it ejected. The policy is on the
// (immutable) route; its bounds are copied here too, because a place a
// request gives back goes to one waiting under whatever config is in
// force then.
type breaker struct {
	service string

	mu sync.Mutex
	// The bounds of the policy in force; 0 is none.
	maxRequests, maxConnections, maxPending uint32
	inflight                                int64
	// pending counts what waits: for a place under maxRequests (waiters,
	// oldest first, each handed a place by closing its channel) or for a
	// connection of group.
	pending int64
	waiters []chan struct{}

	// group carries the target's requests on connections of its own when
	// the policy bounds connections; nil: the pool's shared ones.
	group atomic.Pointer[pool.Group]
	// warned is the (maxConnections, endpoints) last warned of; guarded
	// by the proxy's mu, as traffic is.
	warned   [2]int
	outliers outliers
}

// Reasons a circuit breaker refuses a request or connection, the reason
// label of weft_outbound_circuit_open_total.
const (
	openRequests    = "requests"    // maxRequests in flight, and no queue
	openConnections = "connections" // maxConnections open and busy, and no queue
	openPending     = "pending"     // maxPendingRequests waiting already
	openMirror      = "mirror"      // a mirrored copy found maxRequests in flight, and was dropped
)

// circuitOpenError is a request or connection a circuit breaker refused.
type circuitOpenError struct {
	service, reason string
	limit           uint32
}

func (e *circuitOpenError) Error() string {
	what := map[string]string{openRequests: "requests in flight", openConnections: "connections open", openPending: "requests waiting already"}[e.reason]
	return fmt.Sprintf("circuit breaker of service %s open: %d %s", e.service, e.limit, what)
}

// isCircuitOpen reports a refusal by a circuit breaker: the request never
// left the proxy, and says nothing of any endpoint.
func isCircuitOpen(err error) bool {
	var oe *circuitOpenError
	return errors.As(err, &oe)
}

// configure takes the bounds of bp; a raised maxRequests lets waiting
// requests in.
func (b *breaker) configure(bp *model.CircuitBreakerPolicy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maxRequests, b.maxConnections, b.maxPending = bp.MaxRequests, bp.MaxConnections, bp.MaxPendingRequests
	for len(b.waiters) > 0 && (b.maxRequests == 0 || b.inflight < int64(b.maxRequests)) {
		b.inflight++
		b.handOverLocked()
	}
}

// tryAdmit takes a place among the requests in flight if one is free,
// and never waits: for a copy nobody waits for, which must not take a
// place in the queue from a request someone does.
func (b *breaker) tryAdmit() (release func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.maxRequests != 0 && b.inflight >= int64(b.maxRequests) {
		return nil, false
	}
	b.inflight++
	return b.release, true
}

// admit takes a place among the requests in flight (a bound of 0 is no
// bound); when there is none it waits in the queue, if the policy has
// one with room, until a place frees up or ctx ends. release gives the
// place back, to the first request waiting if any.
func (b *breaker) admit(ctx context.Context) (release func(), err error) {
	b.mu.Lock()
	if b.maxRequests == 0 || b.inflight < int64(b.maxRequests) {
		b.inflight++
		b.mu.Unlock()
		return b.release, nil
	}
	if err := b.enterLocked(openRequests, b.maxRequests); err != nil {
		b.mu.Unlock()
		return nil, err
	}
	turn := make(chan struct{})
	b.waiters = append(b.waiters, turn)
	b.mu.Unlock()
	select {
	case <-turn:
		return b.release, nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if i := slices.Index(b.waiters, turn); i >= 0 {
		b.waiters = slices.Delete(b.waiters, i, i+1)
		b.pending--
	} else {
		b.releaseLocked() // handed a place as ctx ended: pass it on
	}
	return nil, fmt.Errorf("waiting for the circuit breaker of service %s: %w", b.service, ctx.Err())
}

// enterLocked counts one more waiting, or refuses it: for reason, over
// limit, when the policy has no queue, else because the queue is full.
func (b *breaker) enterLocked(reason string, limit uint32) error {
	if b.pending < int64(b.maxPending) {
		b.pending++
		return nil
	}
	if b.maxPending == 0 {
		return &circuitOpenError{service: b.service, reason: reason, limit: limit}
	}
	return &circuitOpenError{service: b.service, reason: openPending, limit: b.maxPending}
}

func (b *breaker) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked()
}

func (b *breaker) releaseLocked() {
	if len(b.waiters) > 0 && (b.maxRequests == 0 || b.inflight <= int64(b.maxRequests)) {
		b.handOverLocked() // the place stays taken, by the first waiting
		return
	}
	b.inflight--
}

func (b *breaker) handOverLocked() {
	close(b.waiters[0])
	b.waiters = slices.Delete(b.waiters, 0, 1)
	b.pending--
}

// Wait is the breaker as the pool.Queue of the target's connections: a
// request or tunnel that must wait for a connection counts as waiting.
func (b *breaker) Wait() (leave func(), err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.enterLocked(openConnections, b.maxConnections); err != nil {
		return nil, err
	}
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.pending--
	}, nil
}

// canWait reports whether the policy lets requests wait.
func (b *breaker) canWait() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.maxPending > 0
}

// connGroup is the pool group carrying rt's requests, or nil.
func (rt *route) connGroup() *pool.Group {
	if rt.breaker == nil {
		return nil
	}
	return rt.breaker.group.Load()
}

// outcome is how one try on an endpoint went, for outlier detection.
type outcome int

const (
	outcomeSuccess  outcome = iota
	outcome5xx              // a 5xx answer other than a gateway error
	outcomeGateway          // 502, 503, 504, or the peer broke off
	outcomeConnect          // the peer proxy could not be reached
	outcomeCanceled         // the caller gave up, or the request never left: says nothing of the endpoint
)

// outcomeOf classifies an answer or an error; a tunnel has no answer. A
// gRPC call's status, when the answer's headers carry it (a
// trailers-only answer), counts as its HTTP counterpart would; one in
// trailers is for watchTrailers.
func outcomeOf(resp *http.Response, err error) outcome {
	switch {
	case err == nil && resp == nil:
		return outcomeSuccess
	case err != nil && isConnectFailure(err):
		return outcomeConnect
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isCircuitOpen(err):
		return outcomeCanceled
	case err != nil:
		return outcomeGateway
	case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout:
		return outcomeGateway
	case resp.StatusCode >= 500:
		return outcome5xx
	case isGRPCContentType(resp.Header.Get("Content-Type")):
		return grpcOutcome(resp.Header.Get("Grpc-Status"))
	}
	return outcomeSuccess
}

// grpcOutcome classifies a gRPC status as the HTTP status gRPC maps it
// to: UNAVAILABLE is a 503, DEADLINE_EXCEEDED a 504 (gateway errors),
// INTERNAL, UNKNOWN and DATA_LOSS a 500. Other codes (NOT_FOUND,
// INVALID_ARGUMENT, ...) are the caller's doing, not the endpoint's; no
// status at all is nothing to count.
func grpcOutcome(status string) outcome {
	code, err := strconv.Atoi(status)
	if err != nil {
		return outcomeSuccess
	}
	switch code {
	case grpcUnavailable, grpcDeadlineExceeded:
		return outcomeGateway
	case grpcInternal, grpcUnknown, grpcDataLoss:
		return outcome5xx
	}
	return outcomeSuccess
}

// observeTry feeds a try's outcome to u's route's outlier detection, and
// notes a failed answer for the balancer, and returns the answer. A gRPC
// answer whose status comes in trailers is judged when its body ends, as
// it is read, never buffered.
func (p *Proxy) observeTry(u *upstream, ep *model.Endpoint, resp *http.Response, err error) *http.Response {
	rt := u.route
	report := func(oc outcome) {
		u.answerErr = nil
		if oc == outcome5xx || oc == outcomeGateway {
			u.answerErr = errFailedAnswer
		}
		if rt.breaker != nil && rt.breakerPolicy.Outlier != nil {
			p.observe(rt, ep, oc)
		}
	}
	if err == nil && resp.StatusCode < 500 && isGRPCContentType(resp.Header.Get("Content-Type")) && resp.Header.Get("Grpc-Status") == "" {
		resp.Body = &watchTrailers{ReadCloser: resp.Body, resp: resp, done: report}
		return resp
	}
	report(outcomeOf(resp, err))
	return resp
}

// errFailedAnswer is what the balancer hears of an endpoint that answered
// with a failure: it counts as slow, so the endpoint gets fewer requests
// while it fails.
var errFailedAnswer = errors.New("the endpoint answered with a failure")

// watchTrailers reports a gRPC answer's outcome once its body has ended:
// the status in its trailers, or the error that broke it off. An answer
// abandoned before its end says nothing.
type watchTrailers struct {
	io.ReadCloser
	resp *http.Response
	once sync.Once
	done func(outcome)
}

func (w *watchTrailers) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		// The transport fills Trailer before the body reports its end.
		w.once.Do(func() { w.done(grpcOutcome(w.resp.Trailer.Get("Grpc-Status"))) })
	case err != nil:
		w.once.Do(func() { w.done(outcomeOf(nil, err)) })
	}
	return n, err
}

// outliers ejects endpoints that fail in a row.
type outliers struct {
	mu  sync.Mutex
	cfg *model.OutlierDetection
	eps map[string]*outlierState
	now func() time.Time
}

type outlierState struct {
	fails5xx, failsGateway, failsConnect uint32
	ejections                            int
	until                                time.Time
}

// observe records a try on endpoint id of a pool of total endpoints, and
// reports whether it ejected the endpoint.
func (o *outliers) observe(id string, oc outcome, total int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	cfg := o.cfg
	if cfg == nil {
		return false
	}
	if o.eps == nil {
		o.eps = map[string]*outlierState{}
	}
	s := o.eps[id]
	if s == nil {
		s = &outlierState{}
		o.eps[id] = s
	}
	if oc == outcomeSuccess {
		s.fails5xx, s.failsGateway, s.failsConnect = 0, 0, 0
		return false
	}
	s.fails5xx++ // every failure is a 5xx to its caller
	if oc == outcomeGateway || oc == outcomeConnect {
		s.failsGateway++
	}
	if oc == outcomeConnect {
		s.failsConnect++
	}
	trip := func(n, limit uint32) bool { return limit > 0 && n >= limit }
	if !trip(s.fails5xx, cfg.Consecutive5xx) && !trip(s.failsGateway, cfg.ConsecutiveGatewayErrors) && !trip(s.failsConnect, cfg.ConsecutiveConnectFailures) {
		return false
	}
	now := o.now()
	ejected := 0
	for _, e := range o.eps {
		if e.until.After(now) {
			ejected++
		}
	}
	// At most the share the policy allows, and never the last endpoint.
	if ejected+1 > total*int(cfg.MaxEjectionPercent)/100 || ejected+1 >= total {
		return false
	}
	s.ejections++
	s.until = now.Add(cfg.BaseEjection * time.Duration(s.ejections))
	s.fails5xx, s.failsGateway, s.failsConnect = 0, 0, 0
	return true
}

// ejected reports whether endpoint id is ejected now.
func (o *outliers) ejected(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.eps[id]
	return s != nil && s.until.After(o.now())
}

// observe feeds a try's outcome to rt's outlier detection.
func (p *Proxy) observe(rt *route, ep *model.Endpoint, oc outcome) {
	if rt.breaker == nil || rt.breakerPolicy.Outlier == nil || oc == outcomeCanceled {
		return
	}
	if rt.breaker.outliers.observe(ep.ID, oc, len(rt.endpoints)) {
		p.metrics.ejections.WithLabelValues(rt.out.Service.String()).Inc()
		p.log.Warn("endpoint ejected", "service", rt.out.Service.String(), "endpoint", ep.ID)
	}
}

// tokenBucket is the inbound rate limit: refilled at rate tokens a
// second, holding at most burst. It outlives configs, so a new config
// does not refill it.
type tokenBucket struct {
	mu          sync.Mutex
	rate, burst float64
	tokens      float64
	last        time.Time
	now         func() time.Time
	started     bool
}

// configure sets the rate and burst, keeping the tokens there are (at
// most the new burst); a bucket configured for the first time is full.
func (b *tokenBucket) configure(rps, burst uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started {
		if b.now == nil {
			b.now = time.Now
		}
		b.last, b.tokens, b.started = b.now(), float64(burst), true
	}
	b.rate, b.burst = float64(rps), float64(burst)
	b.tokens = min(b.tokens, b.burst)
}

// take takes a token, or reports there is none.
func (b *tokenBucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// rateLimited answers a request or tunnel the workload's rate limit
// refuses: 429, RESOURCE_EXHAUSTED for gRPC. It reports whether it did.
func (p *Proxy) rateLimited(w http.ResponseWriter, r *http.Request, st *state) bool {
	rl := st.cfg.Authz
	if rl == nil || rl.RateLimit == nil || p.bucket.take() {
		return false
	}
	policy := rl.RateLimit.Policy
	p.metrics.rateLimited.WithLabelValues(policy).Inc()
	msg := fmt.Sprintf("weft inbound: rate limited by %s (%d requests/s)", policy, rl.RateLimit.RequestsPerSecond)
	p.log.Debug("inbound rate limited", "policy", policy, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	if isGRPC(r) {
		writeGRPCError(w, grpcResourceExhausted, msg)
		return true
	}
	http.Error(w, msg, http.StatusTooManyRequests)
	return true
}
