package kube

import (
	"fmt"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/weftmesh/weft/internal/model"
)

// endpointSet is what a Service's EndpointSlices say serves it: the meshed
// Pods among its ready endpoints, by name, and the ready endpoints that are
// not meshed Pods (a Pod without the sidecar, another namespace's, an
// address no Pod backs), which the mesh cannot reach.
type endpointSet struct {
	members map[string]bool
	outside map[string]bool
}

// readEndpointSlices gathers the endpoint sets of the Services of meshed
// namespaces. workloads holds the meshed Pods that are workloads, by name
// and by address: an endpoint names its Pod with targetRef, as the
// EndpointSlice controller writes it, or else by the Pod's IP, as a
// slice written by hand may. An
// endpoint counts when its slice says it is ready (serving and not
// terminating, as the EndpointSlice controller sets it, or whatever a
// Service's publishNotReadyAddresses asks for): the cluster, not weft,
// decides which Pods serve a Service.
func readEndpointSlices(list []*discoveryv1.EndpointSlice, meshed map[string]bool, workloads map[model.Ref]bool, byAddress map[string]model.Ref) map[model.Ref]*endpointSet {
	out := map[model.Ref]*endpointSet{}
	for _, sl := range list {
		name := sl.Labels[discoveryv1.LabelServiceName]
		if name == "" || !meshed[sl.Namespace] {
			continue
		}
		ref := model.Ref{Namespace: sl.Namespace, Name: name}
		set := out[ref]
		if set == nil {
			set = &endpointSet{members: map[string]bool{}, outside: map[string]bool{}}
			out[ref] = set
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			tr := ep.TargetRef
			if tr != nil && tr.Kind == "Pod" && (tr.Namespace == "" || tr.Namespace == sl.Namespace) &&
				workloads[model.Ref{Namespace: sl.Namespace, Name: tr.Name}] {
				set.members[tr.Name] = true
				continue
			}
			if w, ok := podAt(byAddress, ep.Addresses); tr == nil && ok && w.Namespace == sl.Namespace {
				set.members[w.Name] = true
				continue
			}
			// Keyed by Pod, else address, so that a dual-stack Pod in an
			// IPv4 and an IPv6 slice counts once.
			switch {
			case tr != nil:
				set.outside[fmt.Sprintf("%s %s/%s", tr.Kind, tr.Namespace, tr.Name)] = true
			case len(ep.Addresses) > 0:
				set.outside[ep.Addresses[0]] = true
			}
		}
	}
	return out
}

// problem says what meshed callers of the Service miss, or "" when they
// miss nothing.
func (e *endpointSet) problem() string {
	if e == nil || len(e.outside) == 0 {
		return ""
	}
	return fmt.Sprintf("%d ready endpoint(s) of its EndpointSlices are not meshed Pods of the namespace: meshed callers reach only the %d that are", len(e.outside), len(e.members))
}

func podAt(byAddress map[string]model.Ref, addresses []string) (model.Ref, bool) {
	for _, a := range addresses {
		if r, ok := byAddress[a]; ok {
			return r, true
		}
	}
	return model.Ref{}, false
}
