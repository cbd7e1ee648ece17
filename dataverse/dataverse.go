// Package dataverse turns what a Microsoft Dataverse (Dynamics 365) webhook
// step sends into one crossdock event: the RemoteExecutionContext that .NET's
// DataContractJsonSerializer wrote as the request body, and the
// x-ms-dynamics-* and x-ms-correlation-request-id headers that come with it.
//
// Map is pure: it reads a body and headers and returns an event, or EINVALID
// naming what is missing. The HTTP endpoint that authenticates the webhook
// and publishes the event lives in package http; docs/dataverse.md explains
// the registration, the mapping and the size-exceeded case.
package dataverse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/crossdock/crossdock"
)

// Headers a Dataverse webhook request carries.
const (
	HeaderOrganization  = "x-ms-dynamics-organization"
	HeaderEntityName    = "x-ms-dynamics-entity-name"
	HeaderRequestName   = "x-ms-dynamics-request-name"
	HeaderCorrelationID = "x-ms-correlation-request-id"
	HeaderSizeExceeded  = "x-ms-dynamics-msg-size-exceeded"
	HeaderRequestID     = "x-request-id"
)

// SourcePrefix begins the source of every event Map returns; the
// organization's name follows it.
const SourcePrefix = "dataverse://"

// TypePrefix begins the type of every event Map returns; the lower-cased
// entity and message names follow it, as in dataverse.account.update.
const TypePrefix = "dataverse."

// emptyGUID is what Dataverse sends for an id that is not set.
const emptyGUID = "00000000-0000-0000-0000-000000000000"

// Ingress is one Dataverse webhook endpoint of the hub: requests that carry
// Key become events on Topic.
type Ingress struct {
	// Topic is the topic the events are published to.
	Topic string

	// Key authenticates the webhook: Dataverse sends it as the code query
	// parameter (WebhookKey) or the x-api-key header (HttpHeader). It is a
	// secret: it is never logged or shown.
	Key string
}

// Validate returns EINVALID when the topic name is malformed or the key is
// empty; the message never contains the key.
func (i Ingress) Validate() error {
	if !crossdock.ValidTopicName(i.Topic) {
		return crossdock.Errorf(crossdock.EINVALID, "dataverse ingress: topic name %q is invalid: use lower-case dot-separated segments such as crm.account.changed", i.Topic)
	}
	if i.Key == "" {
		return crossdock.Errorf(crossdock.EINVALID, "dataverse ingress %s: key is empty: set the key Dataverse sends as ?code= or x-api-key", i.Topic)
	}
	return nil
}

// String returns the ingress's topic and whether a key is set, never the
// key.
func (i Ingress) String() string {
	return fmt.Sprintf("dataverse ingress %s (key set: %t)", i.Topic, i.Key != "")
}

// LogValue returns the ingress for log/slog without its key.
func (i Ingress) LogValue() slog.Value {
	return slog.GroupValue(slog.String("topic", i.Topic), slog.Bool("key_set", i.Key != ""))
}

// remoteContext holds the fields of a RemoteExecutionContext that Map uses.
// Parameter and image values stay raw until they are flattened.
type remoteContext struct {
	CorrelationID      string
	MessageName        string
	OperationCreatedOn string
	OperationID        string
	OrganizationName   string
	PrimaryEntityID    string
	PrimaryEntityName  string
	RequestID          string
	UserID             string
	InputParameters    []pair
	PreEntityImages    []pair
	PostEntityImages   []pair
}

