package trace

import (
	"encoding/hex"
	"net/http"
	"strings"
)

// Header names, in the canonical form net/http keeps them in (HTTP/2 and
// gRPC metadata arrive lowercase and are canonicalized by the server), so
// that lookups are plain map reads.
const (
	hTraceparent  = "Traceparent"
	hTracestate   = "Tracestate"
	hB3           = "B3"
	hB3TraceID    = "X-B3-Traceid"
	hB3SpanID     = "X-B3-Spanid"
	hB3ParentID   = "X-B3-Parentspanid"
	hB3Sampled    = "X-B3-Sampled"
	hB3Flags      = "X-B3-Flags"
	maxTracestate = 512 // W3C: propagate at least 512 characters
	maxTSMembers  = 32  // W3C: at most 32 list-members
)

// PropagationHeaders are every header Extract reads and Inject writes, in
// canonical form: a proxy that strips or copies trace headers can use it.
var PropagationHeaders = []string{hTraceparent, hTracestate, hB3, hB3TraceID, hB3SpanID, hB3ParentID, hB3Sampled, hB3Flags}

// Format is a set of propagation formats.
type Format uint8

// The formats a request can carry its trace context in.
const (
	FormatW3C      Format = 1 << iota // traceparent and tracestate
	FormatB3Single                    // b3: {trace}-{span}-{sampled}-{parent}
	FormatB3Multi                     // X-B3-TraceId, -SpanId, -ParentSpanId, -Sampled, -Flags
)

// Sampling is a sampling decision carried in a trace context.
type Sampling uint8

// Sampling decisions. Deferred, the zero value, means the sender decided
// nothing (B3 allows it; no context at all is also Deferred): the receiver
// decides.
const (
	SamplingDeferred Sampling = iota
	SamplingDrop
	SamplingAccept
	SamplingDebug // B3 debug: sample, and ask every hop to keep it
)

// SpanContext is what crosses process boundaries about a span: enough for
// the next hop to make a child of it.
type SpanContext struct {
	TraceID TraceID
	SpanID  SpanID
	// Sampling is the decision the trace carries.
	Sampling Sampling
	// TraceState is the W3C tracestate to pass on unchanged (vendors' own
	// data); empty unless the context came as a valid traceparent.
	TraceState string
	// Formats are the formats the context was received in, so that it is
	// sent on in the same ones. Extract sets only formats that parsed.
	Formats Format
}

// IsValid reports whether sc names a span: it can be a parent. An invalid
// SpanContext may still carry a sampling decision (B3 "b3: 0").
func (sc SpanContext) IsValid() bool { return sc.TraceID.IsValid() && sc.SpanID.IsValid() }

// IsSampled reports whether the span sc names is recorded.
func (sc SpanContext) IsSampled() bool { return sc.Sampling >= SamplingAccept }

// Extract reads the trace context of an incoming request's headers. It
// never fails: headers that are missing or malformed give a SpanContext
// that is not valid (a new trace must start), possibly with a sampling
// decision and with the formats that did parse. A valid traceparent wins
// over B3; the single b3 header wins over the multi ones, as B3 says.
func Extract(h http.Header) SpanContext {
	var sc SpanContext
	w3c, w3cOK := extractW3C(h)
	single, singleOK := extractB3Single(h)
	multi, multiOK := extractB3Multi(h)
	switch {
	case w3cOK:
		sc = w3c
	case singleOK && single.IsValid():
		sc = single
	case multiOK && multi.IsValid():
		sc = multi
	case singleOK:
		sc.Sampling = single.Sampling // a decision without ids
	case multiOK:
		sc.Sampling = multi.Sampling
	}
	sc.Formats = 0
	if w3cOK {
		sc.Formats |= FormatW3C
	}
	if singleOK {
		sc.Formats |= FormatB3Single
	}
	if multiOK {
		sc.Formats |= FormatB3Multi
	}
	return sc
}

