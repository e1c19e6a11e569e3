package stats

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	p := newFakeProxy("demo/web-0", 1700000000.5)
	p.carry(call{service: "demo/catalog", status: 200, latency: 0.004, n: 3})
	p.carry(call{service: "demo/catalog", status: 503, latency: 0.004, n: 1})
	p.carry(call{service: "demo/catalog", status: 0, latency: 1, n: 1})                                                // never answered
	p.carry(call{service: "demo/catalog", status: 404, latency: 0.004, n: 1})                                          // a 4xx is the server's answer: success
	p.carry(call{service: "demo/stock", status: 200, grpc: "14", latency: 0.004, n: 2})                                // gRPC UNAVAILABLE
	p.carry(call{service: "demo/catalog", route: "HTTPRoute demo/r", plaintext: true, status: 200, latency: 20, n: 1}) // beyond the last bucket
	p.carry(call{direction: inbound, status: 200, latency: 0.001, n: 5})
	p.conns(outbound, "demo/audit", 7, 5, 100, 200)
	p.conns(inbound, "", 2, 0, 10, 20)
	r := p.reading(t)
	if r.start != 1700000000.5 {
		t.Errorf("start = %v", r.start)
	}
	catalog := series{direction: outbound, service: "demo/catalog"}
	routed := series{direction: outbound, service: "demo/catalog", route: "HTTPRoute demo/r"}
	stock := series{direction: outbound, service: "demo/stock"}
	in := series{direction: inbound}
	with := func(s series, k kind) series { s.kind = k; return s }
	bucket := func(s series, le float64) series { s.kind, s.le = kindBucket, le; return s }
	want := map[series]float64{
		with(catalog, kindRequests): 6, with(catalog, kindTLSRequests): 6, with(catalog, kindSuccesses): 4,
		with(routed, kindRequests): 1, with(routed, kindSuccesses): 1,
		with(stock, kindRequests): 2, with(stock, kindTLSRequests): 2,
		with(in, kindRequests): 5, with(in, kindTLSRequests): 5, with(in, kindSuccesses): 5,
		{kind: kindOpened, direction: outbound, service: "demo/audit"}:   7,
		{kind: kindClosed, direction: outbound, service: "demo/audit"}:   5,
		{kind: kindReceived, direction: outbound, service: "demo/audit"}: 100,
		{kind: kindSent, direction: outbound, service: "demo/audit"}:     200,
		{kind: kindOpened, direction: inbound}:                           2, {kind: kindClosed, direction: inbound}: 0,
		{kind: kindReceived, direction: inbound}: 10, {kind: kindSent, direction: inbound}: 20,
	}
	got := map[series]float64{}
	for s, v := range r.values {
		if s.kind != kindBucket {
			got[s] = v
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("series:\n got %v\nwant %v", got, want)
	}
	// Buckets: the five 4 ms calls from 5 ms up, the one of 1 s from 1 s.
	for _, c := range []struct {
		s    series
		want float64
	}{
		{bucket(catalog, 0.003), 0}, {bucket(catalog, 0.005), 5}, {bucket(catalog, 1), 6}, {bucket(catalog, math.Inf(1)), 6},
		{bucket(routed, 10), 0}, {bucket(routed, math.Inf(1)), 1},
		{bucket(in, 0.001), 5},
	} {
		if v, ok := r.values[c.s]; !ok || v != c.want {
			t.Errorf("bucket %+v = %v (present %v), want %v", c.s, v, ok, c.want)
		}
	}
}

func TestParseText(t *testing.T) {
	tests := []struct {
		desc, text string
		want       map[series]float64
		start      float64
		err        bool
	}{
		{desc: "no TYPE lines: untyped samples still count", text: `weft_requests_total{direction="outbound",destination_service="demo/a",tls="false"} 3
weft_responses_total{direction="outbound",destination_service="demo/a",classification="success"} 2
weft_responses_total{direction="outbound",destination_service="demo/a",classification="failure"} 1
process_start_time_seconds 42
`, start: 42, want: map[series]float64{
			{kind: kindRequests, direction: outbound, service: "demo/a"}:  3,
			{kind: kindSuccesses, direction: outbound, service: "demo/a"}: 2,
		}},
		{desc: "other metrics are ignored", text: "# TYPE go_goroutines gauge\ngo_goroutines 12\n", want: map[series]float64{}},
		{desc: "unknown flows of bytes are ignored", text: `# TYPE weft_tcp_bytes_total counter
weft_tcp_bytes_total{direction="inbound",destination_service="",flow="sideways"} 3
`, want: map[series]float64{}},
		{desc: "not the text format", text: "weft_requests_total{direction=outbound} x\n", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r, err := parse(strings.NewReader(tc.text))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			if r.start != tc.start || !reflect.DeepEqual(r.values, tc.want) {
				t.Errorf("got start %v %v, want %v %v", r.start, r.values, tc.start, tc.want)
			}
		})
	}
}

func TestIncrease(t *testing.T) {
	a := series{kind: kindRequests, direction: outbound, service: "demo/a"}
	b := series{kind: kindSuccesses, direction: outbound, service: "demo/a"}
	tests := []struct {
		desc      string
		prev, cur reading
		want      map[series]float64
	}{
		{"counters grow", reading{1, map[series]float64{a: 10, b: 4}}, reading{1, map[series]float64{a: 15, b: 4}},
			map[series]float64{a: 5, b: 0}},
		{"a new series counts from zero", reading{1, map[series]float64{a: 10}}, reading{1, map[series]float64{a: 10, b: 2}},
			map[series]float64{a: 0, b: 2}},
		{"a restart, seen by the start time, with counters above the old ones", reading{1, map[series]float64{a: 10, b: 4}},
			reading{2, map[series]float64{a: 50, b: 40}}, map[series]float64{a: 50, b: 40}},
		{"a restart, seen by the start time, with counters below", reading{1, map[series]float64{a: 10, b: 4}},
			reading{2, map[series]float64{a: 3}}, map[series]float64{a: 3}},
		{"a restart without start times, seen by one counter going down", reading{0, map[series]float64{a: 10, b: 4}},
			reading{0, map[series]float64{a: 12, b: 1}}, map[series]float64{a: 12, b: 1}},
		{"a restart without start times, seen by a counter vanishing", reading{0, map[series]float64{a: 10, b: 4}},
			reading{0, map[series]float64{a: 12}}, map[series]float64{a: 12}},
		{"a start time appearing is a new process", reading{0, map[series]float64{a: 10}},
			reading{5, map[series]float64{a: 11}}, map[series]float64{a: 11}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := increase(tc.prev, tc.cur); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("increase = %v, want %v", got, tc.want)
			}
		})
	}
}
