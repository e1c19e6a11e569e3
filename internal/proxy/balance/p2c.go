package balance

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/model"
)

// p2c is "power of two choices" over a peak-EWMA cost, as Linkerd and
// Finagle balance: pick two endpoints at random and use the cheaper, where
// an endpoint costs its latency estimate times (requests in flight + 1).
// Sampling two rather than scanning for the cheapest avoids the herd
// behaviour of plain least-loaded, where every caller piles onto the same
// endpoint; the cost steers away from endpoints that are slow, loaded or
// failing.
//
// The latency estimate of an endpoint (see endpointLoad) is fed by how
// long each request or connection took, from Pick to its Done:
//
//   - Peak: an answer slower than the estimate replaces it at once, so an
//     endpoint that turns slow loses traffic from its next answer on.
//   - EWMA: a faster answer pulls the estimate toward it with weight
//     1-exp(-Δ/decayWindow), Δ the time it covers (since the request
//     started, or since the previous observation if later), so the
//     weight follows time, not request count, and no single fast answer
//     undoes a slow one.
//   - Fading: while nothing is heard of an endpoint, its estimate decays
//     toward zero with the same time constant, so one shunned for being
//     slow or failing comes back after a while (its estimate falls to
//     that of an endpoint k times faster in decayWindow·ln k: about 40s
//     for 50×) and shows whether it recovered. Under load that comes
//     sooner, since the pending factor raises the cost of the others.
//   - No estimate yet: an endpoint that has not answered is taken to be
//     as fast as the other candidate, or defaultRTT if that is faster, so
//     a new endpoint is tried at once but draws no burst before it has
//     answered: against an endpoint as fast, only the requests in flight
//     tell them apart. A fixed default alone (Linkerd starts endpoints at
//     30ms) cannot do both: above the real round trips it keeps a new
//     endpoint out until its default fades below them (about 40s for 30ms
//     against 0.5ms), and below them it draws a burst. The cap keeps an
//     endpoint with no estimate from looking as bad as a slow or failing
//     rival.
//   - The first answer of an endpoint is not counted: its request also
//     paid for connecting to the endpoint's proxy (TCP and mTLS
//     handshakes), a one-off cost that would otherwise keep a new endpoint
//     shunned for tens of seconds at low traffic.
//   - A failure (Done with an error) counts as at least failurePenalty of
//     latency; a canceled request counts the time until the caller gave
//     up. Neither is good news, so both can raise the estimate but never
//     lower it; only successes do.
//
// Latency estimates are noisy where request counts are not. When the two
// candidates have as many requests in flight, the costlier one is still
// picked with probability ½·(cheaper/costlier)², rather than never: 1 in
// 8 comparisons at twice the cost, 1 in 200 at ten times, 1 in 20000 for
// an endpoint penalized for a failure against 10ms answers. Without this,
// at low concurrency an endpoint whose last answer happened to be slower
// than its equal peer's would get nothing until its estimate faded, for
// seconds at a time. With different counts in flight the cheaper one is
// always picked, so an endpoint with requests queued never wins over an
// idle one that is as fast.
//
// Done comes when the request or connection ends, so for opaque TCP
// connections, upgrades and long streaming responses the observation is
// the lifetime rather than a round trip; such an observation peaks the
// estimate and then fades (decayWindow·ln(lifetime/RTT): two to three
// minutes for an hour-long connection against 1ms answers).
type p2c struct {
	mu    sync.Mutex // serializes Update
	items atomic.Pointer[[]p2cItem]
	// now reads a monotonic clock, in nanoseconds; intN is rand.IntN.
	// Tests replace both.
	now  func() int64
	intN func(n int) int
}

// Tuning of p2c.
const (
	// decayWindow is the time constant of the estimate: about how long an
	// endpoint's past latency matters. 10s, as Linkerd and Finagle: long
	// enough that one fast answer does not undo a run of slow ones and
	// that a slow or failing endpoint stays shunned for tens of seconds
	// rather than being tried again and again, short enough that one that
	// recovered gets its traffic back within a minute or so.
	decayWindow = 10 * time.Second
	// defaultRTT caps the estimate an endpoint that has not answered yet
	// borrows from its rival: 30ms, Linkerd's default, is a typical
	// in-cluster request, so a new endpoint wins against slow or failing
	// ones.
	defaultRTT = 30 * time.Millisecond
	// failurePenalty is the least latency a failed request counts as. An
	// endpoint that fails at once would otherwise look like the fastest
	// and, with no requests held, the least loaded, and draw traffic just
	// to fail it. A second is above any healthy in-mesh round trip, so one
	// failure makes the endpoint lose nearly every comparison with a
	// healthy one until it fades (about 45s against 10ms answers, sooner
	// under load).
	failurePenalty = time.Second
	// minRTT floors the estimate, so a long-faded one never reaches zero,
	// where the pending factor would stop counting.
	minRTT = time.Microsecond
)

// tau is decayWindow in the clock's unit.
const tau = float64(decayWindow)

type p2cItem struct {
	ep *model.Endpoint
	// load is shared by every version of an endpoint with this ID, so
	// what was learned, and requests picked before an Update, still count
	// after it.
	load *endpointLoad
}

var _ Balancer = (*p2c)(nil)

func newP2C() *p2c {
	epoch := time.Now()
	return newP2CWith(func() int64 { return int64(time.Since(epoch)) }, rand.IntN)
}

// newP2CWith makes a p2c reading the time from now (nanoseconds, never
// going back) and drawing candidates and odds with intN, which must be
// safe for concurrent use if Pick is.
func newP2CWith(now func() int64, intN func(int) int) *p2c {
	b := &p2c{now: now, intN: intN}
	b.items.Store(&[]p2cItem{})
	return b
}

