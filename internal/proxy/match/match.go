package match

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/weftmesh/weft/internal/model"
)

// Path compiles a path match.
func Path(pm model.PathMatch) (func(path string) bool, error) {
	switch pm.Type {
	case model.PathExact:
		return func(path string) bool { return path == pm.Value }, nil
	case model.PathPrefix:
		prefix := pm.Value
		return func(path string) bool {
			// Gateway API semantics: a prefix matches whole path segments.
			if !strings.HasPrefix(path, prefix) {
				return false
			}
			return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
		}, nil
	case model.PathRegex:
		re, err := Whole(pm.Value)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", pm.Value, err)
		}
		return re.MatchString, nil
	}
	return nil, fmt.Errorf("path match type %q: want Exact, PathPrefix or RegularExpression", pm.Type)
}

// Whole compiles an RE2 expression that must match a whole value.
func Whole(expr string) (*regexp.Regexp, error) { return regexp.Compile(`^(?:` + expr + `)$`) }

// Value compiles a header or query value match.
func Value(v model.ValueMatch) (func(string) bool, error) {
	if !v.Regex {
		want := v.Value
		return func(got string) bool { return got == want }, nil
	}
	re, err := Whole(v.Value)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", v.Name, v.Value, err)
	}
	return re.MatchString, nil
}
