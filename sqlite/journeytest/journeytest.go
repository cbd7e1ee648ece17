// Package journeytest is the behavioural test suite that every
// crossdock.JourneyService implementation must pass.
package journeytest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
)

// Run runs the suite against s. flush must return once everything recorded
// before the call is visible to Journey and Counts. Subtests use names of
// their own, so s may hold other data and the suite may run twice on it.
func Run(t *testing.T, s crossdock.JourneyService, flush func(ctx context.Context) error) {
	x := &suite{s: s, flush: flush, run: fmt.Sprintf("%d", time.Now().UnixNano())}
	for _, tt := range []struct {
		name string
		test func(t *testing.T, x *suite)
	}{
		{"PublicationThenOutcomes", testPublicationThenOutcomes},
		{"OutcomeBeforePublication", testOutcomeBeforePublication},
		{"OutcomeAndPublicationInOneBatch", testOutcomeAndPublicationInOneBatch},
		{"DuplicatePublication", testDuplicatePublication},
		{"AttemptsInTimeOrder", testAttemptsInTimeOrder},
		{"Counts", testCounts},
		{"NotFound", testNotFound},
		{"FlushMakesRecordsVisible", testFlushMakesRecordsVisible},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, x) })
	}
}

type suite struct {
	s     crossdock.JourneyService
	flush func(ctx context.Context) error
	run   string // makes names unique per Run
}

// name returns a topic, id or subscription name unique to the test.
func (x *suite) name(t *testing.T, part string) string {
	return fmt.Sprintf("%s.%s.%s", t.Name(), x.run, part)
}

func (x *suite) mustFlush(t *testing.T) {
	t.Helper()
	if err := x.flush(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func (x *suite) mustJourney(t *testing.T, topic, id string) *crossdock.Journey {
	t.Helper()
	j, err := x.s.Journey(t.Context(), topic, id)
	if err != nil {
		t.Fatalf("Journey(%q, %q): %v", topic, id, err)
	}
	if j.Event != nil {
		t.Errorf("Journey(%q, %q).Event = %+v, want nil", topic, id, j.Event)
	}
	return j
}

// now returns the time truncated to microseconds, the precision every store
// keeps.
func now() time.Time {
	return time.Now().Truncate(time.Microsecond)
}

func testPublicationThenOutcomes(t *testing.T, x *suite) {
	topic, id := x.name(t, "topic"), x.name(t, "id")
	subA, subB, subC := x.name(t, "a"), x.name(t, "b"), x.name(t, "c")
	at := now()
	x.s.RecordPublication(crossdock.Publication{Topic: topic, ID: id, Sequence: 42, CorrelationID: "corr-1", PublishedAt: at})
	// Recorded out of subscription order: the journey sorts them.
	x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: 42, Subscription: subC, Status: crossdock.StatusDeadLettered,
		Attempt: &crossdock.Attempt{At: at.Add(3 * time.Millisecond), StatusCode: 400, Error: "rejected", DurationMS: 7}})
	x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: 42, Subscription: subA, Status: crossdock.StatusRetrying,
		Attempt: &crossdock.Attempt{At: at.Add(time.Millisecond), StatusCode: 503, Error: "unavailable", DurationMS: 12}})
	x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: 42, Subscription: subB, Status: crossdock.StatusFiltered})
	x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: 42, Subscription: subA, Status: crossdock.StatusDelivered,
		Attempt: &crossdock.Attempt{At: at.Add(2 * time.Millisecond), StatusCode: 200, DurationMS: 5}})
	x.mustFlush(t)

	j := x.mustJourney(t, topic, id)
	if j.Topic != topic || j.Sequence != 42 || !j.PublishedAt.Equal(at) {
		t.Errorf("journey = topic %q sequence %d published %v, want %q 42 %v", j.Topic, j.Sequence, j.PublishedAt, topic, at)
	}
	want := []crossdock.Delivery{
		{Subscription: subA, Status: crossdock.StatusDelivered, Attempts: []crossdock.Attempt{
			{At: at.Add(time.Millisecond), StatusCode: 503, Error: "unavailable", DurationMS: 12},
			{At: at.Add(2 * time.Millisecond), StatusCode: 200, DurationMS: 5},
		}},
		{Subscription: subB, Status: crossdock.StatusFiltered, Attempts: []crossdock.Attempt{}},
		{Subscription: subC, Status: crossdock.StatusDeadLettered, Attempts: []crossdock.Attempt{
			{At: at.Add(3 * time.Millisecond), StatusCode: 400, Error: "rejected", DurationMS: 7},
		}},
	}
	checkDeliveries(t, j.Deliveries, want)
}

