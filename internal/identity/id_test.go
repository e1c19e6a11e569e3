package identity_test

import (
	"errors"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
)

var td = spiffeid.RequireTrustDomainFromString("mesh.test")

func TestWorkloadID(t *testing.T) {
	for _, tc := range []struct {
		name, ns, sa, want string
		wantErr            bool
	}{
		{name: "ok", ns: "shop", sa: "catalog", want: "spiffe://mesh.test/ns/shop/sa/catalog"},
		{name: "dots and dashes", ns: "a-b", sa: "c.d_e", want: "spiffe://mesh.test/ns/a-b/sa/c.d_e"},
		{name: "empty ns", ns: "", sa: "x", wantErr: true},
		{name: "empty sa", ns: "x", sa: "", wantErr: true},
		{name: "slash", ns: "a/b", sa: "x", wantErr: true},
		{name: "dot segment", ns: "..", sa: "x", wantErr: true},
		{name: "bad char", ns: "a b", sa: "x", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := identity.WorkloadID(td, tc.ns, tc.sa)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %s, want an error", id)
				}
				return
			}
			if err != nil || id.String() != tc.want {
				t.Fatalf("got %s, %v, want %s", id, err, tc.want)
			}
			ns, sa, err := identity.ParseWorkloadID(id)
			if err != nil || ns != tc.ns || sa != tc.sa {
				t.Errorf("ParseWorkloadID = %q, %q, %v", ns, sa, err)
			}
		})
	}
	if _, err := identity.WorkloadID(spiffeid.TrustDomain{}, "a", "b"); err == nil {
		t.Error("empty trust domain accepted")
	}
}

func TestParseWorkloadIDRefuses(t *testing.T) {
	for _, s := range []string{
		"spiffe://mesh.test",
		"spiffe://mesh.test/ns/shop",
		"spiffe://mesh.test/ns/shop/sa",
		"spiffe://mesh.test/ns/shop/sa/catalog/extra",
		"spiffe://mesh.test/sa/catalog/ns/shop",
		"spiffe://mesh.test/namespace/shop/sa/catalog",
	} {
		t.Run(s, func(t *testing.T) {
			if _, _, err := identity.ParseWorkloadID(spiffeid.RequireFromString(s)); !errors.Is(err, identity.ErrNotWorkloadID) {
				t.Errorf("err = %v", err)
			}
		})
	}
	if _, _, err := identity.ParseWorkloadID(spiffeid.ID{}); !errors.Is(err, identity.ErrNotWorkloadID) {
		t.Errorf("zero ID: %v", err)
	}
}
