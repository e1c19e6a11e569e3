package balance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
)

// fakeClock is the time a test p2c reads; it moves only when told.
type fakeClock struct{ t int64 }

func (c *fakeClock) now() int64              { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t += int64(d) }

// newTestP2C is a p2c on a fake clock with a seeded random source, over
// endpoints with the given IDs.
func newTestP2C(ids ...string) (*p2c, *fakeClock) {
	clk := &fakeClock{t: int64(time.Hour)}
	b := newP2CWith(clk.now, rand.New(rand.NewPCG(1, 2)).IntN)
	b.Update(endpoints(ids...))
	return b, clk
}

func only(id string) func(*model.Endpoint) bool {
	return func(ep *model.Endpoint) bool { return ep.ID != id }
}

// call sends a request to id that takes d and ends with err.
func call(t *testing.T, b *p2c, clk *fakeClock, id string, d time.Duration, err error) {
	t.Helper()
	ep, done, perr := b.Pick(only(id))
	if perr != nil || ep.ID != id {
		t.Fatalf("Pick(only %s) = %v, %v", id, ep, perr)
	}
	clk.advance(d)
	done(err)
}

// warm gives each endpoint its first answer, which is not counted, so
// that the next ones are.
func warm(t *testing.T, b *p2c, clk *fakeClock, ids ...string) {
	t.Helper()
	for _, id := range ids {
		call(t, b, clk, id, time.Millisecond, nil)
	}
}

func (b *p2c) loadOf(t *testing.T, id string) *endpointLoad {
	t.Helper()
	for _, it := range *b.items.Load() {
		if it.ep.ID == id {
			return it.load
		}
	}
	t.Fatalf("no endpoint %s", id)
	return nil
}

// estimateOf is id's estimate now; 0 when it has none.
func estimateOf(t *testing.T, b *p2c, clk *fakeClock, id string) time.Duration {
	t.Helper()
	e, ok := b.loadOf(t, id).estimate(clk.now())
	if !ok {
		return 0
	}
	return time.Duration(math.Round(e))
}

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

var errReset = errors.New("connection reset by peer")

