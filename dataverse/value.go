package dataverse

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// decodeValue decodes one serialized value, keeping numbers as json.Number
// so that Money and decimal columns keep every digit. A missing value is
// null.
func decodeValue(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// kind is what a serialized object stands for.
type kind int

const (
	kindOther kind = iota
	kindEntity
	kindReference
)

// kindOf tells an Entity or EntityReference by its __type hint, or, since
// images and the entities of a collection come without one, by its fields.
func kindOf(m map[string]any) kind {
	typ, _ := m["__type"].(string)
	name, _, _ := strings.Cut(typ, ":")
	switch name {
	case "Entity":
		return kindEntity
	case "EntityReference":
		return kindReference
	case "":
		if _, ok := m["Attributes"]; ok {
			return kindEntity
		}
		_, id := m["Id"]
		_, logical := m["LogicalName"]
		if id && logical {
			return kindReference
		}
	}
	return kindOther
}

// flatten turns a serialized Dataverse value into plain JSON:
//
//   - Entity: an object of its attributes, each value flattened
//   - EntityReference: {"id", "logicalName"}
//   - OptionSetValue, Money, BooleanManagedProperty: their Value
//   - AliasedValue: its ReturnedValue, flattened
//   - EntityCollection: a list of its entities, each flattened
//   - a DateTime string, /Date(ms±hhmm)/: an RFC 3339 time in UTC
//   - a list (OptionSetValueCollection, EntityReferenceCollection): a list
//     of its elements, each flattened
//   - any other object: its fields, each flattened, without __type
//
// Strings, numbers, booleans and null stay as they are.
func flatten(v any) any {
	switch v := v.(type) {
	case string:
		if t, ok := parseDate(v); ok {
			return t.Format(time.RFC3339Nano)
		}
		return v
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = flatten(x)
		}
		return out
	case map[string]any:
		return flattenObject(v)
	}
	return v
}

func flattenObject(m map[string]any) any {
	switch kindOf(m) {
	case kindEntity:
		if attrs, ok := attributes(m); ok {
			return attrs
		}
	case kindReference:
		return map[string]any{"id": flatten(m["Id"]), "logicalName": flatten(m["LogicalName"])}
	}
	typ, _ := m["__type"].(string)
	name, _, _ := strings.Cut(typ, ":")
	switch name {
	case "OptionSetValue", "Money", "BooleanManagedProperty":
		if v, ok := m["Value"]; ok {
			return flatten(v)
		}
	case "AliasedValue":
		if v, ok := m["ReturnedValue"]; ok {
			return flatten(v)
		}
	case "EntityCollection":
		if entities, ok := m["Entities"].([]any); ok {
			return flatten(entities)
		}
	}
	out := make(map[string]any, len(m))
	for k, x := range m {
		if k != "__type" {
			out[k] = flatten(x)
		}
	}
	return out
}

// attributes returns an entity's Attributes, a list of {key, value} pairs,
// as an object of flattened values; ok is false when they are not such a
// list. A key given twice keeps its last value.
func attributes(entity map[string]any) (attrs map[string]any, ok bool) {
	list, isList := entity["Attributes"].([]any)
	if !isList && entity["Attributes"] != nil {
		return nil, false
	}
	attrs = make(map[string]any, len(list))
	for _, el := range list {
		p, isObject := el.(map[string]any)
		if !isObject {
			return nil, false
		}
		key, isString := p["key"].(string)
		if !isString {
			return nil, false
		}
		attrs[key] = flatten(p["value"])
	}
	return attrs, true
}
