package crds

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Validate checks what the API server checks of a CRD before it accepts
// it, but for its CEL rules: the names, the versions (exactly one
// stored), and that every version's schema is structural, with the
// extensions used as apiextensions v1 allows them. It follows
// k8s.io/apiextensions-apiserver's ValidateCustomResourceDefinition and
// schema.ValidateStructural, rule for rule; errors name the field.
func (c *CRD) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.APIVersion != "apiextensions.k8s.io/v1" || c.Kind != "CustomResourceDefinition" {
		add("apiVersion", "%s %s: want apiextensions.k8s.io/v1 CustomResourceDefinition", c.APIVersion, c.Kind)
	}
	s := c.Spec
	if want := s.Names.Plural + "." + s.Group; c.Metadata.Name != want {
		add("metadata.name", "%q: want <plural>.<group>, %s", c.Metadata.Name, want)
	}
	if !dnsSubdomain.MatchString(s.Group) || !strings.Contains(s.Group, ".") {
		add("spec.group", "%q: want a DNS subdomain with at least one dot", s.Group)
	}
	if !dnsLabel.MatchString(s.Names.Plural) {
		add("spec.names.plural", "%q: want a lower-case DNS label", s.Names.Plural)
	}
	if s.Names.Singular != "" && !dnsLabel.MatchString(s.Names.Singular) {
		add("spec.names.singular", "%q: want a lower-case DNS label", s.Names.Singular)
	}
	if s.Names.ListKind != "" && !kindName.MatchString(s.Names.ListKind) {
		add("spec.names.listKind", "%q: want a kind such as HTTPRouteList", s.Names.ListKind)
	}
	if !kindName.MatchString(s.Names.Kind) {
		add("spec.names.kind", "%q: want a kind such as HTTPRoute", s.Names.Kind)
	}
	if s.Names.ListKind != "" && s.Names.ListKind == s.Names.Kind {
		add("spec.names.listKind", "must differ from kind")
	}
	if s.Scope != "Namespaced" && s.Scope != "Cluster" {
		add("spec.scope", "%q: want Namespaced or Cluster", s.Scope)
	}
	if s.PreserveUnknownFields {
		add("spec.preserveUnknownFields", "must be false in apiextensions v1")
	}
	if cv := s.Conversion; cv != nil && cv.Strategy != "None" && cv.Strategy != "Webhook" {
		add("spec.conversion.strategy", "%q: want None or Webhook", cv.Strategy)
	}
	if len(s.Versions) == 0 {
		add("spec.versions", "must have at least one version")
	}
	stored, names := 0, map[string]bool{}
	for i, v := range s.Versions {
		f := fmt.Sprintf("spec.versions[%d]", i)
		if !versionName.MatchString(v.Name) {
			add(f+".name", "%q: want a version such as v1 or v1alpha2", v.Name)
		}
		if names[v.Name] {
			add(f+".name", "%q: given twice", v.Name)
		}
		names[v.Name] = true
		if v.Storage {
			stored++
			if !v.Served {
				add(f+".served", "the storage version must be served")
			}
		}
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			add(f+".schema.openAPIV3Schema", "must be set: without it every field is pruned")
			continue
		}
		for j, col := range v.AdditionalPrinterColumns {
			if !slices.Contains([]string{"integer", "number", "string", "boolean", "date"}, col.Type) {
				add(fmt.Sprintf("%s.additionalPrinterColumns[%d].type", f, j), "%q: want integer, number, string, boolean or date", col.Type)
			}
			if col.Name == "" || !strings.HasPrefix(col.JSONPath, ".") {
				add(fmt.Sprintf("%s.additionalPrinterColumns[%d]", f, j), "want a name and a jsonPath starting with .")
			}
		}
		root := v.Schema.OpenAPIV3Schema
		if v.Subresources != nil && v.Subresources.Status != nil {
			// The API server takes the status schema from the root's
			// properties, so the root may not constrain anything else.
			if root.Type != "object" {
				add(f+".schema.openAPIV3Schema.type", "%q: must be object with a status subresource", root.Type)
			}
			for field, set := range map[string]bool{
				"default": root.Default != nil, "enum": root.Enum != nil, "maxProperties": root.MaxProperties != nil,
				"minProperties": root.MinProperties != nil, "allOf": root.AllOf != nil, "anyOf": root.AnyOf != nil,
				"oneOf": root.OneOf != nil, "not": root.Not != nil, "additionalProperties": root.AdditionalProperties != nil,
				"x-kubernetes-embedded-resource": root.EmbeddedResource, "x-kubernetes-int-or-string": root.IntOrString,
				"x-kubernetes-list-type": root.ListType != nil, "x-kubernetes-map-type": root.MapType != nil,
			} {
				if set {
					add(f+".schema.openAPIV3Schema."+field, "must not be at the root with a status subresource")
				}
			}
		}
		if root.Nullable {
			add(f+".schema.openAPIV3Schema.nullable", "must not be true at the root")
		}
		errs = append(errs, checkStructural(root, f+".schema.openAPIV3Schema")...)
	}
	if stored != 1 {
		add("spec.versions", "%d storage versions: want exactly one", stored)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("customresourcedefinition %s: %w", c.Metadata.Name, err)
	}
	return nil
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	kindName     = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	versionName  = regexp.MustCompile(`^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$`)
)

