package nats_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	cdnats "github.com/crossdock/crossdock/nats"
)

func sub(name, topic string) crossdock.Subscription {
	return crossdock.Subscription{
		Name:        name,
		Topic:       topic,
		Destination: crossdock.Destination{URL: "http://127.0.0.1:9/hook"},
	}.WithDefaults()
}

// delivery is what a handler saw of one message.
type delivery struct {
	id       string
	attempt  int
	seq      uint64
	topic    string
	at       time.Time // when the handler got it
	storedAt time.Time
}

// recorder collects deliveries; act settles each (Ack when nil).
type recorder struct {
	mu  sync.Mutex
	got []delivery
	act func(ctx context.Context, m crossdock.Message)
}

func (r *recorder) handle(ctx context.Context, m crossdock.Message) {
	r.mu.Lock()
	r.got = append(r.got, delivery{
		id: m.Event().ID, attempt: m.Attempt(), seq: m.Sequence(), topic: m.Topic(),
		at: time.Now(), storedAt: m.PublishedAt(),
	})
	r.mu.Unlock()
	if r.act != nil {
		r.act(ctx, m)
		return
	}
	if err := m.Ack(ctx); err != nil {
		panic(fmt.Sprintf("ack: %v", err))
	}
}

func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *recorder) count(id string) int {
	n := 0
	for _, d := range r.deliveries() {
		if d.id == id {
			n++
		}
	}
	return n
}

func (r *recorder) ids() map[string]int {
	m := make(map[string]int)
	for _, d := range r.deliveries() {
		m[d.id]++
	}
	return m
}

func consume(t *testing.T, b *cdnats.Broker, s crossdock.Subscription, r *recorder) crossdock.Consumer {
	t.Helper()
	c, err := b.Consume(ctxT(t), s, r.handle)
	if err != nil {
		t.Fatalf("consume %s: %v", s.Name, err)
	}
	t.Cleanup(func() { stop(t, c) })
	return c
}

