package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
	"github.com/weftmesh/weft/internal/proxy/tap"
)

// A tap (GET /api/v1/tap, admin token required) merges the tap streams of
// the connected proxies into one stream of JSON lines (tap.Record). The
// control plane connects to each proxy's inbound port with its own SVID,
// the only identity a proxy serves tap to, and requires the proxy to prove
// the service account of its workload, as any mesh hop does; the proxies
// filter, so only matching requests cross the network. The set of proxies
// follows the connected ones: a proxy that connects joins, one that goes
// away leaves, one that cannot be tapped is retried with backoff, and each
// of these is a note in the stream.

// maxTapped bounds the proxies one tap streams from at once: each is a
// connection and two goroutines here, and a tap of a mesh that large is
// better narrowed to a workload. A variable so tests can lower it.
var maxTapped = 256

// tapPoll is how often a tap looks for proxies that connected or left. The
// discovery server does not announce them, and listing them is cheap.
var tapPoll = time.Second

// Backoff between attempts to tap a proxy whose tap failed or ended.
var tapRetryMin, tapRetryMax = time.Second, 30 * time.Second

// tapDialTimeout bounds the connection, handshake and response headers of
// one proxy's tap, so one unreachable proxy only delays its own records.
const tapDialTimeout = 10 * time.Second

// serveTap streams the merged tap of the proxies the filter concerns until
// the client goes away or the admin server shuts down.
func (cp *ControlPlane) serveTap(w http.ResponseWriter, r *http.Request) {
	f, err := tap.ParseFilter(r.URL.Query())
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var only model.Ref
	for _, p := range []struct{ name, value string }{{"workload", f.Workload}, {"service", f.Service}} {
		if p.value == "" {
			continue
		}
		ref, err := model.ParseRef(p.value, "")
		if err != nil || !strings.Contains(p.value, "/") {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("tap filter: %s %q: want namespace/name", p.name, p.value))
			return
		}
		if p.name == "workload" {
			only = ref
		}
	}
	log := cp.opts.Logger.With("component", "tap", "filter", r.URL.RawQuery, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(shuttingDown(r), cancel)
	s := &tapSession{cp: cp, filter: f, only: only, records: make(chan tap.Record, 256), log: log}
	defer func() {
		stop()
		cancel()
		s.wg.Wait()
	}()
	log.Info("tap started")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx)
	}()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for {
		select {
		case <-ctx.Done():
			log.Info("tap ended")
			return
		case rec := <-s.records:
			if err := enc.Encode(rec); err != nil {
				log.Info("tap ended", "reason", err)
				return
			}
			if err := rc.Flush(); err != nil {
				log.Info("tap ended", "reason", err)
				return
			}
		}
	}
}

// tapSession is one client's tap.
type tapSession struct {
	cp     *ControlPlane
	filter tap.Filter
	// only, when set, is the one workload whose proxy is tapped.
	only    model.Ref
	records chan tap.Record
	log     *slog.Logger
	wg      sync.WaitGroup
}

// tapTarget is where a proxy is tapped and whom it must prove to be.
type tapTarget struct {
	addr string
	want spiffeid.ID // the workload's service account
}

// proxyTap is one proxy's part of a session.
type proxyTap struct {
	target tapTarget
	cancel context.CancelFunc
}

// note sends a note about the stream; false once ctx has ended.
func (s *tapSession) note(ctx context.Context, proxy, format string, args ...any) bool {
	return s.send(ctx, tap.Record{Proxy: proxy, Note: fmt.Sprintf(format, args...)})
}

func (s *tapSession) send(ctx context.Context, rec tap.Record) bool {
	select {
	case s.records <- rec:
		return true
	case <-ctx.Done():
		return false
	}
}

