package trace

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
)

// Protocol is the OTLP transport to the collector.
type Protocol string

// OTLP transports, named as OTEL_EXPORTER_OTLP_PROTOCOL names them.
const (
	ProtocolGRPC Protocol = "grpc"          // the collector's trace service over gRPC (port 4317 by custom)
	ProtocolHTTP Protocol = "http/protobuf" // protobuf POST to /v1/traces (port 4318 by custom)
)

// Config configures a Tracer.
type Config struct {
	// Endpoint is the collector: host:port for gRPC; a URL for HTTP
	// ("http://127.0.0.1:4318", where a missing path means /v1/traces).
	Endpoint string
	// Protocol is how spans reach Endpoint; empty means gRPC.
	Protocol Protocol
	// TLS, when set, secures the connection to the collector; nil means
	// plaintext (a collector on loopback or the node). An https Endpoint
	// URL with nil TLS uses the system roots.
	TLS *tls.Config
	// Headers are sent with every export (gRPC metadata or HTTP headers),
	// for a collector that wants a token.
	Headers map[string]string
	// Exporter, when set, replaces Endpoint, Protocol, TLS and Headers.
	Exporter Exporter

	// SampleRatio is the share of new traces recorded, in [0, 1]. A trace
	// joined from an incoming request keeps the decision it carries
	// (parent-based); only a trace started here, or one whose sender left
	// the decision to the receiver (B3), is sampled at this ratio. The
	// decision follows from the trace id, so every proxy with the same
	// ratio decides the same for the same trace.
	SampleRatio float64

	// ServiceName is the resource's service.name, e.g. the workload's
	// service; empty means "weft-proxy".
	ServiceName string
	// Resource are more resource attributes describing this proxy (e.g.
	// "k8s.namespace.name", "weft.workload", "service.instance.id").
	Resource map[string]string

	// QueueSize bounds the spans waiting for export (default 2048). When
	// it is full, ended spans are dropped and counted, never waited for.
	QueueSize int
	// BatchSize is the most spans per export (default 512).
	BatchSize int
	// BatchTimeout is the longest a span waits for its batch to fill
	// (default 5s).
	BatchTimeout time.Duration
	// ExportTimeout bounds one export, retries of retryable errors
	// included (default 10s).
	ExportTimeout time.Duration

	// Logger gets export failures (at most one line per 30s with counts);
	// nil means slog.Default().
	Logger *slog.Logger
}

const (
	defaultQueueSize     = 2048
	defaultBatchSize     = 512
	defaultBatchTimeout  = 5 * time.Second
	defaultExportTimeout = 10 * time.Second
	logEvery             = 30 * time.Second
)

// Tracer makes spans for one proxy and exports the sampled ones to an
// OTLP collector in the background. Its methods are safe for concurrent
// use. A nil *Tracer is valid: it makes nil spans and leaves headers
// alone, so a proxy with tracing off passes trace headers through
// unchanged.
type Tracer struct {
	sampleAll   bool
	sampleBound uint64 // sampled when the trace id's low 63 bits are below

	queue    chan *Span
	closed   atomic.Bool
	flushReq chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	ctx      context.Context // of the exports; cancelled by a Shutdown that times out
	cancel   context.CancelFunc
	shutOnce sync.Once
	shutErr  error

	exporter      Exporter
	resource      *resourcepb.Resource
	batchSize     int
	batchTimeout  time.Duration
	exportTimeout time.Duration
	log           *slog.Logger

	spans, exported, dropped, failed atomic.Uint64
}

// Stats counts what became of the spans a Tracer recorded.
type Stats struct {
	Spans    uint64 // sampled spans ended
	Exported uint64 // accepted by the collector
	Dropped  uint64 // not exported because the queue was full or the Tracer shut down
	Failed   uint64 // not exported because the export failed
}

