package crds

import (
	"encoding/json"
	"errors"
	"fmt"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// CRD is an apiextensions.k8s.io/v1 CustomResourceDefinition, as far as
// weft's checks read it: the field names and shapes are apiextensions
// v1's, so that decoding strictly into them refuses a misspelt field as
// the API server would. weft keeps these few types rather than import
// k8s.io/apiextensions-apiserver, whose module would raise the versions
// of gRPC, OpenTelemetry and more under the whole of weft.
type CRD struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata is the part of a CRD's metadata weft writes.
type Metadata struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Spec is a CustomResourceDefinitionSpec.
type Spec struct {
	Group                 string      `json:"group"`
	Names                 Names       `json:"names"`
	Scope                 string      `json:"scope"`
	Versions              []Version   `json:"versions"`
	Conversion            *Conversion `json:"conversion,omitempty"`
	PreserveUnknownFields bool        `json:"preserveUnknownFields,omitempty"`
}

// Conversion is a CustomResourceConversion; weft's CRDs use None (no
// webhook), so a webhook's settings are kept unread.
type Conversion struct {
	Strategy string          `json:"strategy"`
	Webhook  json.RawMessage `json:"webhook,omitempty"`
}

// Names is a CustomResourceDefinitionNames.
type Names struct {
	Plural     string   `json:"plural"`
	Singular   string   `json:"singular,omitempty"`
	ShortNames []string `json:"shortNames,omitempty"`
	Kind       string   `json:"kind"`
	ListKind   string   `json:"listKind,omitempty"`
	Categories []string `json:"categories,omitempty"`
}

// Version is a CustomResourceDefinitionVersion.
type Version struct {
	Name                     string          `json:"name"`
	Served                   bool            `json:"served"`
	Storage                  bool            `json:"storage"`
	Deprecated               bool            `json:"deprecated,omitempty"`
	DeprecationWarning       *string         `json:"deprecationWarning,omitempty"`
	Schema                   *Validation     `json:"schema,omitempty"`
	Subresources             *Subresources   `json:"subresources,omitempty"`
	AdditionalPrinterColumns []PrinterColumn `json:"additionalPrinterColumns,omitempty"`
	SelectableFields         []struct {
		JSONPath string `json:"jsonPath"`
	} `json:"selectableFields,omitempty"`
}

// Validation is a CustomResourceValidation.
type Validation struct {
	OpenAPIV3Schema *Schema `json:"openAPIV3Schema,omitempty"`
}

// Subresources is a CustomResourceSubresources.
type Subresources struct {
	Status *struct{} `json:"status,omitempty"`
	Scale  *struct {
		SpecReplicasPath   string  `json:"specReplicasPath"`
		StatusReplicasPath string  `json:"statusReplicasPath"`
		LabelSelectorPath  *string `json:"labelSelectorPath,omitempty"`
	} `json:"scale,omitempty"`
}

// PrinterColumn is a CustomResourceColumnDefinition.
type PrinterColumn struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Format      string `json:"format,omitempty"`
	Description string `json:"description,omitempty"`
	Priority    int32  `json:"priority,omitempty"`
	JSONPath    string `json:"jsonPath"`
}

