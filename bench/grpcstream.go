package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// The gRPC streaming workload: fortio's gRPC client makes unary calls only
// and ghz is not available, so the runner serves and drives a bidirectional
// stream itself. The service is declared by hand and carries raw bytes, so
// no generated code is needed on either side.
const (
	grpcStreamMethod  = "/weft.bench.Echo/Stream"
	grpcStreamMsgSize = 1024
	// grpcStreamGrace is how long past the run's end a round trip in
	// flight may take before its stream is abandoned and counted as an
	// error: no proxy on loopback takes a second to pass 1 KiB on.
	grpcStreamGrace = time.Second
)

var grpcStreamDesc = grpc.ServiceDesc{
	ServiceName: "weft.bench.Echo",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		Handler:       echoStream,
		ServerStreams: true,
		ClientStreams: true,
	}},
}

// bytesCodec carries a message as the bytes it is: every message of the
// service is a *[]byte.
type bytesCodec struct{}

func (bytesCodec) Name() string { return "bytes" }

func (bytesCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("bytes codec: cannot marshal a %T", v)
	}
	// A copy: gRPC may still be writing a message out after SendMsg has
	// returned, even after an echo came back (a broken server may echo
	// before it has all of it), and the caller reuses its buffer.
	return bytes.Clone(*b), nil
}

func (bytesCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("bytes codec: cannot unmarshal into a %T", v)
	}
	// gRPC reuses data's buffer once Unmarshal returns.
	*b = append((*b)[:0], data...)
	return nil
}

// echoStream sends every message of the stream back until the client
// closes its side.
func echoStream(_ any, s grpc.ServerStream) error {
	var msg []byte
	for {
		if err := s.RecvMsg(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := s.SendMsg(&msg); err != nil {
			return err
		}
	}
}

func newGRPCStreamServer(opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(append(opts, grpc.ForceServerCodec(bytesCodec{}))...)
	s.RegisterService(&grpcStreamDesc, nil)
	return s
}

// grpcStreamServe serves the echo stream at address until the process ends.
func grpcStreamServe(address string) error {
	l, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("gRPC stream backend: %w", err)
	}
	if err := newGRPCStreamServer().Serve(l); err != nil {
		return fmt.Errorf("gRPC stream backend: %w", err)
	}
	return nil
}

