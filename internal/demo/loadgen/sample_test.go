package loadgen

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var s sample
	if got := s.percentile(50); got != 0 {
		t.Fatalf("empty: p50 = %s", got)
	}
	for i := 100; i >= 1; i-- { // 1..100 ms, out of order
		s.add(ms(i))
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{{50, ms(50)}, {99, ms(99)}, {100, ms(100)}, {1, ms(1)}, {0.1, ms(1)}}
	for _, tt := range tests {
		if got := s.percentile(tt.p); got != tt.want {
			t.Errorf("p%v = %s, want %s", tt.p, got, tt.want)
		}
	}
}

func TestSampleStaysBounded(t *testing.T) {
	var s sample
	for i := range 3 * sampleCap {
		s.add(time.Duration(i))
	}
	if len(s.kept) != sampleCap || s.seen != 3*sampleCap {
		t.Fatalf("kept %d of %d", len(s.kept), s.seen)
	}
}

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		target string
		ok     bool
	}{
		{"http://127.0.0.1:8080/api/products", true},
		{"http://127.1.2.3/", true},
		{"http://[::1]:80/", true},
		{"https://localhost:8443/x", true},
		{"http://198.18.0.1/", false},
		{"http://example.com/", false},
		{"http://0.0.0.0:80/", false},
		{"ftp://127.0.0.1/", false},
		{"127.0.0.1:8080", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			if err := checkTarget(tt.target); (err == nil) != tt.ok {
				t.Fatalf("checkTarget(%q) = %v, want ok %v", tt.target, err, tt.ok)
			}
		})
	}
}
