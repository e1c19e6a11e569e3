package main

import (
	"slices"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		setups, rates string
		wantSetups    []string
		wantRates     []float64
		wantErr       bool
	}{
		{"direct,weft,nginx,haproxy,caddy,gostd", "500,1000,2000", []string{"direct", "weft", "nginx", "haproxy", "caddy", "gostd"}, []float64{500, 1000, 2000}, false},
		{"direct, weft", " 1000 ", []string{"direct", "weft"}, []float64{1000}, false},
		{"weft,direct", "1000", nil, nil, true},       // the baseline must come first
		{"direct,envoy", "1000", nil, nil, true},      // unknown setup
		{"direct,weft", "1000,-5", nil, nil, true},    // not a rate
		{"direct,weft", "1000,,2000", nil, nil, true}, // empty rate
	} {
		gotSetups, errS := parseSetups(tc.setups)
		gotRates, errR := parseRates(tc.rates)
		if gotErr := errS != nil || errR != nil; gotErr != tc.wantErr {
			t.Errorf("setups %q rates %q: errors %v, %v; want error: %v", tc.setups, tc.rates, errS, errR, tc.wantErr)
			continue
		}
		if !tc.wantErr && (!slices.Equal(gotSetups, tc.wantSetups) || !slices.Equal(gotRates, tc.wantRates)) {
			t.Errorf("setups %q rates %q: got %v %v, want %v %v", tc.setups, tc.rates, gotSetups, gotRates, tc.wantSetups, tc.wantRates)
		}
	}
}

func TestCheckSmoke(t *testing.T) {
	ok := result{Workload: "http1-50", Requests: 50}
	for _, tc := range []struct {
		name    string
		setups  []setupReport
		wantErr bool
	}{
		{"clean", []setupReport{{Name: "direct", Results: []result{ok}}, {Name: "caddy", Results: []result{ok}, Unsupported: []string{"tcp-bulk"}}}, false},
		{"an error answer", []setupReport{{Name: "weft", Results: []result{{Workload: "grpc-unary", Requests: 50, Errors: 1}}}}, true},
		{"no request", []setupReport{{Name: "weft", Results: []result{{Workload: "h2-streams"}}}}, true},
		{"a failed workload", []setupReport{{Name: "nginx", Results: []result{ok}, Failures: []string{"tcp-bulk: refused"}}}, true},
		{"nothing ran", []setupReport{{Name: "haproxy"}}, true},
	} {
		if err := checkSmoke(&report{Setups: tc.setups}); (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error: %v", tc.name, err, tc.wantErr)
		}
	}
}
