package manifest

import (
	"slices"
	"strings"
	"testing"
)

func TestServiceClusterIP(t *testing.T) {
	withSpec := func(line string) string {
		return strings.Replace(goodService, "  selector: {app: catalog}\n", "  selector: {app: catalog}\n"+line, 1)
	}
	for _, tc := range []struct {
		desc, spec string
		want       []string
		wantErr    string
	}{
		{desc: "none declared", spec: ""},
		{desc: "headless", spec: "  clusterIP: None\n"},
		{desc: "clusterIP", spec: "  clusterIP: 198.19.0.10\n", want: []string{"198.19.0.10"}},
		{desc: "clusterIPs", spec: "  clusterIPs: [198.19.0.10, fd00:19::a]\n", want: []string{"198.19.0.10", "fd00:19::a"}},
		{desc: "both agreeing", spec: "  clusterIP: 198.19.0.10\n  clusterIPs: [198.19.0.10]\n", want: []string{"198.19.0.10"}},
		{desc: "both disagreeing", spec: "  clusterIP: 198.19.0.10\n  clusterIPs: [198.19.0.11]\n", wantErr: `spec.clusterIP: "198.19.0.10": must be spec.clusterIPs[0]`},
		{desc: "not an address", spec: "  clusterIP: catalog\n", wantErr: `spec.clusterIP: must be an IP address, got "catalog"`},
		{desc: "bad in list", spec: "  clusterIPs: [198.19.0.10, 198.19.0.11]\n", wantErr: "spec.clusterIPs[1]"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			d := Decode("svc.yaml", []byte(withSpec(tc.spec)))
			err := d.Err()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := d.Objects[0].Service.ClusterIPs; !slices.Equal(got, tc.want) {
				t.Errorf("cluster IPs %q, want %q", got, tc.want)
			}
		})
	}
}
