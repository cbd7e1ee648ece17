package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	cdhttp "github.com/crossdock/crossdock/http"
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/crossdock/crossdock/sqlite"
)

const topic = "sales.order.created"

// subscriptionList is the plain list of subscriptions a hub runs.
type subscriptionList []crossdock.Subscription

func (l subscriptionList) Subscriptions(ctx context.Context) ([]crossdock.Subscription, error) {
	out := slices.Clone(l)
	slices.SortFunc(out, func(a, b crossdock.Subscription) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (l subscriptionList) Subscription(ctx context.Context, name string) (*crossdock.Subscription, error) {
	for _, s := range l {
		if s.Name == name {
			return &s, nil
		}
	}
	return nil, crossdock.Errorf(crossdock.ENOTFOUND, "subscription %s does not exist", name)
}

var _ crossdock.SubscriptionService = subscriptionList(nil)

// syncBuffer collects the server's log lines from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hub is a real API server over an embedded JetStream broker and a SQLite
// journey store.
type hub struct {
	t      testing.TB
	broker *cdnats.Broker
	db     *sqlite.DB
	srv    *cdhttp.Server
	subs   subscriptionList
	logs   *syncBuffer
	client *http.Client
	doc    *apiDoc
}

// MustOpen starts a hub with topic sales.order.created and the
// subscriptions; the server's bodies are limited to 64 KiB.
func MustOpen(tb testing.TB, subs ...crossdock.Subscription) *hub {
	tb.Helper()
	ctx := context.Background()
	broker, err := cdnats.Open(ctx, cdnats.Config{DataDir: tb.TempDir()})
	if err != nil {
		tb.Fatalf("open broker: %v", err)
	}
	tb.Cleanup(func() { _ = broker.Close(context.Background()) }) // a test may have closed it already
	if err := broker.EnsureTopic(ctx, crossdock.Topic{Name: topic}); err != nil {
		tb.Fatalf("ensure topic: %v", err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "journeys.db"))
	if err != nil {
		tb.Fatalf("open journey store: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close(context.Background()) }) // a test may have closed it already

	h := &hub{t: tb, broker: broker, db: db, subs: subs, logs: &syncBuffer{}}
	h.srv = cdhttp.NewServer()
	h.srv.Addr = "127.0.0.1:0"
	h.srv.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.srv.Broker = broker
	h.srv.Journeys = db
	h.srv.Subscriptions = h.subs
	h.srv.StoreReady = db.Ready
	h.srv.MaxEventSize = 64 << 10
	if err := h.srv.Open(); err != nil {
		tb.Fatalf("open server: %v", err)
	}
	tb.Cleanup(func() {
		if err := h.srv.Close(context.Background()); err != nil {
			tb.Errorf("close server: %v", err)
		}
	})
	h.client = &http.Client{Timeout: 10 * time.Second}
	h.doc = openAPI(tb)
	return h
}

// response is what the server answered.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to path and checks the answer against the OpenAPI
// document's entry for the route pattern.
func (h *hub) do(method, pattern, path string, header http.Header, body io.Reader) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL()+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	h.doc.checkResponse(h.t, method, pattern, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	return response{resp.StatusCode, resp.Header, b}
}

func (h *hub) get(pattern, path string) response {
	h.t.Helper()
	return h.do("GET", pattern, path, nil, nil)
}

// publish posts a structured event.
func (h *hub) publish(body string) response {
	h.t.Helper()
	return h.do("POST", "/v1/topics/{topic}/events", "/v1/topics/"+topic+"/events",
		header("Content-Type", cdhttp.ContentTypeCloudEvent), strings.NewReader(body))
}

func event(id string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"crm","type":"order.created","data":{"order":"` + id + `"}}`
}

// wantBody fails unless the body is exactly want, a trailing newline aside.
func wantBody(t testing.TB, r response, status int, want string) {
	t.Helper()
	if r.status != status || strings.TrimSuffix(string(r.body), "\n") != want {
		t.Errorf("answer = %d %s\nwant     %d %s", r.status, r.body, status, want)
	}
}

// wantProblem fails unless the answer is the problem with the status, type
// code and a detail containing detail, for the request path.
func wantProblem(t testing.TB, r response, status int, code, path, detail string) {
	t.Helper()
	var p cdhttp.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if r.status != status || p.Status != status || p.Type != cdhttp.ProblemTypeBase+code ||
		p.Title != http.StatusText(status) || p.Instance != path || !strings.Contains(p.Detail, detail) {
		t.Errorf("answer = %d %+v\nwant %d type %s detail containing %q instance %s", r.status, p, status, code, detail, path)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

// eventually polls cond until it holds or 10 seconds pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPublishStructured(t *testing.T) {
	h := MustOpen(t)
	wantBody(t, h.publish(event("e1")), 202, `{"id":"e1","topic":"sales.order.created","sequence":1,"duplicate":false}`)
	wantBody(t, h.publish(event("e2")), 202, `{"id":"e2","topic":"sales.order.created","sequence":2,"duplicate":false}`)
	// The same id again stores nothing and points at the first copy.
	wantBody(t, h.publish(event("e1")), 202, `{"id":"e1","topic":"sales.order.created","sequence":1,"duplicate":true}`)

	ev, _, err := h.broker.Event(context.Background(), topic, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "e1" || ev.CorrelationID() != "e1" || ev.Extension("correlationid") != "e1" || string(ev.Data) != `{"order":"e1"}` {
		t.Errorf("stored event = %+v", ev)
	}
	if _, _, err := h.broker.Event(context.Background(), topic, 3); crossdock.ErrorCode(err) != crossdock.ENOTFOUND {
		t.Errorf("a duplicate was stored: Event(3) error = %v", err)
	}

	// The publication is journaled, once.
	if err := h.db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := h.get("/v1/topics/{topic}/events/{id}", "/v1/topics/"+topic+"/events/e1")
	var j crossdock.Journey
	if err := json.Unmarshal(r.body, &j); err != nil || r.status != 200 {
		t.Fatalf("journey = %d %s (%v)", r.status, r.body, err)
	}
	if j.Sequence != 1 || j.Topic != topic || j.PublishedAt.IsZero() {
		t.Errorf("journey = %+v", j)
	}

	logs := h.logs.String()
	if !strings.Contains(logs, "http request") || !strings.Contains(logs, "status=202") {
		t.Errorf("no debug request log: %s", logs)
	}
	if strings.Contains(logs, `"order"`) || strings.Contains(logs, "crm") {
		t.Errorf("the log holds payload: %s", logs)
	}
}

func TestPublishBinary(t *testing.T) {
	h := MustOpen(t)
	hdr := binaryHeader("Content-Type", "application/json", "Ce-Subject", "caf%C3%A9%20order", "Ce-Correlationid", "tx-9")
	r := h.do("POST", "/v1/topics/{topic}/events", "/v1/topics/"+topic+"/events", hdr, strings.NewReader(`{"total": 12.5}`))
	wantBody(t, r, 202, `{"id":"e1","topic":"sales.order.created","sequence":1,"duplicate":false}`)
	ev, _, err := h.broker.Event(context.Background(), topic, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Subject != "café order" || ev.DataContentType != "application/json" || ev.CorrelationID() != "tx-9" ||
		!strings.Contains(string(ev.Data), `12.5`) {
		t.Errorf("stored event = %+v, data %s", ev, ev.Data)
	}
}

func TestPublishBatch(t *testing.T) {
	h := MustOpen(t)
	body := "[" + event("a") + "," + event("b") + "," + event("c") + "]"
	r := h.do("POST", "/v1/topics/{topic}/events", "/v1/topics/"+topic+"/events",
		header("Content-Type", cdhttp.ContentTypeBatch), strings.NewReader(body))
	wantBody(t, r, 202, `[{"id":"a","topic":"sales.order.created","sequence":1,"duplicate":false},`+
		`{"id":"b","topic":"sales.order.created","sequence":2,"duplicate":false},`+
		`{"id":"c","topic":"sales.order.created","sequence":3,"duplicate":false}]`)

	// All or nothing: a bad third event stores none of the batch.
	body = "[" + event("d") + "," + event("e") + `,{"specversion":"1.0","id":"f","type":"t"}]`
	r = h.do("POST", "/v1/topics/{topic}/events", "/v1/topics/"+topic+"/events",
		header("Content-Type", cdhttp.ContentTypeBatch), strings.NewReader(body))
	wantProblem(t, r, 400, "invalid", "/v1/topics/"+topic+"/events", "event 2: required attribute source is missing")
	wantBody(t, h.publish(event("g")), 202, `{"id":"g","topic":"sales.order.created","sequence":4,"duplicate":false}`)
}

func TestPublishErrors(t *testing.T) {
	h := MustOpen(t)
	path := "/v1/topics/" + topic + "/events"
	ce := header("Content-Type", cdhttp.ContentTypeCloudEvent)
	big := `{"specversion":"1.0","id":"big","source":"crm","type":"t","data":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name   string
		path   string
		header http.Header
		body   io.Reader
		status int
		code   string
		detail string
	}{
		{"missing source", path, ce, strings.NewReader(`{"specversion":"1.0","id":"x","type":"t"}`), 400, "invalid", "required attribute source is missing"},
		{"missing id in binary mode", path, header("Ce-Specversion", "1.0", "Ce-Source", "crm", "Ce-Type", "t"), nil, 400, "invalid", "required attribute id is missing"},
		{"malformed JSON", path, ce, strings.NewReader(`{"id":`), 400, "invalid", "not a JSON object"},
		{"empty batch", path, header("Content-Type", cdhttp.ContentTypeBatch), strings.NewReader(`[]`), 400, "invalid", "the batch is empty"},
		{"unknown topic", "/v1/topics/no.such.topic/events", ce, strings.NewReader(event("x")), 404, "not_found", "no.such.topic"},
		{"invalid topic name", "/v1/topics/No_Such/events", ce, strings.NewReader(event("x")), 404, "not_found", "No_Such"},
		{"too large", path, ce, strings.NewReader(big), 413, "too_large", "limit of 65536 bytes"},
		// No Content-Length: the limit is found while reading.
		{"too large chunked", path, ce, io.MultiReader(strings.NewReader(big)), 413, "too_large", "limit of 65536 bytes"},
		{"plain JSON", path, header("Content-Type", "application/json"), strings.NewReader(event("x")), 415, "unsupported_media_type", "application/cloudevents+json"},
		{"XML structured", path, header("Content-Type", "application/cloudevents+xml"), strings.NewReader("<e/>"), 415, "unsupported_media_type", "binary mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", "/v1/topics/{topic}/events", tt.path, tt.header, tt.body)
			wantProblem(t, r, tt.status, tt.code, tt.path, tt.detail)
		})
	}
	// Nothing reached the broker: the next event is the first stored.
	wantBody(t, h.publish(event("ok")), 202, `{"id":"ok","topic":"sales.order.created","sequence":1,"duplicate":false}`)
}

