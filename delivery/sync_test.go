package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/delivery"
	"github.com/crossdock/crossdock/filter"
	"github.com/crossdock/crossdock/template"
	"github.com/crossdock/crossdock/transform"
	"github.com/crossdock/crossdock/webhook"
)

// Topics of the snapshot-sync scenario.
const (
	changed = "crm.account.changed"
	acks    = "crm.account.acks"
)

// compiler wires the real transform and template packages, as
// cmd/crossdock does (without secrets).
func compiler() delivery.Compiler {
	return delivery.Compiler{
		Filter:    filter.Compile,
		Transform: func(p string) (delivery.Transformer, error) { return transform.Compile(p) },
		Template: func(text string, isURL bool) (delivery.Template, error) {
			return template.Compile(text, isURL, nil)
		},
	}
}

func (e *env) startSync(tb testing.TB, subs ...crossdock.Subscription) {
	tb.Helper()
	ctx := context.Background()
	for _, name := range []string{changed, acks} {
		if err := e.broker.EnsureTopic(ctx, crossdock.Topic{Name: name}.WithDefaults()); err != nil {
			tb.Fatal(err)
		}
	}
	d := delivery.NewDispatcher()
	sender := webhook.NewSender()
	d.Broker, d.Sender, d.Fetcher, d.Journeys, d.Compiler = e.broker, sender, sender, e.store, compiler()
	if err := d.Start(ctx, subs); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Close(ctx)
	})
}

// crm is a source system whose account rows change; its GET answers are
// scripted per call.
type crm struct {
	*httptest.Server
	mu       sync.Mutex
	rows     map[string]map[string]any
	gets     int
	patches  map[string]map[string]any
	failGets int // answer 503 to this many GETs first
}