// extractW3C parses traceparent and, only when that is valid, tracestate.
func extractW3C(h http.Header) (SpanContext, bool) {
	var sc SpanContext
	tp := h[hTraceparent]
	if len(tp) != 1 { // absent, or repeated: which one would be right?
		return sc, false
	}
	var flags byte
	var ok bool
	sc.TraceID, sc.SpanID, flags, ok = ParseTraceparent(tp[0])
	if !ok {
		return SpanContext{}, false
	}
	sc.Sampling = SamplingDrop
	if flags&1 != 0 {
		sc.Sampling = SamplingAccept
	}
	sc.TraceState, _ = ParseTracestate(h[hTracestate])
	return sc, true
}

// ParseTraceparent parses a W3C traceparent header value. Versions other
// than 00 are read as 00 when they are laid out like it, as the
// specification asks; version ff, all-zero ids, uppercase hex and wrong
// lengths are refused.
func ParseTraceparent(v string) (tid TraceID, sid SpanID, flags byte, ok bool) {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return tid, sid, 0, false
	}
	var ver, fl [1]byte
	if !fromHex(ver[:], v[0:2]) || ver[0] == 0xff ||
		!fromHex(tid[:], v[3:35]) || !fromHex(sid[:], v[36:52]) || !fromHex(fl[:], v[53:55]) {
		return TraceID{}, SpanID{}, 0, false
	}
	if ver[0] == 0 && len(v) != 55 || len(v) > 55 && v[55] != '-' {
		return TraceID{}, SpanID{}, 0, false
	}
	if !tid.IsValid() || !sid.IsValid() {
		return TraceID{}, SpanID{}, 0, false
	}
	return tid, sid, fl[0], true
}

// ParseTracestate checks the tracestate header fields (several fields
// are one list, in order) and returns the value to pass on: the field
// itself when it is one well-formed field of at most 512 characters,
// otherwise the members joined and cut to 512 characters as the W3C
// specification says (drop members over 128 characters, then from the
// end). ok is false, and the value empty, when any member is malformed,
// a key repeats, or there are more than 32 members: tracestate is then
// dropped, never the trace.
func ParseTracestate(fields []string) (string, bool) {
	if len(fields) == 0 {
		return "", true
	}
	var members [maxTSMembers]string
	n, clean := 0, len(fields) == 1
	for _, f := range fields {
		for f != "" {
			m := f
			if i := strings.IndexByte(f, ','); i >= 0 {
				m, f = f[:i], f[i+1:]
				if f == "" {
					clean = false // a trailing comma
				}
			} else {
				f = ""
			}
			t := strings.Trim(m, " \t")
			if len(t) != len(m) {
				clean = false
			}
			if t == "" {
				clean = false
				continue
			}
			if n == maxTSMembers {
				return "", false
			}
			key, ok := tracestateMember(t)
			if !ok {
				return "", false
			}
			for _, prev := range members[:n] {
				if strings.HasPrefix(prev, key) && prev[len(key)] == '=' {
					return "", false
				}
			}
			members[n] = t
			n++
		}
	}
	if clean && len(fields[0]) <= maxTracestate {
		return fields[0], true
	}
	return joinTracestate(members[:n]), true
}

func joinTracestate(members []string) string {
	total := 0
	for _, m := range members {
		total += len(m) + 1
	}
	long := total-1 > maxTracestate
	var b strings.Builder
	b.Grow(min(total, maxTracestate))
	for _, m := range members {
		if long && len(m) > 128 {
			continue
		}
		sep := 0
		if b.Len() > 0 {
			sep = 1
		}
		if b.Len()+sep+len(m) > maxTracestate {
			break
		}
		if sep == 1 {
			b.WriteByte(',')
		}
		b.WriteString(m)
	}
	return b.String()
}

// tracestateMember checks one key=value member and returns its key.
func tracestateMember(m string) (string, bool) {
	eq := strings.IndexByte(m, '=')
	if eq <= 0 {
		return "", false
	}
	key, val := m[:eq], m[eq+1:]
	if !tracestateKey(key) || len(val) == 0 || len(val) > 256 {
		return "", false
	}
	for i := 0; i < len(val); i++ {
		c := val[i]
		if c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return "", false
		}
	}
	if val[len(val)-1] == ' ' {
		return "", false
	}
	return key, true
}

