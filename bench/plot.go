package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strconv"
	"strings"
)

// The plots are drawn with the standard library alone, so the suite adds
// no dependency to the module: lines, axes and a 5×7 bitmap font.

type plotSeries struct {
	name string
	cdf  []point
}

var seriesColors = []color.RGBA{
	{0x33, 0x33, 0x33, 0xff}, // direct
	{0xd6, 0x27, 0x28, 0xff}, // weft
	{0x1f, 0x77, 0xb4, 0xff},
	{0x2c, 0xa0, 0x2c, 0xff},
	{0xff, 0x7f, 0x0e, 0xff},
	{0x94, 0x67, 0xbd, 0xff},
}

const (
	plotW, plotH                       = 1000, 560
	marginL, marginR, marginT, marginB = 90, 190, 50, 70
	maxNines                           = 3.0 // the x axis ends at 99.9%
)

// nines maps a percentile to the x axis: 90% is 1, 99% is 2, 99.9% is 3.
func nines(percent float64) float64 {
	if percent >= 100 {
		return math.Inf(1)
	}
	return -math.Log10(1 - percent/100)
}

// latencyAt is the latency below which percent of requests fell, read
// from a distribution's steps.
func latencyAt(cdf []point, percent float64) float64 {
	for _, p := range cdf {
		if p.Percent >= percent {
			return p.Ms
		}
	}
	if len(cdf) == 0 {
		return 0
	}
	return cdf[len(cdf)-1].Ms
}

func writePNG(path, title string, series []plotSeries) error {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})
	x0, x1, y0, y1 := marginL, plotW-marginR, plotH-marginB, marginT
	// Latency on a log scale, decades from below the fastest p0 to above the
	// slowest p99.9: a linear one would let one setup's tail flatten every
	// other curve.
	lo, hi := math.Inf(1), 0.0
	for _, s := range series {
		if len(s.cdf) > 0 {
			lo = min(lo, s.cdf[0].Ms)
		}
		hi = max(hi, latencyAt(s.cdf, 99.9))
	}
	if hi <= 0 {
		lo, hi = 0.1, 1
	}
	dLo := math.Floor(math.Log10(math.Max(lo, 0.01)))
	dHi := math.Max(dLo+1, math.Ceil(math.Log10(hi)))
	px := func(n float64) int { return x0 + int(n/maxNines*float64(x1-x0)) }
	py := func(ms float64) int {
		d := (math.Log10(math.Max(ms, math.Pow(10, dLo))) - dLo) / (dHi - dLo)
		return y0 - int(math.Min(d, 1)*float64(y0-y1))
	}

	grid := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	faint := color.RGBA{0xf0, 0xf0, 0xf0, 0xff}
	black := color.RGBA{0, 0, 0, 0xff}
	for d := dLo; d <= dHi; d++ {
		v := math.Pow(10, d)
		for _, m := range []float64{2, 5} {
			if d < dHi {
				line(img, x0, py(m*v), x1, py(m*v), faint, 1)
			}
		}
		line(img, x0, py(v), x1, py(v), grid, 1)
		label := strconv.FormatFloat(v, 'f', -1, 64)
		text(img, x0-8-textWidth(label, 2), py(v)-7, label, black, 2)
	}
	for _, t := range []struct {
		p     float64
		label string
	}{{0, "0%"}, {50, "50%"}, {90, "90%"}, {99, "99%"}, {99.9, "99.9%"}} {
		x := px(nines(t.p))
		line(img, x, y0, x, y1, grid, 1)
		text(img, x-textWidth(t.label, 2)/2, y0+10, t.label, black, 2)
	}
	line(img, x0, y0, x1, y0, black, 2)
	line(img, x0, y0, x0, y1, black, 2)
	text(img, x0, 14, title, black, 2)
	text(img, x0+(x1-x0)/2-textWidth("percentile", 2)/2, y0+40, "percentile", black, 2)

	// Drawn last to first, so that where curves overlap the baseline and
	// weft, listed first, stay visible.
	for i := len(series) - 1; i >= 0; i-- {
		s := series[i]
		c := seriesColors[i%len(seriesColors)]
		prevX, prevY, started := 0, 0, false
		for _, p := range s.cdf {
			n := nines(p.Percent)
			if n > maxNines {
				n = maxNines
			}
			x, y := px(n), py(p.Ms)
			if started {
				// A step: the latency holds until the next bucket's percentile.
				line(img, prevX, prevY, x, prevY, c, 3)
				line(img, x, prevY, x, y, c, 3)
			}
			prevX, prevY, started = x, y, true
			if n >= maxNines {
				break
			}
		}
		ly := marginT + 20 + i*28
		fill(img, image.Rect(x1+20, ly, x1+44, ly+14), c)
		text(img, x1+52, ly, s.name, black, 2)
	}

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// line draws from (xa, ya) to (xb, yb), width pixels thick (Bresenham).
func line(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA, width int) {
	dx, dy := abs(xb-xa), -abs(yb-ya)
	sx, sy := sign(xb-xa), sign(yb-ya)
	e := dx + dy
	for {
		fill(img, image.Rect(xa-width/2, ya-width/2, xa-width/2+width, ya-width/2+width), c)
		if xa == xb && ya == yb {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			xa += sx
		} else {
			e += dx
			ya += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func textWidth(s string, scale int) int { return len(s) * 6 * scale }

// text draws s in the 5×7 font, upper-cased, scale pixels per dot.
func text(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) {
	for i, r := range strings.ToUpper(s) {
		g, ok := font5x7[r]
		if !ok {
			g = font5x7['?']
		}
		for row, bits := range g {
			for col := range 5 {
				if bits&(1<<(4-col)) != 0 {
					ox, oy := x+(i*6+col)*scale, y+row*scale
					fill(img, image.Rect(ox, oy, ox+scale, oy+scale), c)
				}
			}
		}
	}
}

// font5x7 holds each glyph's seven rows, the leftmost dot in bit 4.
var font5x7 = map[rune][7]byte{
	'0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, '1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, '3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, '5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, '7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, '9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'A': {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}, 'B': {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, 'D': {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, 'F': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, 'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'I': {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, 'J': {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	'K': {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, 'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'M': {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, 'N': {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'Q': {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, 'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, 'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, 'X': {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	'Y': {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, 'Z': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	'.': {0, 0, 0, 0, 0, 0x0C, 0x0C}, '%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
	'/': {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}, '-': {0, 0, 0, 0x1F, 0, 0, 0},
	':': {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}, '(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},
	')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, '=': {0, 0, 0x1F, 0, 0x1F, 0, 0},
	',': {0, 0, 0, 0, 0x0C, 0x04, 0x08}, '+': {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0},
	'?': {0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04}, ' ': {},
}
