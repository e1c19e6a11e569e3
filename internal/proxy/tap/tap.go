package tap

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one request a proxy finished, as tap shows it.
type Event struct {
	Time time.Time `json:"time"`
	// Proxy is the workload whose proxy saw the request.
	Proxy string `json:"proxy"`
	// Direction is inbound (a call the workload took) or outbound (a call
	// it made).
	Direction string `json:"direction"`
	Protocol  string `json:"protocol"`
	Method    string `json:"method,omitempty"`
	Authority string `json:"authority,omitempty"`
	// Path is the request's path without its query, which may carry
	// secrets.
	Path string `json:"path,omitempty"`
	// Status is the HTTP status the caller got; GRPCStatus the gRPC code,
	// when the answer carried one.
	Status     int    `json:"status"`
	GRPCStatus string `json:"grpcStatus,omitempty"`
	// Latency is from the request's arrival to the end of the answer's
	// headers.
	Latency time.Duration `json:"latencyNs"`
	// SourceIdentity and DestinationIdentity are SPIFFE IDs, empty where
	// unknown (a plaintext caller).
	SourceIdentity      string `json:"sourceIdentity,omitempty"`
	SourceWorkload      string `json:"sourceWorkload,omitempty"`
	DestinationIdentity string `json:"destinationIdentity,omitempty"`
	DestinationService  string `json:"destinationService,omitempty"`
	DestinationWorkload string `json:"destinationWorkload,omitempty"`
	Route               string `json:"route,omitempty"`
	// TLS says whether the mesh hop was mutual TLS.
	TLS bool `json:"tls"`
	// Error says why the proxy answered for the upstream, when it did.
	Error string `json:"error,omitempty"`
}

// Filter selects events; each field set must match.
type Filter struct {
	// Workload matches the proxy's workload or the source or destination
	// workload, "namespace/name".
	Workload string
	// Service matches the destination service, "namespace/name".
	Service string
	// PathPrefix matches the start of the path.
	PathPrefix string
	// Method matches the method exactly.
	Method string
	// Direction is inbound or outbound.
	Direction string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e *Event) bool {
	if f.Workload != "" && f.Workload != e.Proxy && f.Workload != e.SourceWorkload && f.Workload != e.DestinationWorkload {
		return false
	}
	return (f.Service == "" || f.Service == e.DestinationService) &&
		(f.PathPrefix == "" || strings.HasPrefix(e.Path, f.PathPrefix)) &&
		(f.Method == "" || f.Method == e.Method) &&
		(f.Direction == "" || f.Direction == e.Direction)
}

// Query is the filter in URL query form, as Serve reads it.
func (f Filter) Query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"workload": f.Workload, "service": f.Service, "path": f.PathPrefix, "method": f.Method, "direction": f.Direction} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// ParseFilter reads a filter from URL query parameters.
func ParseFilter(q url.Values) (Filter, error) {
	f := Filter{Workload: q.Get("workload"), Service: q.Get("service"), PathPrefix: q.Get("path"), Method: q.Get("method"), Direction: q.Get("direction")}
	switch f.Direction {
	case "", "inbound", "outbound":
	default:
		return Filter{}, fmt.Errorf("tap filter: direction %q: want inbound or outbound", f.Direction)
	}
	if f.PathPrefix != "" && !strings.HasPrefix(f.PathPrefix, "/") {
		return Filter{}, fmt.Errorf("tap filter: path %q: a path starts with /", f.PathPrefix)
	}
	return f, nil
}

// Hub fans events out to subscribers.
type Hub struct {
	active atomic.Int32
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
}

type subscriber struct {
	filter  Filter
	events  chan *Event
	dropped atomic.Uint64
}

// NewHub returns a hub without subscribers.
func NewHub() *Hub { return &Hub{subs: map[*subscriber]struct{}{}} }

// Active reports whether anyone taps, so callers can skip building events.
func (h *Hub) Active() bool { return h.active.Load() > 0 }

// Publish hands e to every subscriber whose filter it passes, dropping it
// for those whose buffer is full.
func (h *Hub) Publish(e *Event) {
	if !h.Active() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if !s.filter.Match(e) {
			continue
		}
		select {
		case s.events <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

// subscribe adds a subscriber until the returned cancel is called.
func (h *Hub) subscribe(f Filter, buffer int) (*subscriber, func()) {
	s := &subscriber{filter: f, events: make(chan *Event, buffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	h.active.Add(1)
	return s, func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
		h.active.Add(-1)
	}
}

// Record is one line of a tap stream: an event, a count of events dropped
// because the reader was too slow, or a note about the stream itself.
// Every field but one is empty; readers skip records they do not know, so
// fields can be added.
type Record struct {
	Event   *Event `json:"event,omitempty"`
	Dropped uint64 `json:"dropped,omitempty"`
	// Proxy names the proxy (its workload) a Dropped count or a Note is
	// about, in a stream that merges several proxies' (the control
	// plane's); a proxy's own stream leaves it empty.
	Proxy string `json:"proxy,omitempty"`
	// Note says something about the stream rather than a request: a proxy
	// joined, left or cannot be tapped, or a limit was reached.
	Note string `json:"note,omitempty"`
}

// Serve streams the events that pass the request's filter (query
// parameters workload, service, path, method, direction) as JSON lines
// until the request ends, flushing after each.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s, cancel := h.subscribe(f, 1024)
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	enc := json.NewEncoder(w)
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case e := <-s.events:
			if d := s.dropped.Load(); d > reported {
				if enc.Encode(Record{Dropped: d - reported}) != nil {
					return
				}
				reported = d
			}
			if enc.Encode(Record{Event: e}) != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// Read calls fn with each record of a tap stream until the stream ends,
// fn returns an error, or ctx ends.
func Read(ctx context.Context, body interface{ Read([]byte) (int, error) }, fn func(Record) error) error {
	dec := json.NewDecoder(body)
	for ctx.Err() == nil {
		var rec Record
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("tap stream: %w", err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return ctx.Err()
}
