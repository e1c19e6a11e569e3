package smi

import (
	"bytes"
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HTTPRouteGroup names HTTP requests by method, path and headers.
type HTTPRouteGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HTTPRouteGroupSpec `json:"spec"`
}

// HTTPRouteGroupSpec is the group's named matches.
type HTTPRouteGroupSpec struct {
	Matches []HTTPMatch `json:"matches,omitempty"`
}

// HTTPMatch matches requests by every field it sets.
type HTTPMatch struct {
	Name string `json:"name"`
	// Methods, or "*" for any.
	Methods   []string `json:"methods,omitempty"`
	PathRegex string   `json:"pathRegex,omitempty"`
	// Headers maps a header name to an RE2 expression its value must
	// match.
	Headers HTTPHeaders `json:"headers,omitempty"`
}

// HTTPHeaders are a match's header filters, each mapping a header name to
// an RE2 expression; a request must pass all of them. A manifest writes
// them as one map, as the SMI SDK and the v1alpha4 spec do, or as a list
// of maps, as the v1alpha3 spec's examples do.
type HTTPHeaders []map[string]string

// UnmarshalJSON reads either form.
func (h *HTTPHeaders) UnmarshalJSON(data []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
		return json.Unmarshal(data, (*[]map[string]string)(h))
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*h = nil
	if m != nil {
		*h = HTTPHeaders{m}
	}
	return nil
}

// TCPRoute names TCP traffic by port.
type TCPRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TCPRouteSpec `json:"spec,omitempty"`
}

// TCPRouteSpec is empty in v1alpha3, where a TCPRoute matches any port.
type TCPRouteSpec struct {
	Matches *TCPMatch `json:"matches,omitempty"`
}

// TCPMatch lists ports; none matches any port.
type TCPMatch struct {
	Ports []int32 `json:"ports,omitempty"`
}
