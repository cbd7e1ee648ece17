package crossdock_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
)

func TestEventJSONRoundTrip(t *testing.T) {
	tm := time.Date(2026, 11, 21, 8, 30, 0, 123000000, time.UTC)
	tests := []struct {
		name string
		ev   crossdock.Event
		want string
	}{
		{
			name: "json data and extensions",
			ev: crossdock.Event{ID: "1", Source: "/crm", SpecVersion: "1.0", Type: "t", Subject: "s", Time: tm,
				DataContentType: "application/json", Data: []byte(`{"a":1}`),
				Extensions: map[string]any{"correlationid": "c-1", "priority": int64(5), "urgent": true}},
			want: `{"specversion":"1.0","id":"1","source":"/crm","type":"t","subject":"s","time":"2026-11-21T08:30:00.123Z","datacontenttype":"application/json","correlationid":"c-1","priority":5,"urgent":true,"data":{"a":1}}`,
		},
		{
			name: "no content type means JSON",
			ev:   crossdock.Event{ID: "2", Source: "/s", SpecVersion: "1.0", Type: "t", Data: []byte(`[1,2]`)},
			want: `{"specversion":"1.0","id":"2","source":"/s","type":"t","data":[1,2]}`,
		},
		{
			name: "text data is a JSON string",
			ev:   crossdock.Event{ID: "3", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "text/plain", Data: []byte(`hi "there"`)},
			want: `{"specversion":"1.0","id":"3","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi \"there\""}`,
		},
		{
			name: "binary data is base64",
			ev:   crossdock.Event{ID: "4", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "application/octet-stream", Data: []byte{0, 1, 2}},
			want: `{"specversion":"1.0","id":"4","source":"/s","type":"t","datacontenttype":"application/octet-stream","data_base64":"AAEC"}`,
		},
		{
			name: "no data",
			ev:   crossdock.Event{ID: "5", Source: "/s", SpecVersion: "1.0", Type: "t"},
			want: `{"specversion":"1.0","id":"5","source":"/s","type":"t"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("marshal\n got %s\nwant %s", b, tt.want)
			}
			var back crossdock.Event
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			b2, err := json.Marshal(back)
			if err != nil {
				t.Fatal(err)
			}
			if string(b2) != tt.want {
				t.Fatalf("round trip\n got %s\nwant %s", b2, tt.want)
			}
		})
	}
}

func TestEventUnmarshalErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`[]`, "not a JSON object"},
		{`{"id":1}`, "attribute id must be a string"},
		{`{"time":"yesterday"}`, "not an RFC 3339 timestamp"},
		{`{"data":1,"data_base64":"AA=="}`, "both data and data_base64"},
		{`{"data_base64":"%%%"}`, "not valid base64"},
		{`{"ext":{"nested":true}}`, "extension ext"},
	}
	for _, tt := range tests {
		var ev crossdock.Event
		err := json.Unmarshal([]byte(tt.in), &ev)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestEventValidate(t *testing.T) {
	valid := crossdock.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t"}
	tests := []struct {
		name   string
		mutate func(*crossdock.Event)
		want   string
	}{
		{"valid", func(*crossdock.Event) {}, ""},
		{"no id", func(e *crossdock.Event) { e.ID = "" }, "id is missing"},
		{"no source", func(e *crossdock.Event) { e.Source = "" }, "source is missing"},
		{"no specversion", func(e *crossdock.Event) { e.SpecVersion = "" }, "specversion is missing"},
		{"old specversion", func(e *crossdock.Event) { e.SpecVersion = "0.3" }, "not supported"},
		{"no type", func(e *crossdock.Event) { e.Type = "" }, "type is missing"},
		{"bad content type", func(e *crossdock.Event) { e.DataContentType = "not a type;" }, "not a media type"},
		{"bad extension name", func(e *crossdock.Event) { e.Extensions = map[string]any{"Bad_Name": "x"} }, "attribute name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := valid
			tt.mutate(&ev)
			err := ev.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Fatalf("error %v, want EINVALID containing %q", err, tt.want)
			}
		})
	}
}

func TestCorrelationIDDefaultsToID(t *testing.T) {
	ev := crossdock.Event{ID: "e-1"}
	if got := ev.CorrelationID(); got != "e-1" {
		t.Fatalf("got %q", got)
	}
	ev.SetExtension(crossdock.ExtCorrelationID, "c-9")
	if got := ev.CorrelationID(); got != "c-9" {
		t.Fatalf("got %q", got)
	}
}

func TestBackoff(t *testing.T) {
	p := crossdock.RetryPolicy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 10 * time.Second}
	tests := []struct {
		attempt  int
		rnd      float64
		min, max time.Duration
	}{
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999, 990 * time.Millisecond, time.Second},
		{3, 0, 2 * time.Second, 2 * time.Second},
		{10, 0, 5 * time.Second, 5 * time.Second}, // capped, then jittered
		{1000, 0.5, 7 * time.Second, 8 * time.Second},
	}
	for _, tt := range tests {
		got := p.Backoff(tt.attempt, tt.rnd)
		if got < tt.min || got > tt.max {
			t.Errorf("Backoff(%d, %v) = %v, want in [%v, %v]", tt.attempt, tt.rnd, got, tt.min, tt.max)
		}
	}
}

func TestValidNames(t *testing.T) {
	for name, want := range map[string]bool{
		"sales.order.created": true, "a": true, "crm.account-v2.changed": true,
		"": false, ".a": false, "a.": false, "a..b": false, "Sales.order": false, "a.-b": false, "a b": false, "a_b": false,
	} {
		if got := crossdock.ValidTopicName(name); got != want {
			t.Errorf("ValidTopicName(%q) = %v", name, got)
		}
	}
	for name, want := range map[string]bool{"erp": true, "erp-accounts_2": true, "": false, "-x": false, "Erp": false, "a.b": false} {
		if got := crossdock.ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v", name, got)
		}
	}
}

// FuzzEventJSON checks that decoding never panics and that whatever decodes
// encodes to JSON that decodes to the same encoding again.
func FuzzEventJSON(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":[1,2]}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"x"}`))
	f.Add([]byte(`{"id":"1","data_base64":"AAEC","datacontenttype":"image/png","ext":5}`))
	f.Add([]byte(`{"time":"2026-01-02T03:04:05Z","x":true,"y":1.5}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var ev crossdock.Event
		err := ev.UnmarshalJSON(in)
		var ref map[string]any
		refErr := json.Unmarshal(in, &ref)
		if refErr != nil && err == nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", refErr, in)
		}
		if err != nil {
			return
		}
		// The one-pass scanner must agree with encoding/json on attributes.
		for name, got := range map[string]string{"id": ev.ID, "source": ev.Source, "type": ev.Type, "subject": ev.Subject} {
			if want, ok := ref[name].(string); ok && want != got {
				t.Fatalf("%s = %q, encoding/json says %q", name, got, want)
			}
		}
		_ = ev.Validate()
		b, err := json.Marshal(ev)
		if err != nil {
			return // e.g. data that is not JSON under a JSON content type
		}
		var back crossdock.Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("re-decode %s: %v", b, err)
		}
		b2, err := json.Marshal(back)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("not stable:\n%s\n%s (%v)", b, b2, err)
		}
	})
}

func BenchmarkEventUnmarshalJSON(b *testing.B) {
	in := []byte(`{"specversion":"1.0","id":"0222d555-474b-42f6-a555-de3b1e2403e3","source":"/crm/orders","type":"sales.order.created","subject":"SO-1","time":"2026-11-21T06:56:26.0849084Z","datacontenttype":"application/json","correlationid":"c-1","data":{"pad":"` + strings.Repeat("x", 800) + `","amount":1250}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		var ev crossdock.Event
		if err := ev.UnmarshalJSON(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMarshalChecksReplacedData(t *testing.T) {
	var ev crossdock.Event
	if err := json.Unmarshal([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`), &ev); err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(ev); err != nil {
		t.Fatal(err)
	}
	ev.Data = []byte(`{"a":`) // no longer what the decoder checked
	if _, err := json.Marshal(ev); err == nil {
		t.Fatal("invalid JSON data was encoded")
	}
}
