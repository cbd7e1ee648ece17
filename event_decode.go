package crossdock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// UnmarshalJSON decodes a CloudEvents structured JSON event: the input must
// be exactly one JSON object. It checks the JSON types of the attributes it
// knows; call Validate for the rest.
//
// Decoding sits on the publish and the delivery path, so it scans the object
// once instead of going through a map: plain string values are taken from
// the input as they are, and data is compacted only when it has spaces.
func (e *Event) UnmarshalJSON(b []byte) error {
	if !json.Valid(b) {
		var x any
		err := json.Unmarshal(b, &x)
		if err == nil { // json.Valid and json.Unmarshal disagree only on edge cases
			return Errorf(EINVALID, "event is not a JSON object")
		}
		return Errorf(EINVALID, "event is not a JSON object: %v", err)
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return Errorf(EINVALID, "event is not a JSON object")
	}
	*e = Event{}
	var data, b64 []byte
	hasData, hasB64 := false, false
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		end := skipValue(b, i)
		name, err := jsonString(b[i:end])
		if err != nil {
			return Errorf(EINVALID, "event has a malformed attribute name")
		}
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // ':'
		end = skipValue(b, i)
		v := b[i:end]
		if err := e.setAttribute(name, v, &data, &b64, &hasData, &hasB64); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return e.setData(data, b64, hasData, hasB64)
}

// setAttribute assigns one top-level member of a structured event.
func (e *Event) setAttribute(name string, v []byte, data, b64 *[]byte, hasData, hasB64 *bool) error {
	var dst *string
	switch name {
	case "id":
		dst = &e.ID
	case "source":
		dst = &e.Source
	case "specversion":
		dst = &e.SpecVersion
	case "type":
		dst = &e.Type
	case "subject":
		dst = &e.Subject
	case "datacontenttype":
		dst = &e.DataContentType
	case "dataschema":
		dst = &e.DataSchema
	case "time":
		if isNull(v) {
			return nil
		}
		s, err := jsonString(v)
		if err != nil {
			return Errorf(EINVALID, "attribute time must be a string")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return Errorf(EINVALID, "attribute time %q is not an RFC 3339 timestamp", s)
		}
		e.Time = t
		return nil
	case "data":
		*data, *hasData = v, true
		return nil
	case "data_base64":
		*b64, *hasB64 = v, true
		return nil
	default:
		val, err := extensionValue(v)
		if err != nil {
			return Errorf(EINVALID, "extension %s: %v", name, err)
		}
		if val != nil {
			e.SetExtension(name, val)
		}
		return nil
	}
	if isNull(v) {
		*dst = ""
		return nil
	}
	s, err := jsonString(v)
	if err != nil {
		return Errorf(EINVALID, "attribute %s must be a string", name)
	}
	*dst = s
	return nil
}

// setData decodes data or data_base64 once the content type is known.
func (e *Event) setData(data, b64 []byte, hasData, hasB64 bool) error {
	switch {
	case hasData && hasB64:
		return Errorf(EINVALID, "an event cannot carry both data and data_base64")
	case hasB64 && !isNull(b64):
		s, err := jsonString(b64)
		if err != nil {
			return Errorf(EINVALID, "data_base64 must be a string")
		}
		d, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Errorf(EINVALID, "data_base64 is not valid base64")
		}
		e.Data = d
	case hasData && !isNull(data):
		if IsJSONContentType(e.DataContentType) {
			e.Data = compactJSON(data)
			e.validData = e.Data
		} else if s, err := jsonString(data); err == nil {
			// A non-JSON type in structured mode carries its data as a JSON string.
			e.Data = []byte(s)
		} else {
			e.Data = compactJSON(data)
		}
	}
	return nil
}

func isNull(v []byte) bool { return len(v) == 4 && string(v) == "null" }

// jsonString returns the value of a JSON string token, taking it from the
// input as it is when it has no escapes and is plain ASCII.
func jsonString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return "", errNotString
	}
	inner := v[1 : len(v)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", err
	}
	return s, nil
}

var errNotString = Errorf(EINVALID, "not a string")

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i. The
// input must be valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return i
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			case '"':
				i = skipValue(b, i) - 1
			}
		}
		return i
	default: // number, true, false, null
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}

// compactJSON returns a JSON value without insignificant space, so stored
// and delivered data does not keep the caller's indentation. Values without
// any space byte are already compact and are copied as they are.
func compactJSON(v []byte) []byte {
	if bytes.IndexAny(v, " \t\n\r") < 0 {
		return bytes.Clone(v)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return bytes.Clone(v)
	}
	return b.Bytes()
}

func extensionValue(v []byte) (any, error) {
	switch {
	case isNull(v):
		return nil, nil
	case v[0] == '"':
		return jsonString(v)
	case string(v) == "true":
		return true, nil
	case string(v) == "false":
		return false, nil
	case v[0] == '{' || v[0] == '[':
		return nil, errExtensionType
	}
	n := json.Number(v)
	if i, err := n.Int64(); err == nil {
		return i, nil
	}
	return n, nil
}

var errExtensionType = Errorf(EINVALID, "value must be a string, number or boolean")
