package cli

import (
	"testing"

	"github.com/weftmesh/weft/internal/controlplane"
)

func TestLeadership(t *testing.T) {
	for _, tc := range []struct {
		l    controlplane.Leadership
		want string
	}{
		{controlplane.Leadership{Leading: true}, "leading (no election: the only replica)"},
		{controlplane.Leadership{Lease: "weft-system/weft-control-plane", Identity: "cp-0", Leading: true, Leader: "cp-0"},
			"leading, as cp-0 (Lease weft-system/weft-control-plane)"},
		{controlplane.Leadership{Lease: "weft-system/weft-control-plane", Identity: "cp-1", Leader: "cp-0"},
			"following cp-0, as cp-1 (Lease weft-system/weft-control-plane)"},
		{controlplane.Leadership{Lease: "weft-system/weft-control-plane", Identity: "cp-1"},
			"following <none>, as cp-1 (Lease weft-system/weft-control-plane)"},
	} {
		if got := leadership(tc.l); got != tc.want {
			t.Errorf("leadership(%+v) = %q, want %q", tc.l, got, tc.want)
		}
	}
}
