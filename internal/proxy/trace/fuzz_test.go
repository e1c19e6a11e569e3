package trace

import (
	"net/http"
	"testing"
)

// The seed corpus is in testdata/fuzz/<FuzzName>; run one fuzzer with
// e.g. go test -run '^$' -fuzz '^FuzzExtract$' -fuzztime 1m ./internal/proxy/trace

// FuzzExtract feeds arbitrary propagation headers: Extract must not
// panic, and a context it accepts must survive Inject and Extract again.
func FuzzExtract(f *testing.F) {
	f.Fuzz(func(t *testing.T, traceparent, tracestate, b3, b3Trace, b3Span, b3Sampled string) {
		h := make(http.Header)
		for k, v := range map[string]string{hTraceparent: traceparent, hTracestate: tracestate, hB3: b3,
			hB3TraceID: b3Trace, hB3SpanID: b3Span, hB3Sampled: b3Sampled} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		sc := Extract(h)
		if len(sc.TraceState) > maxTracestate {
			t.Fatalf("tracestate of %d characters", len(sc.TraceState))
		}
		if !sc.IsValid() {
			return
		}
		out := make(http.Header)
		Inject(out, sc)
		back := Extract(out)
		if back.TraceID != sc.TraceID || back.SpanID != sc.SpanID || back.IsSampled() != sc.IsSampled() ||
			back.TraceState != sc.TraceState || back.Formats != sc.Formats|FormatW3C {
			t.Fatalf("round trip changed the context: %+v -> %v -> %+v", sc, out, back)
		}
	})
}

// FuzzParseTraceparent: no panic; what parses is what it says.
func FuzzParseTraceparent(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string) {
		tid, sid, flags, ok := ParseTraceparent(v)
		if !ok {
			return
		}
		if !tid.IsValid() || !sid.IsValid() {
			t.Fatalf("accepted zero ids in %q", v)
		}
		if v[3:35] != tid.String() || v[36:52] != sid.String() {
			t.Fatalf("%q parsed as %s %s", v, tid, sid)
		}
		h := make(http.Header)
		Inject(h, SpanContext{TraceID: tid, SpanID: sid, Sampling: SamplingDrop + Sampling(flags&1)})
		tid2, sid2, flags2, ok := ParseTraceparent(h.Get("Traceparent"))
		if !ok || tid2 != tid || sid2 != sid || flags2 != flags&1 {
			t.Fatalf("re-encoding %q gave %q", v, h.Get("Traceparent"))
		}
	})
}

// FuzzParseB3: no panic; an accepted single b3 value survives Inject.
func FuzzParseB3(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string) {
		sc, ok := ParseB3(v)
		if !ok {
			return
		}
		if sc.Sampling == SamplingDeferred && !sc.IsValid() {
			t.Fatalf("accepted %q with neither ids nor a decision", v)
		}
		if !sc.IsValid() {
			return
		}
		sc.Formats = FormatB3Single
		h := make(http.Header)
		Inject(h, sc)
		back, ok := ParseB3(h.Get("B3"))
		if !ok || back.TraceID != sc.TraceID || back.SpanID != sc.SpanID || back.Sampling != sc.Sampling {
			t.Fatalf("%q -> %q -> %+v, want %+v", v, h.Get("B3"), back, sc)
		}
	})
}

// FuzzParseTracestate: no panic; the value passed on is bounded and is
// itself a valid tracestate that passes on unchanged.
func FuzzParseTracestate(f *testing.F) {
	f.Fuzz(func(t *testing.T, a, b string) {
		fields := []string{a}
		if b != "" {
			fields = append(fields, b)
		}
		v, ok := ParseTracestate(fields)
		if !ok {
			if v != "" {
				t.Fatalf("refused %q but kept %q", fields, v)
			}
			return
		}
		if len(v) > maxTracestate {
			t.Fatalf("%d characters passed on", len(v))
		}
		if v == "" {
			return
		}
		again, ok := ParseTracestate([]string{v})
		if !ok || again != v {
			t.Fatalf("%q passed on as %q, which reads as %q, %v", fields, v, again, ok)
		}
	})
}