// grpcStreamResult is what the gRPC stream client prints.
type grpcStreamResult struct {
	// Messages counts round trips: a message out and its echo back, the
	// same bytes.
	Messages int64 `json:"messages"`
	// Errors counts streams that failed and echoes that differed from
	// what was sent.
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"messages_per_s"`
	// Round-trip latency percentiles in milliseconds.
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
}

// grpcStreamGet runs the client against address and prints its result as
// JSON.
func grpcStreamGet(address string, conns int, d time.Duration) error {
	r, err := grpcStreamRun(context.Background(), address, conns, d)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// grpcStreamRun opens conns client connections to address (h2c, as
// fortio's gRPC client does), one stream on each, and plays ping-pong with
// 1 KiB messages on every stream as fast as it goes for d.
func grpcStreamRun(ctx context.Context, address string, conns int, d time.Duration) (grpcStreamResult, error) {
	if conns < 1 {
		return grpcStreamResult{}, fmt.Errorf("gRPC stream client: %d connections", conns)
	}
	clients := make([]*grpc.ClientConn, 0, conns)
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for range conns {
		c, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})))
		if err != nil {
			return grpcStreamResult{}, fmt.Errorf("gRPC stream client for %s: %w", address, err)
		}
		clients = append(clients, c)
	}
	// Connect before the clock starts: a client connects lazily, and the
	// first round trip of each stream would pay for the handshakes.
	for _, c := range clients {
		if err := connected(ctx, c); err != nil {
			return grpcStreamResult{}, fmt.Errorf("gRPC stream client for %s: %w", address, err)
		}
	}
	start := time.Now()
	end := start.Add(d)
	outs := make([]streamOutcome, conns)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { outs[i] = pingPong(ctx, c, end) })
	}
	wg.Wait()
	r := grpcStreamResult{Seconds: time.Since(start).Seconds()}
	// Every round trip's latency is kept, and the percentiles are read
	// from the sorted whole (nearest rank): exact, and at most a few
	// hundred thousand samples of 8 bytes in a full run.
	var rtts []time.Duration
	for _, o := range outs {
		rtts = append(rtts, o.rtts...)
		r.Errors += o.errors
		if o.first != nil && r.FirstError == "" {
			r.FirstError = o.first.Error()
		}
	}
	slices.Sort(rtts)
	r.Messages = int64(len(rtts))
	r.PerSecond = float64(r.Messages) / r.Seconds
	r.P50, r.P90, r.P99, r.P999 = percentile(rtts, 50), percentile(rtts, 90), percentile(rtts, 99), percentile(rtts, 99.9)
	return r, nil
}

// connected connects c and waits, 10 s at most, until it is ready.
func connected(ctx context.Context, c *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c.Connect()
	for st := c.GetState(); st != connectivity.Ready; st = c.GetState() {
		if !c.WaitForStateChange(ctx, st) {
			return fmt.Errorf("not connected within 10s (%s): %w", st, ctx.Err())
		}
	}
	return nil
}

// percentile is the nearest-rank percentile p of sorted, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := max(0, int(math.Ceil(p/100*float64(len(sorted))))-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// streamOutcome is one stream's round trips and errors.
type streamOutcome struct {
	rtts   []time.Duration
	errors int64
	first  error
}

func (o *streamOutcome) fail(err error) {
	o.errors++
	if o.first == nil {
		o.first = err
	}
}

// pingPong sends a message on a new stream of c, waits for its echo, and
// again until end; then it closes its side and expects the server to end
// the stream cleanly. A stream that fails is not reopened: its error is
// counted and its round trips so far stand.
func pingPong(ctx context.Context, c *grpc.ClientConn, end time.Time) streamOutcome {
	var o streamOutcome
	ctx, cancel := context.WithDeadline(ctx, end.Add(grpcStreamGrace))
	defer cancel()
	s, err := c.NewStream(ctx, &grpcStreamDesc.Streams[0], grpcStreamMethod)
	if err != nil {
		o.fail(fmt.Errorf("opening a stream: %w", err))
		return o
	}
	out, in := make([]byte, grpcStreamMsgSize), make([]byte, 0, grpcStreamMsgSize)
	for seq := uint64(0); time.Now().Before(end); seq++ {
		binary.BigEndian.PutUint64(out, seq)
		t0 := time.Now()
		if err := s.SendMsg(&out); err != nil {
			o.fail(fmt.Errorf("sending message %d: %w", seq, streamEnd(s, err)))
			return o
		}
		if err := s.RecvMsg(&in); err != nil {
			o.fail(fmt.Errorf("receiving the echo of message %d: %w", seq, err))
			return o
		}
		rtt := time.Since(t0)
		if !bytes.Equal(in, out) {
			o.fail(fmt.Errorf("the echo of message %d differs from it (%d bytes back)", seq, len(in)))
			continue
		}
		o.rtts = append(o.rtts, rtt)
	}
	if err := s.CloseSend(); err != nil {
		o.fail(fmt.Errorf("closing the stream: %w", err))
		return o
	}
	switch err := s.RecvMsg(&in); {
	case err == nil:
		o.fail(fmt.Errorf("a message after the last echo (%d bytes)", len(in)))
	case !errors.Is(err, io.EOF):
		o.fail(fmt.Errorf("ending the stream: %w", err))
	}
	return o
}

// streamEnd turns SendMsg's io.EOF, which says only that the stream is
// over, into the status it ended with.
func streamEnd(s grpc.ClientStream, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	var discard []byte
	if err := s.RecvMsg(&discard); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return errors.New("the server ended the stream")
}
