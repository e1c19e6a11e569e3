package authz

import (
	"net/http/httptest"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

func TestDecide(t *testing.T) {
	web := &model.Principal{Namespace: "demo", ServiceAccount: "web"}
	admin := &model.Principal{Namespace: "ops", ServiceAccount: "admin"}
	get := func(path string, headers ...string) Request {
		r := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			r.Header.Add(headers[i], headers[i+1])
		}
		return Request{Source: web, Port: 8080, HTTP: r}
	}
	readers := &model.Authz{
		Selected: true,
		Allow: []model.AuthzGrant{
			{Policy: "AuthorizationPolicy demo/readers", Rule: model.AuthzRule{
				From: []model.Principal{{Namespace: "demo", ServiceAccount: "web"}}, Ports: []uint32{8080},
				Methods: []string{"GET"}, Paths: []model.PathMatch{{Type: model.PathPrefix, Value: "/products"}, {Type: model.PathRegex, Value: "/v[0-9]+"}},
			}},
			{Policy: "TrafficTarget demo/ops", Rule: model.AuthzRule{From: []model.Principal{{Namespace: "ops", ServiceAccount: "*"}}}},
			{Policy: "AuthorizationPolicy demo/canary", Rule: model.AuthzRule{Headers: map[string]string{"x-user": "alice|bob"}}},
		},
		Deny: []model.AuthzGrant{{Policy: "AuthorizationPolicy demo/no-admin", Rule: model.AuthzRule{Paths: []model.PathMatch{{Type: model.PathExact, Value: "/products/admin"}}}}},
	}
	tests := []struct {
		desc       string
		authz      *model.Authz
		req        Request
		wantAllow  bool
		wantPolicy string
	}{
		{"no policy allows anyone", nil, Request{Port: 1}, true, ""},
		{"allowed path", readers, get("/products/42"), true, "AuthorizationPolicy demo/readers"},
		{"prefix matches whole segments only", readers, get("/productsX"), false, "AuthorizationPolicy demo/readers, TrafficTarget demo/ops, AuthorizationPolicy demo/canary"},
		{"regex matches the whole path", readers, get("/v12"), true, "AuthorizationPolicy demo/readers"},
		{"regex does not match a longer path", readers, get("/v12/x"), false, "AuthorizationPolicy demo/readers, TrafficTarget demo/ops, AuthorizationPolicy demo/canary"},
		{"deny first", readers, Request{Source: admin, Port: 8080, HTTP: httptest.NewRequest("GET", "/products/admin", nil)}, false, "AuthorizationPolicy demo/no-admin"},
		{"wildcard service account", readers, get("/x"), false, "AuthorizationPolicy demo/readers, TrafficTarget demo/ops, AuthorizationPolicy demo/canary"},
		{"wildcard service account, HTTP", readers, Request{Source: admin, Port: 9090, HTTP: httptest.NewRequest("GET", "/x", nil)}, true, "TrafficTarget demo/ops"},
		{"a tunnel meets a deny rule it cannot check", readers, Request{Source: admin, Port: 9090}, false, "AuthorizationPolicy demo/no-admin"},
		{"a tunnel with only allow rules", &model.Authz{Selected: true, Allow: readers.Allow}, Request{Source: admin, Port: 9090}, true, "TrafficTarget demo/ops"},
		{"wrong method", readers, Request{Source: web, Port: 8080, HTTP: httptest.NewRequest("POST", "/products", nil)}, false, "AuthorizationPolicy demo/readers, TrafficTarget demo/ops, AuthorizationPolicy demo/canary"},
		{"header rule", readers, get("/other", "X-User", "bob"), true, "AuthorizationPolicy demo/canary"},
		{"header must match whole", readers, get("/other", "X-User", "bobby"), false, "AuthorizationPolicy demo/readers, TrafficTarget demo/ops, AuthorizationPolicy demo/canary"},
		{"HTTP allow rules never match a tunnel", &model.Authz{Selected: true, Allow: readers.Allow}, Request{Source: web, Port: 8080}, false, "AuthorizationPolicy demo/readers, TrafficTarget demo/ops, AuthorizationPolicy demo/canary"},
		{"plaintext matches no source", &model.Authz{Selected: true, Allow: readers.Allow}, Request{Port: 9090}, false, "AuthorizationPolicy demo/readers, TrafficTarget demo/ops, AuthorizationPolicy demo/canary"},
		{"selected with no rules denies all", &model.Authz{Selected: true, Allow: nil}, Request{Source: web, Port: 8080}, false, ""},
		{"deny-only policy allows the rest", &model.Authz{Deny: []model.AuthzGrant{{Policy: "d", Rule: model.AuthzRule{Ports: []uint32{9090}}}}}, Request{Source: web, Port: 8080}, true, ""},
		{"deny-only policy denies its match", &model.Authz{Deny: []model.AuthzGrant{{Policy: "d", Rule: model.AuthzRule{Ports: []uint32{9090}}}}}, Request{Port: 9090}, false, "d"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p, err := Compile(tc.authz)
			if err != nil {
				t.Fatal(err)
			}
			d := p.Decide(tc.req)
			if d.Allowed != tc.wantAllow || d.Policy != tc.wantPolicy {
				t.Fatalf("Decide = %+v, want allowed %v by %q", d, tc.wantAllow, tc.wantPolicy)
			}
		})
	}
}

func TestCompileRefusesBadExpressions(t *testing.T) {
	_, err := Compile(&model.Authz{Allow: []model.AuthzGrant{{Policy: "p", Rule: model.AuthzRule{Headers: map[string]string{"x": "("}}}}})
	if err == nil {
		t.Fatal("a bad header expression compiled")
	}
}
