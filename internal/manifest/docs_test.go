package manifest_test

import (
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// manifestBlocks are a document's ```yaml fences and the bodies of its
// shell heredocs (cat > file <<'EOF' ... EOF).
var manifestBlocks = regexp.MustCompile("(?ms)^```yaml\n(.*?)^```$|<<'EOF'\n(.*?)^EOF$")

// TestAuthorizationDocExamples decodes every manifest docs/authorization.md
// shows and checks that the services and service accounts they name are
// the demo's, which its walkthrough runs them against.
func TestAuthorizationDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/authorization.md")
	if err != nil {
		t.Fatal(err)
	}
	services, accounts := map[string]bool{}, map[model.Principal]bool{}
	for name, data := range demo.NewLayout(20000).Manifests {
		d := manifest.Decode(name, data)
		if err := d.Err(); err != nil {
			t.Fatal(err)
		}
		for _, o := range d.Objects {
			if o.Service != nil {
				services[o.Service.Ref.Name] = true
			}
			if o.Workload != nil {
				accounts[model.Principal{Namespace: o.Workload.Ref.Namespace, ServiceAccount: o.Workload.Identity().Name}] = true
			}
		}
	}
	known := func(p model.Principal) bool {
		return p.Namespace == "*" || p.ServiceAccount == "*" || accounts[p]
	}
	blocks := manifestBlocks.FindAllSubmatch(doc, -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d manifests in the doc; is the pattern still right?", len(blocks))
	}
	for i, m := range blocks {
		where := fmt.Sprintf("docs/authorization.md manifest %d", i+1)
		d := manifest.Decode(where, append(m[1], m[2]...))
		if err := d.Err(); err != nil {
			t.Error(err)
		}
		for _, o := range d.Objects {
			switch p := o.Policy.(type) {
			case *model.AuthorizationPolicy:
				if s := p.Target.Service; s != "" && !services[s] {
					t.Errorf("%s: %s targets service %s, which the demo does not have", where, o.Key, s)
				}
				if sa := p.Target.ServiceAccount; sa != "" && !known(model.Principal{Namespace: p.Ref.Namespace, ServiceAccount: sa}) {
					t.Errorf("%s: %s targets service account %s, which the demo does not have", where, o.Key, sa)
				}
				for _, r := range p.Rules {
					for _, f := range r.From {
						if !known(f) {
							t.Errorf("%s: %s allows %v, which the demo does not have", where, o.Key, f)
						}
					}
				}
			case *model.TrafficTarget:
				for _, f := range append([]model.Principal{p.Destination}, p.Sources...) {
					if !known(f) {
						t.Errorf("%s: %s names %v, which the demo does not have", where, o.Key, f)
					}
				}
			}
		}
	}
}

// TestTrafficDocExamples decodes every manifest docs/traffic.md shows, and
// testdata/routes.yaml, applies each to a model holding the demo, which
// the doc's walkthrough runs them against, and checks that the model
// admits its routes and that its traffic policies target the demo's
// services.
func TestTrafficDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/traffic.md")
	if err != nil {
		t.Fatal(err)
	}
	var demoObjects model.Changes
	services := map[string]bool{}
	for name, data := range demo.NewLayout(20000).Manifests {
		d := manifest.Decode(name, data)
		if err := d.Err(); err != nil {
			t.Fatal(err)
		}
		for _, o := range d.Objects {
			switch {
			case o.Service != nil:
				demoObjects.PutServices = append(demoObjects.PutServices, o.Service)
				if o.Service.Ref.Namespace == demo.Namespace {
					services[o.Service.Ref.Name] = true
				}
			case o.Workload != nil:
				demoObjects.PutWorkloads = append(demoObjects.PutWorkloads, o.Workload)
			}
		}
	}
	for _, want := range []string{"catalog", "catalog-v1", "catalog-v2", "stock"} {
		if !services[want] {
			t.Errorf("the demo has no service %s, which the doc's walkthrough routes to", want)
		}
	}
	blocks := manifestBlocks.FindAllSubmatch(doc, -1)
	if len(blocks) < 8 {
		t.Fatalf("found %d manifests in the doc; is the pattern still right?", len(blocks))
	}
	docs := map[string][]byte{}
	for i, m := range blocks {
		docs[fmt.Sprintf("docs/traffic.md manifest %d", i+1)] = append(m[1], m[2]...)
	}
	if docs["internal/manifest/testdata/routes.yaml"], err = os.ReadFile("testdata/routes.yaml"); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for where, data := range docs {
		d := manifest.Decode(where, data)
		if err := d.Err(); err != nil {
			t.Error(err)
		}
		store := model.NewStore()
		if err := store.Apply("demo", demoObjects); err != nil {
			t.Fatal(err)
		}
		var policies []model.Policy
		var changed []*model.Service
		for _, o := range d.Objects {
			if o.Service != nil {
				// A demo Service with an annotation (a load balancer, say).
				if !services[o.Service.Ref.Name] || o.Service.Ref.Namespace != demo.Namespace {
					t.Errorf("%s: %s is not one of the demo's services", where, o.Key)
				}
				changed = append(changed, o.Service)
				continue
			}
			if o.Policy == nil {
				t.Errorf("%s: %s is not a route or a traffic policy", where, o.Key)
				continue
			}
			policies = append(policies, o.Policy)
			kinds[o.Key.Kind] = true
			if o.Key.Ref.Namespace != demo.Namespace {
				t.Errorf("%s: %s is not in the demo's namespace", where, o.Key)
			}
			target := ""
			switch p := o.Policy.(type) {
			case *model.Route, *model.HTTPRouteGroup:
			case *model.RetryPolicy:
				target = p.Service
			case *model.FaultPolicy:
				target = p.Service
			case *model.CircuitBreakerPolicy:
				target = p.Service
			case *model.RateLimitPolicy:
				target = p.Service
			default:
				t.Errorf("%s: %s is not a route or a traffic policy", where, o.Key)
			}
			if target != "" && !services[target] {
				t.Errorf("%s: %s targets service %s, which the demo does not have", where, o.Key, target)
			}
		}
		if err := store.Apply("demo", model.Changes{PutServices: changed}); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if err := store.Apply("docs", model.Changes{PutPolicies: policies}); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for k, err := range store.Snapshot().RouteRejections() {
			t.Errorf("%s: %s is not admitted on the demo: %v", where, k, err)
		}
	}
	for _, k := range []string{model.KindHTTPRoute, model.KindGRPCRoute, model.KindTrafficSplit, model.KindRetryPolicy, model.KindFaultPolicy,
		model.KindCircuitBreakerPolicy, model.KindRateLimitPolicy} {
		if !kinds[k] {
			t.Errorf("no %s among the examples", k)
		}
	}
}
