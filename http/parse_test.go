package http_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	cdhttp "github.com/crossdock/crossdock/http"
)

func header(kv ...string) http.Header {
	h := make(http.Header)
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func binaryHeader(extra ...string) http.Header {
	return header(append([]string{
		"Ce-Specversion", "1.0", "Ce-Id", "e1", "Ce-Source", "crm", "Ce-Type", "order.created",
	}, extra...)...)
}

const structuredOK = `{"specversion":"1.0","id":"e1","source":"crm","type":"order.created","data":{"n": 1}}`

func TestParseRequest(t *testing.T) {
	ts := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   []crossdock.Event // compared on the fields set here
		batch  bool
		code   string // error code, "" for success
		detail string // substring of the error message
	}{
		{
			name:   "structured",
			header: header("Content-Type", "application/cloudevents+json"),
			body:   structuredOK,
			want: []crossdock.Event{{ID: "e1", Source: "crm", SpecVersion: "1.0", Type: "order.created",
				Data: []byte(`{"n":1}`), Extensions: map[string]any{"correlationid": "e1"}}},
		},
		{
			name:   "structured with charset and upper case",
			header: header("Content-Type", "Application/CloudEvents+JSON; charset=utf-8"),
			body:   `{"specversion":"1.0","id":"e1","source":"crm","type":"t","correlationid":"c9"}`,
			want: []crossdock.Event{{ID: "e1", Source: "crm", SpecVersion: "1.0", Type: "t",
				Extensions: map[string]any{"correlationid": "c9"}}},
		},
		{
			name:   "structured wins over ce headers",
			header: binaryHeader("Content-Type", "application/cloudevents+json"),
			body:   `{"specversion":"1.0","id":"s1","source":"crm","type":"t"}`,
			want: []crossdock.Event{{ID: "s1", Source: "crm", SpecVersion: "1.0", Type: "t",
				Extensions: map[string]any{"correlationid": "s1"}}},
		},
		{
			name:   "structured missing source",
			header: header("Content-Type", "application/cloudevents+json"),
			body:   `{"specversion":"1.0","id":"e1","type":"t"}`,
			code:   crossdock.EINVALID, detail: "required attribute source is missing",
		},
		{
			name:   "structured malformed JSON",
			header: header("Content-Type", "application/cloudevents+json"),
			body:   `{"specversion":"1.0",`,
			code:   crossdock.EINVALID, detail: "not a JSON object",
		},
		{
			name:   "structured trailing data",
			header: header("Content-Type", "application/cloudevents+json"),
			body:   structuredOK + `{"x":1}`,
			code:   crossdock.EINVALID, detail: "after top-level value",
		},
		{
			name:   "structured binary data said to be JSON",
			header: header("Content-Type", "application/cloudevents+json"),
			body:   `{"specversion":"1.0","id":"e1","source":"crm","type":"t","data_base64":"AAE="}`,
			code:   crossdock.EINVALID, detail: "needs a datacontenttype such as application/octet-stream",
		},
		{
			name:   "structured binary data under an escaped name",
			header: header("Content-Type", "application/cloudevents+json"),
			body:   `{"specversion":"1.0","id":"e1","source":"crm","type":"t","data\u005fbase64":"AAE="}`,
			code:   crossdock.EINVALID, detail: "needs a datacontenttype",
		},
		{
			name:   "structured escaped brace in a string",
			header: header("Content-Type", "application/cloudevents+json"),
			body:   `{"specversion":"1.0","id":"e\\\"}","source":"crm","type":"t"}` + "\r\n",
			want: []crossdock.Event{{ID: `e\"}`, Source: "crm", SpecVersion: "1.0", Type: "t",
				Extensions: map[string]any{"correlationid": `e\"}`}}},
		},
		{
			name:   "structured numeric correlationid",
			header: header("Content-Type", "application/cloudevents+json"),
			body:   `{"specversion":"1.0","id":"e1","source":"crm","type":"t","correlationid":7}`,
			code:   crossdock.EINVALID, detail: "correlationid must be a string",
		},
		{
			name:   "binary",
			header: binaryHeader("Content-Type", "application/json", "Ce-Subject", "order/42", "Ce-Time", "2025-03-04T05:06:07Z", "Ce-Partitionkey", "cust-7"),
			body:   `{"n": 1}`,
			want: []crossdock.Event{{ID: "e1", Source: "crm", SpecVersion: "1.0", Type: "order.created",
				Subject: "order/42", Time: ts, DataContentType: "application/json", Data: []byte(`{"n": 1}`),
				Extensions: map[string]any{"correlationid": "e1", "partitionkey": "cust-7"}}},
		},
		{
			name:   "binary percent-decoded and quoted values",
			header: binaryHeader("Ce-Subject", "caf%C3%A9%20au%20lait", "Ce-Comment", `"a \"quoted\" value"`, "Content-Type", "text/plain"),
			body:   "hello",
			want: []crossdock.Event{{ID: "e1", Source: "crm", SpecVersion: "1.0", Type: "order.created",
				Subject: "café au lait", DataContentType: "text/plain", Data: []byte("hello"),
				Extensions: map[string]any{"correlationid": "e1", "comment": `a "quoted" value`}}},
		},
		{
			name:   "binary without body",
			header: binaryHeader(),
			want: []crossdock.Event{{ID: "e1", Source: "crm", SpecVersion: "1.0", Type: "order.created",
				Extensions: map[string]any{"correlationid": "e1"}}},
		},
		{
			name:   "binary recognised by any ce header",
			header: header("Ce-Id", "e1", "Ce-Specversion", "1.0", "Ce-Type", "t"),
			code:   crossdock.EINVALID, detail: "required attribute source is missing",
		},
		{
			name:   "binary missing specversion",
			header: header("Ce-Id", "e1", "Ce-Source", "crm", "Ce-Type", "t"),
			code:   crossdock.EINVALID, detail: "required attribute specversion is missing",
		},
		{
			name:   "binary wrong specversion",
			header: header("Ce-Specversion", "0.3", "Ce-Id", "e1", "Ce-Source", "crm", "Ce-Type", "t"),
			code:   crossdock.EINVALID, detail: `specversion "0.3" is not supported`,
		},
		{
			name:   "binary repeated header",
			header: binaryHeader("Ce-Id", "e2"),
			code:   crossdock.EINVALID, detail: "header ce-id appears more than once",
		},
		{
			name:   "binary bad percent-encoding",
			header: binaryHeader("Ce-Subject", "100%"),
			code:   crossdock.EINVALID, detail: "header ce-subject",
		},
		{
			name:   "binary overlong UTF-8",
			header: binaryHeader("Ce-Subject", "%C0%A0"),
			code:   crossdock.EINVALID, detail: "not valid UTF-8",
		},
		{
			name:   "binary unclosed quote",
			header: binaryHeader("Ce-Subject", `"abc`),
			code:   crossdock.EINVALID, detail: "not closed",
		},
		{
			name:   "binary bad time",
			header: binaryHeader("Ce-Time", "yesterday"),
			code:   crossdock.EINVALID, detail: "attribute time",
		},
		{
			name:   "binary invalid JSON body",
			header: binaryHeader("Content-Type", "application/json"),
			body:   "{not json",
			code:   crossdock.EINVALID, detail: "not valid JSON",
		},
		{
			name:   "binary bad extension name",
			header: binaryHeader("Ce-Bad_name", "x"),
			code:   crossdock.EINVALID, detail: `attribute name "bad_name" is invalid`,
		},
		{
			name:   "binary datacontenttype header",
			header: binaryHeader("Ce-Datacontenttype", "text/plain"),
			code:   crossdock.EINVALID, detail: "Content-Type header",
		},
		{
			name:   "batch",
			header: header("Content-Type", "application/cloudevents-batch+json"),
			body:   `[{"specversion":"1.0","id":"a","source":"s","type":"t"},{"specversion":"1.0","id":"b","source":"s","type":"t","datacontenttype":"application/octet-stream","data_base64":"AAE="}]`,
			batch:  true,
			want: []crossdock.Event{
				{ID: "a", Source: "s", SpecVersion: "1.0", Type: "t", Extensions: map[string]any{"correlationid": "a"}},
				{ID: "b", Source: "s", SpecVersion: "1.0", Type: "t", DataContentType: "application/octet-stream", Data: []byte{0, 1}, Extensions: map[string]any{"correlationid": "b"}},
			},
		},
		{
			name:   "batch names the bad event",
			header: header("Content-Type", "application/cloudevents-batch+json"),
			body:   `[{"specversion":"1.0","id":"a","source":"s","type":"t"},{"specversion":"1.0","id":"b","source":"s","type":"t"},{"specversion":"1.0","id":"c","type":"t"}]`,
			batch:  true,
			code:   crossdock.EINVALID, detail: "event 2: required attribute source is missing",
		},
		{
			name:   "empty batch",
			header: header("Content-Type", "application/cloudevents-batch+json"),
			body:   `[]`,
			batch:  true,
			code:   crossdock.EINVALID, detail: "the batch is empty",
		},
		{
			name:   "batch not an array",
			header: header("Content-Type", "application/cloudevents-batch+json"),
			body:   structuredOK,
			batch:  true,
			code:   crossdock.EINVALID, detail: "JSON array",
		},
		{
			name:   "plain JSON without ce headers",
			header: header("Content-Type", "application/json"),
			body:   structuredOK,
			code:   crossdock.EUNSUPPORTED, detail: "application/cloudevents+json",
		},
		{
			name:   "no content type",
			header: header(),
			body:   structuredOK,
			code:   crossdock.EUNSUPPORTED, detail: "no Content-Type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			events, batch, err := cdhttp.ParseRequest(tt.header, body)
			if tt.code != "" {
				if err == nil {
					t.Fatalf("ParseRequest = %d events, want error %s", len(events), tt.code)
				}
				if got := crossdock.ErrorCode(err); got != tt.code {
					t.Errorf("error code = %s, want %s (%v)", got, tt.code, err)
				}
				if !strings.Contains(err.Error(), tt.detail) {
					t.Errorf("error = %q, want it to contain %q", err, tt.detail)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if batch != tt.batch {
				t.Errorf("batch = %v, want %v", batch, tt.batch)
			}
			if len(events) != len(tt.want) {
				t.Fatalf("got %d events, want %d", len(events), len(tt.want))
			}
			for i := range body {
				body[i] = 'X' // the events must not share the caller's buffer
			}
			for i, got := range events {
				want := tt.want[i]
				if got.ID != want.ID || got.Source != want.Source || got.SpecVersion != want.SpecVersion ||
					got.Type != want.Type || got.Subject != want.Subject || !got.Time.Equal(want.Time) ||
					got.DataContentType != want.DataContentType || string(got.Data) != string(want.Data) {
					t.Errorf("event %d = %+v, want %+v", i, *got, want)
				}
				if len(got.Extensions) != len(want.Extensions) {
					t.Errorf("event %d extensions = %v, want %v", i, got.Extensions, want.Extensions)
				}
				for k, v := range want.Extensions {
					if got.Extensions[k] != v {
						t.Errorf("event %d extension %s = %v, want %v", i, k, got.Extensions[k], v)
					}
				}
			}
		})
	}
}

// parseFuzzHeader reads "Name: value" lines as a MIME header, as a server
// would canonicalise them.
func parseFuzzHeader(s string) http.Header {
	r := textproto.NewReader(bufio.NewReader(strings.NewReader(s + "\r\n\r\n")))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return make(http.Header)
	}
	return http.Header(h)
}

