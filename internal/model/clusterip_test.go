package model

import (
	"strings"
	"testing"
)

func TestServiceClusterIPs(t *testing.T) {
	base := func(ips ...string) *Service {
		return &Service{Ref: Ref{"demo", "web"}, Ports: []ServicePort{{Port: 80}}, ClusterIPs: ips}
	}
	for _, tc := range []struct {
		desc    string
		ips     []string
		wantErr string // "" means valid
	}{
		{desc: "none"},
		{desc: "ipv4", ips: []string{"198.19.0.10"}},
		{desc: "dual stack", ips: []string{"198.19.0.10", "fd00:10::a"}},
		{desc: "not an address", ips: []string{"web"}, wantErr: `spec.clusterIPs[0]: must be an IP address, got "web"`},
		{desc: "zone", ips: []string{"fe80::1%eth0"}, wantErr: "spec.clusterIPs[0]: must be an IP address"},
		{desc: "mapped", ips: []string{"::ffff:198.19.0.10"}, wantErr: "not mapped into IPv6"},
		{desc: "not canonical", ips: []string{"FD00:10::A"}, wantErr: "canonical form, fd00:10::a"},
		{desc: "unspecified", ips: []string{"0.0.0.0"}, wantErr: "not an address a service can answer on"},
		{desc: "two of a family", ips: []string{"198.19.0.10", "198.19.0.11"}, wantErr: `spec.clusterIPs[1]: "198.19.0.11": at most one cluster IP per IP family`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := base(tc.ips...).Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if a, b := base("198.19.0.10"), base("198.19.0.11"); a.Equal(b) {
		t.Error("services with different cluster IPs are Equal")
	}
}
