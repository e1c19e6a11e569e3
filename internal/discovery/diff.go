package discovery

import (
	"slices"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

// Sent is what one stream has told its proxy so far, which is what the
// proxy holds: deltas are computed against it. Model objects are
// immutable, so it keeps pointers, not copies.
type Sent struct {
	// Workload is the proxy's own workload as last sent; nil until the
	// snapshot has it.
	Workload *model.Workload
	// Services holds the state last sent for each subscribed service: nil
	// when it was sent as not existing. A service not in the map has not
	// been sent since it was subscribed.
	Services map[model.Ref]*model.ServiceState
	// Authz is the workload's authorization as last sent, valid once
	// authzSent.
	Authz     *model.Authz
	authzSent bool
	started   bool
}

// NewSent returns the state of a stream that has sent nothing.
func NewSent() *Sent {
	return &Sent{Services: map[model.Ref]*model.ServiceState{}}
}

// Patch is what one Diff adds to Sent.
type Patch struct {
	// Workload is set when the response carries the workload.
	Workload *model.Workload
	// Services are the states now held for the services Diff looked at,
	// nil for those that do not exist.
	Services map[model.Ref]*model.ServiceState
	// Authz is the authorization the response carries, when HasAuthz.
	Authz    *model.Authz
	HasAuthz bool
	// Full is set when the response is the stream's first or carries the
	// full state of some service (one the proxy did not hold, or one that
	// came or went), as opposed to deltas only. Only metrics read it.
	Full bool
}

// Apply records a patch once its response is sent.
func (s *Sent) Apply(p Patch) {
	s.started = true
	if p.Workload != nil {
		s.Workload = p.Workload
	}
	if p.HasAuthz {
		s.Authz, s.authzSent = p.Authz, true
	}
	for r, st := range p.Services {
		s.Services[r] = st
	}
}

// Forget drops a service the proxy unsubscribed from, so that subscribing
// again starts with a full state.
func (s *Sent) Forget(r model.Ref) { delete(s.Services, r) }

// Diff returns the response that brings a proxy from what was sent to it
// up to snap, and the patch that records it as sent. It looks only at the
// proxy's workload and at the services in check, which the caller picks:
// the new subscriptions, and those whose state may have changed. So the
// work is proportional to what changed, not to what the proxy holds.
//
// The workload's authorization goes out with the first response that
// carries the workload and again whenever it changes.
//
// A service not sent before gets a full state (exists=false if snap does
// not have it); one sent before gets a delta against what was sent, with
// the definition only when the proxy would see it change. The response is
// nil when the proxy has nothing to learn, except for the first response
// of a stream, which always goes out so the proxy knows it is served.
//
// Diff does not modify sent or snap.
func Diff(sent *Sent, snap *model.Snapshot, workload model.Ref, check []model.Ref) (*meshv1.StreamResponse, Patch) {
	resp := &meshv1.StreamResponse{Version: snap.Version}
	patch := Patch{Services: make(map[model.Ref]*model.ServiceState, len(check)), Full: !sent.started}

	if w, ok := snap.Workload(workload); ok {
		if w != sent.Workload {
			resp.Workload = wire.WorkloadToProto(w)
			patch.Workload = w
		}
		// The authorization goes with the workload, so a proxy never
		// serves a workload without the policies that select it.
		if a := snap.Authz(workload); !sent.authzSent || a != sent.Authz {
			resp.Authz = wire.AuthzToProto(a)
			patch.Authz, patch.HasAuthz = a, true
		}
	}

	refs := slices.Clone(check)
	slices.SortFunc(refs, model.CompareRefs)
	refs = slices.Compact(refs)
	for _, r := range refs {
		cur, _ := snap.Service(r)
		prev, was := sent.Services[r]
		patch.Services[r] = cur
		var u *meshv1.ServiceUpdate
		switch {
		case was && prev == cur:
			delete(patch.Services, r)
		case !was || prev == nil || cur == nil:
			u = wire.FullUpdate(r, cur)
			patch.Full = true
		default:
			u = serviceDelta(prev, cur)
		}
		if u != nil {
			resp.Services = append(resp.Services, u)
		}
	}

	if sent.started && resp.Workload == nil && resp.Authz == nil && len(resp.Services) == 0 {
		return nil, patch
	}
	return resp, patch
}

// serviceDelta returns the update from one state of a service to another,
// or nil when a proxy would see no difference (say, only the selector
// changed, and no endpoint with it).
func serviceDelta(prev, cur *model.ServiceState) *meshv1.ServiceUpdate {
	u := &meshv1.ServiceUpdate{Ref: wire.RefToProto(cur.Service.Ref), Exists: true}
	if !wire.SameService(prev.Service, cur.Service) {
		u.Service = wire.ServiceToProto(cur.Service)
	}
	if !prev.Routes.Equal(cur.Routes) {
		u.Routes = wire.RoutesToProto(cur.Routes)
	}
	if !prev.Traffic.Equal(cur.Traffic) {
		u.Traffic = wire.TrafficToProto(cur.Traffic)
	}
	// Both lists are sorted by ID: walk them together.
	a, b := prev.Endpoints, cur.Endpoints
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].ID < b[0].ID):
			u.Removed = append(u.Removed, a[0].ID)
			a = a[1:]
		case len(a) == 0 || b[0].ID < a[0].ID:
			u.Upserted = append(u.Upserted, wire.EndpointToProto(b[0]))
			b = b[1:]
		default:
			if a[0] != b[0] && !a[0].Equal(b[0]) {
				u.Upserted = append(u.Upserted, wire.EndpointToProto(b[0]))
			}
			a, b = a[1:], b[1:]
		}
	}
	if u.Service == nil && u.Routes == nil && u.Traffic == nil && len(u.Upserted) == 0 && len(u.Removed) == 0 {
		return nil
	}
	return u
}
