package demo_test

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/demo"
)

func TestOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 43))
	const n = 3000
	ids := make(map[string]bool, n)
	var bad int
	for i := 1; i <= n; i++ {
		ev := demo.Order(r, i)
		if err := ev.Validate(); err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
		if ev.Type != demo.OrderType || ev.Source != demo.OrderSource || ev.DataContentType != "application/json" {
			t.Fatalf("order %d attributes: %+v", i, ev)
		}
		if ids[ev.ID] || ev.Extension(crossdock.ExtCorrelationID) == "" {
			t.Fatalf("order %d: duplicate id or no correlation id: %+v", i, ev)
		}
		ids[ev.ID] = true
		var d demo.OrderData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if d.OrderNumber != ev.Subject || d.Customer.Phone == "" || d.Currency == "" || d.Region == "" {
			t.Fatalf("order %d data: %+v", i, d)
		}
		if d.Problem() != "" {
			bad++
		}
	}
	if rate := float64(bad) / n; rate < 0.015 || rate > 0.05 {
		t.Errorf("bad order rate = %.3f, want about %.2f", rate, demo.BadOrderRate)
	}
}

func TestCurlExample(t *testing.T) {
	line := demo.CurlExample("http://127.0.0.1:8080/", "sales.order.created")
	if !strings.HasPrefix(line, "curl -sS -X POST http://127.0.0.1:8080/v1/topics/sales.order.created/events ") ||
		!strings.Contains(line, "Content-Type: application/cloudevents+json") {
		t.Fatalf("curl line: %s", line)
	}
	_, body, ok := strings.Cut(line, " -d '")
	if !ok {
		t.Fatalf("no -d argument: %s", line)
	}
	var ev crossdock.Event
	if err := json.Unmarshal([]byte(strings.TrimSuffix(body, "'")), &ev); err != nil {
		t.Fatal(err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
}

// hub is a stand-in for the publish endpoint that records structured events
// and answers each request with the next of its statuses (then 202).
type hub struct {
	t        *testing.T
	path     string // default: the order topic's publish path
	mu       sync.Mutex
	statuses []int
	requests int
	events   []crossdock.Event
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	path := h.path
	if path == "" {
		path = "/v1/topics/sales.order.created/events"
	}
	if r.URL.Path != path || r.Header.Get("Authorization") != "Bearer k1" {
		h.t.Errorf("request to %s with %q", r.URL.Path, r.Header.Get("Authorization"))
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/cloudevents+json" {
		h.t.Errorf("content type %q, want structured mode", mt)
	}
	var ev crossdock.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.Validate() != nil {
		h.t.Errorf("not a valid event: %v %s", err, body)
	}
	status := http.StatusAccepted
	if len(h.statuses) > 0 {
		status, h.statuses = h.statuses[0], h.statuses[1:]
	}
	if status == http.StatusAccepted {
		h.events = append(h.events, ev)
	}
	w.WriteHeader(status)
}

func (h *hub) counts() (requests, events int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests, len(h.events)
}

func runTraffic(t *testing.T, h *hub, until func() bool) *demo.Traffic {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tr := &demo.Traffic{HubURL: srv.URL, Topic: "sales.order.created", Key: "k1", Rate: 40,
		Rand: rand.New(rand.NewPCG(1, 1)), Client: srv.Client()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); !until(); {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("traffic did not reach the expected state in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil when ctx ends", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	return tr
}

func TestTraffic_PublishesAtRateAndRetries(t *testing.T) {
	// Two 503s: the first event is published on its third attempt.
	h := &hub{t: t, statuses: []int{http.StatusServiceUnavailable, http.StatusServiceUnavailable}}
	start := time.Now()
	tr := runTraffic(t, h, func() bool { _, n := h.counts(); return n >= 10 })
	elapsed := time.Since(start)

	requests, events := h.counts()
	// The last event may be taken by the hub after Run's ctx ended and
	// before its answer arrived: then it is neither published nor failed.
	if lost := int64(events) - tr.Published(); lost < 0 || lost > 1 || tr.Failed() != 0 {
		t.Errorf("hub took %d events, traffic says %d published, %d failed", events, tr.Published(), tr.Failed())
	}
	if requests != events+2 {
		t.Errorf("%d requests for %d events, want 2 retries", requests, events)
	}
	// 10 events at 40/s plus 0.6s of back-off take at least 0.8s; the
	// upper bound only catches a rate that is far off.
	if elapsed < 700*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("10 events at 40/s took %v", elapsed)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range h.events {
		if seen[ev.ID] {
			t.Errorf("event %s published twice", ev.ID)
		}
		seen[ev.ID] = true
	}
}

func TestTraffic_GivesUpOnRejection(t *testing.T) {
	h := &hub{t: t, statuses: []int{http.StatusBadRequest, http.StatusUnprocessableEntity}}
	tr := runTraffic(t, h, func() bool { _, n := h.counts(); return n >= 3 })
	requests, events := h.counts()
	if tr.Failed() != 2 || requests != events+2 {
		t.Errorf("failed = %d, %d requests for %d events: want 2 failures, no retries", tr.Failed(), requests, events)
	}
}