// run keeps a tap open to each proxy the session concerns, joining and
// dropping them as they connect and go, until ctx ends.
func (s *tapSession) run(ctx context.Context) {
	taps := map[model.Ref]*proxyTap{}
	defer func() {
		for _, pt := range taps {
			pt.cancel()
		}
	}()
	// noted remembers the last note of each kind, so a state that lasts is
	// said once, not at every poll.
	noted := map[string]string{}
	once := func(key, proxy, format string, args ...any) bool {
		msg := fmt.Sprintf(format, args...)
		if noted[key] == msg {
			return true
		}
		noted[key] = msg
		return s.note(ctx, proxy, "%s", msg)
	}
	tick := time.NewTicker(tapPoll)
	defer tick.Stop()
	for first := true; ; first = false {
		targets, order, matching, problems := s.targets()
		for ref, pt := range taps {
			t, ok := targets[ref]
			if ok && t == pt.target {
				continue
			}
			pt.cancel()
			delete(taps, ref)
			if !ok {
				s.log.Info("proxy left the tap", "workload", ref.String())
				if !s.note(ctx, ref.String(), "left the tap: its proxy is no longer connected") {
					return
				}
			}
		}
		for _, ref := range order {
			if _, ok := taps[ref]; ok {
				continue
			}
			t := targets[ref]
			pctx, pcancel := context.WithCancel(ctx)
			taps[ref] = &proxyTap{target: t, cancel: pcancel}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.tapProxy(pctx, ref, t)
			}()
			if !first {
				s.log.Info("proxy joined the tap", "workload", ref.String())
				if !s.note(ctx, ref.String(), "joined the tap") {
					return
				}
			}
		}
		current := map[string]bool{}
		for _, p := range problems {
			current["problem "+p.proxy] = true
			if !once("problem "+p.proxy, p.proxy, "%s", p.msg) {
				return
			}
		}
		for key := range noted {
			if strings.HasPrefix(key, "problem ") && !current[key] {
				delete(noted, key) // fixed: say it again if it comes back
			}
		}
		switch {
		case first && s.only.Name != "" && matching == 0 && len(problems) == 0:
			if !s.note(ctx, "", "no proxy of workload %s is connected; it joins the tap when one connects", s.only) {
				return
			}
		case first:
			if !s.note(ctx, "", "tapping %s", proxies(len(taps))) {
				return
			}
		}
		if matching > maxTapped {
			if !once("limit", "", "%s match, and a tap streams from at most %d at once: tapping the first %d by name; tap one workload to see another", proxies(matching), maxTapped, maxTapped) {
				return
			}
		} else {
			delete(noted, "limit")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func proxies(n int) string {
	if n == 1 {
		return "1 proxy"
	}
	return fmt.Sprintf("%d proxies", n)
}

type tapProblem struct{ proxy, msg string }

// targets lists the proxies to tap now, by workload, in name order and at
// most maxTapped of them; matching counts all the connected ones the
// session concerns, and problems says which of those cannot be tapped.
func (s *tapSession) targets() (targets map[model.Ref]tapTarget, order []model.Ref, matching int, problems []tapProblem) {
	snap := s.cp.store.Snapshot()
	td := s.cp.ca.TrustDomain()
	targets = map[model.Ref]tapTarget{}
	for _, p := range s.cp.discovery.Connected() { // sorted by workload
		if s.only.Name != "" && p.Workload != s.only {
			continue
		}
		if _, dup := targets[p.Workload]; dup {
			continue // a restarting proxy's old stream beside its new one
		}
		w, ok := snap.Workload(p.Workload)
		if !ok {
			problems = append(problems, tapProblem{p.Workload.String(), "cannot tap: its workload is not in the model"})
			continue
		}
		if w.Address == "" || w.InboundPort == 0 {
			problems = append(problems, tapProblem{p.Workload.String(), "cannot tap: its workload declares no inbound address and port"})
			continue
		}
		sa := w.Identity()
		id, err := identity.WorkloadID(td, sa.Namespace, sa.Name)
		if err != nil {
			problems = append(problems, tapProblem{p.Workload.String(), fmt.Sprintf("cannot tap: %v", err)})
			continue
		}
		matching++
		if len(order) == maxTapped {
			continue
		}
		targets[p.Workload] = tapTarget{addr: model.HostPort(w.Address, w.InboundPort), want: id}
		order = append(order, p.Workload)
	}
	return targets, order, matching, problems
}

// tapProxy streams one proxy's tap into the session until ctx ends, and
// taps it again, with backoff, whenever its stream fails or ends.
func (s *tapSession) tapProxy(ctx context.Context, ref model.Ref, t tapTarget) {
	backoff := tapRetryMin
	for {
		start := time.Now()
		err := s.stream(ctx, ref, t)
		if ctx.Err() != nil {
			return
		}
		// A stream that served a while before it broke starts over.
		if time.Since(start) > tapRetryMax {
			backoff = tapRetryMin
		}
		s.log.Warn("cannot tap proxy", "workload", ref.String(), "addr", t.addr, "error", err)
		if !s.note(ctx, ref.String(), "cannot tap: %v; trying again in %s", err, backoff) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, tapRetryMax)
	}
}

// stream taps one proxy over mTLS as the control plane, forwarding its
// records until the stream ends.
func (s *tapSession) stream(ctx context.Context, ref model.Ref, t tapTarget) error {
	var protos http.Protocols
	protos.SetHTTP2(true) // proxies speak HTTP/2 over mTLS, and only that
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, tapDialTimeout)
			defer cancel()
			return s.cp.self.DialTLS(ctx, network, addr, t.want)
		},
		Protocols:             &protos,
		ResponseHeaderTimeout: tapDialTimeout,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+t.addr+"/tap?"+s.filter.Query().Encode(), nil)
	if err != nil {
		return fmt.Errorf("tap %s at %s: %w", ref, t.addr, err)
	}
	req.Header.Set(meshheader.Tap, meshheader.TapValue)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("tap %s at %s: %w", ref, t.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("tap %s at %s: the proxy answered %s: %s", ref, t.addr, resp.Status, strings.TrimSpace(string(body)))
	}
	s.log.Debug("tapping proxy", "workload", ref.String(), "addr", t.addr)
	err = tap.Read(ctx, resp.Body, func(rec tap.Record) error {
		if rec.Event == nil && rec.Dropped == 0 {
			return nil
		}
		// Once this proxy has left the session, nothing more of it is sent,
		// even a record already read.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rec.Proxy, rec.Note = ref.String(), ""
		if !s.send(ctx, rec) {
			return ctx.Err()
		}
		return nil
	})
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("tap %s at %s: the proxy ended the stream", ref, t.addr)
	}
	return fmt.Errorf("tap %s at %s: %w", ref, t.addr, err)
}

// shutdowns holds, for each admin server some tap runs on, a context that
// ends when the server starts shutting down.
var shutdowns sync.Map // *http.Server -> context.Context

// shuttingDown returns a context that ends when the server that took r
// starts shutting down. A tap never ends by itself, and http.Server's
// Shutdown waits for requests to end: without this, a tap open when the
// control plane stops would hold its admin server until Shutdown gives up
// and returns an error.
func shuttingDown(r *http.Request) context.Context {
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return context.Background()
	}
	if ctx, ok := shutdowns.Load(srv); ok {
		return ctx.(context.Context)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if prev, loaded := shutdowns.LoadOrStore(srv, ctx); loaded {
		cancel()
		return prev.(context.Context)
	}
	srv.RegisterOnShutdown(func() {
		cancel()
		shutdowns.Delete(srv)
	})
	return ctx
}
