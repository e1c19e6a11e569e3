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
			Route:            r.Route,
			Port:             r.Port,
			Match:            &meshv1.RouteMatch{Method: r.Match.Method, Headers: valueMatchesToProto(r.Match.Headers), Query: valueMatchesToProto(r.Match.Query)},
			TimeoutMs:        uint64(r.Rule.Timeout / time.Millisecond),
			RequestHeaders:   headerModifierToProto(r.Rule.RequestHeaders),
			ResponseHeaders:  headerModifierToProto(r.Rule.ResponseHeaders),
			BackendTimeoutMs: uint64(r.Rule.BackendTimeout / time.Millisecond),
		}
		if rd := r.Rule.Redirect; rd != nil {
			pr.Redirect = &meshv1.Redirect{Scheme: rd.Scheme, Hostname: rd.Hostname, Port: rd.Port, StatusCode: rd.StatusCode,
				Path: &meshv1.PathModifier{Type: rd.Path.Type, Value: rd.Path.Value}}
		}
		if rw := r.Rule.Rewrite; rw != nil {
			pr.Rewrite = &meshv1.Rewrite{Hostname: rw.Hostname, Path: &meshv1.PathModifier{Type: rw.Path.Type, Value: rw.Path.Value}}
		}
		if m := r.Rule.Mirror; m != nil {
			pr.Mirror = &meshv1.Mirror{Service: m.Service, Port: m.Port, Percent: m.Percent}
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

func headerModifierToProto(h model.HeaderModifier) *meshv1.HeaderModifier {
	return &meshv1.HeaderModifier{Set: cloneMap(h.Set), Add: cloneMap(h.Add), Remove: slices.Clone(h.Remove)}
}

func headerModifierFromProto(h *meshv1.HeaderModifier) model.HeaderModifier {
	out := model.HeaderModifier{Set: cloneMap(h.GetSet()), Add: cloneMap(h.GetAdd()), Remove: slices.Clone(h.GetRemove())}
	if len(out.Remove) == 0 {
		out.Remove = nil
	}
	return out
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
		if pr.GetBackendTimeoutMs() > uint64(maxRouteTimeout/time.Millisecond) {
			f.add(field+".backend_timeout_ms", "longer than %s", maxRouteTimeout)
			continue
		}
		r.Rule.Timeout = time.Duration(pr.GetTimeoutMs()) * time.Millisecond
		r.Rule.BackendTimeout = time.Duration(pr.GetBackendTimeoutMs()) * time.Millisecond
		r.Rule.RequestHeaders = headerModifierFromProto(pr.GetRequestHeaders())
		r.Rule.ResponseHeaders = headerModifierFromProto(pr.GetResponseHeaders())
		if rd := pr.GetRedirect(); rd != nil {
			r.Rule.Redirect = &model.Redirect{Scheme: rd.GetScheme(), Hostname: rd.GetHostname(), Port: rd.GetPort(), StatusCode: rd.GetStatusCode(),
				Path: model.PathModifier{Type: rd.GetPath().GetType(), Value: rd.GetPath().GetValue()}}
		}
		if rw := pr.GetRewrite(); rw != nil {
			r.Rule.Rewrite = &model.Rewrite{Hostname: rw.GetHostname(), Path: model.PathModifier{Type: rw.GetPath().GetType(), Value: rw.GetPath().GetValue()}}
		}
		if m := pr.GetMirror(); m != nil {
			r.Rule.Mirror = &model.Mirror{Service: m.GetService(), Port: m.GetPort(), Percent: m.GetPercent()}
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
