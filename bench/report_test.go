package main

import (
	"strings"
	"testing"
)

func TestReplaceBetweenMarkers(t *testing.T) {
	for _, tc := range []struct {
		name, page, want string
		wantErr          bool
	}{
		{"first run", "intro\n" + beginMarker + "\n" + endMarker + "\ntail\n", "intro\n" + beginMarker + "\nNEW\n" + endMarker + "\ntail\n", false},
		{"rerun replaces", "a\n" + beginMarker + "\nOLD\nOLD\n" + endMarker + "\n", "a\n" + beginMarker + "\nNEW\n" + endMarker + "\n", false},
		{"no markers", "a page\n", "", true},
		{"markers reversed", endMarker + "\n" + beginMarker + "\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := replaceBetweenMarkers(tc.page, "NEW\n")
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// testReport is a run where weft's numbers are set by the caller and the
// peers' are fixed: nginx is the best peer at everything but gRPC streams.
func testReport(weft result, weftIdle []int64) *report {
	http := func(setup string, p50, p90, p99, p999 float64) result {
		return result{Setup: setup, Workload: "http1-1000", ActualQPS: 1000, Requests: 10000, P50: p50, P90: p90, P99: p99, P999: p999}
	}
	weft.Setup, weft.Workload, weft.Requests = "weft", "http1-1000", 10000
	return &report{
		Rates:       []float64{500, 1000},
		Connections: 16,
		Setups: []setupReport{
			{Name: "direct", Results: []result{http("direct", 0.1, 0.2, 0.3, 0.4),
				{Workload: "http1-max", ActualQPS: 20000}, {Workload: "tcp-bulk", MBps: 1000}, {Workload: "grpc-stream", ActualQPS: 12000}}},
			{Name: "weft", IdleRSS: weftIdle, Results: []result{weft,
				{Workload: "http1-max", ActualQPS: 9000}, {Workload: "tcp-bulk", MBps: 650}, {Workload: "grpc-stream", ActualQPS: 3000}}},
			{Name: "nginx", Results: []result{http("nginx", 0.2, 0.4, 0.6, 0.8),
				{Workload: "http1-max", ActualQPS: 8000}, {Workload: "tcp-bulk", MBps: 800}, {Workload: "grpc-stream", ActualQPS: 4000}}},
			{Name: "haproxy", Results: []result{http("haproxy", 0.3, 0.5, 0.9, 2),
				{Workload: "http1-max", ActualQPS: 7000}, {Workload: "grpc-stream", ActualQPS: 5000}}},
		},
	}
}

func TestTargets(t *testing.T) {
	good := result{P50: 0.15, P90: 0.25, P99: 0.5, P999: 0.6, CPUPer1k: 0.08, RSSPeak: []int64{20 << 20, 25 << 20}}
	bad := result{P50: 0.5, P90: 1, P99: 2, P999: 3, CPUPer1k: 0.2, RSSPeak: []int64{40 << 20, 10 << 20}}
	for _, tc := range []struct {
		name string
		weft result
		idle []int64
		// wantMet lists each target's verdict, in the order targets returns them.
		wantMet []bool
		// wantGap is a gap cell expected among the targets.
		wantGap string
	}{
		{"all met but bulk", good, []int64{10 << 20, 12 << 20},
			[]bool{true, true, true, true, true, true, true, true, true, true, false}, "-0.050 ms"},
		{"all missed", bad, []int64{10 << 20, 16 << 20},
			[]bool{false, false, false, false, false, false, true, false, false, false, false}, "+0.300 ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := targets(testReport(tc.weft, tc.idle))
			if len(ts) != len(tc.wantMet) {
				t.Fatalf("%d targets, want %d: %+v", len(ts), len(tc.wantMet), ts)
			}
			found := false
			for i, tg := range ts {
				if tg.met != tc.wantMet[i] {
					t.Errorf("%q: met = %v (measured %s, gap %s), want %v", tg.name, tg.met, tg.measured, tg.gap, tc.wantMet[i])
				}
				found = found || tg.gap == tc.wantGap
			}
			if !found {
				t.Errorf("no target has the gap %q: %+v", tc.wantGap, ts)
			}
		})
	}
}

func TestMarkdownHeadlineRatios(t *testing.T) {
	md := markdown(testReport(result{P50: 0.5, P90: 1, P99: 2, P999: 3, CPUPer1k: 0.2}, nil), "x.json")
	for _, want := range []string{
		// weft adds 0.4 ms at p50 where nginx adds 0.1: four times as much.
		"| added latency p50 at 1000 req/s (ms) | 0.400 | 0.100 (nginx) | 4.00× |",
		"| HTTP/1.1 max req/s | 9000 | 8000 (nginx) | 1.12× |",
		"| TCP bulk MB/s | 650 | 800 (nginx) | 0.81× |",
		// HAProxy, not nginx, is the best peer at gRPC streams.
		"| gRPC stream msg/s (16 streams, ping-pong) | 3000 | 5000 (haproxy) | 0.60× |",
		"| setup | HTTP/1.1 max req/s | new conn/s | gRPC unary req/s | gRPC stream msg/s | HTTP/2 req/s |",
		"| weft | 9000 | n/a | n/a | 3000 | n/a | 650 |",
		"| haproxy | 7000 | n/a | n/a | 5000 | n/a | n/a |",
		"| 1000 | direct | 0.100 | 0.200 | 0.300 | 0.400 | 1000 | 0 |",
		"| 500 | weft | n/a |",
		"bench-http1-500.png",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the page lacks %q:\n%s", want, md)
		}
	}
}

func TestHeadlineRate(t *testing.T) {
	for _, tc := range []struct {
		rates []float64
		want  float64
	}{
		{[]float64{500, 1000, 2000}, 1000},
		{[]float64{1000}, 1000},
		{[]float64{50}, 50},
		{[]float64{100, 300, 900}, 300},
	} {
		if got := headlineRate(tc.rates); got != tc.want {
			t.Errorf("headlineRate(%v) = %v, want %v", tc.rates, got, tc.want)
		}
	}
}
