package fault

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		s       Settings
		wantErr bool
	}{
		{name: "zero", s: Settings{}},
		{name: "all set", s: Settings{Latency: time.Second, Jitter: time.Millisecond, ErrorRate: 1}},
		{name: "negative latency", s: Settings{Latency: -1}, wantErr: true},
		{name: "negative jitter", s: Settings{Jitter: -1}, wantErr: true},
		{name: "rate above 1", s: Settings{ErrorRate: 1.01}, wantErr: true},
		{name: "rate below 0", s: Settings{ErrorRate: -0.1}, wantErr: true},
		{name: "rate NaN", s: Settings{ErrorRate: math.NaN()}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.s.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if _, err := New(tt.s); (err != nil) != tt.wantErr {
				t.Fatalf("New() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestApplyErrorRate(t *testing.T) {
	tests := []struct {
		name     string
		rate     float64
		min, max int // failures out of 1000
	}{
		{name: "never", rate: 0, min: 0, max: 0},
		{name: "always", rate: 1, min: 1000, max: 1000},
		{name: "half", rate: 0.5, min: 350, max: 650},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := New(Settings{ErrorRate: tt.rate})
			if err != nil {
				t.Fatal(err)
			}
			failed := 0
			for range 1000 {
				switch err := in.Apply(t.Context()); {
				case errors.Is(err, ErrInjected):
					failed++
				case err != nil:
					t.Fatalf("Apply: %v", err)
				}
			}
			if failed < tt.min || failed > tt.max {
				t.Fatalf("%d of 1000 failed, want %d..%d", failed, tt.min, tt.max)
			}
		})
	}
}

func TestApplyLatency(t *testing.T) {
	in, err := New(Settings{Latency: 40 * time.Millisecond, Jitter: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := in.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("Apply took %s, want >= 40ms", d)
	}
}

func TestApplyCancelledDuringLatency(t *testing.T) {
	in, err := New(Settings{Latency: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := in.Apply(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply = %v, want DeadlineExceeded", err)
	}
}

func TestNilInjectorInjectsNothing(t *testing.T) {
	var in *Injector
	if err := in.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestSetRefusesInvalid(t *testing.T) {
	in, err := New(Settings{ErrorRate: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Set(Settings{ErrorRate: 2}); err == nil {
		t.Fatal("Set accepted error rate 2")
	}
	if got := in.Settings().ErrorRate; got != 0.25 {
		t.Fatalf("error rate = %v after a refused Set, want 0.25", got)
	}
}
