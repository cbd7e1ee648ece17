package crossdock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"sort"
	"strings"
	"time"
)

// SpecVersion is the only CloudEvents version crossdock accepts.
const SpecVersion = "1.0"

// Extension attribute names that crossdock gives a meaning to.
const (
	ExtCorrelationID = "correlationid"
	ExtPartitionKey  = "partitionkey"
	ExtTraceParent   = "traceparent"
)

// Event is a CloudEvents 1.0 event. Its ID is the idempotency key within a
// topic's deduplication window.
//
// Data holds the payload bytes exactly as a binary-mode delivery sends them:
// the JSON text when DataContentType is JSON (or empty), the text for text
// types, the raw bytes otherwise.
type Event struct {
	ID              string
	Source          string
	SpecVersion     string
	Type            string
	Subject         string
	Time            time.Time
	DataContentType string
	DataSchema      string
	Data            []byte

	// Extensions holds every other attribute: names are lower-case
	// alphanumerics, values are string, bool or int64 (integers), or
	// json.Number for other numbers decoded from JSON.
	Extensions map[string]any
}

// CorrelationID returns the correlationid extension, or the event id when
// the event has none.
func (e *Event) CorrelationID() string {
	if s, ok := e.Extensions[ExtCorrelationID].(string); ok && s != "" {
		return s
	}
	return e.ID
}