func newCRM(tb testing.TB) *crm {
	c := &crm{rows: map[string]map[string]any{}, patches: map[string]map[string]any{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/api/accounts/")
		c.mu.Lock()
		defer c.mu.Unlock()
		switch r.Method {
		case http.MethodGet:
			c.gets++
			if c.gets <= c.failGets {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			row, ok := c.rows[id]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(row)
		case http.MethodPatch:
			var patch map[string]any
			json.NewDecoder(r.Body).Decode(&patch)
			c.patches[id] = patch
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	tb.Cleanup(c.Close)
	return c
}

func (c *crm) set(id string, row map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows[id] = row
}

func accountChanged(id string) *crossdock.Event {
	return &crossdock.Event{ID: "chg-" + id + "-" + fmt.Sprint(time.Now().UnixNano()), Source: "/crm", SpecVersion: "1.0",
		Type: changed, Subject: id, DataContentType: "application/json", Data: []byte(`{"id":"` + id + `"}`)}
}

func (e *env) publishTo(tb testing.TB, topic string, ev *crossdock.Event) {
	tb.Helper()
	if _, err := e.broker.Publish(context.Background(), topic, ev); err != nil {
		tb.Fatal(err)
	}
}

func TestRetryDeliversTheNewestState(t *testing.T) {
	e := mustOpenEnv(t)
	c := newCRM(t)
	c.set("A1", map[string]any{"accountnumber": "1001", "name": "Contoso", "version": 1})

	var mu sync.Mutex
	var bodies []string
	erp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		n := len(bodies)
		mu.Unlock()
		if n == 1 {
			// The row changes while this delivery waits for its retry.
			c.set("A1", map[string]any{"accountnumber": "1001", "name": "Contoso Ltd", "version": 2})
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer erp.Close()

	s := sub("erp-accounts", erp.URL+"/customers")
	s.Topic = changed
	s.Enrich = &crossdock.Enrichment{URL: c.URL + "/api/accounts/{{subject}}"}
	s.Transform = `{number: .data.accountnumber, name: .data.name, version: .data.version}`
	e.startSync(t, s)
	e.publishTo(t, changed, accountChanged("A1"))

	waitFor(t, "the retried delivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 2 })
	if want := `{"name":"Contoso","number":"1001","version":1}`; bodies[0] != want {
		t.Fatalf("first attempt sent %s, want %s", bodies[0], want)
	}
	if want := `{"name":"Contoso Ltd","number":"1001","version":2}`; bodies[1] != want {
		t.Fatalf("the retry sent %s, want the newest state %s", bodies[1], want)
	}
}

func TestEnrichmentNotFound(t *testing.T) {
	e := mustOpenEnv(t)
	c := newCRM(t)
	target := newSink(t, ok)
	skip := sub("skip-deleted", target.URL)
	skip.Topic = changed
	skip.Enrich = &crossdock.Enrichment{URL: c.URL + "/api/accounts/{{subject}}", OnNotFound: crossdock.OnNotFoundSkip}
	dl := skip
	dl.Name = "dl-deleted"
	dl.Enrich = &crossdock.Enrichment{URL: c.URL + "/api/accounts/{{subject}}"}
	e.startSync(t, skip, dl)
	ev := accountChanged("GONE")
	e.publishTo(t, changed, ev)

	waitFor(t, "skipped", func() bool { return e.deliveryOn(t, changed, ev.ID, "skip-deleted").Status == crossdock.StatusSkipped })
	var dls []crossdock.DeadLetter
	waitFor(t, "dead-lettered", func() bool {
		dls, _, _ = e.broker.DeadLetters(context.Background(), dl.WithDefaults(), "", 10)
		return len(dls) == 1
	})
	if dls[0].Reason != crossdock.ReasonSourceNotFound {
		t.Fatalf("reason %s", dls[0].Reason)
	}
	if target.count(ev.ID) != 0 {
		t.Fatal("the target was called for a deleted record")
	}
}

func TestEnrichmentFailsAfterAttempts(t *testing.T) {
	e := mustOpenEnv(t)
	c := newCRM(t)
	c.failGets = 1000
	c.set("A2", map[string]any{"name": "x"})
	target := newSink(t, ok)
	s := sub("erp", target.URL)
	s.Topic = changed
	s.Retry.MaxAttempts = 3
	s.Enrich = &crossdock.Enrichment{URL: c.URL + "/api/accounts/{{subject}}"}
	e.startSync(t, s)
	e.publishTo(t, changed, accountChanged("A2"))

	var dls []crossdock.DeadLetter
	waitFor(t, "dead-lettered", func() bool {
		dls, _, _ = e.broker.DeadLetters(context.Background(), s.WithDefaults(), "", 10)
		return len(dls) == 1
	})
	if dls[0].Reason != crossdock.ReasonEnrichmentFailed || !strings.Contains(dls[0].Description, "503") || dls[0].Attempts != 3 {
		t.Fatalf("dead letter %+v", dls[0])
	}
}

func TestTransformErrorDeadLetters(t *testing.T) {
	e := mustOpenEnv(t)
	target := newSink(t, ok)
	s := sub("erp", target.URL)
	s.Transform = `if .data.amount < 0 then error("negative amount") else .data end`
	e.startSync(t, s)
	e.publish(t, order("neg", -5))

	var dls []crossdock.DeadLetter
	waitFor(t, "dead-lettered", func() bool {
		dls, _, _ = e.broker.DeadLetters(context.Background(), s.WithDefaults(), "", 10)
		return len(dls) == 1
	})
	if dls[0].Reason != crossdock.ReasonTransformError || !strings.Contains(dls[0].Description, "negative amount") {
		t.Fatalf("dead letter %+v", dls[0])
	}
}

func TestReplyAndWriteBack(t *testing.T) {
	e := mustOpenEnv(t)
	c := newCRM(t)
	c.set("A3", map[string]any{"accountnumber": "3003", "name": "Fabrikam"})
	var mu sync.Mutex
	erpCalls := 0
	erp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		erpCalls++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"customerId":"C-3003"}`)
	}))
	defer erp.Close()
	// The CRM's write-back endpoint fails three times before it works.
	var wbMu sync.Mutex
	wbCalls := 0
	var patched map[string]any
	var patchedPath, method string
	crmWrite := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wbMu.Lock()
		defer wbMu.Unlock()
		wbCalls++
		if wbCalls <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		json.NewDecoder(r.Body).Decode(&patched)
		patchedPath, method = r.URL.Path, r.Method
		w.WriteHeader(http.StatusNoContent)
	}))
	defer crmWrite.Close()

	sync1 := sub("erp-accounts", erp.URL+"/customers")
	sync1.Topic = changed
	sync1.Enrich = &crossdock.Enrichment{URL: c.URL + "/api/accounts/{{subject}}"}
	sync1.Transform = `{number: .data.accountnumber, name: .data.name}`
	sync1.Reply = &crossdock.Reply{Topic: acks}
	wb := sub("crm-writeback", crmWrite.URL+"/api/accounts/{{subject}}")
	wb.Topic = acks
	wb.Transform = `{erp_customer_id: .data.response.customerId}`
	wb.Destination.Method = "PATCH"
	e.startSync(t, sync1, wb)
	ev := accountChanged("A3")
	ev.SetExtension(crossdock.ExtCorrelationID, "corr-A3")
	e.publishTo(t, changed, ev)

	waitFor(t, "the write-back", func() bool { wbMu.Lock(); defer wbMu.Unlock(); return patched != nil })
	if patched["erp_customer_id"] != "C-3003" || patchedPath != "/api/accounts/A3" || method != http.MethodPatch {
		t.Fatalf("write-back %s %s %v", method, patchedPath, patched)
	}
	mu.Lock()
	calls := erpCalls
	mu.Unlock()
	if calls != 1 {
		t.Fatalf("the ERP was called %d times; a failing write-back must not call it again", calls)
	}

	// The reply is an event of its own, tied to the request.
	replyID := delivery.ReplyID("erp-accounts", ev.ID)
	var j *crossdock.Journey
	waitFor(t, "the reply's journey", func() bool {
		e.store.Flush(context.Background())
		var err error
		j, err = e.store.Journey(context.Background(), acks, replyID)
		return err == nil && j.Sequence > 0
	})
	got, _, err := e.broker.Event(context.Background(), acks, j.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != changed+".reply" || got.Subject != "A3" || got.CorrelationID() != "corr-A3" || got.Source != "crossdock/subscriptions/erp-accounts" {
		t.Fatalf("reply %+v", got)
	}
	var data struct {
		Status    int
		Response  map[string]string
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(got.Data, &data); err != nil || data.Status != 201 || data.Response["customerId"] != "C-3003" || data.RequestID != ev.ID {
		t.Fatalf("reply data %s (%v)", got.Data, err)
	}
	d := e.deliveryOn(t, acks, replyID, "crm-writeback")
	if d.Status != crossdock.StatusDelivered || len(d.Attempts) != 4 {
		t.Fatalf("write-back delivery %+v", d)
	}
}

// deliveryOn flushes the store and returns the event's delivery in sub.
func (e *env) deliveryOn(tb testing.TB, topic, id, sub string) crossdock.Delivery {
	tb.Helper()
	if err := e.store.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
	j, err := e.store.Journey(context.Background(), topic, id)
	if err != nil {
		return crossdock.Delivery{}
	}
	for _, d := range j.Deliveries {
		if d.Subscription == sub {
			return d
		}
	}
	return crossdock.Delivery{}
}