func FuzzParseRequest(f *testing.F) {
	f.Add("application/cloudevents+json", "", []byte(structuredOK))
	f.Add("application/cloudevents+json", "", []byte(`{"specversion":"1.0","id":"e","source":"s","type":"t","datacontenttype":"text/plain","data":"hi","ext1":true}`))
	f.Add("application/cloudevents+json", "", []byte(`{"specversion":"1.0","id":"e","source":"s","type":"t","data_base64":"AAEC"}`))
	f.Add("application/cloudevents-batch+json", "", []byte(`[`+structuredOK+`,`+structuredOK+`]`))
	f.Add("application/cloudevents-batch+json", "", []byte(`[]`))
	f.Add("application/json", "Ce-Specversion: 1.0\r\nCe-Id: e1\r\nCe-Source: crm\r\nCe-Type: t", []byte(`{"a":1}`))
	f.Add("text/plain", "Ce-Specversion: 1.0\r\nCe-Id: %E2%82%AC\r\nCe-Source: \"q\\\"s\"\r\nCe-Type: t\r\nCe-Time: 2025-01-01T00:00:00Z", []byte("text"))
	f.Add("", "Ce-Id: x", []byte(nil))
	f.Add("application/cloudevents+json", "", []byte(structuredOK+` {"x":"}"}`))
	f.Add("application/cloudevents+json", "", []byte(`{"specversion":"1.0","id":"e\\\"}","source":"s","type":"t"} `+"\n"))
	f.Fuzz(func(t *testing.T, contentType, rawHeader string, body []byte) {
		h := parseFuzzHeader(rawHeader)
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		events, _, err := cdhttp.ParseRequest(h, body)
		if err != nil && strings.Contains(err.Error(), "something follows it") && json.Valid(body) {
			t.Fatalf("refused one valid JSON object as followed by something: %q", body)
		}
		if err != nil {
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID && code != crossdock.EUNSUPPORTED {
				t.Fatalf("error code %s for %v", code, err)
			}
			if events != nil {
				t.Fatalf("events returned with error %v", err)
			}
			return
		}
		if len(events) == 0 {
			t.Fatal("no events and no error")
		}
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Get("Content-Type"))), "application/cloudevents") && !json.Valid(body) {
			t.Fatalf("accepted a body that is not valid JSON: %q", body)
		}
		for _, ev := range events {
			if err := ev.Validate(); err != nil {
				t.Fatalf("accepted an invalid event: %v", err)
			}
			if ev.Extension(crossdock.ExtCorrelationID) == "" {
				t.Fatal("correlationid not set")
			}
			// What was accepted must be storable as a structured event.
			b, err := ev.MarshalJSON()
			if err != nil {
				t.Fatalf("accepted event does not encode: %v", err)
			}
			var back crossdock.Event
			if err := back.UnmarshalJSON(b); err != nil || back.ID != ev.ID {
				t.Fatalf("accepted event does not round-trip: %v (%q)", err, b)
			}
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	h := header("Content-Type", cdhttp.ContentTypeCloudEvent)
	body := []byte(benchEvent("bench-1"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := cdhttp.ParseRequest(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalEvent(b *testing.B) {
	body := []byte(benchEvent("bench-1"))
	b.ReportAllocs()
	for b.Loop() {
		var ev crossdock.Event
		if err := ev.UnmarshalJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}