// Extension returns the extension's value as a string, "" when absent.
func (e *Event) Extension(name string) string {
	v, ok := e.Extensions[name]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// SetExtension sets an extension attribute, allocating the map if needed.
func (e *Event) SetExtension(name string, value any) {
	if e.Extensions == nil {
		e.Extensions = make(map[string]any)
	}
	e.Extensions[name] = value
}

// Validate returns EINVALID naming the first missing or malformed attribute.
func (e *Event) Validate() error {
	switch {
	case e.ID == "":
		return Errorf(EINVALID, "required attribute id is missing")
	case e.Source == "":
		return Errorf(EINVALID, "required attribute source is missing")
	case e.SpecVersion == "":
		return Errorf(EINVALID, "required attribute specversion is missing")
	case e.SpecVersion != SpecVersion:
		return Errorf(EINVALID, "specversion %q is not supported (want %q)", e.SpecVersion, SpecVersion)
	case e.Type == "":
		return Errorf(EINVALID, "required attribute type is missing")
	}
	if e.DataContentType != "" {
		if _, _, err := mime.ParseMediaType(e.DataContentType); err != nil {
			return Errorf(EINVALID, "datacontenttype %q is not a media type", e.DataContentType)
		}
	}
	for name := range e.Extensions {
		if !ValidAttributeName(name) {
			return Errorf(EINVALID, "attribute name %q is invalid: use lower-case letters and digits, at most 20", name)
		}
	}
	return nil
}

// ValidAttributeName reports whether name is a CloudEvents attribute name:
// 1 to 20 lower-case ASCII letters or digits.
func ValidAttributeName(name string) bool {
	if name == "" || len(name) > 20 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// IsJSONContentType reports whether a datacontenttype carries JSON: empty
// (the CloudEvents default), application/json, or any +json suffix.
func IsJSONContentType(ct string) bool {
	if ct == "" {
		return true
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	return ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

func isTextContentType(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(ct))
	return strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "application/xml")
}

// context attributes that are not extensions, in structured-mode spelling.
var contextAttributes = map[string]bool{
	"id": true, "source": true, "specversion": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
}

// MarshalJSON encodes the event in CloudEvents structured JSON mode.
func (e Event) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(e.Data) + 256)
	b.WriteString(`{"specversion":`)
	writeJSONString(&b, e.SpecVersion)
	b.WriteString(`,"id":`)
	writeJSONString(&b, e.ID)
	b.WriteString(`,"source":`)
	writeJSONString(&b, e.Source)
	b.WriteString(`,"type":`)
	writeJSONString(&b, e.Type)
	if e.Subject != "" {
		b.WriteString(`,"subject":`)
		writeJSONString(&b, e.Subject)
	}
	if !e.Time.IsZero() {
		b.WriteString(`,"time":"`)
		b.WriteString(e.Time.UTC().Format(time.RFC3339Nano))
		b.WriteByte('"')
	}
	if e.DataContentType != "" {
		b.WriteString(`,"datacontenttype":`)
		writeJSONString(&b, e.DataContentType)
	}
	if e.DataSchema != "" {
		b.WriteString(`,"dataschema":`)
		writeJSONString(&b, e.DataSchema)
	}
	for _, name := range sortedKeys(e.Extensions) {
		v := e.Extensions[name]
		if contextAttributes[name] {
			continue
		}
		b.WriteByte(',')
		writeJSONString(&b, name)
		b.WriteByte(':')
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode extension %s: %w", name, err)
		}
		b.Write(vb)
	}
	if e.Data != nil {
		switch {
		case IsJSONContentType(e.DataContentType):
			if !json.Valid(e.Data) {
				return nil, Errorf(EINVALID, "data is not valid JSON but datacontenttype %q says it is", e.DataContentType)
			}
			b.WriteString(`,"data":`)
			b.Write(e.Data)
		case isTextContentType(e.DataContentType):
			b.WriteString(`,"data":`)
			writeJSONString(&b, string(e.Data))
		default:
			b.WriteString(`,"data_base64":"`)
			b.WriteString(base64.StdEncoding.EncodeToString(e.Data))
			b.WriteByte('"')
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func writeJSONString(b *bytes.Buffer, s string) {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			simple = false
			break
		}
	}
	if simple {
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	q, _ := json.Marshal(s) // a string always encodes
	b.Write(q)
}

// UnmarshalJSON decodes a CloudEvents structured JSON event. It checks the
// JSON types of the attributes it knows; call Validate for the rest.
func (e *Event) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return Errorf(EINVALID, "event is not a JSON object: %v", err)
	}
	if raw == nil {
		return Errorf(EINVALID, "event is not a JSON object")
	}
	*e = Event{}
	str := func(name string, dst *string) error {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return Errorf(EINVALID, "attribute %s must be a string", name)
		}
		return nil
	}
	for name, dst := range map[string]*string{
		"id": &e.ID, "source": &e.Source, "specversion": &e.SpecVersion, "type": &e.Type,
		"subject": &e.Subject, "datacontenttype": &e.DataContentType, "dataschema": &e.DataSchema,
	} {
		if err := str(name, dst); err != nil {
			return err
		}
	}
	var ts string
	if err := str("time", &ts); err != nil {
		return err
	}
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return Errorf(EINVALID, "attribute time %q is not an RFC 3339 timestamp", ts)
		}
		e.Time = t
	}
	data, hasData := raw["data"]
	b64, hasB64 := raw["data_base64"]
	switch {
	case hasData && hasB64:
		return Errorf(EINVALID, "an event cannot carry both data and data_base64")
	case hasB64 && string(b64) != "null":
		var s string
		if err := json.Unmarshal(b64, &s); err != nil {
			return Errorf(EINVALID, "data_base64 must be a string")
		}
		d, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Errorf(EINVALID, "data_base64 is not valid base64")
		}
		e.Data = d
	case hasData && string(data) != "null":
		if IsJSONContentType(e.DataContentType) {
			e.Data = compactJSON(data)
		} else {
			// A non-JSON type in structured mode carries its data as a JSON string.
			var s string
			if err := json.Unmarshal(data, &s); err != nil {
				e.Data = compactJSON(data)
			} else {
				e.Data = []byte(s)
			}
		}
	}
	for name, v := range raw {
		if contextAttributes[name] {
			continue
		}
		val, err := extensionValue(v)
		if err != nil {
			return Errorf(EINVALID, "extension %s: %v", name, err)
		}
		if val == nil {
			continue
		}
		e.SetExtension(name, val)
	}
	return nil
}

// compactJSON returns a copy of a JSON value without insignificant space, so
// stored and delivered data does not keep the caller's indentation.
func compactJSON(v json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return append([]byte(nil), v...)
	}
	return b.Bytes()
}

func extensionValue(v json.RawMessage) (any, error) {
	var x any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	switch t := x.(type) {
	case nil:
		return nil, nil
	case string, bool:
		return t, nil
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		return t, nil
	default:
		return nil, fmt.Errorf("value must be a string, number or boolean")
	}
}
