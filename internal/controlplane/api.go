package controlplane

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source/files"
)

// The admin API's JSON documents, shared by the server and the CLI.

// Status is GET /api/v1/status.
type Status struct {
	Version   uint64        `json:"version"`
	Services  int           `json:"services"`
	Workloads int           `json:"workloads"`
	Manifests *files.Status `json:"manifests,omitempty"`
	Proxies   []Proxy       `json:"proxies"`
}

// Proxy is a proxy connected to the discovery server.
type Proxy struct {
	Workload      string    `json:"workload"`
	Subscriptions []string  `json:"subscriptions"`
	Version       uint64    `json:"version"`
	Since         time.Time `json:"since"`
}

// Service is one entry of GET /api/v1/services.
type Service struct {
	Name      string     `json:"name"`
	Ports     []Port     `json:"ports"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Port is a service port.
type Port struct {
	Name     string `json:"name,omitempty"`
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// Endpoint is a workload serving a service.
type Endpoint struct {
	Workload string `json:"workload"`
	Address  string `json:"address"`
	Identity string `json:"identity"`
}

// Workload is one entry of GET /api/v1/workloads.
type Workload struct {
	Name           string            `json:"name"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount"`
	Address        string            `json:"address"`
	InboundPort    uint32            `json:"inboundPort"`
	AdminPort      uint32            `json:"adminPort,omitempty"`
	Ports          []Port            `json:"ports,omitempty"`
	Outbound       []Outbound        `json:"outbound,omitempty"`
	Source         string            `json:"source"`
}

// Outbound is a service a workload calls at a local port.
type Outbound struct {
	Service   string `json:"service"`
	Port      uint32 `json:"port"`
	LocalPort uint32 `json:"localPort"`
}

// Identity is GET /api/v1/identity.
type Identity struct {
	TrustDomain string `json:"trustDomain"`
	// RotationPhase is "", "prepared" or "activated".
	RotationPhase string   `json:"rotationPhase,omitempty"`
	Anchors       []Anchor `json:"anchors"`
	// Intermediate is the issuing CA certificate in use.
	Intermediate Anchor `json:"intermediate"`
}

// Anchor is a trust anchor (root) or the intermediate.
type Anchor struct {
	Subject     string    `json:"subject"`
	NotAfter    time.Time `json:"notAfter"`
	Fingerprint string    `json:"fingerprint"`
	Active      bool      `json:"active,omitempty"`
	LiveLeaves  int       `json:"liveLeaves"`
}

// TokenRequest is POST /api/v1/identity/tokens.
type TokenRequest struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
	// TTL as a Go duration ("1h"); "" means an hour.
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse carries a minted join token.
type TokenResponse struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

// RevokeRequest is POST /api/v1/identity/tokens/revoke.
type RevokeRequest struct {
	// ID is the token's ID, as weft identity token printed it.
	ID string `json:"id"`
}

// RotateRequest is POST /api/v1/identity/rotate.
type RotateRequest struct {
	// Step is prepare, activate or finish.
	Step  string `json:"step"`
	Force bool   `json:"force,omitempty"`
}

// Policy is one entry of GET /api/v1/policies.
type Policy struct {
	// Kind is AuthorizationPolicy, TrafficTarget, HTTPRouteGroup or TCPRoute.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Summary says in one line what the policy selects and allows.
	Summary string `json:"summary"`
}

// Policies lists every policy object, by kind, namespace and name.
func (cp *ControlPlane) Policies() []Policy {
	out := []Policy{}
	for _, p := range cp.store.Snapshot().Policies() {
		k := p.Key()
		out = append(out, Policy{Kind: k.Kind, Namespace: k.Ref.Namespace, Name: k.Ref.Name, Summary: policySummary(p)})
	}
	return out
}

// policySummary names what matters about a policy when scanning a list;
// the manifest has the rest.
func policySummary(p model.Policy) string {
	switch p := p.(type) {
	case *model.AuthorizationPolicy:
		var target string
		switch t := p.Target; {
		case t.Service != "":
			target = "service " + t.Service
		case t.ServiceAccount != "":
			target = "service account " + t.ServiceAccount
		default:
			target = "workloads " + joinLabels(t.Selector)
		}
		s := fmt.Sprintf("%s to %s, %s", p.Action, target, plural(len(p.Rules), "rule"))
		if p.Action == model.AuthzAllow && len(p.Rules) == 0 {
			// An allow policy without rules selects its workloads and
			// allows nothing, which deserves saying.
			s += ": denies everything"
		}
		return s
	case *model.TrafficTarget:
		sources := make([]string, len(p.Sources))
		for i, s := range p.Sources {
			sources[i] = s.Namespace + "/" + s.ServiceAccount
		}
		dest := p.Destination.ServiceAccount
		if p.Port != 0 {
			dest += ":" + strconv.FormatUint(uint64(p.Port), 10)
		}
		rules := make([]string, len(p.Rules))
		for i, r := range p.Rules {
			rules[i] = r.Kind + " " + r.Name
			if len(r.Matches) > 0 {
				rules[i] += " [" + strings.Join(r.Matches, ",") + "]"
			}
		}
		return fmt.Sprintf("%s -> %s via %s", strings.Join(sources, ", "), dest, strings.Join(rules, ", "))
	case *model.HTTPRouteGroup:
		names := make([]string, len(p.Matches))
		for i, m := range p.Matches {
			names[i] = m.Name
		}
		return "matches " + strings.Join(names, ", ")
	case *model.TCPRoute:
		if len(p.Ports) == 0 {
			return "any port"
		}
		ports := make([]string, len(p.Ports))
		for i, port := range p.Ports {
			ports[i] = strconv.FormatUint(uint64(port), 10)
		}
		return "ports " + strings.Join(ports, ", ")
	}
	return ""
}

func joinLabels(m map[string]string) string {
	kv := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kv = append(kv, k+"="+m[k])
	}
	return strings.Join(kv, ",")
}

// plural is "no rules", "1 rule", "2 rules".
func plural(n int, noun string) string {
	switch n {
	case 0:
		return "no " + noun + "s"
	case 1:
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
