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
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/crossdock/crossdock"
)

// Dispatcher runs the consumers of a set of subscriptions.
type Dispatcher struct {
	Broker   crossdock.Broker
	Sender   crossdock.Sender
	Fetcher  crossdock.Fetcher // for enrichments; nil refuses subscriptions that enrich
	Journeys crossdock.JourneyService

	// Compiler turns a subscription's filter, transform, templates and
	// secret references into what runs per attempt.
	Compiler Compiler

	// Rand returns a number in [0, 1) for back-off jitter.
	Rand func() float64

	// Store keeps the subscriptions created through the API; nil refuses
	// PutSubscription and DeleteSubscription.
	Store Store

	// Purger deletes a removed subscription's broker state; nil leaves it.
	Purger Purger

	Logger *slog.Logger

	manage sync.Mutex // serialises Replace, Remove and the API's changes

	mu   sync.Mutex
	subs map[string]*running
}

// running is one subscription with its compiled plan, its consumer and
// where it was defined.
type running struct {
	plan     atomic.Pointer[plan]
	consumer crossdock.Consumer
	source   string
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

// Start validates the subscriptions, compiles them, and starts a consumer
// for each. EINVALID for a bad subscription; on error the consumers already
// started are stopped.
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

// Add starts running one subscription defined in configuration (its
// source is SourceConfig). EINVALID for a bad subscription, filter,
// transform, template or secret reference; ECONFLICT when one of the same
// name runs already.
func (d *Dispatcher) Add(ctx context.Context, sub crossdock.Subscription) error {
	return d.add(ctx, sub, SourceConfig)
}

func (d *Dispatcher) add(ctx context.Context, sub crossdock.Subscription, source string) error {
	p, err := d.check(sub)
	if err != nil {
		return err
	}
	d.mu.Lock()
	_, exists := d.subs[p.sub.Name]
	d.mu.Unlock()
	if exists {
		return crossdock.Errorf(crossdock.ECONFLICT, "subscription %s runs already", p.sub.Name)
	}
	r, err := d.run(ctx, p, source)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.subs[p.sub.Name] = r
	d.mu.Unlock()
	return nil
}

// Check validates and compiles a subscription as Add would, starting
// nothing. EINVALID naming the bad field.
func (d *Dispatcher) Check(sub crossdock.Subscription) error {
	_, err := d.check(sub)
	return err
}

// check compiles a subscription with defaults applied.
func (d *Dispatcher) check(sub crossdock.Subscription) (*plan, error) {
	sub = sub.WithDefaults()
	if err := sub.Validate(); err != nil {
		return nil, err
	}
	if sub.Enrich != nil && d.Fetcher == nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "subscription %s: enrichment is not available", sub.Name)
	}
	return d.Compiler.compile(sub)
}

// run starts the consumer of a compiled subscription.
func (d *Dispatcher) run(ctx context.Context, p *plan, source string) (*running, error) {
	r := &running{source: source}
	r.plan.Store(p)
	c, err := d.Broker.Consume(ctx, p.sub, func(ctx context.Context, m crossdock.Message) { d.handle(ctx, r.plan.Load(), m) })
	if err != nil {
		return nil, fmt.Errorf("start subscription %s: %w", p.sub.Name, err)
	}
	r.consumer = c
	return r, nil
}

// Recompile compiles every running subscription again, as after a secret
// changed, and swaps the new plans in; deliveries under way finish with the
// old ones. It returns the first error and keeps the old plan of a
// subscription that failed to compile.
func (d *Dispatcher) Recompile() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var first error
	for _, r := range d.subs {
		p, err := d.Compiler.compile(r.plan.Load().sub)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		r.plan.Store(p)
	}
	return first
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
				errs <- fmt.Errorf("stop subscription %s: %w", r.plan.Load().sub.Name, err)
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
		out = append(out, r.plan.Load().sub)
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
	sub := r.plan.Load().sub
	return &sub, nil
}