func stop(t *testing.T, c crossdock.Consumer) {
	t.Helper()
	if err := c.Stop(ctxT(t)); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func stats(t *testing.T, b *cdnats.Broker, s crossdock.Subscription) crossdock.SubscriptionStats {
	t.Helper()
	st, err := b.Stats(ctxT(t), s)
	if err != nil {
		t.Fatalf("stats of %s: %v", s.Name, err)
	}
	return st
}

func testConsumeAck(t *testing.T, e *env) {
	b := e.b
	ensureTopic(t, b, "orders")
	publish(t, b, "orders", newEvent("before"))
	s := sub("fulfilment", "orders")
	r := &recorder{}
	consume(t, b, s, r)
	res := publish(t, b, "orders", newEvent("o1"), newEvent("o2"))
	res = append(res, publish(t, b, "orders", newEvent("o3"))...)
	waitFor(t, 10*time.Second, "three deliveries", func() bool { return len(r.deliveries()) == 3 })
	bySeq := map[uint64]delivery{}
	for _, d := range r.deliveries() { // handled concurrently: in any order
		bySeq[d.seq] = d
	}
	for _, want := range res {
		d := bySeq[want.Sequence]
		if d.id != want.ID || d.attempt != 1 || d.topic != "orders" ||
			d.storedAt.IsZero() || time.Since(d.storedAt) > time.Minute {
			t.Errorf("delivery at sequence %d = %+v, want %s, attempt 1", want.Sequence, d, want.ID)
		}
	}
	if r.count("before") != 0 {
		t.Errorf("a new subscription got an event published before it existed")
	}
	waitFor(t, 10*time.Second, "acks", func() bool {
		st := stats(t, b, s)
		return st.InFlight == 0 && st.Backlog == 0
	})
}

func testRetry(t *testing.T, e *env) {
	b := e.b
	ensureTopic(t, b, "retry")
	s := sub("flaky", "retry")
	const delay = 700 * time.Millisecond
	var mu sync.Mutex
	var retriedAt time.Time
	r := &recorder{}
	r.act = func(ctx context.Context, m crossdock.Message) {
		if m.Attempt() == 1 {
			mu.Lock()
			retriedAt = time.Now()
			mu.Unlock()
			if err := m.Retry(ctx, delay); err != nil {
				t.Errorf("retry: %v", err)
			}
			return
		}
		_ = m.Ack(ctx)
	}
	consume(t, b, s, r)
	publish(t, b, "retry", newEvent("r1"))
	waitFor(t, 10*time.Second, "first attempt", func() bool { return len(r.deliveries()) >= 1 })
	// A waiting retry counts as in flight, not as backlog.
	if st := stats(t, b, s); st.InFlight != 1 || st.Backlog != 0 {
		t.Errorf("stats while a retry waits = %+v", st)
	}
	waitFor(t, 10*time.Second, "second attempt", func() bool { return len(r.deliveries()) >= 2 })
	d := r.deliveries()[1]
	mu.Lock()
	waited := d.at.Sub(retriedAt)
	mu.Unlock()
	if d.attempt != 2 || d.id != "r1" {
		t.Errorf("redelivery = %+v, want r1 attempt 2", d)
	}
	if waited < delay {
		t.Errorf("redelivered after %s, before the %s delay", waited, delay)
	}
	t.Logf("redelivered after %s for a %s delay", waited, delay)
}

func testTwoSubscriptions(t *testing.T, e *env) {
	b := e.b
	ensureTopic(t, b, "fanout")
	ra, rb := &recorder{}, &recorder{}
	consume(t, b, sub("erp", "fanout"), ra)
	consume(t, b, sub("sms", "fanout"), rb)
	var events []*crossdock.Event
	for i := range 5 {
		events = append(events, newEvent(fmt.Sprintf("f%d", i)))
	}
	publish(t, b, "fanout", events...)
	for _, r := range []*recorder{ra, rb} {
		waitFor(t, 10*time.Second, "five deliveries each", func() bool { return len(r.ids()) == 5 })
		for _, ev := range events {
			if r.count(ev.ID) != 1 {
				t.Errorf("event %s delivered %d times", ev.ID, r.count(ev.ID))
			}
		}
	}
}

func testStats(t *testing.T, e *env) {
	b := e.b
	ensureTopic(t, b, "stats")
	s := sub("counted", "stats")
	_, err := b.Stats(ctxT(t), s)
	wantCode(t, err, crossdock.ENOTFOUND)
	c, err := b.Consume(ctxT(t), s, func(context.Context, crossdock.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	stop(t, c)
	for i := range 5 {
		publish(t, b, "stats", newEvent(fmt.Sprintf("s%d", i)))
	}
	// The server counts a consumer's backlog a moment after storing.
	waitFor(t, 10*time.Second, "a backlog of 5", func() bool { return stats(t, b, s).Backlog == 5 })
	if st := stats(t, b, s); st.Backlog != 5 || st.InFlight != 0 || st.DeadLetters != 0 {
		t.Fatalf("stats with a stopped consumer = %+v, want backlog 5", st)
	}
	r := &recorder{act: func(ctx context.Context, m crossdock.Message) {
		if m.Event().ID == "s0" {
			_ = m.DeadLetter(ctx, crossdock.ReasonRejected, "400")
			return
		}
		_ = m.Retry(ctx, time.Minute)
	}}
	consume(t, b, s, r)
	waitFor(t, 10*time.Second, "four waiting retries and a dead letter", func() bool {
		st := stats(t, b, s)
		return st.Backlog == 0 && st.InFlight == 4 && st.DeadLetters == 1
	})
}

func testStopReleases(t *testing.T, e *env) {
	b := e.b
	ensureTopic(t, b, "stop")
	s := sub("slow", "stop")
	s.MaxInFlight = 1
	started := make(chan string, 10)
	unblock := make(chan struct{})
	var mu sync.Mutex
	handled := map[string]int{}
	h := func(ctx context.Context, m crossdock.Message) {
		started <- m.Event().ID
		<-unblock
		mu.Lock()
		handled[m.Event().ID]++
		mu.Unlock()
		_ = m.Ack(ctx)
	}
	c, err := b.Consume(ctxT(t), s, h)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		publish(t, b, "stop", newEvent(fmt.Sprintf("p%d", i)))
	}
	<-started
	// The other five are fetched (the prefetch holds more than one) but
	// wait for the single worker.
	waitFor(t, 10*time.Second, "prefetch", func() bool { return stats(t, b, s).InFlight == 6 })
	stopped := make(chan error, 1)
	go func() { stopped <- c.Stop(ctxT(t)) }()
	close(unblock) // let the running handler finish
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	mu.Lock()
	done := len(handled)
	mu.Unlock()
	if done == 6 {
		t.Skip("every message was handled before Stop began; nothing left to release")
	}

	// The released messages go to the next consumer at once, well before
	// the 30 s ack wait would have handed them out again.
	r := &recorder{}
	consume(t, b, s, r)
	waitFor(t, 10*time.Second, "the released messages", func() bool { return len(r.ids()) == 6-done })
	mu.Lock()
	defer mu.Unlock()
	for id := range r.ids() {
		if handled[id] != 0 {
			t.Errorf("%s was handled before stop and delivered again", id)
		}
	}
}

// testStopContext stops a consumer whose handler hangs: Stop cancels the
// handler's context when its own ends, and every message, the hung one and
// the fetched ones, is released to the next consumer.
func testStopContext(t *testing.T, e *env) {
	b := e.b
	ensureTopic(t, b, "stuck")
	s := sub("stuck", "stuck")
	s.MaxInFlight = 1
	canceled := make(chan struct{})
	running := make(chan struct{}, 1)
	c, err := b.Consume(ctxT(t), s, func(ctx context.Context, m crossdock.Message) {
		running <- struct{}{}
		<-ctx.Done()
		close(canceled)
		_ = m.Release(context.Background())
	})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, "stuck", newEvent("x1"), newEvent("x2"), newEvent("x3"), newEvent("x4"))
	<-running
	waitFor(t, 10*time.Second, "prefetch", func() bool { return stats(t, b, s).InFlight == 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = c.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want the context's deadline error", err)
	}
	select {
	case <-canceled:
	default:
		t.Fatal("Stop returned before the handler saw its context canceled")
	}
	if err := c.Stop(ctxT(t)); err != nil {
		t.Errorf("second Stop = %v", err)
	}
	r := &recorder{}
	consume(t, b, s, r)
	waitFor(t, 10*time.Second, "all four released", func() bool { return len(r.ids()) == 4 })
}
