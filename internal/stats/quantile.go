package stats

import (
	"math"
	"slices"
)

// bucket is a histogram bucket: how many observations were at most le.
type bucket struct {
	le, count float64
}

// quantile is the q-quantile (0..1) of a histogram given as cumulative
// counts by upper bound, computed as Prometheus' histogram_quantile does,
// so `weft stat` agrees with a dashboard built on Prometheus: find the
// bucket the rank falls in and interpolate linearly within it, assuming
// observations spread evenly between its bounds (the first bucket starts
// at 0). A rank in the +Inf bucket gives the highest finite bound, as
// nothing is known above it. ok is false when there are no observations
// or no +Inf bucket.
func quantile(q float64, cumulative map[float64]float64) (v float64, ok bool) {
	bs := make([]bucket, 0, len(cumulative))
	for le, c := range cumulative {
		bs = append(bs, bucket{le, c})
	}
	slices.SortFunc(bs, func(a, b bucket) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	if len(bs) < 2 || !math.IsInf(bs[len(bs)-1].le, 1) {
		return 0, false
	}
	// Counts summed over proxies with different bucket layouts, or read
	// while observations landed, may dip; a cumulative count never does.
	for i := 1; i < len(bs); i++ {
		bs[i].count = max(bs[i].count, bs[i-1].count)
	}
	total := bs[len(bs)-1].count
	if total <= 0 {
		return 0, false
	}
	q = min(max(q, 0), 1)
	rank := q * total
	b, _ := slices.BinarySearchFunc(bs[:len(bs)-1], rank, func(x bucket, rank float64) int {
		if x.count < rank {
			return -1
		}
		return 1 // the first bucket whose count reaches the rank
	})
	if b == len(bs)-1 {
		return bs[len(bs)-2].le, true
	}
	if b == 0 && bs[0].le <= 0 {
		return bs[0].le, true
	}
	start, end, count := 0.0, bs[b].le, bs[b].count
	if b > 0 {
		start = bs[b-1].le
		count -= bs[b-1].count
		rank -= bs[b-1].count
	}
	if count <= 0 {
		return start, true // only when q is 0 and the first bucket is empty
	}
	return start + (end-start)*(rank/count), true
}
