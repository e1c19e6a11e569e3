package controlplane

import (
	"time"

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
	// Workload, if set, limits the token to that workload's name.
	Workload string `json:"workload,omitempty"`
	// TTL as a Go duration ("1h"); "" means an hour.
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse carries a minted join token.
type TokenResponse struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

// RotateRequest is POST /api/v1/identity/rotate.
type RotateRequest struct {
	// Step is prepare, activate or finish.
	Step  string `json:"step"`
	Force bool   `json:"force,omitempty"`
}