// TestPeakEWMACost follows one endpoint's cost through sequences of
// answers, failures, silence and held requests.
func TestPeakEWMACost(t *testing.T) {
	// Each step acts on endpoint "a" and moves the clock.
	type step func(t *testing.T, b *p2c, clk *fakeClock)
	answer := func(d time.Duration) step {
		return func(t *testing.T, b *p2c, clk *fakeClock) { call(t, b, clk, "a", d, nil) }
	}
	fail := func(d time.Duration, err error) step {
		return func(t *testing.T, b *p2c, clk *fakeClock) { call(t, b, clk, "a", d, err) }
	}
	wait := func(d time.Duration) step {
		return func(_ *testing.T, _ *p2c, clk *fakeClock) { clk.advance(d) }
	}
	hold := func(n int) step {
		return func(t *testing.T, b *p2c, _ *fakeClock) {
			for range n {
				if _, _, err := b.Pick(only("a")); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	repeat := func(n int, steps ...step) []step {
		var out []step
		for range n {
			out = append(out, steps...)
		}
		return out
	}
	// first is the endpoint's first answer, which is not counted: cases
	// about later answers start with it.
	first := answer(time.Millisecond)
	canceled := fmt.Errorf("proxy: %w", context.Canceled)
	window := decayWindow.Seconds()

	tests := []struct {
		desc  string
		steps []step
		want  time.Duration // the cost, estimate × (pending + 1); 0 for no estimate
		tol   float64       // relative; 0 is 1e-6
	}{
		{desc: "no estimate before any answer"},
		{desc: "the first answer (it paid for connecting) is not counted",
			steps: []step{answer(80 * time.Millisecond)}},
		{desc: "the second sets the estimate, faster",
			steps: []step{first, answer(5 * time.Millisecond)}, want: 5 * time.Millisecond},
		{desc: "or slower",
			steps: []step{first, answer(80 * time.Millisecond)}, want: 80 * time.Millisecond},
		{desc: "a slower answer raises it at once (peak)",
			steps: []step{first, answer(5 * time.Millisecond), answer(100 * time.Millisecond)}, want: 100 * time.Millisecond},
		{desc: "one faster answer barely lowers it",
			steps: []step{first, answer(100 * time.Millisecond), answer(10 * time.Millisecond)},
			// Weighted by its 10ms: 1-exp(-10ms/10s).
			want: ms(100*math.Exp(-0.001) + 10*(1-math.Exp(-0.001))), tol: 1e-4},
		{desc: "silence fades it to 1/e in a window",
			steps: []step{first, answer(100 * time.Millisecond), wait(decayWindow)}, want: ms(100 / math.E), tol: 1e-4},
		{desc: "faster answers bring it down over the window",
			steps: append([]step{first, answer(100 * time.Millisecond)}, repeat(100, answer(10*time.Millisecond), wait(90*time.Millisecond))...),
			// Fading does most: 100ms·e^-1 is 36.8ms.
			want: 37 * time.Millisecond, tol: 0.03},
		{desc: "and settle on them",
			steps: append([]step{first, answer(100 * time.Millisecond)}, repeat(400, answer(10*time.Millisecond), wait(90*time.Millisecond))...),
			// Read 90ms after the last answer.
			want: ms(10 * math.Exp(-0.09/window)), tol: 1e-4},
		{desc: "a fast failure counts as the penalty",
			steps: []step{first, answer(5 * time.Millisecond), fail(time.Millisecond, errReset)}, want: failurePenalty},
		{desc: "so does one before any answer",
			steps: []step{fail(time.Millisecond, errReset)}, want: failurePenalty},
		{desc: "a slow failure counts its time",
			steps: []step{fail(3*time.Second, context.DeadlineExceeded)}, want: 3 * time.Second},
		{desc: "a failure never lowers the estimate",
			steps: []step{first, answer(5 * time.Second), fail(time.Millisecond, errReset)},
			want:  ms(5000 * math.Exp(-0.001/window)), tol: 1e-4},
		{desc: "a penalty fades like any estimate",
			steps: []step{fail(time.Millisecond, errReset), wait(3 * decayWindow)},
			want:  ms(1000 * math.Exp(-3)), tol: 1e-4},
		{desc: "a cancellation counts its time, with no penalty",
			steps: []step{first, answer(5 * time.Millisecond), fail(40*time.Millisecond, canceled)}, want: 40 * time.Millisecond},
		{desc: "also before any answer",
			steps: []step{fail(40*time.Millisecond, canceled)}, want: 40 * time.Millisecond},
		{desc: "a cancellation never lowers the estimate",
			steps: []step{first, answer(50 * time.Millisecond), fail(time.Millisecond, canceled)},
			want:  ms(50 * math.Exp(-0.001/window)), tol: 1e-4},
		{desc: "a long silence leaves the floor, not zero",
			steps: []step{first, answer(time.Millisecond), wait(24 * time.Hour)}, want: minRTT},
		{desc: "pending requests multiply the cost",
			steps: []step{first, answer(10 * time.Millisecond), hold(3)}, want: 4 * 10 * time.Millisecond},
		{desc: "pending requests multiply the floor too",
			steps: []step{first, answer(time.Millisecond), wait(24 * time.Hour), hold(2)}, want: 3 * minRTT},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			b, clk := newTestP2C("a")
			for _, s := range tc.steps {
				s(t, b, clk)
			}
			l := b.loadOf(t, "a")
			est, ok := l.estimate(clk.now())
			if tc.want == 0 {
				if ok {
					t.Fatalf("estimate = %v, want none", time.Duration(est))
				}
				return
			}
			if !ok {
				t.Fatalf("no estimate, want a cost of %v", tc.want)
			}
			got := est * float64(l.pending.Load()+1)
			tol := cmp.Or(tc.tol, 1e-6)
			if math.Abs(got-float64(tc.want)) > tol*float64(tc.want) {
				t.Fatalf("cost = %v, want %v (±%g)", time.Duration(got), tc.want, tol)
			}
		})
	}
}

// simulate sends n requests through b, keeping up to inflight of them
// outstanding: each takes its endpoint's latency and fails when its
// endpoint is in failing. It returns the picks per endpoint.
func simulate(t *testing.T, b *p2c, clk *fakeClock, latency map[string]time.Duration, failing map[string]bool, n, inflight int) map[string]int {
	t.Helper()
	type req struct {
		end  int64
		id   string
		done Done
	}
	var out []req
	finish := func() {
		i := 0
		for k, r := range out {
			if r.end < out[i].end {
				i = k
			}
		}
		r := out[i]
		out = slices.Delete(out, i, i+1)
		clk.t = max(clk.t, r.end)
		var err error
		if failing[r.id] {
			err = errReset
		}
		r.done(err)
	}
	counts := map[string]int{}
	for range n {
		if len(out) == inflight {
			finish()
		}
		ep, done, err := b.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		counts[ep.ID]++
		out = append(out, req{end: clk.t + int64(latency[ep.ID]), id: ep.ID, done: done})
	}
	for len(out) > 0 {
		finish()
	}
	return counts
}

func TestP2CFollowsLatency(t *testing.T) {
	tests := []struct {
		desc     string
		latency  map[string]time.Duration
		failing  map[string]bool
		inflight int
		// spike, if set, is one slow answer of this endpoint before the run.
		spike string
		// want[id] bounds the share of 1000 picks id gets.
		want map[string][2]float64
	}{
		{
			desc:     "one at a time: the fast endpoint takes nearly all",
			latency:  map[string]time.Duration{"fast": time.Millisecond, "slow": 50 * time.Millisecond},
			inflight: 1,
			want:     map[string][2]float64{"fast": {0.99, 1}},
		},
		{
			desc:     "8 in flight: still cheaper to queue on the fast one",
			latency:  map[string]time.Duration{"fast": time.Millisecond, "slow": 50 * time.Millisecond},
			inflight: 8,
			want:     map[string][2]float64{"fast": {0.98, 1}},
		},
		{
			desc: "one slow among five",
			latency: map[string]time.Duration{"a": 2 * time.Millisecond, "b": 2 * time.Millisecond,
				"c": 2 * time.Millisecond, "d": 2 * time.Millisecond, "slow": 40 * time.Millisecond},
			inflight: 4,
			want:     map[string][2]float64{"slow": {0, 0.01}},
		},
		{
			desc:     "an endpoint failing at once draws almost nothing",
			latency:  map[string]time.Duration{"ok": 5 * time.Millisecond, "broken": 100 * time.Microsecond},
			failing:  map[string]bool{"broken": true},
			inflight: 4,
			want:     map[string][2]float64{"broken": {0, 0.01}},
		},
		{
			desc: "equal endpoints share the load",
			latency: map[string]time.Duration{"a": 10 * time.Millisecond, "b": 10 * time.Millisecond,
				"c": 10 * time.Millisecond, "d": 10 * time.Millisecond},
			inflight: 8,
			want: map[string][2]float64{"a": {0.15, 0.35}, "b": {0.15, 0.35},
				"c": {0.15, 0.35}, "d": {0.15, 0.35}},
		},
		{
			desc: "a twice-slower endpoint under load gets a share, not none",
			latency: map[string]time.Duration{"a": 10 * time.Millisecond, "b": 10 * time.Millisecond,
				"slower": 20 * time.Millisecond},
			inflight: 12,
			want:     map[string][2]float64{"slower": {0.05, 0.3}},
		},
		{
			// Its estimate takes tens of seconds to come back down; meanwhile
			// it is picked against the odds, 1 in 18 at three times the cost.
			desc:     "one at a time: one slow answer does not shut out an equal endpoint",
			latency:  map[string]time.Duration{"a": time.Millisecond, "b": time.Millisecond},
			spike:    "b",
			inflight: 1,
			want:     map[string][2]float64{"b": {0.03, 0.1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ids := slices.Sorted(maps.Keys(tc.latency))
			b, clk := newTestP2C(ids...)
			warm(t, b, clk, ids...)
			if tc.spike != "" {
				call(t, b, clk, tc.spike, 3*tc.latency[tc.spike], nil)
			}
			const n = 1000
			counts := simulate(t, b, clk, tc.latency, tc.failing, n, tc.inflight)
			t.Logf("picks: %v", counts)
			for id, w := range tc.want {
				if share := float64(counts[id]) / n; share < w[0] || share > w[1] {
					t.Errorf("%s got %.1f%% of picks, want %.0f%%-%.0f%% (picks: %v)", id, 100*share, 100*w[0], 100*w[1], counts)
				}
			}
			for _, it := range *b.items.Load() {
				if p := it.load.pending.Load(); p != 0 {
					t.Errorf("%s: %d pending after every request ended", it.ep.ID, p)
				}
			}
		})
	}
}

// TestP2CRetriesShunnedEndpoint: an endpoint shunned for a failure gets
// hardly any requests until its penalty has faded to the others' cost,
// and is back in full use when those succeed.
func TestP2CRetriesShunnedEndpoint(t *testing.T) {
	b, clk := newTestP2C("a", "b")
	warm(t, b, clk, "a", "b")
	call(t, b, clk, "a", 10*time.Millisecond, nil)
	call(t, b, clk, "b", time.Millisecond, errReset)
	// share runs requests of 10ms, one at a time, for d and returns b's
	// share of them.
	share := func(d time.Duration) float64 {
		n, picks := 0, 0
		for end := clk.t + int64(d); clk.t < end; n++ {
			ep, done, err := b.Pick(nil)
			if err != nil {
				t.Fatal(err)
			}
			if ep.ID == "b" {
				picks++
			}
			clk.advance(10 * time.Millisecond)
			done(nil)
		}
		return float64(picks) / float64(n)
	}
	// The penalty of 1s fades to a's 10ms in 10s·ln(100), about 46s.
	if got := share(20 * time.Second); got > 0.001 {
		t.Fatalf("b got %.2f%% of requests in the 20s after its failure, want next to none", 100*got)
	}
	share(40 * time.Second)
	if got := share(10 * time.Second); got < 0.4 || got > 0.6 {
		t.Fatalf("b got %.0f%% of requests a minute after its failure, healthy since, want about half", 100*got)
	}
}

func TestP2CNewEndpoint(t *testing.T) {
	b, clk := newTestP2C("a", "b", "c")
	warm(t, b, clk, "a", "b", "c")
	call(t, b, clk, "a", time.Millisecond, nil)
	call(t, b, clk, "b", 5*time.Millisecond, nil)
	call(t, b, clk, "c", 50*time.Millisecond, nil)

	b.Update(endpoints("a", "b", "c", "new"))
	// With no estimate it compares as its rival: it is tried soon.
	var held Done
	for range 20 {
		ep, done, _ := b.Pick(nil)
		if ep.ID == "new" {
			held = done
			break
		}
		clk.advance(time.Millisecond)
		done(nil)
	}
	if held == nil {
		t.Fatal("new endpoint not tried in 20 picks")
	}
	// But it gets no second request while the first is out.
	for range 100 {
		ep, done, _ := b.Pick(nil)
		if ep.ID == "new" {
			t.Fatal("new endpoint picked again before its first answer")
		}
		clk.advance(time.Millisecond)
		done(nil)
	}
	// Its first answer, slow from connecting, is not counted.
	held(nil)
	if got := estimateOf(t, b, clk, "new"); got != 0 {
		t.Fatalf("after its first answer the new endpoint's estimate is %v, want none yet", got)
	}
	// Its second is.
	call(t, b, clk, "new", 2*time.Millisecond, nil)
	if got := estimateOf(t, b, clk, "new"); got != 2*time.Millisecond {
		t.Fatalf("after a 2ms answer the new endpoint's estimate is %v", got)
	}
}

// TestP2CNoEstimateBeatsFailingRival: an endpoint not heard from yet is
// taken to be no slower than defaultRTT, not as bad as a failing rival.
func TestP2CNoEstimateBeatsFailingRival(t *testing.T) {
	b, clk := newTestP2C("broken", "new")
	warm(t, b, clk, "broken")
	call(t, b, clk, "broken", time.Millisecond, errReset)
	var held []Done
	for range 10 {
		ep, done, _ := b.Pick(nil)
		if ep.ID != "new" {
			t.Fatalf("picked %s with %d requests held on the new endpoint, want new while 30ms × pending is below the 1s penalty", ep.ID, len(held))
		}
		held = append(held, done)
	}
	for _, d := range held {
		d(nil)
	}
}

func TestP2CStateSurvivesUpdate(t *testing.T) {
	b, clk := newTestP2C("slow", "fast")
	warm(t, b, clk, "slow", "fast")
	call(t, b, clk, "slow", 80*time.Millisecond, nil)
	call(t, b, clk, "fast", time.Millisecond, nil)
	var held []Done
	for range 3 {
		_, done, _ := b.Pick(only("fast"))
		held = append(held, done)
	}

	// New values for the same IDs, as a config update makes.
	b.Update(endpoints("fast", "slow", "other"))
	if got := estimateOf(t, b, clk, "slow"); got < 79*time.Millisecond {
		t.Fatalf("slow's estimate is %v after Update, want its 80ms kept", got)
	}
	if got := b.loadOf(t, "fast").pending.Load(); got != 3 {
		t.Fatalf("fast has %d pending after Update, want 3", got)
	}
	for _, d := range held {
		clk.advance(time.Millisecond)
		d(nil)
	}
	if got := b.loadOf(t, "fast").pending.Load(); got != 0 {
		t.Fatalf("fast has %d pending once requests picked before Update ended, want 0", got)
	}
	slow := 0
	for range 100 {
		ep, done, _ := b.Pick(skipIDs("other"))
		if ep.ID == "slow" {
			slow++
		}
		clk.advance(time.Millisecond)
		done(nil)
	}
	if slow > 1 {
		t.Fatalf("slow got %d of 100 picks against fast: its latency was forgotten across Update", slow)
	}

	// An endpoint that leaves and comes back starts afresh.
	b.Update(endpoints("fast", "other"))
	b.Update(endpoints("fast", "other", "slow"))
	if got := estimateOf(t, b, clk, "slow"); got != 0 {
		t.Fatalf("slow's estimate is %v after leaving and coming back, want none", got)
	}
}

// TestP2CSkipBeatsCost: a retry that excluded the cheap endpoint gets the
// costly one, and its outcome is recorded there.
func TestP2CSkipBeatsCost(t *testing.T) {
	b, clk := newTestP2C("slow", "fast")
	warm(t, b, clk, "slow", "fast")
	call(t, b, clk, "slow", 80*time.Millisecond, nil)
	call(t, b, clk, "fast", time.Millisecond, nil)
	ep, done, err := b.Pick(skipIDs("fast"))
	if err != nil || ep.ID != "slow" {
		t.Fatalf("Pick(skip fast) = %v, %v; want slow", ep, err)
	}
	clk.advance(200 * time.Millisecond)
	done(nil)
	if got := estimateOf(t, b, clk, "slow"); got != 200*time.Millisecond {
		t.Fatalf("slow's estimate is %v, want the 200ms of the retried request", got)
	}
	if _, _, err := b.Pick(skipIDs("fast", "slow")); !errors.Is(err, ErrAllSkipped) {
		t.Fatalf("Pick(skip both): err = %v, want ErrAllSkipped", err)
	}
}

// BenchmarkPickDone measures a Pick and its Done, from parallel callers,
// with the real clock and random source.
func BenchmarkPickDone(b *testing.B) {
	for _, name := range Names() {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/endpoints=%d", name, n), func(b *testing.B) {
				bal, _ := New(name)
				ids := make([]string, n)
				for i := range ids {
					ids[i] = fmt.Sprint("ep-", i)
				}
				bal.Update(endpoints(ids...))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						_, done, err := bal.Pick(nil)
						if err != nil {
							b.Error(err)
							return
						}
						done(nil)
					}
				})
			})
		}
	}
}
