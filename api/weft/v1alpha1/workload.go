package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Workload plays the part of a Pod in universal mode: one instance of an
// application with a weft-proxy beside it.
type Workload struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WorkloadSpec `json:"spec"`
}

// WorkloadSpec declares where the workload and its proxy listen and which
// services it calls.
type WorkloadSpec struct {
	// ServiceAccount is the identity the workload runs as; "default" if empty.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Address is where other proxies reach this workload's proxy.
	Address string `json:"address"`
	// Ports the application listens on, on loopback beside its proxy.
	Ports    []WorkloadPort `json:"ports,omitempty"`
	Proxy    ProxySpec      `json:"proxy"`
	Outbound []Outbound     `json:"outbound,omitempty"`
}

// WorkloadPort is one port of the application.
type WorkloadPort struct {
	Name string `json:"name,omitempty"`
	Port int32  `json:"port"`
	// Protocol is http, http2, grpc or tcp; empty lets the proxy detect it.
	Protocol string `json:"protocol,omitempty"`
}

// ProxySpec places the workload's proxy.
type ProxySpec struct {
	// InboundPort is where mesh traffic for the workload arrives.
	InboundPort int32 `json:"inboundPort"`
	// AdminPort is where the proxy serves /ready, /live, /config and
	// /metrics.
	AdminPort int32 `json:"adminPort,omitempty"`
	// AccessLog makes the proxy log every request it carries as a JSON
	// line on its standard output; off by default.
	AccessLog bool `json:"accessLog,omitempty"`
}

// Outbound is a service the workload calls, at a local port of its proxy.
type Outbound struct {
	// Service is "name" (in the workload's namespace) or "namespace/name".
	Service   string `json:"service"`
	Port      int32  `json:"port"`
	LocalPort int32  `json:"localPort"`
}