// New makes a Tracer and starts its exporter. The connection to the
// collector is made lazily: a collector that is down does not stop the
// proxy, its spans are counted as failed.
func New(cfg Config) (*Tracer, error) {
	if math.IsNaN(cfg.SampleRatio) || cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("trace: sample ratio %v is not in [0, 1]", cfg.SampleRatio)
	}
	if cfg.QueueSize < 0 || cfg.BatchSize < 0 || cfg.BatchTimeout < 0 || cfg.ExportTimeout < 0 {
		return nil, errors.New("trace: queue size, batch size and timeouts must not be negative")
	}
	exp := cfg.Exporter
	if exp == nil {
		var err error
		switch cfg.Protocol {
		case ProtocolGRPC, "":
			exp, err = NewGRPCExporter(cfg.Endpoint, cfg.TLS, cfg.Headers)
		case ProtocolHTTP:
			exp, err = NewHTTPExporter(cfg.Endpoint, cfg.TLS, cfg.Headers)
		default:
			err = fmt.Errorf("unknown OTLP protocol %q (want %q or %q)", cfg.Protocol, ProtocolGRPC, ProtocolHTTP)
		}
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
	}
	t := &Tracer{
		sampleAll:     cfg.SampleRatio >= 1,
		sampleBound:   uint64(cfg.SampleRatio * (1 << 63)),
		flushReq:      make(chan chan struct{}),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
		exporter:      exp,
		resource:      newResource(cfg.ServiceName, cfg.Resource),
		batchSize:     orDefault(cfg.BatchSize, defaultBatchSize),
		batchTimeout:  orDefault(cfg.BatchTimeout, defaultBatchTimeout),
		exportTimeout: orDefault(cfg.ExportTimeout, defaultExportTimeout),
		log:           cfg.Logger,
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.queue = make(chan *Span, orDefault(cfg.QueueSize, defaultQueueSize))
	t.ctx, t.cancel = context.WithCancel(context.Background())
	go t.run()
	return t, nil
}

func orDefault[T int | time.Duration](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}

// Start makes a span of the given kind, the child of parent when parent
// is valid (same trace, parent's sampling decision and tracestate) or the
// root of a new trace otherwise (parent's decision if it carries one,
// else the sample ratio). The span is propagated in parent.Formats plus
// W3C. Nil Tracer: nil span.
func (t *Tracer) Start(parent SpanContext, kind Kind) *Span {
	if t == nil {
		return nil
	}
	s := &Span{t: t, kind: kind, grpcCode: -1, start: time.Now()}
	s.sc = SpanContext{SpanID: newSpanID(), Sampling: parent.Sampling, Formats: parent.Formats | FormatW3C}
	if parent.IsValid() {
		s.sc.TraceID, s.parent, s.sc.TraceState = parent.TraceID, parent.SpanID, parent.TraceState
	} else {
		s.sc.TraceID = newTraceID()
	}
	if s.sc.Sampling == SamplingDeferred {
		s.sc.Sampling = SamplingDrop
		if t.sampleAll || binary.BigEndian.Uint64(s.sc.TraceID[8:])>>1 < t.sampleBound {
			s.sc.Sampling = SamplingAccept
		}
	}
	s.recorded = s.sc.IsSampled()
	return s
}

// StartRequest starts the span of a request the proxy carries: the child
// of the context in r's headers (or a new trace), with r's method, path
// and protocol recorded, and it rewrites r's headers to carry the new
// span instead, so that whoever r goes to next makes children of it.
// Call it before r is forwarded and End the span when the response is
// done. A nil Tracer does nothing to r.
func (t *Tracer) StartRequest(r *http.Request, kind Kind) *Span {
	if t == nil {
		return nil
	}
	s := t.Start(Extract(r.Header), kind)
	s.SetRequest(r)
	s.Inject(r.Header)
	return s
}

// StartInbound is StartRequest for a request from a peer (or a client
// outside the mesh) to the local app: a server span, whose context the
// app receives in the request's headers.
//
// That is what links the two sides of the app: an app that forwards the
// trace headers it received onto its own calls (as the W3C and B3 docs
// ask) hands this span's context to the proxy's outbound side, whose
// StartOutbound then makes its client span a child of this one. The proxy
// needs no state shared between the two sides, and an app that forwards
// nothing simply starts new traces.
func (t *Tracer) StartInbound(r *http.Request) *Span { return t.StartRequest(r, KindServer) }

// StartOutbound is StartRequest for a request from the local app to a
// service: a client span, the child of the context the app forwarded
// (the inbound server span, see StartInbound), whose context the peer
// proxy receives.
func (t *Tracer) StartOutbound(r *http.Request) *Span { return t.StartRequest(r, KindClient) }

