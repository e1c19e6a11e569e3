package match

import (
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

func TestPath(t *testing.T) {
	tests := []struct {
		pm   model.PathMatch
		path string
		want bool
	}{
		{model.PathMatch{Type: model.PathExact, Value: "/a"}, "/a", true},
		{model.PathMatch{Type: model.PathExact, Value: "/a"}, "/a/", false},
		{model.PathMatch{Type: model.PathPrefix, Value: "/a"}, "/a/b", true},
		{model.PathMatch{Type: model.PathPrefix, Value: "/a"}, "/ab", false},
		{model.PathMatch{Type: model.PathPrefix, Value: "/a/"}, "/a/b", true},
		{model.PathMatch{Type: model.PathPrefix, Value: "/"}, "/anything", true},
		{model.PathMatch{Type: model.PathRegex, Value: "/v[0-9]+"}, "/v12", true},
		{model.PathMatch{Type: model.PathRegex, Value: "/v[0-9]+"}, "/v12/x", false},
	}
	for _, tc := range tests {
		m, err := Path(tc.pm)
		if err != nil {
			t.Fatal(err)
		}
		if got := m(tc.path); got != tc.want {
			t.Errorf("%s %q on %q = %v, want %v", tc.pm.Type, tc.pm.Value, tc.path, got, tc.want)
		}
	}
	if _, err := Path(model.PathMatch{Type: model.PathRegex, Value: "("}); err == nil {
		t.Error("a bad expression compiled")
	}
	if _, err := Path(model.PathMatch{Type: "Glob", Value: "/"}); err == nil {
		t.Error("an unknown type compiled")
	}
}

func TestValue(t *testing.T) {
	exact, _ := Value(model.ValueMatch{Name: "x", Value: "alice"})
	re, _ := Value(model.ValueMatch{Name: "x", Value: "alice|bob", Regex: true})
	if !exact("alice") || exact("alice2") || !re("bob") || re("bobby") {
		t.Fatal("value matches wrong")
	}
}