func TestPublishUnavailable(t *testing.T) {
	h := MustOpen(t)
	wantBody(t, h.publish(event("e1")), 202, `{"id":"e1","topic":"sales.order.created","sequence":1,"duplicate":false}`)
	if err := h.broker.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := h.publish(event("e2"))
	wantProblem(t, r, 503, "unavailable", "/v1/topics/"+topic+"/events", "")
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	r = h.get("/readyz", "/readyz")
	wantProblem(t, r, 503, "unavailable", "/readyz", "broker")
}

func TestTopics(t *testing.T) {
	h := MustOpen(t)
	if err := h.broker.EnsureTopic(context.Background(), crossdock.Topic{Name: "crm.account.changed", DedupWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	wantBody(t, h.get("/v1/topics", "/v1/topics"), 200, `{"items":[`+
		`{"name":"crm.account.changed","dedup_window":"1m0s","retention":"168h0m0s"},`+
		`{"name":"sales.order.created","dedup_window":"10m0s","retention":"168h0m0s"}]}`)
	wantBody(t, h.get("/v1/topics/{topic}", "/v1/topics/"+topic), 200,
		`{"name":"sales.order.created","dedup_window":"10m0s","retention":"168h0m0s"}`)
	wantProblem(t, h.get("/v1/topics/{topic}", "/v1/topics/no.such"), 404, "not_found", "/v1/topics/no.such", "no.such")
}

func TestHealth(t *testing.T) {
	h := MustOpen(t)
	wantBody(t, h.get("/healthz", "/healthz"), 200, `{"status":"ok"}`)
	wantBody(t, h.get("/readyz", "/readyz"), 200, `{"status":"ready"}`)
	if err := h.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := h.get("/readyz", "/readyz")
	wantProblem(t, r, 503, "unavailable", "/readyz", "journey store: journey database is closed")
	if strings.Contains(string(r.body), "broker") {
		t.Errorf("readyz blames the broker: %s", r.body)
	}
	wantBody(t, h.get("/healthz", "/healthz"), 200, `{"status":"ok"}`)
	r = h.get("/openapi.json", "/openapi.json")
	if r.status != 200 || !json.Valid(r.body) {
		t.Errorf("GET /openapi.json = %d", r.status)
	}
}

func TestServerLifecycle(t *testing.T) {
	if err := cdhttp.NewServer().Open(); err == nil || !strings.Contains(err.Error(), "Broker is not set") {
		t.Errorf("Open without a broker = %v", err)
	}
	h := MustOpen(t)
	if !strings.HasPrefix(h.srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %q", h.srv.URL())
	}
	wantBody(t, h.get("/healthz", "/healthz"), 200, `{"status":"ok"}`)
	if err := h.srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resp, err := h.client.Get(h.srv.URL() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("the server still answers after Close")
	}
}