// pair is one element of a serialized .NET collection of key/value pairs,
// such as ParameterCollection or an entity's AttributeCollection.
type pair struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// Map returns the event a Dataverse webhook request describes: its body, a
// RemoteExecutionContext in DataContractJsonSerializer JSON, and its
// headers. The event's id is the OperationId (the RequestId when that is
// empty) so a retried webhook is a duplicate; docs/dataverse.md has the
// whole mapping. When the x-ms-dynamics-msg-size-exceeded header is set,
// Dataverse has left the entity out of the body, and a body that cannot be
// read to its end is tolerated: the event carries the ids that were found
// and data.sizeExceeded. EINVALID names the field that is missing or
// malformed. The event keeps no reference to body.
func Map(body []byte, h http.Header) (*crossdock.Event, error) {
	exceeded := sizeExceeded(h)
	rc := new(remoteContext)
	if err := rc.decode(body); err != nil && !exceeded {
		return nil, crossdock.Errorf(crossdock.EINVALID, "the body is not a Dataverse RemoteExecutionContext: %v", err)
	}

	entity := first(rc.PrimaryEntityName, header(h, HeaderEntityName))
	if entity == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "PrimaryEntityName is missing and there is no %s header", HeaderEntityName)
	}
	message := first(rc.MessageName, header(h, HeaderRequestName))
	if message == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "MessageName is missing and there is no %s header", HeaderRequestName)
	}
	org := first(rc.OrganizationName, header(h, HeaderOrganization))
	if org == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "OrganizationName is missing and there is no %s header", HeaderOrganization)
	}
	id := firstID(rc.OperationID, rc.RequestID, header(h, HeaderRequestID))
	if id == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "the event has no id: OperationId and RequestId are missing or empty and there is no %s header", HeaderRequestID)
	}
	if strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "the event id %s contains control characters", quote(id))
	}

	ev := &crossdock.Event{
		ID:              id,
		Source:          SourcePrefix + url.PathEscape(org),
		SpecVersion:     crossdock.SpecVersion,
		Type:            TypePrefix + strings.ToLower(entity) + "." + strings.ToLower(message),
		DataContentType: "application/json",
	}
	if rc.OperationCreatedOn != "" {
		t, ok := parseDate(rc.OperationCreatedOn)
		if !ok {
			return nil, crossdock.Errorf(crossdock.EINVALID, "OperationCreatedOn %s is not a /Date(milliseconds±hhmm)/ timestamp between the years 1 and 9999", quote(rc.OperationCreatedOn))
		}
		ev.Time = t
	}

	data := make(map[string]any)
	targetID, err := rc.mapParameters(data)
	if err != nil {
		return nil, err
	}
	ev.Subject = firstID(rc.PrimaryEntityID, targetID)
	if images := mapImages(rc.PreEntityImages); images != nil {
		data["preImages"] = images
	}
	if images := mapImages(rc.PostEntityImages); images != nil {
		data["postImages"] = images
	}
	// Attribute logical names are lower-case, so these camel-case keys
	// cannot be mistaken for columns.
	data["messageName"] = message
	data["entityName"] = entity
	data["userId"] = rc.UserID
	data["organizationName"] = org
	if exceeded {
		data["sizeExceeded"] = true
		if ev.Subject != "" {
			data["id"] = ev.Subject
		}
	}
	if ev.Data, err = encodeData(data); err != nil {
		return nil, err
	}
	ev.SetExtension(crossdock.ExtCorrelationID, first(rc.CorrelationID, header(h, HeaderCorrelationID), id))
	return ev, nil
}

// decode reads the top-level fields of a RemoteExecutionContext one by one,
// so that the fields before a point where the body breaks off are kept.
func (rc *remoteContext) decode(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("the body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("it is not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string) // the decoder only yields strings as object keys
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if err := rc.set(key, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("there is more data after the JSON object")
	}
	return nil
}

// set stores one top-level field; the ones Map does not use are skipped.
func (rc *remoteContext) set(key string, raw json.RawMessage) error {
	var s *string
	var pairs *[]pair
	switch key {
	case "CorrelationId":
		s = &rc.CorrelationID
	case "MessageName":
		s = &rc.MessageName
	case "OperationCreatedOn":
		s = &rc.OperationCreatedOn
	case "OperationId":
		s = &rc.OperationID
	case "OrganizationName":
		s = &rc.OrganizationName
	case "PrimaryEntityId":
		s = &rc.PrimaryEntityID
	case "PrimaryEntityName":
		s = &rc.PrimaryEntityName
	case "RequestId":
		s = &rc.RequestID
	case "UserId":
		s = &rc.UserID
	case "InputParameters":
		pairs = &rc.InputParameters
	case "PreEntityImages":
		pairs = &rc.PreEntityImages
	case "PostEntityImages":
		pairs = &rc.PostEntityImages
	default:
		return nil
	}
	if s != nil {
		*s = "" // a repeated key replaces the earlier value, null included
		if err := json.Unmarshal(raw, s); err != nil {
			return fmt.Errorf("%s must be a string or null", key)
		}
		*s = strings.TrimSpace(*s)
		return nil
	}
	*pairs = nil
	if err := json.Unmarshal(raw, pairs); err != nil {
		return fmt.Errorf("%s must be a list of {key, value} pairs", key)
	}
	return nil
}

// mapParameters flattens the Target into data and every other input
// parameter into data.inputParameters. It returns the Target's id.
func (rc *remoteContext) mapParameters(data map[string]any) (targetID string, err error) {
	params := make(map[string]any)
	for _, p := range rc.InputParameters {
		v, err := decodeValue(p.Value)
		if err != nil {
			return "", crossdock.Errorf(crossdock.EINVALID, "InputParameters %s: %v", quote(p.Key), err)
		}
		if p.Key != "Target" {
			params[p.Key] = flatten(v)
			continue
		}
		clear(data) // a repeated Target replaces the earlier one
		targetID, err = mapTarget(v, data)
		if err != nil {
			return "", err
		}
	}
	if len(params) > 0 {
		data["inputParameters"] = params
	}
	return targetID, nil
}

