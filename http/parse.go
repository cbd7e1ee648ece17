package http

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crossdock/crossdock"
)

// Media types of the publish endpoint's structured and batched modes.
const (
	ContentTypeCloudEvent = "application/cloudevents+json"
	ContentTypeBatch      = "application/cloudevents-batch+json"
)

const acceptedModes = "send " + ContentTypeCloudEvent + " (structured mode), " +
	ContentTypeBatch + " (a JSON array of structured events), or any body with " +
	"ce-specversion, ce-id, ce-source and ce-type headers (binary mode)"

// ParseRequest decodes the events of a publish request from its headers and
// body: one structured-mode event, one binary-mode event, or a batch (then
// batch is true). Every event is validated and gets the correlationid
// extension set to its id when it has none. It returns EINVALID naming the
// attribute at fault (and in a batch the 0-based index of the event), or
// EUNSUPPORTED for a media type it does not accept. The events keep no
// reference to body.
func ParseRequest(header http.Header, body []byte) (events []*crossdock.Event, batch bool, err error) {
	switch mt := mediaType(header.Get("Content-Type")); {
	case mt == ContentTypeCloudEvent:
		ev, err := parseStructured(body)
		if err != nil {
			return nil, false, err
		}
		return []*crossdock.Event{ev}, false, nil
	case mt == ContentTypeBatch:
		events, err := parseBatch(body)
		return events, true, err
	case hasCloudEventsHeader(header):
		ev, err := parseBinary(header, body)
		if err != nil {
			return nil, false, err
		}
		return []*crossdock.Event{ev}, false, nil
	case mt == "":
		return nil, false, crossdock.Errorf(crossdock.EUNSUPPORTED,
			"the request has no Content-Type and no ce-* headers: %s", acceptedModes)
	default:
		return nil, false, crossdock.Errorf(crossdock.EUNSUPPORTED,
			"Content-Type %q is not accepted without ce-* headers: %s", mt, acceptedModes)
	}
}

// mediaType returns the lower-case media type of a Content-Type value,
// without parameters. It allocates only for upper-case input.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// ceHeader reports whether a header name starts with ce-, in any case, and
// names something after it.
func ceHeader(name string) bool {
	return len(name) > 3 && strings.EqualFold(name[:3], "ce-")
}

func hasCloudEventsHeader(h http.Header) bool {
	for name := range h {
		if ceHeader(name) {
			return true
		}
	}
	return false
}

func parseStructured(body []byte) (*crossdock.Event, error) {
	ev := new(crossdock.Event)
	if err := ev.UnmarshalJSON(body); err != nil {
		return nil, err
	}
	if err := complete(ev, mayCarryBase64(body)); err != nil {
		return nil, err
	}
	return ev, nil
}

func parseBatch(body []byte) ([]*crossdock.Event, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "a batch must be a JSON array of events: %v", err)
	}
	if len(raws) == 0 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "the batch is empty: send at least one event")
	}
	events := make([]*crossdock.Event, len(raws))
	for i, raw := range raws {
		ev := new(crossdock.Event)
		err := ev.UnmarshalJSON(raw)
		if err == nil {
			err = complete(ev, mayCarryBase64(raw))
		}
		if err != nil {
			return nil, crossdock.Errorf(crossdock.EINVALID, "event %d: %s", i, crossdock.ErrorMessage(err))
		}
		events[i] = ev
	}
	return events, nil
}