func (s *Schema) isZero() bool {
	return s.ID == "" && s.SchemaURL == "" && s.Ref == nil && s.Format == "" && s.Title == "" && s.Default == nil &&
		s.Maximum == nil && !s.ExclusiveMaximum && s.Minimum == nil && !s.ExclusiveMinimum && s.MaxLength == nil &&
		s.MinLength == nil && s.Pattern == "" && s.MaxItems == nil && s.MinItems == nil && !s.UniqueItems &&
		s.MultipleOf == nil && s.Enum == nil && s.MaxProperties == nil && s.MinProperties == nil && s.Items == nil &&
		s.AllOf == nil && s.OneOf == nil && s.AnyOf == nil && s.Not == nil && s.AdditionalProperties == nil &&
		s.PatternProperties == nil && s.Dependencies == nil && s.AdditionalItems == nil && s.Definitions == nil &&
		s.ExternalDocs == nil && s.Example == nil && !s.Nullable && !s.EmbeddedResource && !s.IntOrString &&
		s.ListMapKeys == nil && s.ListType == nil && s.MapType == nil && s.Description == "" && s.Type == "" &&
		s.Properties == nil && s.Required == nil && s.PreserveUnknown == nil && s.Validations == nil
}

// level is where a schema sits, as apiextensions names the places.
type level int

const (
	rootLevel level = iota
	itemLevel
	fieldLevel
)

type checker struct{ errs []error }