// tracestateKey: simple-key = lcalpha 0*255(keychar), or multi-tenant
// tenant@system with tenant = (lcalpha / DIGIT) 0*240(keychar) and
// system = lcalpha 0*13(keychar).
func tracestateKey(k string) bool {
	tenant, system, multi := strings.Cut(k, "@")
	if !multi {
		return len(k) <= 256 && keyPart(k, false)
	}
	return len(tenant) <= 241 && keyPart(tenant, true) && len(system) <= 14 && keyPart(system, false)
}

// keyPart: a lowercase letter (or a digit when digitFirst), then keychars.
func keyPart(s string, digitFirst bool) bool {
	if s == "" || !('a' <= s[0] && s[0] <= 'z' || digitFirst && '0' <= s[0] && s[0] <= '9') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '*' || c == '/') {
			return false
		}
	}
	return true
}

// extractB3Single parses the single b3 header.
func extractB3Single(h http.Header) (SpanContext, bool) {
	v := h[hB3]
	if len(v) != 1 {
		return SpanContext{}, false
	}
	return ParseB3(v[0])
}

// ParseB3 parses a single b3 header value: {TraceId}-{SpanId},
// optionally -{SamplingState} and then -{ParentSpanId}, or a sampling
// state alone ("0", "1" or "d"). TraceId is 16 or 32 lowercase hex
// digits (a 64-bit id is kept in the low half).
func ParseB3(v string) (SpanContext, bool) {
	var sc SpanContext
	var parts [4]string
	n := 0
	for {
		i := strings.IndexByte(v, '-')
		if n == 3 || i < 0 {
			parts[n] = v
			n++
			break
		}
		parts[n], v = v[:i], v[i+1:]
		n++
	}
	if n == 1 {
		s, ok := b3State(parts[0])
		sc.Sampling = s
		return sc, ok && s != SamplingDeferred
	}
	if !parseB3TraceID(&sc.TraceID, parts[0]) || !fromHex(sc.SpanID[:], parts[1]) || !sc.IsValid() {
		return SpanContext{}, false
	}
	if n >= 3 {
		s, ok := b3State(parts[2])
		if !ok || s == SamplingDeferred {
			return SpanContext{}, false
		}
		sc.Sampling = s
	}
	if n == 4 {
		var parent SpanID
		if !fromHex(parent[:], parts[3]) || !parent.IsValid() {
			return SpanContext{}, false
		}
	}
	return sc, true
}

func b3State(s string) (Sampling, bool) {
	switch s {
	case "0":
		return SamplingDrop, true
	case "1":
		return SamplingAccept, true
	case "d":
		return SamplingDebug, true
	}
	return SamplingDeferred, false
}

func parseB3TraceID(dst *TraceID, s string) bool {
	*dst = TraceID{}
	switch len(s) {
	case 32:
		return fromHex(dst[:], s)
	case 16:
		return fromHex(dst[8:], s)
	}
	return false
}

// extractB3Multi parses the X-B3-* headers. Any of them present but
// malformed, or an id without the other, makes the whole set invalid.
func extractB3Multi(h http.Header) (SpanContext, bool) {
	var sc SpanContext
	tid, sid, sampled, flags := h[hB3TraceID], h[hB3SpanID], h[hB3Sampled], h[hB3Flags]
	if tid == nil && sid == nil && sampled == nil && flags == nil {
		return sc, false
	}
	if len(tid) > 1 || len(sid) > 1 || len(sampled) > 1 || len(flags) > 1 || len(h[hB3ParentID]) > 1 || len(tid) != len(sid) {
		return SpanContext{}, false
	}
	if len(tid) == 1 {
		if !parseB3TraceID(&sc.TraceID, tid[0]) || !fromHex(sc.SpanID[:], sid[0]) || !sc.IsValid() {
			return SpanContext{}, false
		}
		if p := h[hB3ParentID]; len(p) == 1 {
			var parent SpanID
			if !fromHex(parent[:], p[0]) || !parent.IsValid() {
				return SpanContext{}, false
			}
		}
	}
	if len(sampled) == 1 {
		switch sampled[0] {
		case "1", "true":
			sc.Sampling = SamplingAccept
		case "0", "false":
			sc.Sampling = SamplingDrop
		default:
			return SpanContext{}, false
		}
	}
	if len(flags) == 1 {
		switch flags[0] {
		case "1":
			sc.Sampling = SamplingDebug
		case "0":
		default:
			return SpanContext{}, false
		}
	}
	if !sc.IsValid() && sc.Sampling == SamplingDeferred {
		return SpanContext{}, false // nothing usable: no ids, no decision
	}
	return sc, true
}

