package webhook

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/crossdock/crossdock"
)

// Canonical header keys, written straight into the http.Header map so the
// hot path does not canonicalize them on every request.
const (
	hContentType   = "Content-Type"
	hSpecVersion   = "Ce-Specversion"
	hID            = "Ce-Id"
	hSource        = "Ce-Source"
	hType          = "Ce-Type"
	hSubject       = "Ce-Subject"
	hTime          = "Ce-Time"
	hDataSchema    = "Ce-Dataschema"
	hCorrelationID = "Ce-Correlationid"
	hWebhookID     = "Webhook-Id"
	hWebhookTime   = "Webhook-Timestamp"
	hWebhookSig    = "Webhook-Signature"
	hTraceParent   = "Traceparent"
	hTraceState    = "Tracestate"
)

// extensionKeys holds the header keys of the extensions crossdock sets on
// most events, so they are not built per request.
var extensionKeys = map[string]string{
	crossdock.ExtCorrelationID: hCorrelationID,
	crossdock.ExtPartitionKey:  "Ce-Partitionkey",
	crossdock.ExtTraceParent:   "Ce-Traceparent",
	"tracestate":               "Ce-Tracestate",
}

// extensionKey returns the canonical header key of an extension name that
// ValidAttributeName accepted.
func extensionKey(name string) string {
	if k, ok := extensionKeys[name]; ok {
		return k
	}
	b := make([]byte, 0, 3+len(name))
	b = append(b, "Ce-"...)
	c := name[0]
	if c >= 'a' && c <= 'z' {
		c -= 'a' - 'A'
	}
	b = append(b, c)
	b = append(b, name[1:]...)
	return string(b)
}

// isContextAttribute reports whether name is a CloudEvents context
// attribute rather than an extension; an extension of that name is not sent.
func isContextAttribute(name string) bool {
	switch name {
	case "id", "source", "specversion", "type", "subject", "time", "datacontenttype", "dataschema", "data":
		return true
	}
	return false
}

// setEventHeader writes the CloudEvents binary-mode, Standard Webhooks and
// trace headers of ev into h. It returns EINVALID for an extension name or
// content type that cannot travel in a header.
func setEventHeader(h http.Header, ev *crossdock.Event, keys []*signingKey, ts int64) error {
	// One backing array for all single values saves an allocation per header.
	n := 12 + len(ev.Extensions)
	vals := make([]string, 0, n)
	set := func(key, v string) {
		vals = append(vals, v)
		h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}

	ct := ev.DataContentType
	if ct == "" && len(ev.Data) > 0 {
		ct = "application/json"
	}
	if ct != "" {
		if !validHeaderValue(ct) {
			return crossdock.Errorf(crossdock.EINVALID, "webhook: datacontenttype %q cannot be sent as a header", ct)
		}
		set(hContentType, ct)
	}
	spec := ev.SpecVersion
	if spec == "" {
		spec = crossdock.SpecVersion
	}
	id := encodeHeaderValue(ev.ID)
	set(hSpecVersion, encodeHeaderValue(spec))
	set(hID, id)
	set(hSource, encodeHeaderValue(ev.Source))
	set(hType, encodeHeaderValue(ev.Type))
	if ev.Subject != "" {
		set(hSubject, encodeHeaderValue(ev.Subject))
	}
	if !ev.Time.IsZero() {
		set(hTime, ev.Time.UTC().Format(time.RFC3339Nano))
	}
	if ev.DataSchema != "" {
		set(hDataSchema, encodeHeaderValue(ev.DataSchema))
	}
	for name, v := range ev.Extensions {
		if !crossdock.ValidAttributeName(name) {
			return crossdock.Errorf(crossdock.EINVALID, "webhook: extension name %q is invalid: use lower-case letters and digits, at most 20", name)
		}
		if isContextAttribute(name) {
			continue
		}
		set(extensionKey(name), encodeHeaderValue(extensionString(v)))
	}
	if _, ok := h[hCorrelationID]; !ok || h[hCorrelationID][0] == "" {
		set(hCorrelationID, encodeHeaderValue(ev.CorrelationID()))
	}

	// Standard Webhooks: the receiver signs what it reads in webhook-id,
	// so the id travels in the same header-safe spelling as ce-id.
	tsText := strconv.FormatInt(ts, 10)
	set(hWebhookID, id)
	set(hWebhookTime, tsText)
	if len(keys) > 0 {
		set(hWebhookSig, string(appendSignatures(make([]byte, 0, len(keys)*48), keys, id, tsText, ev.Data)))
	}

	parent := ev.Extension(crossdock.ExtTraceParent)
	if tp, ok := continueTrace(parent); ok {
		set(hTraceParent, tp)
		if st := ev.Extension("tracestate"); st != "" && validHeaderValue(st) {
			set(hTraceState, st)
		}
	} else {
		set(hTraceParent, newTrace())
	}
	return nil
}

// extensionString returns the canonical string form of an extension value
// per the CloudEvents type system.
func extensionString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case int:
		return strconv.Itoa(t)
	case int32:
		return strconv.FormatInt(int64(t), 10)
	case json.Number:
		return t.String()
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano)
	case []byte:
		return base64.StdEncoding.EncodeToString(t)
	case fmt.Stringer:
		return t.String()
	default:
		return fmt.Sprint(v)
	}
}

// mustEncode reports whether the CloudEvents HTTP binding requires a byte
// of a header value to be percent-encoded: space, double quote, percent,
// and anything outside printable ASCII (UTF-8 bytes included).
func mustEncode(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '%'
}

