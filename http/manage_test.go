package http_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/delivery"
	"github.com/crossdock/crossdock/filter"
	cdhttp "github.com/crossdock/crossdock/http"
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/crossdock/crossdock/sqlite"
	"github.com/crossdock/crossdock/template"
	"github.com/crossdock/crossdock/transform"
	"github.com/crossdock/crossdock/webhook"
)

// sink is a webhook receiver that counts deliveries by ce-id.
type sink struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string]int
}

func newSink(t *testing.T) *sink {
	s := &sink{got: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.got[r.Header.Get("ce-id")]++
		s.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[id]
}

// mustOpenManaged starts a hub whose subscriptions run in a real
// dispatcher with the real compilers, the subscription store on the
// broker, and config a subscription defined in configuration.
func mustOpenManaged(t *testing.T, config crossdock.Subscription) *hub {
	t.Helper()
	ctx := context.Background()
	broker, err := cdnats.Open(ctx, cdnats.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close(context.Background()) })
	if err := broker.EnsureTopic(ctx, crossdock.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "journeys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	store, err := broker.SubscriptionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sender := webhook.NewSender()
	d := delivery.NewDispatcher()
	d.Broker, d.Sender, d.Fetcher, d.Journeys, d.Store, d.Purger = broker, sender, sender, db, store, broker
	d.Logger = slog.New(slog.DiscardHandler)
	d.Compiler = delivery.Compiler{
		Filter:    filter.Compile,
		Transform: func(p string) (delivery.Transformer, error) { return transform.Compile(p) },
		Template: func(text string, isURL bool) (delivery.Template, error) {
			return template.Compile(text, isURL, nil)
		},
	}
	if err := d.Start(ctx, []crossdock.Subscription{config}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })

	h := &hub{t: t, broker: broker, db: db, logs: &syncBuffer{}}
	h.srv = cdhttp.NewServer()
	h.srv.Addr = "127.0.0.1:0"
	h.srv.Broker, h.srv.Journeys, h.srv.Subscriptions, h.srv.Manage = broker, db, d, d
	if err := h.srv.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.srv.Close(context.Background()) })
	h.client = &http.Client{Timeout: 10 * time.Second}
	h.doc = openAPI(t)
	return h
}

func (h *hub) putSub(name, body string) response {
	h.t.Helper()
	return h.do("PUT", "/v1/subscriptions/{name}", "/v1/subscriptions/"+name, header("Content-Type", "application/json"), strings.NewReader(body))
}

