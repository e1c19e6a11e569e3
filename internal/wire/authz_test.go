package wire

import (
	"strings"
	"testing"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

func validAuthz() *model.Authz {
	return &model.Authz{
		Selected: true,
		Allow: []model.AuthzGrant{{Policy: "AuthorizationPolicy shop/readers", Rule: model.AuthzRule{
			From:    []model.Principal{{Namespace: "shop", ServiceAccount: "web"}, {Namespace: "*", ServiceAccount: "*"}},
			Ports:   []uint32{8080},
			Methods: []string{"GET"},
			Paths:   []model.PathMatch{{Type: model.PathPrefix, Value: "/products"}, {Type: model.PathRegex, Value: "/v[0-9]+/.*"}},
			Headers: map[string]string{"x-user": "^alice$"},
		}}},
		Deny: []model.AuthzGrant{{Policy: "TrafficTarget shop/none", Rule: model.AuthzRule{Ports: []uint32{9090}}}},
	}
}

func TestAuthzRoundTrip(t *testing.T) {
	for _, a := range []*model.Authz{nil, validAuthz(), {Selected: true}, {Permissive: true},
		{RateLimit: &model.RateLimit{Policy: "RateLimitPolicy shop/limit", RequestsPerSecond: 100, Burst: 200}}} {
		got, err := AuthzFromProto(AuthzToProto(a))
		if err != nil {
			t.Fatalf("AuthzFromProto: %v", err)
		}
		if !got.Equal(a) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, a)
		}
	}
}

func TestAuthzFromProtoRefuses(t *testing.T) {
	rule := func(r *meshv1.AuthzRule) *meshv1.AuthzUpdate {
		return &meshv1.AuthzUpdate{Authz: &meshv1.Authz{Selected: true, Allow: []*meshv1.AuthzGrant{{Policy: "p", Rule: r}}}}
	}
	tests := []struct {
		desc    string
		update  *meshv1.AuthzUpdate
		wantErr string
	}{
		{"no update", nil, "authz: must be set"},
		{"grant without a rule", &meshv1.AuthzUpdate{Authz: &meshv1.Authz{Allow: []*meshv1.AuthzGrant{{Policy: "p"}}}}, "authz.allow[0].rule: must be set"},
		{"grant without a policy", &meshv1.AuthzUpdate{Authz: &meshv1.Authz{Deny: []*meshv1.AuthzGrant{{Rule: &meshv1.AuthzRule{}}}}}, "deny[0].policy"},
		{"bad regex", rule(&meshv1.AuthzRule{Paths: []*meshv1.PathMatch{{Type: "RegularExpression", Value: "("}}}), "allow[0].rule.paths[0].value"},
		{"unknown path type", rule(&meshv1.AuthzRule{Paths: []*meshv1.PathMatch{{Type: "Glob", Value: "/x"}}}), "paths[0].type"},
		{"bad method", rule(&meshv1.AuthzRule{Methods: []string{"get"}}), "methods[0]"},
		{"bad port", rule(&meshv1.AuthzRule{Ports: []uint32{70000}}), "ports[0]"},
		{"rate limit of 0", &meshv1.AuthzUpdate{Authz: &meshv1.Authz{RateLimit: &meshv1.RateLimit{Policy: "p", Burst: 1}}}, "spec.requestsPerSecond"},
		{"bad principal", rule(&meshv1.AuthzRule{From: []*meshv1.Principal{{Namespace: "Shop", ServiceAccount: "web"}}}), "from[0].namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			a, err := AuthzFromProto(tc.update)
			if err == nil || a != nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("AuthzFromProto = %+v, %v; want error with %q", a, err, tc.wantErr)
			}
		})
	}
}
