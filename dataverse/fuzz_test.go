package dataverse_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/dataverse"
)

// FuzzMap feeds Map bodies and headers: it must never panic, refuse only
// with EINVALID, and every event it accepts must validate and survive the
// JSON round trip the broker puts it through.
func FuzzMap(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "contoso.crm.dynamics.com", "account", "Update", "c-1", "r-1", false)
		f.Add(b, "", "", "", "", "", true)
		f.Add(b[:len(b)/2], "org", "email", "Create", "", "", true)
	}
	f.Add([]byte(`{"OperationId":"a","MessageName":"Create","PrimaryEntityName":"x","OrganizationName":"o","OperationCreatedOn":"\/Date(-62135596800000+0100)\/"}`), "", "", "", "", "", false)
	f.Add([]byte(`{"InputParameters":[{"key":"Target","value":{"__type":"AliasedValue:x","ReturnedValue":{"__type":"EntityCollection:x","Entities":[{"Attributes":[{"key":"a","value":"\/Date(1)\/"}]}]}}}]}`), "o", "e", "m", "", "id", false)
	f.Add([]byte(``), "o", "e", "m", "", "id", true)

	f.Fuzz(func(t *testing.T, body []byte, org, entity, request, correlation, requestID string, exceeded bool) {
		h := http.Header{}
		h.Set(dataverse.HeaderOrganization, org)
		h.Set(dataverse.HeaderEntityName, entity)
		h.Set(dataverse.HeaderRequestName, request)
		h.Set(dataverse.HeaderCorrelationID, correlation)
		h.Set(dataverse.HeaderRequestID, requestID)
		if exceeded {
			h.Set(dataverse.HeaderSizeExceeded, "true")
		}
		ev, err := dataverse.Map(body, h)
		if err != nil {
			if crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Fatalf("error %v has code %s, want invalid", err, crossdock.ErrorCode(err))
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("accepted event does not validate: %v", err)
		}
		if !strings.HasPrefix(ev.Type, dataverse.TypePrefix) || !strings.HasPrefix(ev.Source, dataverse.SourcePrefix) {
			t.Fatalf("type %q, source %q", ev.Type, ev.Source)
		}
		if ev.Type != strings.ToLower(ev.Type) {
			t.Fatalf("type %q is not lower-case", ev.Type)
		}
		var data map[string]any
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatalf("data is not a JSON object: %v: %s", err, ev.Data)
		}
		if _, ok := data["messageName"].(string); !ok {
			t.Fatalf("data has no messageName: %s", ev.Data)
		}
		if exceeded && data["sizeExceeded"] != true {
			t.Fatalf("size exceeded but data says otherwise: %s", ev.Data)
		}
		if ev.CorrelationID() == "" {
			t.Fatal("no correlation id")
		}
		text, err := ev.MarshalJSON()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		var back crossdock.Event
		if err := back.UnmarshalJSON(text); err != nil {
			t.Fatalf("decode %s: %v", text, err)
		}
		if back.ID != ev.ID || back.Type != ev.Type || back.Source != ev.Source || back.Subject != ev.Subject ||
			!back.Time.Equal(ev.Time) || back.CorrelationID() != ev.CorrelationID() {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, &back)
		}
	})
}