func TestManageSubscriptions(t *testing.T) {
	s := newSink(t)
	h := mustOpenManaged(t, crossdock.Subscription{Name: "from-file", Topic: topic, Destination: crossdock.Destination{URL: s.URL + "/file"}})

	body := `{"topic":"` + topic + `","filter":"data.order != 'skip'","transform":"{o: .data.order}",` +
		`"destination":{"url":"` + s.URL + `/api","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","headers":{"X-Tenant":"{{subject}}"},"timeout":"3s"},` +
		`"retry":{"max_attempts":2,"initial_interval":"10ms"}}`
	r := h.putSub("orders", body)
	if r.status != 201 || r.header.Get("Location") != "/v1/subscriptions/orders" {
		t.Fatalf("PUT = %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "whsec_") || !strings.Contains(string(r.body), `"secret_set":true`) || !strings.Contains(string(r.body), `"source":"api"`) {
		t.Errorf("PUT answered %s", r.body)
	}
	h.publish(event("e1"))
	eventually(t, "delivery of e1 through the new subscription", func() bool { return s.count("e1") == 2 }) // file's and API's

	// GET never shows the secret; the replaced one keeps it with secret_set.
	g := h.get("/v1/subscriptions/{name}", "/v1/subscriptions/orders")
	if g.status != 200 || strings.Contains(string(g.body), "whsec_") || !strings.Contains(string(g.body), `"transform":"{o: .data.order}"`) {
		t.Errorf("GET = %d %s", g.status, g.body)
	}
	r = h.putSub("orders", `{"topic":"`+topic+`","destination":{"url":"`+s.URL+`/api2","secret_set":true}}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"secret_set":true`) || !strings.Contains(string(r.body), "/api2") {
		t.Errorf("replace = %d %s", r.status, r.body)
	}

	// Bad input names the field and changes nothing.
	bad := []struct{ body, detail string }{
		{`{"topic":"` + topic + `","filter":"data.(","destination":{"url":"` + s.URL + `"}}`, "filter"},
		{`{"topic":"` + topic + `","transform":".[","destination":{"url":"` + s.URL + `"}}`, "transform"},
		{`{"topic":"` + topic + `","destination":{"url":"` + s.URL + `","timeout":"soon"}}`, "destination.timeout"},
		{`{"topic":"` + topic + `","destination":{"url":"` + s.URL + `/{{nope}}"}}`, "destination.url"},
		{`{"topic":"` + topic + `","destination":{"url":"` + s.URL + `"},"colour":"red"}`, "colour"},
	}
	for _, b := range bad {
		wantProblem(t, h.putSub("orders", b.body), 400, crossdock.EINVALID, "/v1/subscriptions/orders", b.detail)
	}
	wantProblem(t, h.putSub("other", `{"topic":"no.such","destination":{"url":"`+s.URL+`"}}`), 404, crossdock.ENOTFOUND, "/v1/subscriptions/other", "no.such")

	// The file's subscription is read-only here.
	wantProblem(t, h.putSub("from-file", `{"topic":"`+topic+`","destination":{"url":"`+s.URL+`"}}`), 409, crossdock.ECONFLICT, "/v1/subscriptions/from-file", "configuration file")
	wantProblem(t, h.do("DELETE", "/v1/subscriptions/{name}", "/v1/subscriptions/from-file", nil, nil), 409, crossdock.ECONFLICT, "/v1/subscriptions/from-file", "configuration file")
	if g := h.get("/v1/subscriptions/{name}", "/v1/subscriptions/from-file"); !strings.Contains(string(g.body), `"source":"config"`) {
		t.Errorf("GET from-file = %s", g.body)
	}

	// A topic in use cannot go.
	wantProblem(t, h.do("DELETE", "/v1/topics/{topic}", "/v1/topics/"+topic, nil, nil), 409, crossdock.ECONFLICT, "/v1/topics/"+topic, "used by subscription")

	// DELETE stops deliveries.
	if r := h.do("DELETE", "/v1/subscriptions/{name}", "/v1/subscriptions/orders", nil, nil); r.status != 204 {
		t.Fatalf("DELETE = %d %s", r.status, r.body)
	}
	wantProblem(t, h.do("DELETE", "/v1/subscriptions/{name}", "/v1/subscriptions/orders", nil, nil), 404, crossdock.ENOTFOUND, "/v1/subscriptions/orders", "orders")
	h.publish(event("e2"))
	eventually(t, "the file's delivery of e2", func() bool { return s.count("e2") == 1 })
	h.publish(event("e3")) // a second round, so a late API delivery of e2 would have had its time
	eventually(t, "the file's delivery of e3", func() bool { return s.count("e3") == 1 })
	if n := s.count("e2"); n != 1 {
		t.Errorf("e2 delivered %d times after the API subscription was deleted", n)
	}
}

func TestManageTopics(t *testing.T) {
	h := MustOpen(t)
	put := func(name, body string) response {
		return h.do("PUT", "/v1/topics/{topic}", "/v1/topics/"+name, header("Content-Type", "application/json"), strings.NewReader(body))
	}
	wantBody(t, put("crm.account.changed", `{"dedup_window":"2m","retention":"24h"}`), 201, `{"name":"crm.account.changed","dedup_window":"2m0s","retention":"24h0m0s"}`)
	wantBody(t, put("crm.account.changed", `{"retention":"48h"}`), 200, `{"name":"crm.account.changed","dedup_window":"10m0s","retention":"48h0m0s"}`)
	wantBody(t, put("crm.account.deleted", ``), 201, `{"name":"crm.account.deleted","dedup_window":"10m0s","retention":"168h0m0s"}`)
	wantProblem(t, put("crm.account.changed", `{"retention":"forever"}`), 400, crossdock.EINVALID, "/v1/topics/crm.account.changed", "retention")
	wantProblem(t, put("Bad_Topic", `{}`), 400, crossdock.EINVALID, "/v1/topics/Bad_Topic", "topic name")
	if r := h.do("DELETE", "/v1/topics/{topic}", "/v1/topics/crm.account.changed", nil, nil); r.status != 204 {
		t.Fatalf("DELETE = %d %s", r.status, r.body)
	}
	wantProblem(t, h.get("/v1/topics/{topic}", "/v1/topics/crm.account.changed"), 404, crossdock.ENOTFOUND, "/v1/topics/crm.account.changed", "does not exist")
	wantProblem(t, h.do("DELETE", "/v1/topics/{topic}", "/v1/topics/crm.account.changed", nil, nil), 404, crossdock.ENOTFOUND, "/v1/topics/crm.account.changed", "does not exist")
}
