package stats

import (
	"math"
	"testing"
)

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	// 10 in (0, 0.1], 20 in (0.1, 0.2], 60 in (0.2, 0.5], 10 in (0.5, 1].
	h := map[float64]float64{0.1: 10, 0.2: 30, 0.5: 90, 1: 100, inf: 100}
	tests := []struct {
		desc    string
		q       float64
		buckets map[float64]float64
		want    float64
		ok      bool
	}{
		// rank 50 is the 20th of the 60 in (0.2, 0.5].
		{"median, interpolated", 0.5, h, 0.2 + 0.3*20/60, true},
		{"p95", 0.95, h, 0.5 + 0.5*5/10, true},
		{"p99", 0.99, h, 0.5 + 0.5*9/10, true},
		{"first bucket starts at 0", 0.05, h, 0.1 * 5 / 10, true},
		{"rank on a bucket's bound", 0.1, h, 0.1, true},
		{"q 1 is the top of the last finite bucket reached", 1, h, 1, true},
		{"q above 1 is 1", 1.5, h, 1, true},
		{"q 0 with an empty first bucket", 0, map[float64]float64{0.1: 0, 1: 4, inf: 4}, 0, true},
		{"rank beyond the last finite bucket: its bound", 0.9,
			map[float64]float64{0.1: 10, 1: 50, inf: 100}, 1, true},
		{"all in one bucket", 0.5, map[float64]float64{0.002: 0, 0.003: 100, 0.005: 100, inf: 100}, 0.0025, true},
		{"counts that dip are made cumulative", 0.5, map[float64]float64{0.1: 10, 0.2: 8, inf: 20}, 0.1, true},
		{"bucket bounds at or below zero", 0.25, map[float64]float64{-1: 5, 0: 10, inf: 10}, -1, true},
		{"no observations", 0.5, map[float64]float64{0.1: 0, inf: 0}, 0, false},
		{"no +Inf bucket", 0.5, map[float64]float64{0.1: 1, 0.2: 2}, 0, false},
		{"only +Inf", 0.5, map[float64]float64{inf: 3}, 0, false},
		{"nothing", 0.5, nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, ok := quantile(tc.q, tc.buckets)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("quantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestLatencyOfProxyBuckets reads percentiles off the buckets a proxy
// serves, observed through a real histogram.
func TestLatencyOfProxyBuckets(t *testing.T) {
	p := newFakeProxy("demo/web-0", 1)
	// 90 calls of 4 ms (bucket (3ms, 5ms]), 10 of 400 ms ((300ms, 500ms]).
	p.carry(call{service: "demo/catalog", status: 200, latency: 0.004, n: 90})
	p.carry(call{service: "demo/catalog", status: 200, latency: 0.4, n: 10})
	g := &signals{}
	for s, v := range p.reading(t).values {
		g.add(s, v)
	}
	l := latency(g.buckets)
	if l == nil {
		t.Fatal("no latency")
	}
	// p50: rank 50 of the 90 in (3, 5] ms: 3 + 2*50/90.
	// p95: rank 95, the 5th of the 10 in (300, 500] ms: 300 + 200*5/10.
	// p99: the 9th of them: 300 + 200*9/10.
	want := Latency{P50: 3 + 2*50.0/90, P95: 400, P99: 480}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", l.P50, want.P50}, {"p95", l.P95, want.P95}, {"p99", l.P99, want.P99}} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v ms, want %v", c.name, c.got, c.want)
		}
	}
	if latency(map[float64]float64{math.Inf(1): 0, 0.1: 0}) != nil {
		t.Error("latency of an empty histogram is not nil")
	}
}
