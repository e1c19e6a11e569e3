package trace

import (
	"net/http"
	"strings"
	"testing"
)

const (
	tid32 = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid16 = "00f067aa0ba902b7"
	par16 = "b7ad6b7169203331"
	tid16 = "a3ce929d0e0e4736"
)

func mustTID(t *testing.T, s string) TraceID {
	t.Helper()
	var id TraceID
	if !parseB3TraceID(&id, s) {
		t.Fatalf("bad test trace id %q", s)
	}
	return id
}

func mustSID(t *testing.T, s string) SpanID {
	t.Helper()
	var id SpanID
	if !fromHex(id[:], s) {
		t.Fatalf("bad test span id %q", s)
	}
	return id
}

func headers(kv ...string) http.Header {
	h := make(http.Header)
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestExtract(t *testing.T) {
	tp := "00-" + tid32 + "-" + sid16 + "-01"
	tests := []struct {
		name     string
		h        http.Header
		valid    bool
		tid, sid string
		sampling Sampling
		state    string
		formats  Format
	}{
		{name: "none", h: headers()},
		{name: "w3c sampled", h: headers("traceparent", tp), valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatW3C},
		{name: "w3c not sampled", h: headers("traceparent", "00-"+tid32+"-"+sid16+"-00"), valid: true, tid: tid32, sid: sid16, sampling: SamplingDrop, formats: FormatW3C},
		{name: "w3c other flags kept sampled bit", h: headers("traceparent", "00-"+tid32+"-"+sid16+"-03"), valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatW3C},
		{name: "w3c tracestate kept", h: headers("traceparent", tp, "tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, state: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", formats: FormatW3C},
		{name: "w3c tracestate several fields joined", h: headers("traceparent", tp, "tracestate", "rojo=1", "tracestate", " congo=2 ,"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, state: "rojo=1,congo=2", formats: FormatW3C},
		{name: "w3c tracestate multi-tenant key", h: headers("traceparent", tp, "tracestate", "fw529a3039@dt=abc"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, state: "fw529a3039@dt=abc", formats: FormatW3C},
		{name: "w3c malformed tracestate dropped, trace kept", h: headers("traceparent", tp, "tracestate", "Rojo=1"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatW3C},
		{name: "w3c duplicate tracestate key dropped", h: headers("traceparent", tp, "tracestate", "a=1,a=2"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatW3C},
		{name: "w3c future version read as 00", h: headers("traceparent", "cc-"+tid32+"-"+sid16+"-01-what-the-future-holds"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatW3C},
		{name: "w3c version ff", h: headers("traceparent", "ff-"+tid32+"-"+sid16+"-01")},
		{name: "w3c version 00 too long", h: headers("traceparent", tp+"-00")},
		{name: "w3c future version bad separator", h: headers("traceparent", "01-"+tid32+"-"+sid16+"-01x")},
		{name: "w3c uppercase", h: headers("traceparent", "00-"+strings.ToUpper(tid32)+"-"+sid16+"-01")},
		{name: "w3c zero trace id", h: headers("traceparent", "00-"+strings.Repeat("0", 32)+"-"+sid16+"-01")},
		{name: "w3c zero span id", h: headers("traceparent", "00-"+tid32+"-0000000000000000-01")},
		{name: "w3c short", h: headers("traceparent", "00-"+tid32[:30]+"-"+sid16+"-01")},
		{name: "w3c bad flags", h: headers("traceparent", "00-"+tid32+"-"+sid16+"-0g")},
		{name: "w3c two headers", h: headers("traceparent", tp, "traceparent", tp)},
		{name: "w3c tracestate ignored without traceparent", h: headers("tracestate", "rojo=1")},

		{name: "b3 single full", h: headers("b3", tid32+"-"+sid16+"-1-"+par16), valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatB3Single},
		{name: "b3 single 64-bit", h: headers("b3", tid16+"-"+sid16+"-0"), valid: true, tid: tid16, sid: sid16, sampling: SamplingDrop, formats: FormatB3Single},
		{name: "b3 single deferred", h: headers("b3", tid32+"-"+sid16), valid: true, tid: tid32, sid: sid16, sampling: SamplingDeferred, formats: FormatB3Single},
		{name: "b3 single debug", h: headers("b3", tid32+"-"+sid16+"-d"), valid: true, tid: tid32, sid: sid16, sampling: SamplingDebug, formats: FormatB3Single},
		{name: "b3 single deny only", h: headers("b3", "0"), sampling: SamplingDrop, formats: FormatB3Single},
		{name: "b3 single accept only", h: headers("b3", "1"), sampling: SamplingAccept, formats: FormatB3Single},
		{name: "b3 single bad state", h: headers("b3", tid32+"-"+sid16+"-x")},
		{name: "b3 single bad parent", h: headers("b3", tid32+"-"+sid16+"-1-zz")},
		{name: "b3 single too many parts", h: headers("b3", tid32+"-"+sid16+"-1-"+par16+"-1")},
		{name: "b3 single 24-digit trace id", h: headers("b3", tid32[:24]+"-"+sid16+"-1")},

		{name: "b3 multi", h: headers("X-B3-TraceId", tid32, "X-B3-SpanId", sid16, "X-B3-ParentSpanId", par16, "X-B3-Sampled", "1"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatB3Multi},
		{name: "b3 multi lowercase names (HTTP/2)", h: http.Header{"X-B3-Traceid": {tid16}, "X-B3-Spanid": {sid16}, "X-B3-Sampled": {"0"}},
			valid: true, tid: tid16, sid: sid16, sampling: SamplingDrop, formats: FormatB3Multi},
		{name: "b3 multi sampled true", h: headers("X-B3-TraceId", tid32, "X-B3-SpanId", sid16, "X-B3-Sampled", "true"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatB3Multi},
		{name: "b3 multi debug flag", h: headers("X-B3-TraceId", tid32, "X-B3-SpanId", sid16, "X-B3-Flags", "1"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingDebug, formats: FormatB3Multi},
		{name: "b3 multi deferred", h: headers("X-B3-TraceId", tid32, "X-B3-SpanId", sid16),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingDeferred, formats: FormatB3Multi},
		{name: "b3 multi sampled only", h: headers("X-B3-Sampled", "0"), sampling: SamplingDrop, formats: FormatB3Multi},
		{name: "b3 multi trace id without span id", h: headers("X-B3-TraceId", tid32, "X-B3-Sampled", "1")},
		{name: "b3 multi bad sampled", h: headers("X-B3-TraceId", tid32, "X-B3-SpanId", sid16, "X-B3-Sampled", "yes")},
		{name: "b3 multi bad span id", h: headers("X-B3-TraceId", tid32, "X-B3-SpanId", "xyz")},

		{name: "w3c wins over b3, both kept as formats", h: headers("traceparent", tp, "b3", tid16+"-"+par16+"-0"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatW3C | FormatB3Single},
		{name: "bad w3c falls back to b3", h: headers("traceparent", "garbage", "tracestate", "a=1", "X-B3-TraceId", tid32, "X-B3-SpanId", sid16, "X-B3-Sampled", "1"),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatB3Multi},
		{name: "b3 single wins over multi", h: headers("b3", tid32+"-"+sid16+"-1", "X-B3-TraceId", tid16, "X-B3-SpanId", par16),
			valid: true, tid: tid32, sid: sid16, sampling: SamplingAccept, formats: FormatB3Single | FormatB3Multi},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := Extract(tc.h)
			if sc.IsValid() != tc.valid {
				t.Fatalf("valid = %v, want %v (%+v)", sc.IsValid(), tc.valid, sc)
			}
			if tc.valid {
				if want := mustTID(t, tc.tid); sc.TraceID != want {
					t.Errorf("trace id %s, want %s", sc.TraceID, want)
				}
				if want := mustSID(t, tc.sid); sc.SpanID != want {
					t.Errorf("span id %s, want %s", sc.SpanID, want)
				}
			}
			if sc.Sampling != tc.sampling {
				t.Errorf("sampling %d, want %d", sc.Sampling, tc.sampling)
			}
			if sc.TraceState != tc.state {
				t.Errorf("tracestate %q, want %q", sc.TraceState, tc.state)
			}
			if sc.Formats != tc.formats {
				t.Errorf("formats %b, want %b", sc.Formats, tc.formats)
			}
		})
	}
}

func TestTracestateLimits(t *testing.T) {
	var members []string
	for i := range 33 {
		members = append(members, "k"+strings.Repeat("x", i)+"=v")
	}
	if _, ok := ParseTracestate([]string{strings.Join(members, ",")}); ok {
		t.Error("33 members accepted")
	}
	if v, ok := ParseTracestate([]string{strings.Join(members[:32], ",")}); !ok || v == "" {
		t.Errorf("32 members refused: %q", v)
	}
	// Over 512 characters: entries over 128 go first, then from the end.
	big := "big=" + strings.Repeat("b", 200)
	var parts []string
	for i := range 30 {
		parts = append(parts, "m"+strings.Repeat("y", i)+"="+strings.Repeat("v", 10))
	}
	v, ok := ParseTracestate([]string{big + "," + strings.Join(parts, ",")})
	if !ok || len(v) > 512 || strings.Contains(v, "big=") || !strings.HasPrefix(v, parts[0]+","+parts[1]) {
		t.Errorf("cut tracestate = %q (%d), %v", v, len(v), ok)
	}
	// A value with a space inside is fine; "=" inside is not.
	if v, ok := ParseTracestate([]string{"a=b c"}); !ok || v != "a=b c" {
		t.Errorf("space in value: %q %v", v, ok)
	}
	for _, v := range []string{"a=b=c", "@sys=1", "t@=1", "t@0sys=1", "_a=1", "a=", "a=b\tc", strings.Repeat("k", 257) + "=1"} {
		if _, ok := ParseTracestate([]string{v}); ok {
			t.Errorf("%q accepted", v)
		}
	}
	for _, v := range []string{"0tenant@sys=1", "a_-*/9=1", "t@s_-*/=~!"} {
		if got, ok := ParseTracestate([]string{v}); !ok || got != v {
			t.Errorf("%q refused", v)
		}
	}
}

func TestInject(t *testing.T) {
	tid, sid, par := mustTID(t, tid32), mustSID(t, sid16), mustSID(t, par16)
	tests := []struct {
		name   string
		sc     SpanContext
		parent SpanID
		before http.Header
		want   http.Header
	}{
		{
			name:   "w3c only, stale b3 removed",
			sc:     SpanContext{TraceID: tid, SpanID: sid, Sampling: SamplingAccept, Formats: FormatW3C},
			before: headers("b3", "garbage", "X-B3-Sampled", "1", "Tracestate", "old=1", "Other", "x"),
			want:   http.Header{"Traceparent": {"00-" + tid32 + "-" + sid16 + "-01"}, "Other": {"x"}},
		},
		{
			name: "w3c with tracestate, not sampled",
			sc:   SpanContext{TraceID: tid, SpanID: sid, Sampling: SamplingDrop, TraceState: "rojo=1", Formats: FormatW3C},
			want: http.Header{"Traceparent": {"00-" + tid32 + "-" + sid16 + "-00"}, "Tracestate": {"rojo=1"}},
		},
		{
			name:   "b3 single with parent",
			sc:     SpanContext{TraceID: tid, SpanID: sid, Sampling: SamplingAccept, Formats: FormatW3C | FormatB3Single},
			parent: par,
			want:   http.Header{"Traceparent": {"00-" + tid32 + "-" + sid16 + "-01"}, "B3": {tid32 + "-" + sid16 + "-1-" + par16}},
		},
		{
			name: "b3 single 64-bit debug",
			sc:   SpanContext{TraceID: mustTID(t, tid16), SpanID: sid, Sampling: SamplingDebug, Formats: FormatB3Single},
			want: http.Header{"Traceparent": {"00-0000000000000000" + tid16 + "-" + sid16 + "-01"}, "B3": {tid16 + "-" + sid16 + "-d"}},
		},
		{
			name:   "b3 multi",
			sc:     SpanContext{TraceID: tid, SpanID: sid, Sampling: SamplingDrop, Formats: FormatB3Multi},
			parent: par,
			want: http.Header{"Traceparent": {"00-" + tid32 + "-" + sid16 + "-00"},
				"X-B3-Traceid": {tid32}, "X-B3-Spanid": {sid16}, "X-B3-Parentspanid": {par16}, "X-B3-Sampled": {"0"}},
		},
		{
			name: "b3 multi debug",
			sc:   SpanContext{TraceID: tid, SpanID: sid, Sampling: SamplingDebug, Formats: FormatB3Multi},
			want: http.Header{"Traceparent": {"00-" + tid32 + "-" + sid16 + "-01"},
				"X-B3-Traceid": {tid32}, "X-B3-Spanid": {sid16}, "X-B3-Flags": {"1"}},
		},
		{
			name:   "invalid context writes nothing",
			sc:     SpanContext{Sampling: SamplingAccept, Formats: FormatB3Single},
			before: headers("b3", "1"),
			want:   http.Header{"B3": {"1"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.before
			if h == nil {
				h = make(http.Header)
			}
			inject(h, tc.sc, tc.parent)
			if len(h) != len(tc.want) {
				t.Errorf("headers %v, want %v", h, tc.want)
			}
			for k, v := range tc.want {
				if got := h[k]; len(got) != 1 || got[0] != v[0] {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if !tc.sc.IsValid() {
				return
			}
			// What Inject writes, Extract reads back.
			back := Extract(h)
			if back.TraceID != tc.sc.TraceID || back.SpanID != tc.sc.SpanID || back.IsSampled() != tc.sc.IsSampled() ||
				back.TraceState != tc.sc.TraceState || back.Formats != tc.sc.Formats|FormatW3C {
				t.Errorf("round trip: %+v, want %+v", back, tc.sc)
			}
		})
	}
}
