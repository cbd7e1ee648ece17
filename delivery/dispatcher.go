// Package delivery runs subscriptions: it takes each event the broker hands a
// subscription, filters it, sends it to the destination, and settles it —
// acknowledged, retried later with back-off, or dead-lettered — recording
// every attempt in the journey store.
//
// The dispatcher holds no message in memory between attempts: a retry is a
// negative acknowledgement with a delay, so the wait happens in the broker and
// a subscription whose endpoint is down costs no goroutine per message.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/crossdock/crossdock"
)

// Dispatcher runs the consumers of a set of subscriptions.
type Dispatcher struct {
	Broker   crossdock.Broker
	Sender   crossdock.Sender
	Journeys crossdock.JourneyService

	// CompileFilter turns a subscription's filter expression into a Filter.
	// Nil means every event matches.
	CompileFilter func(expr string) (crossdock.Filter, error)

	// Rand returns a number in [0, 1) for back-off jitter.
	Rand func() float64

	Logger *slog.Logger

	mu   sync.Mutex
	subs map[string]*running
}

// running is one subscription with its compiled filter and consumer.
type running struct {
	sub      crossdock.Subscription
	filter   crossdock.Filter
	consumer crossdock.Consumer
}

var _ crossdock.SubscriptionService = (*Dispatcher)(nil)

// NewDispatcher returns a dispatcher with defaults; set Broker, Sender and
// Journeys before Start.
func NewDispatcher() *Dispatcher {
	return &Dispatcher{
		Rand:   rand.Float64,
		Logger: slog.Default(),
		subs:   make(map[string]*running),
	}
}

// Start validates the subscriptions, compiles their filters, and starts a
// consumer for each. EINVALID for a bad subscription or filter; on error the
// consumers already started are stopped.
func (d *Dispatcher) Start(ctx context.Context, subs []crossdock.Subscription) error {
	for _, sub := range subs {
		if err := d.Add(ctx, sub); err != nil {
			if cerr := d.Close(ctx); cerr != nil {
				d.Logger.Warn("stop consumers after failed start", "error", cerr)
			}
			return err
		}
	}
	return nil
}

// Add starts running one subscription. EINVALID for a bad subscription or
// filter, ECONFLICT when one of the same name runs already.
func (d *Dispatcher) Add(ctx context.Context, sub crossdock.Subscription) error {
	sub = sub.WithDefaults()
	if err := sub.Validate(); err != nil {
		return err
	}
	f := crossdock.MatchAll
	if sub.Filter != "" && d.CompileFilter != nil {
		var err error
		if f, err = d.CompileFilter(sub.Filter); err != nil {
			return err
		}
	}
	d.mu.Lock()
	_, exists := d.subs[sub.Name]
	d.mu.Unlock()
	if exists {
		return crossdock.Errorf(crossdock.ECONFLICT, "subscription %s runs already", sub.Name)
	}
	r := &running{sub: sub, filter: f}
	c, err := d.Broker.Consume(ctx, sub, func(ctx context.Context, m crossdock.Message) { d.handle(ctx, r, m) })
	if err != nil {
		return fmt.Errorf("start subscription %s: %w", sub.Name, err)
	}
	r.consumer = c
	d.mu.Lock()
	d.subs[sub.Name] = r
	d.mu.Unlock()
	return nil
}

