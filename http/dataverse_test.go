package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/dataverse"
	cdhttp "github.com/crossdock/crossdock/http"
)

const (
	dvTopic   = "crm.account.changed"
	dvPattern = "/v1/ingress/dataverse/{topic}"
	dvPath    = "/v1/ingress/dataverse/" + dvTopic
	dvKey     = "k3y-for-the-webhook"
	dvKey2    = "a-rotated-key"
)

// mustOpenDataverse starts a hub whose server takes Dataverse webhooks for
// crm.account.changed with either of two keys, and for crm.ghost, a topic
// the broker does not have.
func mustOpenDataverse(t testing.TB) *hub {
	t.Helper()
	h := MustOpen(t)
	ctx := context.Background()
	if err := h.broker.EnsureTopic(ctx, crossdock.Topic{Name: dvTopic}); err != nil {
		t.Fatal(err)
	}
	// Fields are set before Open: replace MustOpen's server with one that
	// has the ingresses, on the same broker and store.
	if err := h.srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	old := h.srv
	h.srv = cdhttp.NewServer()
	h.srv.Addr = "127.0.0.1:0"
	h.srv.Logger = old.Logger
	h.srv.Broker = old.Broker
	h.srv.Journeys = old.Journeys
	h.srv.Subscriptions = old.Subscriptions
	h.srv.StoreReady = old.StoreReady
	h.srv.MaxEventSize = old.MaxEventSize
	h.srv.Dataverse = []dataverse.Ingress{
		{Topic: dvTopic, Key: dvKey},
		{Topic: dvTopic, Key: dvKey2},
		{Topic: "crm.ghost", Key: dvKey},
		{Topic: "crm.nokey", Key: ""},
	}
	if err := h.srv.Open(); err != nil {
		t.Fatal(err)
	}
	return h // MustOpen's cleanup closes h.srv, now this server
}

// dvSample reads a Dataverse payload from the dataverse package's testdata.
func dvSample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "dataverse", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dvHeader is what Dataverse sends with a webhook, plus the pairs given.
func dvHeader(entity, message string, kv ...string) http.Header {
	h := header(kv...)
	h.Set("Content-Type", "application/json")
	h.Set("x-ms-dynamics-organization", "contoso.crm4.dynamics.com")
	h.Set("x-ms-dynamics-entity-name", entity)
	h.Set("x-ms-dynamics-request-name", message)
	h.Set("x-ms-correlation-request-id", "11111111-2222-4333-8444-555555555555")
	return h
}

func (h *hub) dataverse(path string, hdr http.Header, body string) response {
	h.t.Helper()
	return h.do("POST", dvPattern, path, hdr, strings.NewReader(body))
}