func (k *checker) add(field, format string, args ...any) {
	k.errs = append(k.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// checkStructural checks one version's schema.
func checkStructural(root *Schema, path string) []error {
	k := &checker{}
	k.structure(root, rootLevel, path)
	k.completeness(root, root, path, path)
	return k.errs
}

var openAPITypes = []string{"array", "boolean", "integer", "number", "object", "string"}

// structure checks a schema of the structural part (not inside allOf,
// anyOf, oneOf or not) and everything under it.
func (k *checker) structure(s *Schema, lvl level, path string) {
	if s == nil {
		return
	}
	k.common(s, path)
	if s.Type == "array" && s.Items == nil {
		k.add(path+".items", "must be given for an array")
	}
	k.structure(s.Items, itemLevel, path+".items")
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		p := s.Properties[name]
		k.structure(&p, fieldLevel, path+".properties["+name+"]")
	}
	if ap := s.AdditionalProperties; ap != nil {
		if lvl == rootLevel {
			k.add(path+".additionalProperties", "must not be used at the root")
		}
		if !ap.Allows {
			k.add(path+".additionalProperties", "must not be false: unknown fields are pruned")
		}
		if len(s.Properties) > 0 {
			k.add(path+".additionalProperties", "additionalProperties and properties are mutually exclusive")
		}
		k.structure(ap.Schema, fieldLevel, path+".additionalProperties")
	}
	intOrString := isIntOrStringAnyOf(s.AnyOf) || len(s.AllOf) > 0 && isIntOrStringAnyOf(s.AllOf[0].AnyOf)
	if s.IntOrString && s.Type != "" {
		k.add(path+".type", "must be empty with x-kubernetes-int-or-string")
	}
	if s.IntOrString && (s.PreserveUnknown != nil && *s.PreserveUnknown || s.EmbeddedResource) {
		k.add(path, "x-kubernetes-int-or-string excludes x-kubernetes-preserve-unknown-fields and x-kubernetes-embedded-resource")
	}
	for i := range s.AnyOf {
		if !(intOrString && isIntOrStringAnyOf(s.AnyOf)) {
			k.nested(&s.AnyOf[i], fmt.Sprintf("%s.anyOf[%d]", path, i), false)
		}
	}
	for i := range s.AllOf {
		k.nested(&s.AllOf[i], fmt.Sprintf("%s.allOf[%d]", path, i), i == 0 && intOrString)
	}
	for i := range s.OneOf {
		k.nested(&s.OneOf[i], fmt.Sprintf("%s.oneOf[%d]", path, i), false)
	}
	k.nested(s.Not, path+".not", false)

	preserve := s.PreserveUnknown != nil && *s.PreserveUnknown
	switch {
	case s.EmbeddedResource && s.Type != "object":
		k.add(path+".type", "must be object with x-kubernetes-embedded-resource")
	case s.Type == "" && !s.IntOrString && !preserve:
		k.add(path+".type", "must not be empty (%s)", map[level]string{rootLevel: "at the root", itemLevel: "for array items", fieldLevel: "for object fields"}[lvl])
	}
	if s.EmbeddedResource && s.AdditionalProperties != nil {
		k.add(path+".additionalProperties", "must not be used with x-kubernetes-embedded-resource")
	}
	if s.EmbeddedResource && !preserve && len(s.Properties) == 0 {
		k.add(path+".properties", "must not be empty with x-kubernetes-embedded-resource but not x-kubernetes-preserve-unknown-fields")
	}
	if lvl == rootLevel && s.Type != "" && s.Type != "object" {
		k.add(path+".type", "%q: must be object at the root", s.Type)
	}
	checkMeta := lvl == rootLevel || s.EmbeddedResource
	if checkMeta {
		for _, name := range []string{"kind", "apiVersion"} {
			if p, ok := s.Properties[name]; ok && p.Type != "string" {
				k.add(path+".properties["+name+"].type", "%q: must be string", p.Type)
			}
		}
	}
	if m, ok := s.Properties["metadata"]; ok {
		if checkMeta && m.Type != "object" {
			k.add(path+".properties[metadata].type", "%q: must be object", m.Type)
		}
		if lvl == rootLevel {
			// metadata may restrict name and generateName, nothing else.
			rest := m
			rest.Type, rest.Properties = "", nil
			for name := range m.Properties {
				if name != "name" && name != "generateName" {
					k.add(path+".properties[metadata].properties["+name+"]", "metadata may only restrict name and generateName")
				}
			}
			if !rest.isZero() {
				k.add(path+".properties[metadata]", "metadata may only restrict name and generateName")
			}
		}
	}
	k.lists(s, path)
}

// common checks what apiextensions refuses wherever it appears.
func (k *checker) common(s *Schema, path string) {
	if s.Type != "" && !slices.Contains(openAPITypes, s.Type) {
		k.add(path+".type", "%q: want one of %s", s.Type, strings.Join(openAPITypes, ", "))
	}
	if s.UniqueItems {
		k.add(path+".uniqueItems", "must not be true: its cost is quadratic; use x-kubernetes-list-type: set")
	}
	for field, set := range map[string]bool{
		"$ref": s.Ref != nil, "$schema": s.SchemaURL != "", "id": s.ID != "", "definitions": s.Definitions != nil,
		"dependencies": s.Dependencies != nil, "patternProperties": s.PatternProperties != nil, "additionalItems": s.AdditionalItems != nil,
	} {
		if set {
			k.add(path+"."+field, "is not supported in a CRD")
		}
	}
	if s.PreserveUnknown != nil && !*s.PreserveUnknown {
		k.add(path+".x-kubernetes-preserve-unknown-fields", "must be true or absent")
	}
	if s.Pattern != "" {
		if _, err := regexp.Compile(s.Pattern); err != nil {
			k.add(path+".pattern", "%q: %v", s.Pattern, err)
		}
	}
	for i, r := range s.Validations {
		f := fmt.Sprintf("%s.x-kubernetes-validations[%d]", path, i)
		if strings.TrimSpace(r.Rule) == "" {
			k.add(f+".rule", "must be given")
		}
		if strings.ContainsAny(r.Message, "\r\n") {
			k.add(f+".message", "must not contain line breaks")
		}
		if strings.ContainsAny(r.Rule, "\r\n") && r.Message == "" {
			k.add(f+".message", "must be given when the rule has line breaks")
		}
	}
}

// lists checks x-kubernetes-list-type, -list-map-keys and -map-type.
func (k *checker) lists(s *Schema, path string) {
	if s.MapType != nil {
		if s.Type != "object" {
			k.add(path+".type", "must be object with x-kubernetes-map-type")
		}
		if *s.MapType != "atomic" && *s.MapType != "granular" {
			k.add(path+".x-kubernetes-map-type", "%q: want atomic or granular", *s.MapType)
		}
	}
	if len(s.ListMapKeys) > 0 && (s.ListType == nil || *s.ListType != "map") {
		k.add(path+".x-kubernetes-list-type", "must be map with x-kubernetes-list-map-keys")
	}
	if s.ListType == nil {
		return
	}
	if s.Type != "array" {
		k.add(path+".type", "must be array with x-kubernetes-list-type")
	}
	switch *s.ListType {
	case "atomic":
	case "set":
		if it := s.Items; it != nil && (it.Type == "object" || it.Type == "array") {
			atomicMap := it.MapType != nil && *it.MapType == "atomic"
			atomicList := it.ListType != nil && *it.ListType == "atomic"
			if !atomicMap && !atomicList {
				k.add(path+".items", "items of a set must be scalars or atomic")
			}
		}
	case "map":
		if len(s.ListMapKeys) == 0 {
			k.add(path+".x-kubernetes-list-map-keys", "must not be empty with x-kubernetes-list-type map")
		}
		it := s.Items
		if it == nil || it.Type != "object" {
			k.add(path+".items.type", "must be object with x-kubernetes-list-type map")
			return
		}
		seen := map[string]bool{}
		for _, key := range s.ListMapKeys {
			p, ok := it.Properties[key]
			switch {
			case !ok:
				k.add(path+".x-kubernetes-list-map-keys", "%q is not a property of the items", key)
			case seen[key]:
				k.add(path+".x-kubernetes-list-map-keys", "%q is given twice", key)
			case p.Type != "string" && p.Type != "integer" && p.Type != "number" && p.Type != "boolean":
				k.add(path+".items.properties["+key+"].type", "a list map key must be a scalar")
			case !slices.Contains(it.Required, key) && p.Default == nil:
				k.add(path+".items.properties["+key+"]", "a list map key must be required or have a default")
			case p.Nullable:
				k.add(path+".items.properties["+key+"].nullable", "a list map key must not be nullable")
			}
			seen[key] = true
		}
	default:
		k.add(path+".x-kubernetes-list-type", "%q: want atomic, set or map", *s.ListType)
	}
	if s.Items != nil && s.Items.Nullable {
		k.add(path+".items.nullable", "items of a list with x-kubernetes-list-type must not be nullable")
	}
}

// nested checks a schema inside allOf, anyOf, oneOf or not: value
// validations only. intOrString marks the first allOf of the
// int-or-string pattern, whose anyOf may name the types.
func (k *checker) nested(s *Schema, path string, intOrString bool) {
	if s == nil {
		return
	}
	k.common(s, path)
	forbidden := map[string]bool{
		"type":                                 s.Type != "",
		"additionalProperties":                 s.AdditionalProperties != nil,
		"default":                              s.Default != nil,
		"title":                                s.Title != "",
		"description":                          s.Description != "",
		"nullable":                             s.Nullable,
		"x-kubernetes-preserve-unknown-fields": s.PreserveUnknown != nil,
		"x-kubernetes-embedded-resource":       s.EmbeddedResource,
		"x-kubernetes-int-or-string":           s.IntOrString,
		"x-kubernetes-list-map-keys":           len(s.ListMapKeys) > 0,
		"x-kubernetes-list-type":               s.ListType != nil,
		"x-kubernetes-map-type":                s.MapType != nil,
		"x-kubernetes-validations":             len(s.Validations) > 0,
	}
	for _, f := range slices.Sorted(maps.Keys(forbidden)) {
		if forbidden[f] {
			k.add(path+"."+f, "must not be set inside allOf, anyOf, oneOf or not (a structural schema)")
		}
	}
	if _, ok := s.Properties["metadata"]; ok {
		k.add(path+".properties[metadata]", "must not be specified in a nested context")
	}
	k.nested(s.Items, path+".items", false)
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		p := s.Properties[name]
		k.nested(&p, path+".properties["+name+"]", false)
	}
	if !(intOrString && isIntOrStringAnyOf(s.AnyOf)) {
		for i := range s.AnyOf {
			k.nested(&s.AnyOf[i], fmt.Sprintf("%s.anyOf[%d]", path, i), false)
		}
	}
	for i := range s.AllOf {
		k.nested(&s.AllOf[i], fmt.Sprintf("%s.allOf[%d]", path, i), false)
	}
	for i := range s.OneOf {
		k.nested(&s.OneOf[i], fmt.Sprintf("%s.oneOf[%d]", path, i), false)
	}
	k.nested(s.Not, path+".not", false)
}