// encodeHeaderValue returns s percent-encoded per the CloudEvents HTTP
// binding, or s itself when nothing needs encoding.
func encodeHeaderValue(s string) string {
	for i := 0; i < len(s); i++ {
		if mustEncode(s[i]) {
			return encodeFrom(s, i)
		}
	}
	return s
}

func encodeFrom(s string, i int) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if mustEncode(c) {
			b = append(b, '%', hex[c>>4], hex[c&0xf])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// validHeaderValue reports whether s can be sent as a header value as is:
// no control characters other than tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// continueTrace returns a W3C traceparent in the trace of parent with a
// fresh parent span id, or false when parent is absent or malformed.
func continueTrace(parent string) (string, bool) {
	if !validTraceParent(parent) {
		return "", false
	}
	var b [55]byte
	copy(b[:], "00-")
	copy(b[3:35], parent[3:35])
	b[35] = '-'
	putSpanID(b[36:52])
	b[52] = '-'
	copy(b[53:55], parent[53:55])
	return string(b[:]), true
}

// newTrace returns a W3C traceparent that starts a new, sampled trace.
func newTrace() string {
	var b [55]byte
	copy(b[:], "00-")
	for {
		hi, lo := rand.Uint64(), rand.Uint64()
		if hi|lo != 0 {
			putHex64(b[3:19], hi)
			putHex64(b[19:35], lo)
			break
		}
	}
	b[35] = '-'
	putSpanID(b[36:52])
	copy(b[52:], "-01")
	return string(b[:])
}

func putSpanID(dst []byte) {
	id := rand.Uint64()
	for id == 0 {
		id = rand.Uint64()
	}
	putHex64(dst, id)
}

func putHex64(dst []byte, v uint64) {
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		dst[i] = hex[v&0xf]
		v >>= 4
	}
}

// validTraceParent reports whether s is a W3C traceparent this package can
// continue: version 00 (exactly 55 characters) or a later version whose
// first 55 characters follow version 00, with lower-case hex fields and
// non-zero trace and parent ids.
func validTraceParent(s string) bool {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	if !lowerHex(s[0:2]) || s[0:2] == "ff" || !lowerHex(s[3:35]) || !lowerHex(s[36:52]) || !lowerHex(s[53:55]) {
		return false
	}
	if s[0:2] == "00" && len(s) != 55 || len(s) > 55 && s[55] != '-' {
		return false
	}
	return !allZero(s[3:35]) && !allZero(s[36:52])
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// transportHeaders are the header names the HTTP client itself controls;
// a static header of one of these names would be dropped or would corrupt
// the framing of the request.
var transportHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true, "Upgrade": true,
	"Expect": true,
}

// reservedForDelivery reports whether a delivery's static headers may not
// use the canonical header name key: the client's own, the CloudEvents and
// Standard Webhooks headers, the trace context and Content-Type all belong
// to the event, and a static value would contradict the signed message.
func reservedForDelivery(key string) bool {
	switch {
	case transportHeaders[key], key == hContentType, key == hTraceParent, key == hTraceState:
		return true
	case strings.HasPrefix(key, "Ce-"), strings.HasPrefix(key, "Webhook-"):
		return true
	}
	return false
}

// reservedForFetch reports whether an enrichment fetch's headers may not
// use the canonical header name key: only the client's own.
func reservedForFetch(key string) bool { return transportHeaders[key] }

// ValidateHeaders checks a destination's static headers as Send will: it
// returns EINVALID for a name that is not an HTTP token, a name Send
// reserves (Content-Type, ce-*, webhook-*, traceparent, tracestate, and
// the client's own such as Host and Content-Length), a name given twice
// in different cases, or a value with a control character (CR, LF, NUL).
// The error names the header, never its value.
func ValidateHeaders(headers map[string]string) error {
	return checkHeaders(headers, reservedForDelivery)
}

// ValidateFetchHeaders checks an enrichment's headers as Fetch will: like
// ValidateHeaders, but only the client's own names (Host, Content-Length,
// Connection, ...) are reserved. It returns EINVALID.
func ValidateFetchHeaders(headers map[string]string) error {
	return checkHeaders(headers, reservedForFetch)
}

// checkHeaders returns EINVALID for a header that is not valid HTTP, has
// a reserved name, or repeats a name in another case.
func checkHeaders(headers map[string]string, reserved func(string) bool) error {
	var seen map[string]bool
	if len(headers) > 1 {
		seen = make(map[string]bool, len(headers))
	}
	for name, v := range headers {
		if !httpguts.ValidHeaderFieldName(name) {
			return crossdock.Errorf(crossdock.EINVALID, "webhook: header name %q is not a valid HTTP header name", name)
		}
		key := http.CanonicalHeaderKey(name)
		if reserved(key) {
			return crossdock.Errorf(crossdock.EINVALID, "webhook: header %s is set by crossdock and cannot be given", key)
		}
		if !validHeaderValue(v) {
			return crossdock.Errorf(crossdock.EINVALID, "webhook: the value of header %s contains a control character such as CR or LF", key)
		}
		if seen != nil {
			if seen[key] {
				return crossdock.Errorf(crossdock.EINVALID, "webhook: header %s is given twice", key)
			}
			seen[key] = true
		}
	}
	return nil
}

// setHeaders checks headers and sets them in h under their canonical
// names, replacing what h held; it returns EINVALID as checkHeaders.
func setHeaders(h http.Header, headers map[string]string, reserved func(string) bool) error {
	if err := checkHeaders(headers, reserved); err != nil {
		return err
	}
	for name, v := range headers {
		h[http.CanonicalHeaderKey(name)] = []string{v}
	}
	return nil
}
