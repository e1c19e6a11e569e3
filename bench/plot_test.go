package main

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestNinesAndLatencyAt(t *testing.T) {
	for _, tc := range []struct {
		percent, want float64
	}{{0, 0}, {90, 1}, {99, 2}, {99.9, 3}, {100, math.Inf(1)}} {
		if got := nines(tc.percent); math.Abs(got-tc.want) > 1e-9 && !(math.IsInf(got, 1) && math.IsInf(tc.want, 1)) {
			t.Errorf("nines(%v) = %v, want %v", tc.percent, got, tc.want)
		}
	}
	cdf := []point{{1, 40}, {2, 90}, {5, 99.5}, {9, 100}}
	for _, tc := range []struct {
		percent, want float64
	}{{10, 1}, {50, 2}, {90, 2}, {99, 5}, {99.9, 9}} {
		if got := latencyAt(cdf, tc.percent); got != tc.want {
			t.Errorf("latencyAt(%v) = %v, want %v", tc.percent, got, tc.want)
		}
	}
}

// Each series shows in its colour, and the picture is a PNG of the size set.
func TestWritePNGDrawsEverySeries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.png")
	series := []plotSeries{
		{"direct", []point{{0.1, 10}, {0.2, 90}, {0.4, 100}}},
		{"weft", []point{{0.3, 10}, {0.6, 90}, {3, 100}}},
		{"nginx", []point{{0.2, 50}, {0.5, 100}}},
	}
	if err := writePNG(path, "test: 1 KIB (MS)", series); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != image.Rect(0, 0, plotW, plotH) {
		t.Errorf("bounds %v", img.Bounds())
	}
	count := map[color.RGBA]int{}
	for y := 0; y < plotH; y++ {
		for x := 0; x < plotW; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			count[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}]++
		}
	}
	legend := 24 * 14
	for i, s := range series {
		if n := count[seriesColors[i]]; n <= legend {
			t.Errorf("%s: %d pixels of its colour, want its legend box (%d) and a curve", s.name, n, legend)
		}
	}
}
