package main

import (
	"context"
	"errors"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// serveOnLoopback serves s on a loopback port for the test's life.
func serveOnLoopback(t *testing.T, s *grpc.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

// countingStream counts the messages a server stream received and sent.
type countingStream struct {
	grpc.ServerStream
	recv, sent *atomic.Int64
}

func (c countingStream) RecvMsg(m any) error {
	err := c.ServerStream.RecvMsg(m)
	if err == nil {
		c.recv.Add(1)
	}
	return err
}

func (c countingStream) SendMsg(m any) error {
	err := c.ServerStream.SendMsg(m)
	if err == nil {
		c.sent.Add(1)
	}
	return err
}

// The runner's echo backend and its client: every round trip the client
// counts is a message the server received and sent back, and the latency
// percentiles are those of real round trips.
func TestGRPCStreamEcho(t *testing.T) {
	var recv, sent atomic.Int64
	count := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, countingStream{ss, &recv, &sent})
	})
	address := serveOnLoopback(t, newGRPCStreamServer(count))
	const conns, d = 4, 300 * time.Millisecond
	r, err := grpcStreamRun(context.Background(), address, conns, d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.FirstError != "" {
		t.Fatalf("%d errors, first: %s", r.Errors, r.FirstError)
	}
	if r.Messages < conns {
		t.Fatalf("%d round trips on %d streams in %s", r.Messages, conns, d)
	}
	if recv.Load() != r.Messages || sent.Load() != r.Messages {
		t.Errorf("the client counted %d round trips; the server received %d messages and sent %d", r.Messages, recv.Load(), sent.Load())
	}
	if r.Seconds < d.Seconds() || r.Seconds > d.Seconds()+grpcStreamGrace.Seconds() {
		t.Errorf("the run took %.3f s, want %s to %s more", r.Seconds, d, grpcStreamGrace)
	}
	if want := float64(r.Messages) / r.Seconds; math.Abs(r.PerSecond-want) > 1e-6*want {
		t.Errorf("%.1f messages/s, want %d in %.3f s: %.1f", r.PerSecond, r.Messages, r.Seconds, want)
	}
	if !(r.P50 > 0 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.P999 && r.P999 < d.Seconds()*1000) {
		t.Errorf("percentiles p50 %v p90 %v p99 %v p99.9 %v ms: want positive, ordered and within the run", r.P50, r.P90, r.P99, r.P999)
	}
}

// A backend that does not echo faithfully shows as errors and no round
// trips, never as messages.
func TestGRPCStreamBrokenEcho(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler grpc.StreamHandler
	}{
		{"echo altered", func(_ any, s grpc.ServerStream) error {
			var m []byte
			for {
				if err := s.RecvMsg(&m); err != nil {
					return nil
				}
				m[len(m)-1]++
				if err := s.SendMsg(&m); err != nil {
					return err
				}
			}
		}},
		{"echo shortened", func(_ any, s grpc.ServerStream) error {
			var m []byte
			for {
				if err := s.RecvMsg(&m); err != nil {
					return nil
				}
				m = m[:len(m)/2]
				if err := s.SendMsg(&m); err != nil {
					return err
				}
			}
		}},
		{"no echo", func(_ any, s grpc.ServerStream) error {
			var m []byte
			for {
				if err := s.RecvMsg(&m); err != nil {
					return nil
				}
			}
		}},
		{"two echoes", func(_ any, s grpc.ServerStream) error {
			var m []byte
			for {
				if err := s.RecvMsg(&m); err != nil {
					return nil
				}
				for range 2 {
					if err := s.SendMsg(&m); err != nil {
						return err
					}
				}
			}
		}},
		{"stream refused", func(any, grpc.ServerStream) error { return errors.New("refused") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := grpcStreamDesc
			desc.Streams = []grpc.StreamDesc{grpcStreamDesc.Streams[0]}
			desc.Streams[0].Handler = tc.handler
			s := grpc.NewServer(grpc.ForceServerCodec(bytesCodec{}))
			s.RegisterService(&desc, nil)
			address := serveOnLoopback(t, s)
			r, err := grpcStreamRun(context.Background(), address, 2, 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if r.Errors == 0 || r.FirstError == "" {
				t.Errorf("no error counted: %+v", r)
			}
			if tc.name != "two echoes" && r.Messages != 0 {
				t.Errorf("%d round trips counted", r.Messages)
			}
		})
	}
}

func TestParseGRPCStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		out       string
		want      result
		wantFirst string
		wantErr   bool
	}{
		{"clean run", `{"messages":3000,"errors":0,"seconds":1.5,"messages_per_s":2000,"p50_ms":1,"p90_ms":2,"p99_ms":3,"p99_9_ms":4}`,
			result{ActualQPS: 2000, Requests: 3000, Seconds: 1.5, P50: 1, P90: 2, P99: 3, P999: 4}, "", false},
		{"errors count", `{"messages":10,"errors":2,"first_error":"ending the stream: reset","seconds":1,"messages_per_s":10}`,
			result{ActualQPS: 10, Requests: 10, Errors: 2, Seconds: 1}, "ending the stream: reset", false},
		{"no echo", `{"messages":0,"errors":16,"first_error":"opening a stream: refused","seconds":1}`,
			result{Errors: 16, Seconds: 1}, "opening a stream: refused", true},
		{"not the client's output", `bench failed`, result{}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, first, err := parseGRPCStream([]byte(tc.out))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if r.ActualQPS != tc.want.ActualQPS || r.Requests != tc.want.Requests || r.Errors != tc.want.Errors ||
				r.Seconds != tc.want.Seconds || r.P50 != tc.want.P50 || r.P999 != tc.want.P999 || first != tc.wantFirst {
				t.Errorf("got %+v, first error %q; want %+v, %q", r, first, tc.want, tc.wantFirst)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   float64
	}{
		{hundred, 50, 50},
		{hundred, 90, 90},
		{hundred, 99.9, 100},
		{hundred, 0, 1},
		{[]time.Duration{1500 * time.Microsecond}, 99, 1.5},
		{nil, 50, 0},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("p%v of %d samples = %v ms, want %v", tc.p, len(tc.sorted), got, tc.want)
		}
	}
}
