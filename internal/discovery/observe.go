package discovery

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Observer is told what the server does, so the control plane can count it
// (metrics) without this package knowing how. Its methods are called on the
// streams' goroutines, concurrently, and must not block.
type Observer interface {
	// StreamStarted is called once for every stream: OutcomeOK when it is
	// accepted, else why it was turned away.
	StreamStarted(Outcome)
	// StreamEnded is called once for every accepted stream, when it ends.
	StreamEnded(Outcome)
	// Pushed is called for every response the server tried to send.
	Pushed(Push)
}

// Outcome is how a stream started or ended; it has only the values below,
// so it can be a metric label.
type Outcome string

const (
	// OutcomeOK: accepted; or, at the end, closed by the proxy (including
	// by cancelling its stream, which is how a proxy stops) or by the
	// control plane shutting down.
	OutcomeOK Outcome = "ok"
	// OutcomeRefused: the caller may not be the proxy of the workload it
	// named, or the server was shutting down when it called.
	OutcomeRefused Outcome = "refused"
	// OutcomeError: a bad request or a broken stream.
	OutcomeError Outcome = "error"
)

// Push is one response sent, or that failed to send.
type Push struct {
	// Full is set when the response carries a full state: the stream's
	// first response, or the whole state of a service the proxy did not
	// hold (new subscription, service created or deleted). Else it carries
	// only deltas, the workload, its authorization or the trust bundle.
	Full bool
	// Err is the send's error, nil when it was sent.
	Err error
	// FromSnapshot is set when the response carries a change of the
	// model, and Lag is then the time from the server seeing the oldest
	// snapshot among those it carries to the response being handed to
	// gRPC. Responses for new subscriptions or a new trust bundle have no
	// snapshot to measure from.
	FromSnapshot bool
	Lag          time.Duration
}

// nopObserver is the observer of a server given none.
type nopObserver struct{}

func (nopObserver) StreamStarted(Outcome) {}
func (nopObserver) StreamEnded(Outcome)   {}
func (nopObserver) Pushed(Push)           {}

func (s *Server) observer() Observer {
	if s.Observer == nil {
		return nopObserver{}
	}
	return s.Observer
}

// startOutcome classifies the error a stream is turned away with.
func startOutcome(err error) Outcome {
	if refused(err) {
		return OutcomeRefused
	}
	return OutcomeError
}

// endOutcome classifies the error an accepted stream ends with.
func endOutcome(err error) Outcome {
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, context.Canceled), status.Code(err) == codes.Canceled:
		// The proxy closed or cancelled its stream: how a proxy stops.
		return OutcomeOK
	case errors.Is(err, errShuttingDown):
		// The control plane's doing, not the proxy's.
		return OutcomeOK
	case refused(err):
		return OutcomeRefused
	}
	return OutcomeError
}

func refused(err error) bool {
	if errors.Is(err, errShuttingDown) {
		return true
	}
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return false
}