// Stats returns what became of the spans so far.
func (t *Tracer) Stats() Stats {
	if t == nil {
		return Stats{}
	}
	return Stats{Spans: t.spans.Load(), Exported: t.exported.Load(), Dropped: t.dropped.Load(), Failed: t.failed.Load()}
}

// enqueue hands an ended span to the exporter without ever blocking.
func (t *Tracer) enqueue(s *Span) {
	t.spans.Add(1)
	if t.closed.Load() {
		t.dropped.Add(1)
		return
	}
	select {
	case t.queue <- s:
	default:
		t.dropped.Add(1)
	}
}

// Flush exports every span ended before the call and waits for that
// export, or for ctx.
func (t *Tracer) Flush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	ch := make(chan struct{})
	select {
	case t.flushReq <- ch:
	case <-t.done:
		return errors.New("trace: flush: tracer is shut down")
	case <-ctx.Done():
		return fmt.Errorf("trace: flush: %w", ctx.Err())
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("trace: flush: %w", ctx.Err())
	}
}

// Shutdown stops taking spans, exports those queued and closes the
// connection to the collector. When ctx ends first, the export in
// progress is abandoned and the spans left are dropped. Only the first
// call does anything; later ones return its result.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.shutOnce.Do(func() {
		t.closed.Store(true)
		close(t.stop)
		select {
		case <-t.done:
		case <-ctx.Done():
			t.cancel()
			<-t.done
			t.shutErr = fmt.Errorf("trace: shutdown: spans left unexported: %w", ctx.Err())
		}
		t.cancel()
		if err := t.exporter.Shutdown(ctx); err != nil {
			t.shutErr = errors.Join(t.shutErr, fmt.Errorf("trace: shutdown: %w", err))
		}
	})
	return t.shutErr
}

// run batches queued spans and exports them, until Shutdown.
func (t *Tracer) run() {
	defer close(t.done)
	batch := make([]*Span, 0, t.batchSize)
	timer := time.NewTimer(t.batchTimeout)
	timer.Stop()
	var fails failureLog
	send := func() {
		if len(batch) > 0 {
			t.export(batch, &fails)
			clear(batch)
			batch = batch[:0]
		}
		timer.Stop()
	}
	drain := func() {
		for {
			select {
			case s := <-t.queue:
				batch = append(batch, s)
				if len(batch) == t.batchSize {
					send()
				}
			default:
				send()
				return
			}
		}
	}
	for {
		select {
		case s := <-t.queue:
			batch = append(batch, s)
			if len(batch) == 1 {
				timer.Reset(t.batchTimeout)
			}
			if len(batch) == t.batchSize {
				send()
			}
		case <-timer.C:
			send()
		case ch := <-t.flushReq:
			drain()
			close(ch)
		case <-t.stop:
			drain()
			fails.flush(t.log)
			return
		}
	}
}

// export sends one batch, retrying retryable errors until ExportTimeout.
func (t *Tracer) export(batch []*Span, fails *failureLog) {
	ctx, cancel := context.WithTimeout(t.ctx, t.exportTimeout)
	defer cancel()
	req := t.request(batch)
	backoff := 100 * time.Millisecond
	for {
		err := t.exporter.Export(ctx, req)
		if err == nil {
			t.exported.Add(uint64(len(batch)))
			return
		}
		var re *RetryableError
		if errors.As(err, &re) {
			wait := max(backoff, re.After)
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > wait {
				select {
				case <-time.After(wait):
					backoff = min(2*backoff, 2*time.Second)
					continue
				case <-ctx.Done():
				}
			}
		}
		t.failed.Add(uint64(len(batch)))
		fails.add(t.log, len(batch), err)
		return
	}
}

// failureLog logs export failures at most once per logEvery.
type failureLog struct {
	last         time.Time
	spans, times int
	err          error
}

func (f *failureLog) add(log *slog.Logger, spans int, err error) {
	f.spans += spans
	f.times++
	f.err = err
	if time.Since(f.last) >= logEvery {
		f.flush(log)
	}
}

func (f *failureLog) flush(log *slog.Logger) {
	if f.times == 0 {
		return
	}
	log.Warn("trace export failed", "err", f.err, "exports", f.times, "spans", f.spans)
	f.last, f.spans, f.times, f.err = time.Now(), 0, 0, nil
}
