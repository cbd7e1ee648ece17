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

	// validData is Data as UnmarshalJSON found it, already checked to be
	// JSON: encoding the same bytes again need not check them twice.
	validData []byte

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
			if !e.dataChecked() && !json.Valid(e.Data) {
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

// dataChecked reports whether Data is still the slice UnmarshalJSON checked.
func (e *Event) dataChecked() bool {
	return len(e.validData) > 0 && len(e.Data) == len(e.validData) && &e.Data[0] == &e.validData[0]
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