func parseBinary(header http.Header, body []byte) (*crossdock.Event, error) {
	ev := new(crossdock.Event)
	for key, values := range header {
		if !ceHeader(key) || len(values) == 0 {
			continue
		}
		name := strings.ToLower(key[3:])
		if len(values) > 1 {
			return nil, crossdock.Errorf(crossdock.EINVALID, "header ce-%s appears more than once", name)
		}
		v, err := decodeHeaderValue(values[0])
		if err != nil {
			return nil, crossdock.Errorf(crossdock.EINVALID, "header ce-%s: %v", name, err)
		}
		switch name {
		case "id":
			ev.ID = v
		case "source":
			ev.Source = v
		case "specversion":
			ev.SpecVersion = v
		case "type":
			ev.Type = v
		case "subject":
			ev.Subject = v
		case "dataschema":
			ev.DataSchema = v
		case "time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, crossdock.Errorf(crossdock.EINVALID, "attribute time %q is not an RFC 3339 timestamp", v)
			}
			ev.Time = t
		case "datacontenttype":
			return nil, crossdock.Errorf(crossdock.EINVALID,
				"in binary mode datacontenttype is the Content-Type header, not ce-datacontenttype")
		case "data", "data_base64":
			return nil, crossdock.Errorf(crossdock.EINVALID, "in binary mode the data is the body, not header ce-%s", name)
		default:
			ev.SetExtension(name, v)
		}
	}
	ev.DataContentType = strings.TrimSpace(header.Get("Content-Type"))
	if len(body) > 0 {
		if crossdock.IsJSONContentType(ev.DataContentType) && !json.Valid(body) {
			if ev.DataContentType == "" {
				return nil, crossdock.Errorf(crossdock.EINVALID,
					"the body is not valid JSON, the default datacontenttype: set Content-Type to the data's media type")
			}
			return nil, crossdock.Errorf(crossdock.EINVALID,
				"the body is not valid JSON but Content-Type %q says it is", ev.DataContentType)
		}
		ev.Data = append([]byte(nil), body...)
	}
	if err := complete(ev, false); err != nil { // the body was checked above
		return nil, err
	}
	return ev, nil
}

// mayCarryBase64 reports whether a structured event's JSON text may hold
// the data_base64 attribute: its name either appears as is or is spelled
// with \u escapes. Data from the data attribute is JSON already (the decoder
// checked it), so only then does it need checking again, which spares the
// hot path a second pass over the payload.
func mayCarryBase64(text []byte) bool {
	return bytes.Contains(text, []byte("data_base64")) || bytes.Contains(text, []byte(`\u`))
}

// complete validates an event and defaults its correlation id to its id.
// checkData asks to check that data said to be JSON is JSON, which only
// data_base64 can break.
func complete(ev *crossdock.Event, checkData bool) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	// data_base64 without a datacontenttype would be stored as JSON data
	// that is not JSON; the event could not be encoded again.
	if checkData && ev.Data != nil && crossdock.IsJSONContentType(ev.DataContentType) && !json.Valid(ev.Data) {
		return crossdock.Errorf(crossdock.EINVALID,
			"data is not valid JSON but datacontenttype %q says it is: binary data in data_base64 needs a datacontenttype such as application/octet-stream",
			ev.DataContentType)
	}
	switch v := ev.Extensions[crossdock.ExtCorrelationID].(type) {
	case nil:
		ev.SetExtension(crossdock.ExtCorrelationID, ev.ID)
	case string:
		if v == "" {
			ev.SetExtension(crossdock.ExtCorrelationID, ev.ID)
		}
	default:
		return crossdock.Errorf(crossdock.EINVALID, "extension correlationid must be a string")
	}
	return nil
}

// decodeHeaderValue turns a binary-mode header value into an attribute
// value as the CloudEvents HTTP binding says: first unescape double-quoted
// strings (RFC 9110 quoted-string, still accepted from older senders), then
// one round of percent-decoding, whose result must be valid UTF-8.
func decodeHeaderValue(s string) (string, error) {
	s = strings.Trim(s, " \t")
	if strings.IndexByte(s, '"') >= 0 {
		var err error
		if s, err = unquote(s); err != nil {
			return "", err
		}
	}
	if strings.IndexByte(s, '%') < 0 {
		if !utf8.ValidString(s) {
			return "", errString("the value is not valid UTF-8")
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		hi, ok1 := unhex(at(s, i+1))
		lo, ok2 := unhex(at(s, i+2))
		if !ok1 || !ok2 {
			return "", errString("a '%' is not followed by two hexadecimal digits")
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(b) {
		return "", errString("the percent-decoded value is not valid UTF-8")
	}
	return string(b), nil
}

// at returns s[i], or 0 past the end.
func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unquote removes the quotes of every quoted-string in s and resolves the
// backslash escapes inside them.
func unquote(s string) (string, error) {
	b := make([]byte, 0, len(s))
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
		case c == '\\' && quoted:
			i++
			if i == len(s) {
				return "", errString("a quoted string ends in a backslash")
			}
			b = append(b, s[i])
		default:
			b = append(b, c)
		}
	}
	if quoted {
		return "", errString("a quoted string is not closed")
	}
	return string(b), nil
}

type errString string

func (e errString) Error() string { return string(e) }
