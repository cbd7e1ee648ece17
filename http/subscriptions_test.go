package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
)

func subscription(name string) crossdock.Subscription {
	return crossdock.Subscription{
		Name:        name,
		Topic:       topic,
		Destination: crossdock.Destination{URL: "https://erp.example/hooks/" + name},
		MaxInFlight: 1, // one at a time, so dead letters keep publish order
	}
}

// consume runs the subscription's consumer until the test ends.
func (h *hub) consume(sub crossdock.Subscription, handler crossdock.Handler) {
	h.t.Helper()
	c, err := h.broker.Consume(context.Background(), sub, handler)
	if err != nil {
		h.t.Fatalf("consume %s: %v", sub.Name, err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Stop(ctx) // the broker may be closed already
	})
}

type subscriptionBody struct {
	Name        string `json:"name"`
	Destination struct {
		URL       string `json:"url"`
		SecretSet bool   `json:"secret_set"`
		Timeout   string `json:"timeout"`
	} `json:"destination"`
	Retry struct {
		MaxAttempts     int    `json:"max_attempts"`
		InitialInterval string `json:"initial_interval"`
		MaxInterval     string `json:"max_interval"`
	} `json:"retry"`
	Stats *crossdock.SubscriptionStats `json:"stats"`
}

func TestSubscriptionStats(t *testing.T) {
	fulfil := subscription("fulfilment")
	fulfil.Destination.Secret = "whsec_c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw=="
	fulfil.Destination.URL = "https://api:hunter2@erp.example/orders/{{subject}}?src={{source}}"
	fulfil.Destination.Timeout = 10 * time.Second
	fulfil.Retry = crossdock.RetryPolicy{MaxAttempts: 3, InitialInterval: 1500 * time.Millisecond}
	archive := subscription("archive")
	h := MustOpen(t, fulfil, archive)

	// The handler stands in for the dispatcher: events whose id starts
	// with "bad" fail once and are dead-lettered, the others are delivered.
	h.consume(fulfil, func(ctx context.Context, m crossdock.Message) {
		ev := m.Event()
		o := crossdock.Outcome{Topic: m.Topic(), EventID: ev.ID, Sequence: m.Sequence(), Subscription: "fulfilment",
			Attempt: &crossdock.Attempt{At: time.Now(), StatusCode: 200, DurationMS: 3}}
		if strings.HasPrefix(ev.ID, "bad") {
			o.Status, o.Attempt.StatusCode, o.Attempt.Error = crossdock.StatusDeadLettered, 400, "rejected"
			h.db.RecordOutcome(o)
			_ = m.DeadLetter(ctx, crossdock.ReasonRejected, "400 Bad Request")
			return
		}
		o.Status = crossdock.StatusDelivered
		h.db.RecordOutcome(o)
		_ = m.Ack(ctx)
	})
	for _, id := range []string{"ok1", "bad1", "ok2"} {
		if r := h.publish(event(id)); r.status != 202 {
			t.Fatalf("publish %s = %d %s", id, r.status, r.body)
		}
	}

	var got subscriptionBody
	var raw string
	eventually(t, "stats to settle", func() bool {
		if err := h.db.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := h.get("/v1/subscriptions/{name}", "/v1/subscriptions/fulfilment")
		raw = string(r.body)
		got = subscriptionBody{}
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 {
			t.Fatalf("GET subscription = %d %s", r.status, r.body)
		}
		return got.Stats != nil && got.Stats.DeadLetters == 1 && got.Stats.Delivered == 2 && got.Stats.InFlight == 0
	})
	want := crossdock.SubscriptionStats{Backlog: 0, InFlight: 0, Delivered: 2, Filtered: 0, Failed: 1, DeadLetters: 1}
	if *got.Stats != want {
		t.Errorf("stats = %+v, want %+v", *got.Stats, want)
	}
	if !got.Destination.SecretSet || strings.Contains(raw, "whsec_") || strings.Contains(raw, "hunter2") || strings.Contains(raw, `"secret"`) {
		t.Errorf("secret handling: %s", raw)
	}
	if got.Destination.URL != "https://api:xxxxx@erp.example/orders/{{subject}}?src={{source}}" { // as written, password hidden
		t.Errorf("url = %q", got.Destination.URL)
	}
	if got.Destination.Timeout != "10s" || got.Retry.InitialInterval != "1.5s" || got.Retry.MaxInterval != "5m0s" || got.Retry.MaxAttempts != 3 {
		t.Errorf("durations or defaults: %s", raw)
	}

	// A subscription without a consumer yet has zero broker counts.
	r := h.get("/v1/subscriptions/{name}", "/v1/subscriptions/archive")
	if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 || got.Stats == nil || got.Destination.SecretSet {
		t.Errorf("archive = %d %s", r.status, r.body)
	}

	wantBody(t, h.get("/v1/subscriptions", "/v1/subscriptions"), 200, `{"items":[`+
		`{"name":"archive","topic":"sales.order.created","destination":{"url":"https://erp.example/hooks/archive","method":"POST","secret_set":false,"timeout":"10s"},"retry":{"max_attempts":10,"initial_interval":"1s","multiplier":2,"max_interval":"5m0s"},"max_in_flight":1},`+
		`{"name":"fulfilment","topic":"sales.order.created","destination":{"url":"https://api:xxxxx@erp.example/orders/{{subject}}?src={{source}}","method":"POST","secret_set":true,"timeout":"10s"},"retry":{"max_attempts":3,"initial_interval":"1.5s","multiplier":2,"max_interval":"5m0s"},"max_in_flight":1}]}`)
	wantProblem(t, h.get("/v1/subscriptions/{name}", "/v1/subscriptions/nope"), 404, "not_found", "/v1/subscriptions/nope", "nope")
}

