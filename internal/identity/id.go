package identity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ErrNotWorkloadID is returned for a SPIFFE ID that is not of the form
// spiffe://<td>/ns/<namespace>/sa/<service-account>.
var ErrNotWorkloadID = errors.New("not a workload SPIFFE ID")

// WorkloadID returns spiffe://<td>/ns/<namespace>/sa/<serviceAccount>.
func WorkloadID(td spiffeid.TrustDomain, namespace, serviceAccount string) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, errors.New("workload ID: trust domain is empty")
	}
	if namespace == "" {
		return spiffeid.ID{}, errors.New("workload ID: namespace is empty")
	}
	if serviceAccount == "" {
		return spiffeid.ID{}, errors.New("workload ID: service account is empty")
	}
	id, err := spiffeid.FromSegments(td, "ns", namespace, "sa", serviceAccount)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("workload ID for %s/%s: %w", namespace, serviceAccount, err)
	}
	return id, nil
}

// ParseWorkloadID is the reverse of WorkloadID. Anything but exactly
// /ns/<namespace>/sa/<service-account> is an error wrapping ErrNotWorkloadID.
func ParseWorkloadID(id spiffeid.ID) (namespace, serviceAccount string, err error) {
	if id.IsZero() {
		return "", "", fmt.Errorf("%w: empty ID", ErrNotWorkloadID)
	}
	seg := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(seg) != 4 || seg[0] != "ns" || seg[2] != "sa" || seg[1] == "" || seg[3] == "" {
		return "", "", fmt.Errorf("%w: %s: path must be /ns/<namespace>/sa/<service-account>", ErrNotWorkloadID, id)
	}
	return seg[1], seg[3], nil
}

// Control plane identity: proxies check the control plane they talk to is
// this, and only this.
const (
	ControlPlaneNamespace      = "weft-system"
	ControlPlaneServiceAccount = "weft-control-plane"
)

// ControlPlaneID is the control plane's SPIFFE ID in trust domain td.
func ControlPlaneID(td spiffeid.TrustDomain) spiffeid.ID {
	id, err := WorkloadID(td, ControlPlaneNamespace, ControlPlaneServiceAccount)
	if err != nil {
		panic(err) // constant, valid segments
	}
	return id
}
