package wire

import (
	"errors"
	"fmt"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

// RefToProto converts a reference.
func RefToProto(r model.Ref) *meshv1.Ref {
	return &meshv1.Ref{Namespace: r.Namespace, Name: r.Name}
}

// RefFromProto converts a reference without checking it; a nil reference
// is the zero Ref. Use ValidRefFromProto for references that must be valid.
func RefFromProto(r *meshv1.Ref) model.Ref {
	return model.Ref{Namespace: r.GetNamespace(), Name: r.GetName()}
}

// ValidRefFromProto converts a reference and checks that both parts are
// DNS labels.
func ValidRefFromProto(r *meshv1.Ref) (model.Ref, error) {
	if r == nil {
		return model.Ref{}, errors.New("must be set")
	}
	ref := RefFromProto(r)
	if err := model.ValidateRef(ref); err != nil {
		return model.Ref{}, err
	}
	return ref, nil
}

// ProtocolToProto converts a protocol. An unknown model protocol, which
// validation keeps out of the model, becomes PROTOCOL_UNSPECIFIED (detect).
func ProtocolToProto(p model.Protocol) meshv1.Protocol {
	switch p {
	case model.ProtocolHTTP1:
		return meshv1.Protocol_PROTOCOL_HTTP1
	case model.ProtocolHTTP2:
		return meshv1.Protocol_PROTOCOL_HTTP2
	case model.ProtocolGRPC:
		return meshv1.Protocol_PROTOCOL_GRPC
	case model.ProtocolTCP:
		return meshv1.Protocol_PROTOCOL_TCP
	}
	return meshv1.Protocol_PROTOCOL_UNSPECIFIED
}

// ProtocolFromProto converts a protocol. Values this build does not know
// are refused rather than guessed: a peer newer than us may mean something
// we cannot carry.
func ProtocolFromProto(p meshv1.Protocol) (model.Protocol, error) {
	switch p {
	case meshv1.Protocol_PROTOCOL_UNSPECIFIED:
		return model.ProtocolDetect, nil
	case meshv1.Protocol_PROTOCOL_HTTP1:
		return model.ProtocolHTTP1, nil
	case meshv1.Protocol_PROTOCOL_HTTP2:
		return model.ProtocolHTTP2, nil
	case meshv1.Protocol_PROTOCOL_GRPC:
		return model.ProtocolGRPC, nil
	case meshv1.Protocol_PROTOCOL_TCP:
		return model.ProtocolTCP, nil
	}
	return "", fmt.Errorf("unknown protocol %d", int32(p))
}

// WorkloadToProto converts a workload.
func WorkloadToProto(w *model.Workload) *meshv1.Workload {
	if w == nil {
		return nil
	}
	out := &meshv1.Workload{
		Ref:            RefToProto(w.Ref),
		Labels:         cloneMap(w.Labels),
		ServiceAccount: w.ServiceAccount,
		Address:        w.Address,
		InboundPort:    w.InboundPort,
		AdminPort:      w.AdminPort,
		AccessLog:      w.AccessLog,
	}
	for _, p := range w.Ports {
		out.Ports = append(out.Ports, &meshv1.WorkloadPort{Name: p.Name, Port: p.Port, Protocol: ProtocolToProto(p.Protocol)})
	}
	for _, o := range w.Outbound {
		out.Outbound = append(out.Outbound, &meshv1.Outbound{Service: RefToProto(o.Service), Port: o.Port, LocalPort: o.LocalPort})
	}
	return out
}

// WorkloadFromProto converts a workload from the wire and validates it as
// model.Workload.Validate does. Errors name the field the way a Workload
// manifest spells it ("spec.ports[1].protocol: ..."), so a registering
// proxy and a manifest author read the same messages.
func WorkloadFromProto(w *meshv1.Workload) (*model.Workload, error) {
	if w == nil {
		return nil, errors.New("workload: must be set")
	}
	var fe model.FieldErrors
	out := &model.Workload{
		Ref:            RefFromProto(w.GetRef()),
		Labels:         cloneMap(w.GetLabels()),
		ServiceAccount: w.GetServiceAccount(),
		Address:        w.GetAddress(),
		InboundPort:    w.GetInboundPort(),
		AdminPort:      w.GetAdminPort(),
		AccessLog:      w.GetAccessLog(),
	}
	if w.GetRef() == nil {
		fe.Add("metadata", "must be set")
	}
	for i, p := range w.GetPorts() {
		if p == nil {
			fe.Add(fmt.Sprintf("spec.ports[%d]", i), "must be set")
			continue
		}
		proto, err := ProtocolFromProto(p.GetProtocol())
		if err != nil {
			fe.Add(fmt.Sprintf("spec.ports[%d].protocol", i), "%v", err)
		}
		out.Ports = append(out.Ports, model.WorkloadPort{Name: p.GetName(), Port: p.GetPort(), Protocol: proto})
	}
	for i, o := range w.GetOutbound() {
		if o == nil {
			fe.Add(fmt.Sprintf("spec.outbound[%d]", i), "must be set")
			continue
		}
		out.Outbound = append(out.Outbound, model.Outbound{Service: RefFromProto(o.GetService()), Port: o.GetPort(), LocalPort: o.GetLocalPort()})
	}
	// Structural problems first: they explain the validation errors that
	// follow from them (a missing ref is also an invalid one).
	err := fe.Err()
	if err == nil {
		err = out.Validate()
	}
	if err != nil {
		if out.Ref == (model.Ref{}) {
			return nil, fmt.Errorf("workload: %w", err)
		}
		return nil, fmt.Errorf("workload %s: %w", out.Ref, err)
	}
	return out, nil
}

// cloneMap copies a map, giving nil for an empty one so that conversions
// in both directions compare equal.
func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if len(m) == 0 {
		return nil
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// fields collects field errors under a path prefix, so that a nested
// conversion reports "upserted[2].address" rather than "address".
type fields struct {
	prefix string
	errs   model.FieldErrors
}

func (f *fields) add(field, format string, args ...any) {
	switch {
	case f.prefix == "":
	case field == "":
		field = f.prefix
	default:
		field = f.prefix + "." + field
	}
	f.errs.Add(field, format, args...)
}

func (f *fields) err() error { return f.errs.Err() }