func testOutcomeBeforePublication(t *testing.T, x *suite) {
	topic, id, sub := x.name(t, "topic"), x.name(t, "id"), x.name(t, "sub")
	at := now()
	x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: 7, Subscription: sub, Status: crossdock.StatusDelivered,
		Attempt: &crossdock.Attempt{At: at, StatusCode: 204, DurationMS: 1}})
	x.mustFlush(t)

	j := x.mustJourney(t, topic, id)
	if j.Topic != topic || j.Sequence != 7 || !j.PublishedAt.IsZero() {
		t.Errorf("journey before its publication = topic %q sequence %d published %v, want %q 7 zero", j.Topic, j.Sequence, j.PublishedAt, topic)
	}
	checkDeliveries(t, j.Deliveries, []crossdock.Delivery{{Subscription: sub, Status: crossdock.StatusDelivered,
		Attempts: []crossdock.Attempt{{At: at, StatusCode: 204, DurationMS: 1}}}})

	x.s.RecordPublication(crossdock.Publication{Topic: topic, ID: id, Sequence: 7, CorrelationID: id, PublishedAt: at.Add(-time.Second)})
	x.mustFlush(t)
	j = x.mustJourney(t, topic, id)
	if j.Sequence != 7 || !j.PublishedAt.Equal(at.Add(-time.Second)) {
		t.Errorf("journey after its publication = sequence %d published %v, want 7 %v", j.Sequence, j.PublishedAt, at.Add(-time.Second))
	}
	if len(j.Deliveries) != 1 || j.Deliveries[0].Status != crossdock.StatusDelivered {
		t.Errorf("deliveries after the publication = %+v, want the one delivered", j.Deliveries)
	}
}

func testOutcomeAndPublicationInOneBatch(t *testing.T, x *suite) {
	topic, id, sub := x.name(t, "topic"), x.name(t, "id"), x.name(t, "sub")
	at := now()
	x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: 3, Subscription: sub, Status: crossdock.StatusRetrying,
		Attempt: &crossdock.Attempt{At: at, Error: "connection refused", DurationMS: 2}})
	x.s.RecordPublication(crossdock.Publication{Topic: topic, ID: id, Sequence: 3, CorrelationID: id, PublishedAt: at})
	x.mustFlush(t)

	j := x.mustJourney(t, topic, id)
	if j.Sequence != 3 || !j.PublishedAt.Equal(at) {
		t.Errorf("journey = sequence %d published %v, want 3 %v", j.Sequence, j.PublishedAt, at)
	}
	checkDeliveries(t, j.Deliveries, []crossdock.Delivery{{Subscription: sub, Status: crossdock.StatusRetrying,
		Attempts: []crossdock.Attempt{{At: at, Error: "connection refused", DurationMS: 2}}}})
}

func testDuplicatePublication(t *testing.T, x *suite) {
	topic, id := x.name(t, "topic"), x.name(t, "id")
	at := now()
	p := crossdock.Publication{Topic: topic, ID: id, Sequence: 10, CorrelationID: "c", PublishedAt: at}
	x.s.RecordPublication(p)
	x.s.RecordPublication(p)
	x.mustFlush(t)
	j := x.mustJourney(t, topic, id)
	if j.Sequence != 10 || !j.PublishedAt.Equal(at) || len(j.Deliveries) != 0 {
		t.Errorf("journey after a duplicate = sequence %d published %v deliveries %+v, want 10 %v none", j.Sequence, j.PublishedAt, j.Deliveries, at)
	}
	if j.Deliveries == nil {
		t.Errorf("Deliveries = nil, want an empty slice")
	}

	// A republish after the dedup window stores the event again: the
	// journey follows the latest copy.
	later := at.Add(time.Hour)
	x.s.RecordPublication(crossdock.Publication{Topic: topic, ID: id, Sequence: 99, CorrelationID: "c", PublishedAt: later})
	x.mustFlush(t)
	j = x.mustJourney(t, topic, id)
	if j.Sequence != 99 || !j.PublishedAt.Equal(later) {
		t.Errorf("journey after a republish = sequence %d published %v, want 99 %v", j.Sequence, j.PublishedAt, later)
	}
}

func testAttemptsInTimeOrder(t *testing.T, x *suite) {
	topic, id, sub := x.name(t, "topic"), x.name(t, "id"), x.name(t, "sub")
	at := now()
	// Concurrent redeliveries may report out of order.
	for _, d := range []time.Duration{3, 1, 2} {
		x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: 1, Subscription: sub, Status: crossdock.StatusRetrying,
			Attempt: &crossdock.Attempt{At: at.Add(d * time.Second), StatusCode: 500, DurationMS: int64(d)}})
	}
	x.mustFlush(t)
	j := x.mustJourney(t, topic, id)
	checkDeliveries(t, j.Deliveries, []crossdock.Delivery{{Subscription: sub, Status: crossdock.StatusRetrying, Attempts: []crossdock.Attempt{
		{At: at.Add(1 * time.Second), StatusCode: 500, DurationMS: 1},
		{At: at.Add(2 * time.Second), StatusCode: 500, DurationMS: 2},
		{At: at.Add(3 * time.Second), StatusCode: 500, DurationMS: 3},
	}}})
}