// isIntOrStringAnyOf is the one anyOf a structural schema may give types
// in: [{type: integer}, {type: string}].
func isIntOrStringAnyOf(anyOf []Schema) bool {
	if len(anyOf) != 2 {
		return false
	}
	for i, t := range []string{"integer", "string"} {
		s := anyOf[i]
		s.Type = ""
		if anyOf[i].Type != t || !s.isZero() {
			return false
		}
	}
	return true
}

// completeness checks that every property and items schema a value
// validation names is in the structural part at the same place (v is a
// value validation's schema, s the structural schema it applies to).
func (k *checker) completeness(v, s *Schema, sPath, vPath string) {
	for i := range v.AllOf {
		k.nestedCompleteness(&v.AllOf[i], s, sPath, fmt.Sprintf("%s.allOf[%d]", vPath, i))
	}
	for i := range v.AnyOf {
		k.nestedCompleteness(&v.AnyOf[i], s, sPath, fmt.Sprintf("%s.anyOf[%d]", vPath, i))
	}
	for i := range v.OneOf {
		k.nestedCompleteness(&v.OneOf[i], s, sPath, fmt.Sprintf("%s.oneOf[%d]", vPath, i))
	}
	if v.Not != nil {
		k.nestedCompleteness(v.Not, s, sPath, vPath+".not")
	}
	if v == s {
		// Walk the structural part for the value validations below it.
		if s.Items != nil {
			k.completeness(s.Items, s.Items, sPath+".items", sPath+".items")
		}
		for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
			p := s.Properties[name]
			k.completeness(&p, &p, sPath+".properties["+name+"]", sPath+".properties["+name+"]")
		}
		if ap := s.AdditionalProperties; ap != nil && ap.Schema != nil {
			k.completeness(ap.Schema, ap.Schema, sPath+".additionalProperties", sPath+".additionalProperties")
		}
	}
}

func (k *checker) nestedCompleteness(v, s *Schema, sPath, vPath string) {
	if s == nil {
		k.add(sPath, "must be specified, because %s names it", vPath)
		return
	}
	k.completeness(v, s, sPath, vPath)
	if v.Items != nil {
		k.nestedCompleteness(v.Items, s.Items, sPath+".items", vPath+".items")
	}
	for _, name := range slices.Sorted(maps.Keys(v.Properties)) {
		vp := v.Properties[name]
		sp, ok := s.Properties[name]
		if !ok {
			k.add(sPath+".properties["+name+"]", "must be specified, because %s names it", vPath+".properties["+name+"]")
			continue
		}
		k.nestedCompleteness(&vp, &sp, sPath+".properties["+name+"]", vPath+".properties["+name+"]")
	}
}
