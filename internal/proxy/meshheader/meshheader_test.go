package meshheader

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
)

func TestParseTargetPort(t *testing.T) {
	tests := []struct {
		desc    string
		vals    []string
		want    uint32
		wantErr bool
		missing bool
	}{
		{desc: "plain", vals: []string{"8080"}, want: 8080},
		{desc: "lowest", vals: []string{"1"}, want: 1},
		{desc: "highest", vals: []string{"65535"}, want: 65535},
		{desc: "missing", missing: true, wantErr: true},
		{desc: "empty", vals: []string{""}, wantErr: true},
		{desc: "zero", vals: []string{"0"}, wantErr: true},
		{desc: "leading zero", vals: []string{"080"}, wantErr: true},
		{desc: "too big", vals: []string{"65536"}, wantErr: true},
		{desc: "way too big", vals: []string{"99999999999"}, wantErr: true},
		{desc: "sign", vals: []string{"+80"}, wantErr: true},
		{desc: "space", vals: []string{" 80"}, wantErr: true},
		{desc: "hex", vals: []string{"0x50"}, wantErr: true},
		{desc: "two values", vals: []string{"80", "81"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.vals {
				h.Add(TargetPort, v)
			}
			got, err := ParseTargetPort(h)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseTargetPort(%q) error = %v, want error %v", tc.vals, err, tc.wantErr)
			}
			if errors.Is(err, ErrMissing) != tc.missing {
				t.Fatalf("ParseTargetPort(%q) error = %v, want ErrMissing %v", tc.vals, err, tc.missing)
			}
			if got != tc.want {
				t.Fatalf("ParseTargetPort(%q) = %d, want %d", tc.vals, got, tc.want)
			}
		})
	}
}

func TestParseProto(t *testing.T) {
	tests := []struct {
		desc    string
		vals    []string
		want    string
		wantErr bool
	}{
		{desc: "http1", vals: []string{"http/1.1"}, want: ProtoHTTP1},
		{desc: "h2", vals: []string{"h2"}, want: ProtoHTTP2},
		{desc: "missing", wantErr: true},
		{desc: "unknown", vals: []string{"h3"}, wantErr: true},
		{desc: "case matters", vals: []string{"H2"}, wantErr: true},
		{desc: "two", vals: []string{"h2", "h2"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.vals {
				h.Add(Proto, v)
			}
			got, err := ParseProto(h)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseProto(%q) = %q, %v; want %q, error %v", tc.vals, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestStrip(t *testing.T) {
	h := http.Header{
		"Weft-Target-Port": {"80"},
		"weft-proto":       {"h2"},
		"WEFT-ANYTHING":    {"x"},
		"Weftish":          {"kept"},
		"Content-Type":     {"text/plain"},
	}
	Strip(h)
	if len(h) != 2 || h.Get("Weftish") != "kept" || h.Get("Content-Type") != "text/plain" {
		t.Fatalf("Strip left %v, want only Weftish and Content-Type", h)
	}
}

func TestIsTap(t *testing.T) {
	for _, tc := range []struct {
		h    http.Header
		want bool
	}{
		{http.Header{}, false},
		{http.Header{Tap: {TapValue}}, true},
		// Any value asks: a request that merely mentions tap never goes
		// to the app.
		{http.Header{Tap: {"0"}}, true},
		{http.Header{Tap: {""}}, true},
		{http.Header{"Weft-Tapped": {"1"}}, false},
	} {
		if got := IsTap(tc.h); got != tc.want {
			t.Errorf("IsTap(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
	// Outbound proxies strip what apps send, so an app cannot forge it.
	h := http.Header{Tap: {TapValue}}
	Strip(h)
	if IsTap(h) {
		t.Error("Strip kept the tap header")
	}
}

// FuzzParseTargetPort checks that any header value either fails or yields
// a port in range whose canonical spelling is the input.
func FuzzParseTargetPort(f *testing.F) {
	for _, s := range []string{"8080", "0", "65535", "65536", "+1", "", "00080", "1\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{TargetPort: {s}}
		port, err := ParseTargetPort(h)
		if err != nil {
			return
		}
		if port < 1 || port > 65535 {
			t.Fatalf("ParseTargetPort(%q) = %d, out of range", s, port)
		}
		if strconv.FormatUint(uint64(port), 10) != s {
			t.Fatalf("ParseTargetPort(%q) = %d, not the canonical spelling", s, port)
		}
	})
}

// FuzzParseProto checks that only the two known values are accepted.
func FuzzParseProto(f *testing.F) {
	for _, s := range []string{"h2", "http/1.1", "HTTP/1.1", "", "h2c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseProto(http.Header{Proto: {s}})
		if err == nil && got != ProtoHTTP1 && got != ProtoHTTP2 {
			t.Fatalf("ParseProto(%q) = %q", s, got)
		}
	})
}