func testCounts(t *testing.T, x *suite) {
	topic, sub, other := x.name(t, "topic"), x.name(t, "sub"), x.name(t, "other")
	at := now()
	attempt := func(code int) *crossdock.Attempt { return &crossdock.Attempt{At: at, StatusCode: code, DurationMS: 1} }
	for _, o := range []crossdock.Outcome{
		{EventID: "e1", Status: crossdock.StatusRetrying, Attempt: attempt(500)},     // failed
		{EventID: "e1", Status: crossdock.StatusRetrying, Attempt: attempt(503)},     // failed
		{EventID: "e1", Status: crossdock.StatusDelivered, Attempt: attempt(200)},    // delivered
		{EventID: "e2", Status: crossdock.StatusFiltered},                            // filtered
		{EventID: "e3", Status: crossdock.StatusDeadLettered, Attempt: attempt(400)}, // failed
		{EventID: "e4", Status: crossdock.StatusDeadLettered},                        // no attempt: not a failed attempt
		{EventID: "e5", Status: crossdock.StatusPending},                             // nothing settled
		{EventID: "e6", Status: crossdock.StatusDelivered, Attempt: attempt(201)},    // delivered
	} {
		o.Topic, o.Subscription, o.Sequence = topic, sub, 1
		x.s.RecordOutcome(o)
	}
	x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: "e1", Sequence: 1, Subscription: other, Status: crossdock.StatusFiltered})
	x.mustFlush(t)

	checkCounts(t, x.s, sub, 2, 1, 3)
	checkCounts(t, x.s, other, 0, 1, 0)
	checkCounts(t, x.s, x.name(t, "unknown"), 0, 0, 0)

	// Counts accumulate across batches.
	x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: "e7", Sequence: 2, Subscription: sub, Status: crossdock.StatusDelivered, Attempt: attempt(200)})
	x.mustFlush(t)
	checkCounts(t, x.s, sub, 3, 1, 3)
}

func testNotFound(t *testing.T, x *suite) {
	topic, id := x.name(t, "topic"), x.name(t, "id")
	_, err := x.s.Journey(t.Context(), topic, id)
	if code := crossdock.ErrorCode(err); code != crossdock.ENOTFOUND {
		t.Errorf("Journey of an unknown event: error %v (code %q), want code %q", err, code, crossdock.ENOTFOUND)
	}

	// The same id on another topic is another event.
	x.s.RecordPublication(crossdock.Publication{Topic: topic, ID: id, Sequence: 1, CorrelationID: id, PublishedAt: now()})
	x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: 1, Subscription: x.name(t, "sub"), Status: crossdock.StatusFiltered})
	x.mustFlush(t)
	_, err = x.s.Journey(t.Context(), x.name(t, "other-topic"), id)
	if code := crossdock.ErrorCode(err); code != crossdock.ENOTFOUND {
		t.Errorf("Journey on another topic: error %v (code %q), want code %q", err, code, crossdock.ENOTFOUND)
	}
}

func testFlushMakesRecordsVisible(t *testing.T, x *suite) {
	topic, sub := x.name(t, "topic"), x.name(t, "sub")
	const n = 300
	at := now()
	for i := range n {
		id := fmt.Sprintf("e%d", i)
		x.s.RecordPublication(crossdock.Publication{Topic: topic, ID: id, Sequence: uint64(i + 1), CorrelationID: id, PublishedAt: at})
		x.s.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: uint64(i + 1), Subscription: sub, Status: crossdock.StatusDelivered,
			Attempt: &crossdock.Attempt{At: at, StatusCode: 200}})
	}
	x.mustFlush(t)
	checkCounts(t, x.s, sub, n, 0, 0)
	for _, i := range []int{0, n / 2, n - 1} {
		j := x.mustJourney(t, topic, fmt.Sprintf("e%d", i))
		if j.Sequence != uint64(i+1) || len(j.Deliveries) != 1 {
			t.Errorf("journey of e%d = sequence %d deliveries %+v, want %d and one delivery", i, j.Sequence, j.Deliveries, i+1)
		}
	}
}

func checkCounts(t *testing.T, s crossdock.JourneyService, sub string, delivered, filtered, failed int64) {
	t.Helper()
	d, f, fl, err := s.Counts(t.Context(), sub)
	if err != nil {
		t.Fatalf("Counts(%q): %v", sub, err)
	}
	if d != delivered || f != filtered || fl != failed {
		t.Errorf("Counts(%q) = %d delivered, %d filtered, %d failed; want %d, %d, %d", sub, d, f, fl, delivered, filtered, failed)
	}
}

func checkDeliveries(t *testing.T, got, want []crossdock.Delivery) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("deliveries = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Subscription != w.Subscription || g.Status != w.Status {
			t.Errorf("delivery %d = %s %s, want %s %s", i, g.Subscription, g.Status, w.Subscription, w.Status)
		}
		if g.Attempts == nil {
			t.Errorf("delivery %d: Attempts = nil, want a slice", i)
		}
		if len(g.Attempts) != len(w.Attempts) {
			t.Errorf("delivery %d attempts = %+v, want %+v", i, g.Attempts, w.Attempts)
			continue
		}
		for k := range w.Attempts {
			ga, wa := g.Attempts[k], w.Attempts[k]
			if !ga.At.Equal(wa.At) || ga.StatusCode != wa.StatusCode || ga.Error != wa.Error || ga.DurationMS != wa.DurationMS {
				t.Errorf("delivery %d attempt %d = %+v, want %+v", i, k, ga, wa)
			}
		}
	}
}