type deadLetterPage struct {
	Items []struct {
		ID             string           `json:"id"`
		Event          *crossdock.Event `json:"event"`
		Reason         string           `json:"reason"`
		Description    string           `json:"description"`
		Attempts       int              `json:"attempts"`
		DeadLetteredAt time.Time        `json:"dead_lettered_at"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func (h *hub) deadLetters(query string) deadLetterPage {
	h.t.Helper()
	r := h.get("/v1/subscriptions/{name}/dead-letters", "/v1/subscriptions/fulfilment/dead-letters"+query)
	var p deadLetterPage
	if err := json.Unmarshal(r.body, &p); err != nil || r.status != 200 || p.Items == nil {
		h.t.Fatalf("dead letters%s = %d %s", query, r.status, r.body)
	}
	return p
}

func ids(p deadLetterPage) string {
	var s []string
	for _, it := range p.Items {
		s = append(s, it.ID)
	}
	return strings.Join(s, ",")
}

func TestDeadLetters(t *testing.T) {
	sub := subscription("fulfilment")
	h := MustOpen(t, sub)
	base := "/v1/subscriptions/fulfilment/dead-letters"

	// Empty before anything failed: items is a list, never null.
	wantBody(t, h.get("/v1/subscriptions/{name}/dead-letters", base), 200, `{"items":[],"next_cursor":""}`)

	var deliver atomic.Bool // false: dead-letter everything; true: ack
	delivered := make(chan string, 10)
	h.consume(sub, func(ctx context.Context, m crossdock.Message) {
		if deliver.Load() {
			_ = m.Ack(ctx)
			delivered <- m.Event().ID
			return
		}
		_ = m.DeadLetter(ctx, crossdock.ReasonMaxDeliveryCountExceeded, "503 after 10 attempts")
	})
	for _, id := range []string{"d1", "d2", "d3"} {
		if r := h.publish(event(id)); r.status != 202 {
			t.Fatalf("publish %s = %d", id, r.status)
		}
	}
	eventually(t, "three dead letters", func() bool { return len(h.deadLetters("").Items) == 3 })

	p := h.deadLetters("?limit=2")
	if ids(p) != "d1,d2" || p.NextCursor == "" {
		t.Fatalf("page 1 = %s, cursor %q", ids(p), p.NextCursor)
	}
	it := p.Items[0]
	if it.Event == nil || it.Event.ID != "d1" || it.Event.Source != "crm" || it.Reason != crossdock.ReasonMaxDeliveryCountExceeded ||
		it.Description != "503 after 10 attempts" || it.Attempts != 1 || it.DeadLetteredAt.IsZero() {
		t.Errorf("dead letter = %+v", it)
	}
	p = h.deadLetters("?limit=2&cursor=" + p.NextCursor)
	if ids(p) != "d3" || p.NextCursor != "" {
		t.Fatalf("page 2 = %s, cursor %q", ids(p), p.NextCursor)
	}
	wantProblem(t, h.get("/v1/subscriptions/{name}/dead-letters", base+"?limit=0"), 400, "invalid", base, "limit")
	wantProblem(t, h.get("/v1/subscriptions/{name}/dead-letters", base+"?cursor=zz"), 400, "invalid", base, "cursor")
	wantProblem(t, h.get("/v1/subscriptions/{name}/dead-letters", "/v1/subscriptions/nope/dead-letters"), 404, "not_found", "/v1/subscriptions/nope/dead-letters", "nope")

	// Purge d2.
	del := func(id string) response {
		return h.do("DELETE", "/v1/subscriptions/{name}/dead-letters/{id}", base+"/"+id, nil, nil)
	}
	if r := del("d2"); r.status != 204 || len(r.body) != 0 {
		t.Errorf("DELETE d2 = %d %s", r.status, r.body)
	}
	wantProblem(t, del("d2"), 404, "not_found", base+"/d2", "d2")

	// Resubmit: bad bodies first, then d1 by id, then the rest.
	resubmit := func(path string, hdr http.Header, body string) response {
		return h.do("POST", "/v1/subscriptions/{name}/dead-letters:resubmit", path, hdr, strings.NewReader(body))
	}
	jsonCT := header("Content-Type", "application/json")
	wantProblem(t, resubmit(base+":resubmit", jsonCT, `{"ids":[]}`), 400, "invalid", base+":resubmit", "ids is empty")
	wantProblem(t, resubmit(base+":resubmit", jsonCT, `{"idz":["d1"]}`), 400, "invalid", base+":resubmit", "idz")
	wantProblem(t, resubmit(base+":resubmit", jsonCT, `{"ids":["d1"]} {}`), 400, "invalid", base+":resubmit", "one JSON object")
	wantProblem(t, resubmit(base+":resubmit", header("Content-Type", "text/plain"), `d1`), 415, "unsupported_media_type", base+":resubmit", "application/json")
	wantProblem(t, resubmit("/v1/subscriptions/nope/dead-letters:resubmit", nil, ``), 404, "not_found", "/v1/subscriptions/nope/dead-letters:resubmit", "nope")

	deliver.Store(true)
	wantBody(t, resubmit(base+":resubmit", jsonCT, `{"ids":["d1","gone"]}`), 200, `{"resubmitted":1}`)
	if id := <-delivered; id != "d1" {
		t.Errorf("redelivered %s, want d1", id)
	}
	// The colon may come percent-encoded; an empty body resubmits all.
	wantBody(t, resubmit(base+"%3Aresubmit", nil, ``), 200, `{"resubmitted":1}`)
	if id := <-delivered; id != "d3" {
		t.Errorf("redelivered %s, want d3", id)
	}
	wantBody(t, resubmit(base+":resubmit", jsonCT, `{}`), 200, `{"resubmitted":0}`)
	wantBody(t, h.get("/v1/subscriptions/{name}/dead-letters", base), 200, `{"items":[],"next_cursor":""}`)
}

func TestJourney(t *testing.T) {
	h := MustOpen(t, subscription("fulfilment"), subscription("archive"), crossdock.Subscription{
		Name: "other", Topic: "crm.account.changed", Destination: crossdock.Destination{URL: "https://x.example"}})
	if r := h.publish(event("j1")); r.status != 202 {
		t.Fatalf("publish = %d", r.status)
	}
	at := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	h.db.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: "j1", Sequence: 1, Subscription: "fulfilment",
		Status: crossdock.StatusRetrying, Attempt: &crossdock.Attempt{At: at, StatusCode: 503, Error: "503 Service Unavailable", DurationMS: 12}})
	h.db.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: "j1", Sequence: 1, Subscription: "fulfilment",
		Status: crossdock.StatusDelivered, Attempt: &crossdock.Attempt{At: at.Add(time.Second), StatusCode: 200, DurationMS: 8}})
	if err := h.db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := "/v1/topics/" + topic + "/events/j1"
	r := h.get("/v1/topics/{topic}/events/{id}", path)
	var j struct {
		Event       *crossdock.Event `json:"event"`
		Topic       string           `json:"topic"`
		Sequence    uint64           `json:"sequence"`
		PublishedAt time.Time        `json:"published_at"`
		Deliveries  []struct {
			Subscription string              `json:"subscription"`
			Status       string              `json:"status"`
			Attempts     []crossdock.Attempt `json:"attempts"`
		} `json:"deliveries"`
	}
	if err := json.Unmarshal(r.body, &j); err != nil || r.status != 200 {
		t.Fatalf("journey = %d %s", r.status, r.body)
	}
	if j.Event == nil || j.Event.ID != "j1" || j.Topic != topic || j.Sequence != 1 || j.PublishedAt.IsZero() {
		t.Errorf("journey = %s", r.body)
	}
	if len(j.Deliveries) != 2 {
		t.Fatalf("deliveries = %s", r.body)
	}
	a, f := j.Deliveries[0], j.Deliveries[1]
	if a.Subscription != "archive" || a.Status != "pending" || a.Attempts == nil || len(a.Attempts) != 0 {
		t.Errorf("archive = %+v", a)
	}
	if f.Subscription != "fulfilment" || f.Status != "delivered" || len(f.Attempts) != 2 ||
		f.Attempts[0].StatusCode != 503 || f.Attempts[0].Error != "503 Service Unavailable" || !f.Attempts[0].At.Equal(at) ||
		f.Attempts[1].StatusCode != 200 || f.Attempts[1].DurationMS != 8 {
		t.Errorf("fulfilment = %+v", f)
	}
	if !strings.Contains(string(r.body), `"attempts":[]`) {
		t.Errorf("pending attempts are not an empty list: %s", r.body)
	}
	wantProblem(t, h.get("/v1/topics/{topic}/events/{id}", "/v1/topics/"+topic+"/events/nope"), 404, "not_found", "/v1/topics/"+topic+"/events/nope", "")
}
