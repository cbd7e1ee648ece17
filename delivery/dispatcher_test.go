package delivery_test

import (
	"context"
	"fmt"
	"io"
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
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/crossdock/crossdock/sqlite"
	"github.com/crossdock/crossdock/webhook"
)

const topic = "sales.order.created"

// env is a real broker and journey store in a temporary directory.
type env struct {
	broker *cdnats.Broker
	store  *sqlite.DB
	dir    string
}

func mustOpenEnv(tb testing.TB) *env {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	b, err := cdnats.Open(ctx, cdnats.Config{DataDir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close(context.Background()) })
	if err := b.EnsureTopic(ctx, crossdock.Topic{Name: topic}.WithDefaults()); err != nil {
		tb.Fatal(err)
	}
	s, err := sqlite.Open(ctx, filepath.Join(dir, "journeys.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close(context.Background()) })
	return &env{broker: b, store: s, dir: dir}
}

// mustStart runs a dispatcher over the subscriptions until the test ends.
func (e *env) mustStart(tb testing.TB, subs ...crossdock.Subscription) *delivery.Dispatcher {
	tb.Helper()
	d := delivery.NewDispatcher()
	d.Broker, d.Sender, d.Journeys, d.Compiler.Filter = e.broker, webhook.NewSender(), e.store, filter.Compile
	if err := d.Start(context.Background(), subs); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	return d
}

func (e *env) publish(tb testing.TB, evs ...*crossdock.Event) {
	tb.Helper()
	for _, ev := range evs {
		if _, err := e.broker.Publish(context.Background(), topic, ev); err != nil {
			tb.Fatal(err)
		}
	}
}

// delivery is deliveryOn for the orders topic.
func (e *env) delivery(tb testing.TB, id, sub string) crossdock.Delivery {
	tb.Helper()
	return e.deliveryOn(tb, topic, id, sub)
}

func order(id string, amount int) *crossdock.Event {
	return &crossdock.Event{
		ID: id, Source: "/test", SpecVersion: "1.0", Type: topic, Subject: "SO-" + id,
		DataContentType: "application/json",
		Data:            []byte(fmt.Sprintf(`{"amount":%d}`, amount)),
	}
}

func sub(name, url string) crossdock.Subscription {
	return crossdock.Subscription{
		Name: name, Topic: topic,
		Destination: crossdock.Destination{URL: url, Timeout: 2 * time.Second},
		Retry:       crossdock.RetryPolicy{MaxAttempts: 5, InitialInterval: 10 * time.Millisecond, Multiplier: 1.5, MaxInterval: 50 * time.Millisecond},
		MaxInFlight: 4,
	}
}

// sink is a real HTTP endpoint whose answers a test scripts.
type sink struct {
	*httptest.Server
	mu       sync.Mutex
	calls    map[string][]time.Time // by ce-id
	bodies   map[string]string
	respond  func(id string, n int) (status int, header http.Header)
	released chan struct{}
}

func newSink(tb testing.TB, respond func(id string, n int) (int, http.Header)) *sink {
	tb.Helper()
	s := &sink{calls: map[string][]time.Time{}, bodies: map[string]string{}, respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("ce-id")
		s.mu.Lock()
		s.calls[id] = append(s.calls[id], time.Now())
		s.bodies[id] = string(body)
		n := len(s.calls[id])
		s.mu.Unlock()
		status, h := s.respond(id, n)
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *sink) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls[id])
}

func (s *sink) times(id string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.calls[id]...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ok(string, int) (int, http.Header) { return http.StatusNoContent, nil }

func TestDeliversAndRecordsJourney(t *testing.T) {
	e := mustOpenEnv(t)
	s := newSink(t, ok)
	e.mustStart(t, sub("fulfilment", s.URL))
	e.publish(t, order("o-1", 1500))

	waitFor(t, "delivery recorded", func() bool { return e.delivery(t, "o-1", "fulfilment").Status == crossdock.StatusDelivered })
	if got := s.count("o-1"); got != 1 {
		t.Fatalf("sink got %d calls, want 1", got)
	}
	if got := s.bodies["o-1"]; got != `{"amount":1500}` {
		t.Fatalf("body = %q", got)
	}
	d := e.delivery(t, "o-1", "fulfilment")
	if len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusNoContent {
		t.Fatalf("attempts = %+v", d.Attempts)
	}
}

func TestRetriesUntilDelivered(t *testing.T) {
	e := mustOpenEnv(t)
	s := newSink(t, func(id string, n int) (int, http.Header) {
		if n < 3 {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	e.mustStart(t, sub("fulfilment", s.URL))
	e.publish(t, order("o-2", 10))

	waitFor(t, "delivered on the third attempt", func() bool { return e.delivery(t, "o-2", "fulfilment").Status == crossdock.StatusDelivered })
	d := e.delivery(t, "o-2", "fulfilment")
	if len(d.Attempts) != 3 || d.Attempts[0].StatusCode != 503 || d.Attempts[2].StatusCode != 200 {
		t.Fatalf("attempts = %+v", d.Attempts)
	}
}

func TestRejectionDeadLettersAtOnce(t *testing.T) {
	e := mustOpenEnv(t)
	s := newSink(t, func(string, int) (int, http.Header) { return http.StatusBadRequest, nil })
	sb := sub("fulfilment", s.URL)
	e.mustStart(t, sb)
	e.publish(t, order("o-3", -1))

	var dls []crossdock.DeadLetter
	waitFor(t, "a dead letter", func() bool {
		dls, _, _ = e.broker.DeadLetters(context.Background(), sb.WithDefaults(), "", 10)
		return len(dls) == 1
	})
	dl := dls[0]
	if dl.ID != "o-3" || dl.Reason != crossdock.ReasonRejected || !strings.Contains(dl.Description, "400") || dl.Attempts != 1 {
		t.Fatalf("dead letter = %+v", dl)
	}
	if s.count("o-3") != 1 {
		t.Fatalf("a rejected event was retried: %d calls", s.count("o-3"))
	}
	waitFor(t, "journey says dead_lettered", func() bool { return e.delivery(t, "o-3", "fulfilment").Status == crossdock.StatusDeadLettered })
}

func TestMaxAttemptsDeadLetters(t *testing.T) {
	e := mustOpenEnv(t)
	s := newSink(t, func(string, int) (int, http.Header) { return http.StatusBadGateway, nil })
	sb := sub("fulfilment", s.URL)
	sb.Retry.MaxAttempts = 3
	e.mustStart(t, sb)
	e.publish(t, order("o-4", 1))

	var dls []crossdock.DeadLetter
	waitFor(t, "a dead letter", func() bool {
		dls, _, _ = e.broker.DeadLetters(context.Background(), sb.WithDefaults(), "", 10)
		return len(dls) == 1
	})
	if dls[0].Reason != crossdock.ReasonMaxDeliveryCountExceeded || dls[0].Attempts != 3 || !strings.Contains(dls[0].Description, "502") {
		t.Fatalf("dead letter = %+v", dls[0])
	}
	if got := s.count("o-4"); got != 3 {
		t.Fatalf("sink got %d attempts, want 3", got)
	}
}

func TestFilter(t *testing.T) {
	e := mustOpenEnv(t)
	s := newSink(t, ok)
	big := sub("big-orders", s.URL)
	big.Filter = "data.amount > 1000"
	broken := sub("broken", s.URL)
	broken.Filter = "data.missing > 1"
	e.mustStart(t, big, broken)
	e.publish(t, order("small", 5), order("large", 5000))

	waitFor(t, "large delivered", func() bool { return e.delivery(t, "large", "big-orders").Status == crossdock.StatusDelivered })
	waitFor(t, "small filtered", func() bool { return e.delivery(t, "small", "big-orders").Status == crossdock.StatusFiltered })
	if s.count("small") != 0 {
		t.Fatal("a filtered event was delivered")
	}
	var dls []crossdock.DeadLetter
	waitFor(t, "filter errors dead-lettered", func() bool {
		dls, _, _ = e.broker.DeadLetters(context.Background(), broken.WithDefaults(), "", 10)
		return len(dls) == 2
	})
	if dls[0].Reason != crossdock.ReasonFilterError {
		t.Fatalf("reason = %s", dls[0].Reason)
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	e := mustOpenEnv(t)
	s := newSink(t, func(id string, n int) (int, http.Header) {
		if n == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	})
	e.mustStart(t, sub("sms", s.URL)) // back-off alone would retry after ~10ms
	e.publish(t, order("o-5", 1))

	waitFor(t, "second attempt", func() bool { return s.count("o-5") == 2 })
	ts := s.times("o-5")
	if gap := ts[1].Sub(ts[0]); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, before Retry-After's 1s", gap)
	}
}

func TestSlowSubscriptionDoesNotSlowOthers(t *testing.T) {
	e := mustOpenEnv(t)
	stuck := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(stuck) // before slow.Close, which waits for its handlers
	fast := newSink(t, ok)
	slowSub := sub("slow", slow.URL)
	slowSub.MaxInFlight = 1
	slowSub.Destination.Timeout = time.Minute
	e.mustStart(t, slowSub, sub("fast", fast.URL))

	const n = 50
	for i := range n {
		e.publish(t, order(fmt.Sprintf("e-%d", i), i))
	}
	waitFor(t, "all delivered to the fast subscription", func() bool {
		for i := range n {
			if fast.count(fmt.Sprintf("e-%d", i)) == 0 {
				return false
			}
		}
		return true
	})
}

func TestCloseReleasesDeliveriesUnderWay(t *testing.T) {
	e := mustOpenEnv(t)
	var mu sync.Mutex
	hang := true
	s := newSink(t, func(string, int) (int, http.Header) { return http.StatusOK, nil })
	blocking := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := hang
		mu.Unlock()
		if h {
			io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
			<-r.Context().Done()
			return
		}
		s.Config.Handler.ServeHTTP(w, r)
	}))
	defer blocking.Close()
	sb := sub("erp", blocking.URL)
	sb.Destination.Timeout = time.Minute

	d := delivery.NewDispatcher()
	d.Broker, d.Sender, d.Journeys = e.broker, webhook.NewSender(), e.store
	if err := d.Start(context.Background(), []crossdock.Subscription{sb}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, order("o-6", 1))
	waitFor(t, "the delivery to be under way", func() bool {
		st, _ := e.broker.Stats(context.Background(), sb.WithDefaults())
		return st.InFlight == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	d.Close(ctx)
	cancel()

	mu.Lock()
	hang = false
	mu.Unlock()
	e.mustStart(t, sb)
	waitFor(t, "the released event delivered by the next dispatcher", func() bool { return s.count("o-6") == 1 })
	if got := e.delivery(t, "o-6", "erp"); len(got.Attempts) != 1 {
		t.Fatalf("the interrupted attempt was counted: %+v", got.Attempts)
	}
}