// Schema is a JSONSchemaProps: OpenAPI v3 with Kubernetes' extensions.
// It lists every field apiextensions v1 has, those a CRD must not use
// ($ref, definitions, ...) included, so that the structural check can
// name them rather than the decoder calling them unknown.
type Schema struct {
	ID                   string            `json:"id,omitempty"`
	SchemaURL            string            `json:"$schema,omitempty"`
	Ref                  *string           `json:"$ref,omitempty"`
	Description          string            `json:"description,omitempty"`
	Type                 string            `json:"type,omitempty"`
	Format               string            `json:"format,omitempty"`
	Title                string            `json:"title,omitempty"`
	Default              json.RawMessage   `json:"default,omitempty"`
	Maximum              *float64          `json:"maximum,omitempty"`
	ExclusiveMaximum     bool              `json:"exclusiveMaximum,omitempty"`
	Minimum              *float64          `json:"minimum,omitempty"`
	ExclusiveMinimum     bool              `json:"exclusiveMinimum,omitempty"`
	MaxLength            *int64            `json:"maxLength,omitempty"`
	MinLength            *int64            `json:"minLength,omitempty"`
	Pattern              string            `json:"pattern,omitempty"`
	MaxItems             *int64            `json:"maxItems,omitempty"`
	MinItems             *int64            `json:"minItems,omitempty"`
	UniqueItems          bool              `json:"uniqueItems,omitempty"`
	MultipleOf           *float64          `json:"multipleOf,omitempty"`
	Enum                 []json.RawMessage `json:"enum,omitempty"`
	MaxProperties        *int64            `json:"maxProperties,omitempty"`
	MinProperties        *int64            `json:"minProperties,omitempty"`
	Required             []string          `json:"required,omitempty"`
	Items                *Schema           `json:"items,omitempty"`
	AllOf                []Schema          `json:"allOf,omitempty"`
	OneOf                []Schema          `json:"oneOf,omitempty"`
	AnyOf                []Schema          `json:"anyOf,omitempty"`
	Not                  *Schema           `json:"not,omitempty"`
	Properties           map[string]Schema `json:"properties,omitempty"`
	AdditionalProperties *SchemaOrBool     `json:"additionalProperties,omitempty"`
	PatternProperties    map[string]Schema `json:"patternProperties,omitempty"`
	Dependencies         json.RawMessage   `json:"dependencies,omitempty"`
	AdditionalItems      json.RawMessage   `json:"additionalItems,omitempty"`
	Definitions          map[string]Schema `json:"definitions,omitempty"`
	ExternalDocs         *ExternalDocs     `json:"externalDocs,omitempty"`
	Example              json.RawMessage   `json:"example,omitempty"`
	Nullable             bool              `json:"nullable,omitempty"`
	PreserveUnknown      *bool             `json:"x-kubernetes-preserve-unknown-fields,omitempty"`
	EmbeddedResource     bool              `json:"x-kubernetes-embedded-resource,omitempty"`
	IntOrString          bool              `json:"x-kubernetes-int-or-string,omitempty"`
	ListMapKeys          []string          `json:"x-kubernetes-list-map-keys,omitempty"`
	ListType             *string           `json:"x-kubernetes-list-type,omitempty"`
	MapType              *string           `json:"x-kubernetes-map-type,omitempty"`
	Validations          []ValidationRule  `json:"x-kubernetes-validations,omitempty"`
}

// SchemaOrBool is additionalProperties: a schema, or true/false.
type SchemaOrBool struct {
	Allows bool
	Schema *Schema
}

// UnmarshalJSON reads a boolean or a schema, strictly.
func (s *SchemaOrBool) UnmarshalJSON(data []byte) error {
	var b bool
	if err := json.Unmarshal(data, &b); err == nil {
		*s = SchemaOrBool{Allows: b}
		return nil
	}
	var sch Schema
	if err := strictJSON(data, &sch); err != nil {
		return err
	}
	*s = SchemaOrBool{Allows: true, Schema: &sch}
	return nil
}

// ExternalDocs is an ExternalDocumentation.
type ExternalDocs struct {
	Description string `json:"description,omitempty"`
	URL         string `json:"url,omitempty"`
}

// ValidationRule is a CEL rule of x-kubernetes-validations. Only the API
// server can compile and cost it; see the package comment.
type ValidationRule struct {
	Rule              string  `json:"rule"`
	Message           string  `json:"message,omitempty"`
	MessageExpression string  `json:"messageExpression,omitempty"`
	Reason            *string `json:"reason,omitempty"`
	FieldPath         string  `json:"fieldPath,omitempty"`
	OptionalOldSelf   *bool   `json:"optionalOldSelf,omitempty"`
}

// Parse decodes one CRD from YAML or JSON, strictly: an unknown or
// duplicate field is an error.
func Parse(data []byte) (*CRD, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("decoding a CustomResourceDefinition: %w", err)
	}
	var c CRD
	if err := strictJSON(js, &c); err != nil {
		return nil, fmt.Errorf("decoding a CustomResourceDefinition: %w", err)
	}
	return &c, nil
}

// strictJSON decodes as the API server does: field names are case
// sensitive, and unknown or duplicate fields are errors.
func strictJSON(data []byte, into any) error {
	strict, err := kjson.UnmarshalStrict(data, into)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// StorageVersion is the name of the version stored, or "" if none is.
func (c *CRD) StorageVersion() string {
	for _, v := range c.Spec.Versions {
		if v.Storage {
			return v.Name
		}
	}
	return ""
}

// SchemaOf returns the schema of a version, or nil.
func (c *CRD) SchemaOf(version string) *Schema {
	for _, v := range c.Spec.Versions {
		if v.Name == version && v.Schema != nil {
			return v.Schema.OpenAPIV3Schema
		}
	}
	return nil
}
