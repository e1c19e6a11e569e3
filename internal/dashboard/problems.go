package dashboard

import (
	"strings"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/source/files"
)

// problems lists what the problems panel shows: the manifest directory's
// problems, routes rejected or not in force on a parent (or in force with
// something failing), and traffic policies not in force.
func problems(m *files.Status, routes []controlplane.Route, policies []controlplane.Policy) []Problem {
	out := []Problem{}
	// A rejected route from a manifest is also a manifest problem, which
	// names its file: it is shown once, as that, with the route's
	// services.
	fromManifest := map[string]bool{}
	routeServices := map[string][]string{}
	for _, r := range routes {
		key := strings.ToLower(r.Kind + " " + r.Namespace + "/" + r.Name)
		for _, p := range r.Parents {
			routeServices[key] = appendOnce(routeServices[key], parentService(r.Namespace, p))
		}
	}
	if m != nil {
		for _, p := range m.Problems {
			key := strings.ToLower(p.Object)
			fromManifest[key] = true
			pr := Problem{Kind: "manifest", Object: p.Object, File: p.File, Message: p.Message, Services: routeServices[key]}
			if kind, ref, ok := strings.Cut(key, " "); ok && kind == "service" {
				pr.Services = []string{ref}
			}
			out = append(out, pr)
		}
	}
	for _, r := range routes {
		object := r.Kind + " " + r.Namespace + "/" + r.Name
		services := routeServices[strings.ToLower(object)]
		if r.Rejected != "" && !fromManifest[strings.ToLower(object)] {
			out = append(out, Problem{Kind: "route", Object: object, Message: "rejected: " + r.Rejected, Services: services})
		}
		for _, st := range r.Status {
			if len(st.Reasons) == 0 {
				continue
			}
			what := "not in force on " + st.Parent
			if st.InForce {
				what = "in force on " + st.Parent + ", but"
			}
			out = append(out, Problem{Kind: "route", Object: object, Message: what + ": " + strings.Join(st.Reasons, "; "),
				Services: []string{parentService(r.Namespace, st.Parent)}})
		}
	}
	for _, p := range policies {
		if p.Status == nil || p.Status.InForce {
			continue
		}
		out = append(out, Problem{Kind: "policy", Object: p.Kind + " " + p.Namespace + "/" + p.Name, Message: "not in force: " + p.Status.Reason})
	}
	return out
}

// parentService is the service of a route's parent, "catalog" or
// "catalog:80", as namespace/name.
func parentService(namespace, parent string) string {
	name, _, _ := strings.Cut(parent, ":")
	return namespace + "/" + name
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
