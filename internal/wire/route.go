package wire

import (
	"errors"
	"fmt"
	"slices"
	"time"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

// RoutesToProto converts a service's route table; nil (no route attaches
// to the service) is an update with no table.
func RoutesToProto(t *model.RouteTable) *meshv1.RoutesUpdate {
	if t == nil {
		return &meshv1.RoutesUpdate{}
	}
	out := &meshv1.RouteTable{Rules: make([]*meshv1.RouteRule, len(t.Rules))}
	for i, r := range t.Rules {
		pr := &meshv1.RouteRule{
			Route:          r.Route,
			Port:           r.Port,
			Match:          &meshv1.RouteMatch{Method: r.Match.Method, Headers: valueMatchesToProto(r.Match.Headers), Query: valueMatchesToProto(r.Match.Query)},
			TimeoutMs:      uint64(r.Rule.Timeout / time.Millisecond),
			RequestHeaders: &meshv1.HeaderModifier{Set: cloneMap(r.Rule.RequestHeaders.Set), Add: cloneMap(r.Rule.RequestHeaders.Add), Remove: slices.Clone(r.Rule.RequestHeaders.Remove)},
		}
		if p := r.Match.Path; p != nil {
			pr.Match.Path = &meshv1.PathMatch{Type: string(p.Type), Value: p.Value}
		}
		for _, b := range r.Rule.Backends {
			pr.Backends = append(pr.Backends, &meshv1.RouteBackend{Service: b.Service, Port: b.Port, Weight: b.Weight})
		}
		out.Rules[i] = pr
	}
	return &meshv1.RoutesUpdate{Table: out}
}

func valueMatchesToProto(vs []model.ValueMatch) []*meshv1.ValueMatch {
	out := make([]*meshv1.ValueMatch, len(vs))
	for i, v := range vs {
		out[i] = &meshv1.ValueMatch{Name: v.Name, Value: v.Value, Regex: v.Regex}
	}
	return out
}

// maxRouteTimeout bounds a timeout from the wire, so its conversion to a
// Duration cannot overflow.
const maxRouteTimeout = 24 * time.Hour

// RoutesFromProto converts and validates a route table update; nil means
// no route attaches to the service. A table that does not validate whole
// is refused: routing by part of it could send requests where no rule
// says.
func RoutesFromProto(u *meshv1.RoutesUpdate) (*model.RouteTable, error) {
	if u == nil {
		return nil, errors.New("routes: must be set")
	}
	if u.GetTable() == nil {
		return nil, nil
	}
	f := &fields{prefix: "routes"}
	out := &model.RouteTable{}
	for i, pr := range u.GetTable().GetRules() {
		field := fmt.Sprintf("rules[%d]", i)
		if pr == nil {
			f.add(field, "must be set")
			continue
		}
		if pr.GetTimeoutMs() > uint64(maxRouteTimeout/time.Millisecond) {
			f.add(field+".timeout_ms", "longer than %s", maxRouteTimeout)
			continue
		}
		r := model.TableRule{Route: pr.GetRoute(), Port: pr.GetPort()}
		m := pr.GetMatch()
		r.Match = model.RouteMatch{Method: m.GetMethod(), Headers: valueMatchesFromProto(m.GetHeaders()), Query: valueMatchesFromProto(m.GetQuery())}
		if p := m.GetPath(); p != nil {
			r.Match.Path = &model.PathMatch{Type: model.PathMatchType(p.GetType()), Value: p.GetValue()}
		}
		r.Rule.Timeout = time.Duration(pr.GetTimeoutMs()) * time.Millisecond
		h := pr.GetRequestHeaders()
		r.Rule.RequestHeaders = model.HeaderModifier{Set: cloneMap(h.GetSet()), Add: cloneMap(h.GetAdd()), Remove: slices.Clone(h.GetRemove())}
		if len(r.Rule.RequestHeaders.Remove) == 0 {
			r.Rule.RequestHeaders.Remove = nil
		}
		for _, b := range pr.GetBackends() {
			r.Rule.Backends = append(r.Rule.Backends, model.RouteBackend{Service: b.GetService(), Port: b.GetPort(), Weight: b.GetWeight()})
		}
		out.Rules = append(out.Rules, r)
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	return out, nil
}

func valueMatchesFromProto(vs []*meshv1.ValueMatch) []model.ValueMatch {
	if len(vs) == 0 {
		return nil
	}
	out := make([]model.ValueMatch, len(vs))
	for i, v := range vs {
		out[i] = model.ValueMatch{Name: v.GetName(), Value: v.GetValue(), Regex: v.GetRegex()}
	}
	return out
}