func TestDataverseIngress(t *testing.T) {
	h := mustOpenDataverse(t)
	ctx := context.Background()
	update := dvSample(t, "update-account.json")

	// WebhookKey: the key in ?code=.
	r := h.dataverse(dvPath+"?code="+dvKey, dvHeader("account", "Update"), update)
	wantBody(t, r, 202, `{"id":"5d9f3b21-8d21-ee11-9cbe-000d3a4c6a1f","topic":"crm.account.changed","sequence":1,"duplicate":false}`)
	ev, _, err := h.broker.Event(ctx, dvTopic, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "5d9f3b21-8d21-ee11-9cbe-000d3a4c6a1f" || ev.Type != "dataverse.account.update" ||
		ev.Source != "dataverse://org7f0e1d2c" || ev.Subject != "0b9f3e2d-8d21-ee11-9cbe-000d3a4c6a1f" ||
		ev.CorrelationID() != "2a7b9c1d-6e5f-4a3b-8c2d-1e0f9a8b7c6d" ||
		!ev.Time.Equal(time.Date(2023, 11, 15, 0, 13, 21, 0, time.UTC)) || ev.DataContentType != "application/json" {
		t.Errorf("stored event = %+v", ev)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data["name"] != "Contoso <Pharma> & Co" || data["statuscode"] != 2.0 || data["messageName"] != "Update" ||
		data["entityName"] != "account" || data["organizationName"] != "org7f0e1d2c" ||
		data["userId"] != "c1a2b3d4-7e21-ee11-9cbe-000d3a4c6a1f" {
		t.Errorf("stored data = %s", ev.Data)
	}

	// Dataverse retries with the same OperationId: nothing new is stored.
	r = h.dataverse(dvPath+"?code="+dvKey, dvHeader("account", "Update"), update)
	wantBody(t, r, 202, `{"id":"5d9f3b21-8d21-ee11-9cbe-000d3a4c6a1f","topic":"crm.account.changed","sequence":1,"duplicate":true}`)

	// HttpHeader: the key in x-api-key; the second key works as well.
	r = h.dataverse(dvPath, dvHeader("contact", "Delete", "x-api-key", dvKey2), dvSample(t, "delete-contact.json"))
	wantBody(t, r, 202, `{"id":"8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d","topic":"crm.account.changed","sequence":2,"duplicate":false}`)
	ev, _, err = h.broker.Event(ctx, dvTopic, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "dataverse.contact.delete" || !strings.Contains(string(ev.Data), `"logicalName":"contact"`) {
		t.Errorf("stored event = %+v, data %s", ev, ev.Data)
	}

	// Size exceeded: the ids and the flag.
	r = h.dataverse(dvPath+"?code="+dvKey, dvHeader("email", "Create", "x-ms-dynamics-msg-size-exceeded", "true"),
		dvSample(t, "size-exceeded-email.json"))
	wantBody(t, r, 202, `{"id":"7a8b9c0d-8d21-ee11-9cbe-000d3a4c6a1f","topic":"crm.account.changed","sequence":3,"duplicate":false}`)
	ev, _, err = h.broker.Event(ctx, dvTopic, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ev.Data), `"sizeExceeded":true`) || ev.Subject != "3f4e5d6c-8d21-ee11-9cbe-000d3a4c6a1f" {
		t.Errorf("stored event = %+v, data %s", ev, ev.Data)
	}

	// Each new event is journaled with its Dataverse correlation, once.
	if err := h.db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r = h.get("/v1/topics/{topic}/events/{id}", "/v1/topics/"+dvTopic+"/events/5d9f3b21-8d21-ee11-9cbe-000d3a4c6a1f")
	var j crossdock.Journey
	if err := json.Unmarshal(r.body, &j); err != nil || r.status != 200 {
		t.Fatalf("journey = %d %s (%v)", r.status, r.body, err)
	}
	if j.Sequence != 1 || j.Topic != dvTopic || j.Event == nil || j.Event.Type != "dataverse.account.update" {
		t.Errorf("journey = %+v", j)
	}
	if logs := h.logs.String(); strings.Contains(logs, dvKey) || strings.Contains(logs, dvKey2) || strings.Contains(logs, "Contoso") {
		t.Errorf("the log holds a key or payload: %s", logs)
	}
}

func TestDataverseIngressRefusals(t *testing.T) {
	h := mustOpenDataverse(t)
	update := dvSample(t, "update-account.json")
	big := `{"MessageName":"Update","Padding":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name   string
		path   string
		header http.Header
		body   string
		status int
		code   string
		detail string
	}{
		{"no key", dvPath, dvHeader("account", "Update"), update, 401, "unauthorized", "no valid key"},
		{"wrong code", dvPath + "?code=nope", dvHeader("account", "Update"), update, 401, "unauthorized", "x-api-key header (HttpHeader)"},
		{"wrong header", dvPath, dvHeader("account", "Update", "x-api-key", "nope"), update, 401, "unauthorized", "no valid key"},
		{"a key that is too long", dvPath + "?code=" + dvKey + "x", dvHeader("account", "Update"), update, 401, "unauthorized", "no valid key"},
		{"an empty code", dvPath + "?code=", dvHeader("account", "Update"), update, 401, "unauthorized", "no valid key"},
		{"the key in another header", dvPath, dvHeader("account", "Update", "Authorization", dvKey), update, 401, "unauthorized", "no valid key"},
		{"no ingress for the topic", "/v1/ingress/dataverse/" + topic + "?code=" + dvKey, dvHeader("account", "Update"), update, 404, "not_found", `no Dataverse ingress is configured for topic "sales.order.created"`},
		{"an ingress with no key", "/v1/ingress/dataverse/crm.nokey?code=", dvHeader("account", "Update"), update, 404, "not_found", "no Dataverse ingress"},
		{"an ingress whose topic does not exist", "/v1/ingress/dataverse/crm.ghost?code=" + dvKey, dvHeader("account", "Update"), update, 404, "not_found", "crm.ghost"},
		{"not a RemoteExecutionContext", dvPath + "?code=" + dvKey, dvHeader("account", "Update"), `[1,2]`, 400, "invalid", "not a JSON object"},
		{"no message name anywhere", dvPath + "?code=" + dvKey, header("x-ms-dynamics-entity-name", "account"), `{"OperationId":"x","OrganizationName":"o"}`, 400, "invalid", "MessageName is missing"},
		{"too large", dvPath + "?code=" + dvKey, dvHeader("account", "Update"), big, 413, "too_large", "limit of 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.dataverse(tt.path, tt.header, tt.body)
			path, _, _ := strings.Cut(tt.path, "?")
			wantProblem(t, r, tt.status, tt.code, path, tt.detail)
			if strings.Contains(string(r.body), dvKey) {
				t.Errorf("the answer shows the key: %s", r.body)
			}
		})
	}
	// Nothing was stored: the next good request is the first event.
	r := h.dataverse(dvPath+"?code="+dvKey, dvHeader("account", "Update"), update)
	wantBody(t, r, 202, `{"id":"5d9f3b21-8d21-ee11-9cbe-000d3a4c6a1f","topic":"crm.account.changed","sequence":1,"duplicate":false}`)
	if logs := h.logs.String(); strings.Contains(logs, dvKey) || strings.Contains(logs, "nope") {
		t.Errorf("the log holds a key: %s", logs)
	}
}

func TestDataverseIngressNotConfigured(t *testing.T) {
	h := MustOpen(t) // no Dataverse ingresses at all
	r := h.dataverse(dvPath+"?code=anything", dvHeader("account", "Update"), dvSample(t, "update-account.json"))
	wantProblem(t, r, 404, "not_found", dvPath, "no Dataverse ingress")
	resp, err := h.client.Get(h.srv.URL() + dvPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET = %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