// Inject writes sc into h for the next hop: traceparent (and tracestate,
// when sc has one) always, plus B3 in each B3 format of sc.Formats. It
// removes every other propagation header first, so that no stale context
// of another span rides along. It does nothing for an invalid sc.
func Inject(h http.Header, sc SpanContext) { inject(h, sc, SpanID{}) }

// inject is Inject naming the parent of sc's span, which B3 carries.
func inject(h http.Header, sc SpanContext, parent SpanID) {
	if !sc.IsValid() {
		return
	}
	var tp [55]byte
	copy(tp[:], "00-")
	hex.Encode(tp[3:35], sc.TraceID[:])
	tp[35] = '-'
	hex.Encode(tp[36:52], sc.SpanID[:])
	tp[52], tp[53], tp[54] = '-', '0', '0'
	if sc.IsSampled() {
		tp[54] = '1'
	}
	setHeader(h, hTraceparent, string(tp[:]))
	if sc.TraceState != "" {
		setHeader(h, hTracestate, sc.TraceState)
	} else {
		delete(h, hTracestate)
	}
	for _, k := range PropagationHeaders[2:] {
		delete(h, k)
	}
	if sc.Formats&FormatB3Single != 0 {
		setHeader(h, hB3, b3Single(sc, parent))
	}
	if sc.Formats&FormatB3Multi != 0 {
		b3tid := sc.TraceID[:]
		if [8]byte(b3tid[:8]) == [8]byte{} {
			b3tid = b3tid[8:] // a 64-bit trace id stays 64-bit
		}
		setHeader(h, hB3TraceID, hex.EncodeToString(b3tid))
		setHeader(h, hB3SpanID, hex.EncodeToString(sc.SpanID[:]))
		if parent.IsValid() {
			setHeader(h, hB3ParentID, hex.EncodeToString(parent[:]))
		}
		switch sc.Sampling {
		case SamplingDebug:
			setHeader(h, hB3Flags, "1") // debug implies sampled: no X-B3-Sampled
		case SamplingAccept:
			setHeader(h, hB3Sampled, "1")
		case SamplingDrop:
			setHeader(h, hB3Sampled, "0")
		}
	}
}

func b3Single(sc SpanContext, parent SpanID) string {
	var buf [32 + 1 + 16 + 2 + 1 + 16]byte
	b := buf[:0]
	if [8]byte(sc.TraceID[:8]) == [8]byte{} {
		b = hex.AppendEncode(b, sc.TraceID[8:])
	} else {
		b = hex.AppendEncode(b, sc.TraceID[:])
	}
	b = append(b, '-')
	b = hex.AppendEncode(b, sc.SpanID[:])
	switch sc.Sampling {
	case SamplingDebug:
		b = append(b, "-d"...)
	case SamplingAccept:
		b = append(b, "-1"...)
	case SamplingDrop:
		b = append(b, "-0"...)
	default:
		return string(b) // no sampling state: no parent either
	}
	if parent.IsValid() {
		b = append(b, '-')
		b = hex.AppendEncode(b, parent[:])
	}
	return string(b)
}

// setHeader sets h[k] to v, reusing the slice already there: h belongs to
// the request being forwarded, and this saves an allocation per header.
func setHeader(h http.Header, k, v string) {
	if s := h[k]; len(s) > 0 {
		s[0] = v
		h[k] = s[:1]
		return
	}
	h[k] = []string{v}
}