func (b *p2c) Update(endpoints []*model.Endpoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := make(map[string]*endpointLoad, len(*b.items.Load()))
	for _, it := range *b.items.Load() {
		old[it.ep.ID] = it.load
	}
	items := make([]p2cItem, len(endpoints))
	for i, ep := range endpoints {
		l, ok := old[ep.ID]
		if !ok {
			l = newEndpointLoad()
		}
		items[i] = p2cItem{ep: ep, load: l}
	}
	b.items.Store(&items)
}

func (b *p2c) Pick(skip func(*model.Endpoint) bool) (*model.Endpoint, Done, error) {
	items := *b.items.Load()
	if len(items) == 0 {
		return nil, nil, ErrNoEndpoints
	}
	if skip != nil {
		// Filter rather than sample and reject: the two candidates must be
		// distinct and both eligible, or a skipped endpoint could decide the
		// comparison. Only retries skip, so the copy is off the common path.
		kept := make([]p2cItem, 0, len(items))
		for _, it := range items {
			if !skip(it.ep) {
				kept = append(kept, it)
			}
		}
		if len(kept) == 0 {
			return nil, nil, ErrAllSkipped
		}
		items = kept
	}
	now := b.now()
	it := items[0]
	if len(items) > 1 {
		i := b.intN(len(items))
		j := b.intN(len(items) - 1)
		if j >= i {
			j++
		}
		if b.prefer(items[j].load, items[i].load, now) {
			it = items[j]
		} else {
			it = items[i]
		}
	}
	l := it.load
	l.pending.Add(1)
	return it.ep, func(err error) {
		l.observe(now, b.now(), err)
		l.pending.Add(-1)
	}, nil
}

// endpointLoad is what p2c knows of one endpoint. Pick reads it without
// locks (two atomic loads per candidate); observations, one per Done,
// take a mutex of the endpoint's own.
type endpointLoad struct {
	pending atomic.Int64
	// logEst holds the latency estimate e, in nanoseconds, set at time t as
	// the float64 bits of ln(e) + t/tau. The estimate faded to time now,
	// e·exp(-(now-t)/tau), is then exp(logEst - now/tau): one word, so a
	// reader needs no lock and never sees an estimate with another's time.
	logEst atomic.Uint64

	mu       sync.Mutex // serializes observations
	last     int64      // time of the last observation
	answered bool       // whether the endpoint has answered once
}

func newEndpointLoad() *endpointLoad {
	l := &endpointLoad{}
	l.logEst.Store(math.Float64bits(math.NaN()))
	return l
}

var (
	lnMinRTT     = math.Log(float64(minRTT))
	lnDefaultRTT = math.Log(float64(defaultRTT))
)

// logEstimate is the logarithm of the latency estimate at now, in
// nanoseconds; false when the endpoint has none yet.
func (l *endpointLoad) logEstimate(now int64) (float64, bool) {
	le := math.Float64frombits(l.logEst.Load())
	if math.IsNaN(le) {
		return 0, false
	}
	return max(le-float64(now)/tau, lnMinRTT), true
}

// estimate is the latency estimate at now, in nanoseconds; false when the
// endpoint has none yet.
func (l *endpointLoad) estimate(now int64) (float64, bool) {
	le, ok := l.logEstimate(now)
	return math.Exp(le), ok
}

// prefer reports whether to pick x rather than y: see p2c.
func (b *p2c) prefer(x, y *endpointLoad, now int64) bool {
	lx, okx := x.logEstimate(now)
	ly, oky := y.logEstimate(now)
	switch {
	case !okx && !oky:
		lx, ly = 0, 0
	case !okx:
		lx = min(ly, lnDefaultRTT)
	case !oky:
		ly = min(lx, lnDefaultRTT)
	}
	r := math.Exp(lx - ly) // x's estimate over y's
	px, py := x.pending.Load(), y.pending.Load()
	if px != py {
		return r*float64(px+1) < float64(py+1)
	}
	// As many in flight: the estimates give the odds.
	lo := min(r, 1/r)
	odds := 0.5 * lo * lo
	costlier := float64(b.intN(1<<30)) < odds*(1<<30)
	return (r > 1) == costlier
}

// observe takes the outcome of a request picked at start that ended at
// end with err.
func (l *endpointLoad) observe(start, end int64, err error) {
	rtt := float64(max(end-start, 0))
	// Only a success can bring the estimate down. A failure counts as at
	// least failurePenalty; a cancellation says only that the endpoint took
	// at least this long.
	onlyUp := err != nil
	if err != nil && !errors.Is(err, context.Canceled) {
		rtt = max(rtt, float64(failurePenalty))
	}
	rtt = max(rtt, float64(minRTT))
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.answered && err == nil {
		// The first answer: not counted, see p2c.
		l.answered = true
		return
	}
	// The estimate fades while nothing is heard of the endpoint, but from
	// when this request started (or the last observation, if later) the
	// endpoint was busy answering it: that time weighs the answer rather
	// than fading the estimate.
	t0 := max(start, l.last)
	lr := math.Log(rtt)
	lcur, ok := l.logEstimate(t0)
	switch {
	case !ok || lr >= lcur:
		lcur = lr
	case onlyUp:
		return
	default:
		d := math.Exp(-float64(max(end-t0, 0)) / tau)
		lcur = math.Log(math.Exp(lcur)*d + rtt*(1-d))
	}
	l.last = end
	l.logEst.Store(math.Float64bits(lcur + float64(end)/tau))
}
