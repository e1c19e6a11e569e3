package trace

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
)

// TraceID names a trace: 16 bytes, never all zero when valid.
type TraceID [16]byte

// SpanID names a span within a trace: 8 bytes, never all zero when valid.
type SpanID [8]byte

// IsValid reports whether id is not all zeros.
func (id TraceID) IsValid() bool { return id != TraceID{} }

// IsValid reports whether id is not all zeros.
func (id SpanID) IsValid() bool { return id != SpanID{} }

// String is the 32 lowercase hex digits of W3C trace context.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// String is the 16 lowercase hex digits of W3C trace context.
func (id SpanID) String() string { return hex.EncodeToString(id[:]) }

// newTraceID returns a random trace id. math/rand/v2's global source is
// ChaCha8 seeded by the runtime: unpredictable enough for ids, and it
// costs no syscall and no lock on the hot path.
func newTraceID() TraceID {
	var id TraceID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() SpanID {
	var id SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// fromHex decodes exactly len(dst)*2 lowercase hex digits into dst (the
// only digits W3C trace context and B3 allow); it reports false, dst then
// undefined, on any other input. encoding/hex would take uppercase too and
// returns errors that allocate.
func fromHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