// mapTarget puts the Target's attributes into data: an Entity's columns, an
// EntityReference's id and logicalName (the Target of Delete, Assign,
// SetState), or any other value as data.target. It returns the Target's id.
func mapTarget(v any, data map[string]any) (string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		data["target"] = flatten(v)
		return "", nil
	}
	id, _ := m["Id"].(string)
	switch kindOf(m) {
	case kindEntity:
		attrs, ok := attributes(m)
		if !ok {
			return "", crossdock.Errorf(crossdock.EINVALID, "InputParameters Target: Attributes must be a list of {key, value} pairs")
		}
		for k, x := range attrs {
			data[k] = x
		}
	case kindReference:
		data["id"] = flatten(m["Id"])
		data["logicalName"] = flatten(m["LogicalName"])
	default:
		data["target"] = flatten(v)
	}
	return strings.TrimSpace(id), nil
}

// mapImages flattens entity images to an object of their attributes by
// image alias, nil when there are none.
func mapImages(images []pair) map[string]any {
	if len(images) == 0 {
		return nil
	}
	out := make(map[string]any, len(images))
	for _, p := range images {
		v, err := decodeValue(p.Value)
		if err != nil {
			continue // decode checked the whole body: this cannot happen
		}
		out[p.Key] = flatten(v)
	}
	return out
}

// encodeData returns data as JSON, without escaping <, > and &.
func encodeData(data map[string]any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return nil, fmt.Errorf("encode dataverse event data: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// sizeExceeded reports whether Dataverse says it left parts of the context
// out: the header is present and not false.
func sizeExceeded(h http.Header) bool {
	vs, ok := h[http.CanonicalHeaderKey(HeaderSizeExceeded)]
	if !ok {
		return false
	}
	v := ""
	if len(vs) > 0 {
		v = strings.TrimSpace(vs[0])
	}
	return !strings.EqualFold(v, "false") && v != "0"
}

// header returns a header's first value, trimmed and valid UTF-8.
func header(h http.Header, name string) string {
	return strings.ToValidUTF8(strings.TrimSpace(h.Get(name)), "\uFFFD")
}

// first returns the first of values that is not empty.
func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// firstID returns the first of ids that is neither empty nor the empty
// GUID.
func firstID(ids ...string) string {
	for _, id := range ids {
		if id != "" && id != emptyGUID {
			return id
		}
	}
	return ""
}

// quote returns s quoted for an error message, cut short when long: the
// input comes from outside.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", strings.ToValidUTF8(s[:max], ""))
	}
	return fmt.Sprintf("%q", s)
}

// parseDate reads the /Date(milliseconds)/ and /Date(milliseconds±hhmm)/
// forms DataContractJsonSerializer writes a DateTime in. The milliseconds
// count from the Unix epoch in UTC; the offset only says which zone the
// sender was in, so the instant returned ignores it and is in UTC. It
// refuses years outside 1 to 9999, which RFC 3339 cannot write.
func parseDate(s string) (time.Time, bool) {
	inner, ok := strings.CutPrefix(s, "/Date(")
	if !ok {
		return time.Time{}, false
	}
	if inner, ok = strings.CutSuffix(inner, ")/"); !ok || inner == "" {
		return time.Time{}, false
	}
	end := 1 // a leading minus belongs to the milliseconds
	for end < len(inner) && inner[end] >= '0' && inner[end] <= '9' {
		end++
	}
	ms, zone := inner[:end], inner[end:]
	if zone != "" && !validZone(zone) {
		return time.Time{}, false
	}
	var n int64
	neg := ms[0] == '-'
	if neg {
		ms = ms[1:]
	}
	if ms == "" || len(ms) > 15 { // 15 digits reach far past the year 9999
		return time.Time{}, false
	}
	for i := 0; i < len(ms); i++ {
		if ms[i] < '0' || ms[i] > '9' {
			return time.Time{}, false
		}
		n = n*10 + int64(ms[i]-'0')
	}
	if neg {
		n = -n
	}
	t := time.UnixMilli(n).UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

// validZone reports whether s is a +hhmm or -hhmm offset.
func validZone(s string) bool {
	if len(s) != 5 || s[0] != '+' && s[0] != '-' {
		return false
	}
	for i := 1; i < 5; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	hh := int(s[1]-'0')*10 + int(s[2]-'0')
	mm := int(s[3]-'0')*10 + int(s[4]-'0')
	return hh <= 23 && mm <= 59
}
