package crds

import (
	"strings"
	"testing"
)

// base is a small valid CRD; each case below breaks one rule of it.
const base = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            metadata:
              type: object
              properties:
                name: {type: string, maxLength: 63}
            spec:
              type: object
              required: [port]
              properties:
                port: {type: integer, minimum: 1}
                mode:
                  type: string
                  anyOf: [{pattern: '^a'}, {pattern: '^b'}]
                size:
                  x-kubernetes-int-or-string: true
                  anyOf: [{type: integer}, {type: string}]
                items:
                  type: array
                  x-kubernetes-list-type: map
                  x-kubernetes-list-map-keys: [key]
                  items:
                    type: object
                    required: [key]
                    properties:
                      key: {type: string}
                labels:
                  type: object
                  additionalProperties: {type: string}
                raw:
                  x-kubernetes-preserve-unknown-fields: true
`

func TestValidateAcceptsBase(t *testing.T) {
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		want     string
		parse    bool // the error comes from Parse, not Validate
	}{
		{name: "name is not plural.group", old: "name: widgets.example.com", new: "name: widget.example.com", want: "metadata.name"},
		{name: "group without a dot", old: "group: example.com", new: "group: example", want: "spec.group"},
		{name: "kind in lower case", old: "kind: Widget,", new: "kind: widget,", want: "spec.names.kind"},
		{name: "bad scope", old: "scope: Namespaced", new: "scope: Global", want: "spec.scope"},
		{name: "no storage version", old: "storage: true", new: "storage: false", want: "0 storage versions"},
		{name: "bad version name", old: "- name: v1\n", new: "- name: version1\n", want: "spec.versions[0].name"},
		{name: "misspelt keyword", old: "minimum: 1", new: "minimun: 1", want: "unknown field", parse: true},
		{name: "keyword in the wrong case", old: "maxLength: 63", new: "maxlength: 63", want: "unknown field", parse: true},
		{name: "field without type", old: "port: {type: integer, minimum: 1}", new: "port: {minimum: 1}", want: "properties[port].type: must not be empty"},
		{name: "array without items", old: "raw:\n                  x-kubernetes-preserve-unknown-fields: true", new: "raw:\n                  type: array", want: "properties[raw].items: must be given"},
		{name: "type inside anyOf", old: "anyOf: [{pattern: '^a'}, {pattern: '^b'}]", new: "anyOf: [{type: string, pattern: '^a'}]", want: "anyOf[0].type: must not be set inside"},
		{name: "description inside anyOf", old: "anyOf: [{pattern: '^a'}, {pattern: '^b'}]", new: "anyOf: [{description: a}]", want: "anyOf[0].description"},
		{name: "anyOf names a property the structure lacks", old: "anyOf: [{pattern: '^a'}, {pattern: '^b'}]", new: "anyOf: [{properties: {x: {pattern: a}}}]", want: "properties[mode].properties[x]: must be specified"},
		{name: "int-or-string with a type", old: "x-kubernetes-int-or-string: true\n", new: "x-kubernetes-int-or-string: true\n                  type: string\n", want: "must be empty with x-kubernetes-int-or-string"},
		{name: "metadata restricts labels", old: "name: {type: string, maxLength: 63}", new: "labels: {type: object}", want: "metadata may only restrict name and generateName"},
		{name: "additionalProperties false", old: "additionalProperties: {type: string}", new: "additionalProperties: false", want: "must not be false"},
		{name: "properties and additionalProperties", old: "additionalProperties: {type: string}", new: "additionalProperties: {type: string}\n                  properties: {a: {type: string}}", want: "mutually exclusive"},
		{name: "uniqueItems", old: "x-kubernetes-list-type: map", new: "x-kubernetes-list-type: map\n                  uniqueItems: true", want: "uniqueItems"},
		{name: "list map key not required", old: "required: [key]", new: "required: []", want: "must be required or have a default"},
		{name: "list map key missing", old: "x-kubernetes-list-map-keys: [key]", new: "x-kubernetes-list-map-keys: [name]", want: `"name" is not a property`},
		{name: "bad list type", old: "x-kubernetes-list-type: map", new: "x-kubernetes-list-type: bag", want: `"bag": want atomic, set or map`},
		{name: "$ref", old: "port: {type: integer, minimum: 1}", new: "port: {type: integer, $ref: '#/x'}", want: "$ref: is not supported"},
		{name: "bad pattern", old: "name: {type: string, maxLength: 63}", new: "name: {type: string, pattern: '('}", want: "pattern"},
		{name: "preserve-unknown-fields false", old: "x-kubernetes-preserve-unknown-fields: true", new: "type: object\n                  x-kubernetes-preserve-unknown-fields: false", want: "must be true or absent"},
		{name: "root not an object", old: "        openAPIV3Schema:\n          type: object", new: "        openAPIV3Schema:\n          type: string", want: "must be object"},
		{name: "enum at the root with status", old: "        openAPIV3Schema:\n          type: object", new: "        openAPIV3Schema:\n          type: object\n          enum: [{}]", want: "enum: must not be at the root with a status subresource"},
		{name: "duplicate field", old: "scope: Namespaced", new: "scope: Namespaced\n  scope: Cluster", want: `key "scope" already set`, parse: true},
		{name: "empty CEL rule", old: "port: {type: integer, minimum: 1}", new: "port: {type: integer, x-kubernetes-validations: [{rule: ''}]}", want: "rule: must be given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("the base has no %q", tc.old)
			}
			c, err := Parse([]byte(strings.Replace(base, tc.old, tc.new, 1)))
			if tc.parse {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Parse: got %v, want an error containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateRefusesAVersionWithoutSchema(t *testing.T) {
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Versions[0].Schema = nil
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "every field is pruned") {
		t.Fatalf("got %v", err)
	}
}