// Close stops every consumer: no new deliveries start, and those under way
// finish until ctx is done, after which they are cancelled and their events
// released for redelivery. It returns the first error.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	subs := d.subs
	d.subs = make(map[string]*running)
	d.mu.Unlock()

	errs := make(chan error, len(subs))
	var wg sync.WaitGroup
	for _, r := range subs {
		wg.Add(1)
		go func(r *running) {
			defer wg.Done()
			if err := r.consumer.Stop(ctx); err != nil {
				errs <- fmt.Errorf("stop subscription %s: %w", r.sub.Name, err)
			}
		}(r)
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

// Subscriptions returns the running subscriptions sorted by name.
func (d *Dispatcher) Subscriptions(ctx context.Context) ([]crossdock.Subscription, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]crossdock.Subscription, 0, len(d.subs))
	for _, r := range d.subs {
		out = append(out, r.sub)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Subscription returns one running subscription; ENOTFOUND when none has
// the name.
func (d *Dispatcher) Subscription(ctx context.Context, name string) (*crossdock.Subscription, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.subs[name]
	if !ok {
		return nil, crossdock.Errorf(crossdock.ENOTFOUND, "subscription %q not found", name)
	}
	sub := r.sub
	return &sub, nil
}

// handle takes one message through filter, send and settlement.
func (d *Dispatcher) handle(ctx context.Context, r *running, m crossdock.Message) {
	ev := m.Event()
	out := crossdock.Outcome{
		Topic:        m.Topic(),
		EventID:      ev.ID,
		Sequence:     m.Sequence(),
		Subscription: r.sub.Name,
	}

	ok, err := r.filter.Match(ev)
	if err != nil {
		d.deadLetter(ctx, r, m, out, nil, crossdock.ReasonFilterError, err.Error())
		return
	}
	if !ok {
		out.Status = crossdock.StatusFiltered
		d.settle(ctx, r, m, out, m.Ack)
		return
	}

	resp, err := d.Sender.Send(ctx, r.sub.Destination, ev)
	if err != nil {
		// The request cannot even be built: no retry will change that.
		d.deadLetter(ctx, r, m, out, nil, crossdock.ReasonRejected, err.Error())
		return
	}
	if ctx.Err() != nil {
		// Shutting down: this attempt does not count against the event.
		d.release(r, m)
		return
	}
	attempt := &crossdock.Attempt{
		At:         time.Now().Add(-resp.Duration),
		StatusCode: resp.StatusCode,
		DurationMS: resp.Duration.Milliseconds(),
	}
	if resp.Err != nil {
		attempt.Error = resp.Err.Error()
	}

	switch resp.Verdict {
	case crossdock.Delivered:
		out.Status, out.Attempt = crossdock.StatusDelivered, attempt
		d.settle(ctx, r, m, out, m.Ack)
	case crossdock.Rejected:
		d.deadLetter(ctx, r, m, out, attempt, crossdock.ReasonRejected, describe(resp))
	default:
		n := m.Attempt()
		if n >= r.sub.Retry.MaxAttempts {
			d.deadLetter(ctx, r, m, out, attempt, crossdock.ReasonMaxDeliveryCountExceeded,
				fmt.Sprintf("gave up after %d attempts; last: %s", n, describe(resp)))
			return
		}
		delay := r.sub.Retry.Backoff(n, d.Rand())
		if resp.RetryAfter > delay {
			delay = resp.RetryAfter
		}
		out.Status, out.Attempt = crossdock.StatusRetrying, attempt
		d.settle(ctx, r, m, out, func(ctx context.Context) error { return m.Retry(ctx, delay) })
	}
}

// describe says in one line why an attempt failed, for a dead letter.
func describe(resp crossdock.Response) string {
	if resp.Err != nil {
		return resp.Err.Error()
	}
	return fmt.Sprintf("HTTP %d", resp.StatusCode)
}

// settle records the outcome and applies the settlement. A failed
// settlement leaves the message to the broker's redelivery: at least once.
func (d *Dispatcher) settle(ctx context.Context, r *running, m crossdock.Message, out crossdock.Outcome, apply func(context.Context) error) {
	sctx, cancel := settleContext(ctx)
	defer cancel()
	if err := apply(sctx); err != nil {
		d.Logger.Warn("settle delivery", "subscription", r.sub.Name, "event", out.EventID, "status", out.Status, "error", err)
	}
	d.Journeys.RecordOutcome(out)
}

// deadLetter moves the message to the subscription's dead-letter queue. When
// the queue cannot take it, the message is retried later instead, so it is
// never dropped.
func (d *Dispatcher) deadLetter(ctx context.Context, r *running, m crossdock.Message, out crossdock.Outcome, attempt *crossdock.Attempt, reason, description string) {
	out.Attempt = attempt
	sctx, cancel := settleContext(ctx)
	defer cancel()
	if err := m.DeadLetter(sctx, reason, description); err != nil {
		delay := r.sub.Retry.Backoff(m.Attempt(), d.Rand())
		d.Logger.Error("dead-letter delivery; retrying later", "subscription", r.sub.Name, "event", out.EventID, "reason", reason, "error", err)
		if rerr := m.Retry(sctx, delay); rerr != nil && !errors.Is(rerr, context.Canceled) {
			d.Logger.Warn("retry after failed dead-letter", "subscription", r.sub.Name, "event", out.EventID, "error", rerr)
		}
		out.Status = crossdock.StatusRetrying
		d.Journeys.RecordOutcome(out)
		return
	}
	out.Status = crossdock.StatusDeadLettered
	d.Journeys.RecordOutcome(out)
	d.Logger.Info("dead-lettered", "subscription", r.sub.Name, "event", out.EventID, "correlationid", m.Event().CorrelationID(), "reason", reason)
}

// release hands a message back when the dispatcher stops mid-attempt.
func (d *Dispatcher) release(r *running, m crossdock.Message) {
	ctx, cancel := settleContext(context.Background())
	defer cancel()
	if err := m.Release(ctx); err != nil {
		d.Logger.Warn("release delivery", "subscription", r.sub.Name, "event", m.Event().ID, "error", err)
	}
}

// settleContext gives settlement its own short deadline: the outcome of an
// attempt that completed must reach the broker even when the handler's
// context is being cancelled for shutdown.
func settleContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}
