package delivery

import (
	"context"
	"fmt"

	"github.com/crossdock/crossdock"
)

// Where a running subscription was defined. A configuration file owns its
// subscriptions: the API may read them but not change them.
const (
	SourceConfig = "config"
	SourceAPI    = "api"
)

// Store keeps the subscriptions created through the API across restarts.
// nats.SubscriptionStore implements it.
type Store interface {
	// Put stores the subscription as written, secret included, replacing
	// any of the same name.
	Put(ctx context.Context, sub crossdock.Subscription) error

	// Delete removes it; removing one not stored is not an error.
	Delete(ctx context.Context, name string) error

	// List returns every stored subscription.
	List(ctx context.Context) ([]crossdock.Subscription, error)
}

// Purger deletes the broker state of a removed subscription: its durable
// consumer (position and pending deliveries) and its dead-letter queue.
// nats.Broker implements it.
type Purger interface {
	DeleteSubscription(ctx context.Context, sub crossdock.Subscription) error
}

// Source returns where the running subscription was defined (SourceConfig
// or SourceAPI), or "" when none has the name.
func (d *Dispatcher) Source(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.subs[name]; ok {
		return r.source
	}
	return ""
}

// Replace runs sub in place of the running subscription of the same name,
// or starts it (source SourceAPI) when none runs, and reports whether it
// was created. It compiles sub first and changes nothing when that fails
// (EINVALID naming the field). The new consumer takes over the same
// durable consumer, so the subscription keeps its position; deliveries
// under way with the old settings finish until ctx is done. ECONFLICT when
// the topic would change: delete the subscription and create it again.
func (d *Dispatcher) Replace(ctx context.Context, sub crossdock.Subscription) (created bool, err error) {
	d.manage.Lock()
	defer d.manage.Unlock()
	return d.replace(ctx, sub)
}

func (d *Dispatcher) replace(ctx context.Context, sub crossdock.Subscription) (bool, error) {
	p, err := d.check(sub)
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	old := d.subs[p.sub.Name]
	d.mu.Unlock()
	if old == nil {
		return true, d.add(ctx, sub, SourceAPI)
	}
	prev := old.plan.Load()
	if prev.sub.Topic != p.sub.Topic {
		return false, crossdock.Errorf(crossdock.ECONFLICT, "subscription %s consumes topic %s; its topic cannot change: delete it and create it again", p.sub.Name, prev.sub.Topic)
	}
	if err := old.consumer.Stop(ctx); err != nil {
		return false, fmt.Errorf("stop subscription %s: %w", p.sub.Name, err)
	}
	r, err := d.run(ctx, p, old.source)
	if err != nil {
		// Keep the subscription running with what it had.
		back, berr := d.run(context.WithoutCancel(ctx), prev, old.source)
		if berr != nil {
			d.mu.Lock()
			delete(d.subs, p.sub.Name)
			d.mu.Unlock()
			return false, fmt.Errorf("%w (and restarting the old settings failed: %v)", err, berr)
		}
		r = back
		d.mu.Lock()
		d.subs[p.sub.Name] = r
		d.mu.Unlock()
		return false, err
	}
	d.mu.Lock()
	d.subs[p.sub.Name] = r
	d.mu.Unlock()
	return false, nil
}

// Remove stops the subscription's consumer (deliveries under way finish
// until ctx is done) and, with a Purger, deletes its durable consumer and
// dead-letter queue. It returns the subscription removed; ENOTFOUND when
// none runs with the name.
func (d *Dispatcher) Remove(ctx context.Context, name string) (crossdock.Subscription, error) {
	d.manage.Lock()
	defer d.manage.Unlock()
	return d.remove(ctx, name)
}

func (d *Dispatcher) remove(ctx context.Context, name string) (crossdock.Subscription, error) {
	d.mu.Lock()
	r, ok := d.subs[name]
	delete(d.subs, name)
	d.mu.Unlock()
	if !ok {
		return crossdock.Subscription{}, crossdock.Errorf(crossdock.ENOTFOUND, "subscription %q not found", name)
	}
	sub := r.plan.Load().sub
	if err := r.consumer.Stop(ctx); err != nil {
		return sub, fmt.Errorf("stop subscription %s: %w", name, err)
	}
	if d.Purger != nil {
		if err := d.Purger.DeleteSubscription(context.WithoutCancel(ctx), sub); err != nil {
			return sub, fmt.Errorf("delete subscription %s from the broker: %w", name, err)
		}
	}
	return sub, nil
}

// PutSubscription creates or replaces a subscription owned by the API and
// reports whether it was created: it compiles it, checks its topic exists,
// stores it, then runs it (see Replace). A secret left empty while
// keepSecret is set keeps the current one. ECONFLICT for a subscription
// defined in configuration, EINVALID naming a bad field, ENOTFOUND for an
// unknown topic, ENOTIMPLEMENTED without a Store.
func (d *Dispatcher) PutSubscription(ctx context.Context, sub crossdock.Subscription, keepSecret bool) (created bool, err error) {
	if d.Store == nil {
		return false, crossdock.Errorf(crossdock.ENOTIMPLEMENTED, "this hub does not store subscriptions created through the API")
	}
	d.manage.Lock()
	defer d.manage.Unlock()
	d.mu.Lock()
	old := d.subs[sub.Name]
	d.mu.Unlock()
	var prev *crossdock.Subscription
	if old != nil {
		if old.source == SourceConfig {
			return false, crossdock.Errorf(crossdock.ECONFLICT, "subscription %s is defined in the configuration file; change it there", sub.Name)
		}
		s := old.plan.Load().sub
		prev = &s
	}
	if keepSecret && sub.Destination.Secret == "" {
		if prev == nil || prev.Destination.Secret == "" {
			return false, crossdock.Errorf(crossdock.EINVALID, "subscription %s: destination.secret_set is true but no secret is set: give destination.secret", sub.Name)
		}
		sub.Destination.Secret = prev.Destination.Secret
	}
	if _, err := d.check(sub); err != nil {
		return false, err
	}
	if _, err := d.Broker.Topic(ctx, sub.Topic); err != nil {
		if crossdock.ErrorCode(err) == crossdock.ENOTFOUND {
			return false, crossdock.Errorf(crossdock.ENOTFOUND, "subscription %s: topic %s does not exist: create it first", sub.Name, sub.Topic)
		}
		return false, err
	}
	if prev != nil && prev.Topic != sub.WithDefaults().Topic {
		return false, crossdock.Errorf(crossdock.ECONFLICT, "subscription %s consumes topic %s; its topic cannot change: delete it and create it again", sub.Name, prev.Topic)
	}
	if err := d.Store.Put(ctx, sub); err != nil {
		return false, err
	}
	created, err = d.replace(ctx, sub)
	if err != nil {
		// Put back what was stored, so a restart runs what runs now.
		bctx := context.WithoutCancel(ctx)
		var berr error
		if prev != nil {
			berr = d.Store.Put(bctx, *prev)
		} else {
			berr = d.Store.Delete(bctx, sub.Name)
		}
		if berr != nil {
			d.Logger.Error("restore stored subscription after a failed change", "subscription", sub.Name, "error", berr)
		}
		return false, err
	}
	return created, nil
}

// DeleteSubscription removes a subscription owned by the API: stops it,
// deletes its broker state (see Remove) and its stored record. ENOTFOUND
// when none runs with the name (a stored record of that name that failed to
// start is dropped), ECONFLICT for one defined in
// configuration, ENOTIMPLEMENTED without a Store.
func (d *Dispatcher) DeleteSubscription(ctx context.Context, name string) error {
	if d.Store == nil {
		return crossdock.Errorf(crossdock.ENOTIMPLEMENTED, "this hub does not store subscriptions created through the API")
	}
	d.manage.Lock()
	defer d.manage.Unlock()
	switch d.Source(name) {
	case "":
		// A stored one that failed to start does not run: drop its record.
		if err := d.Store.Delete(ctx, name); err != nil {
			return err
		}
		return crossdock.Errorf(crossdock.ENOTFOUND, "subscription %q not found", name)
	case SourceConfig:
		return crossdock.Errorf(crossdock.ECONFLICT, "subscription %s is defined in the configuration file; remove it there", name)
	}
	// The record goes first: a failure after it leaves nothing that a
	// restart would bring back.
	if err := d.Store.Delete(ctx, name); err != nil {
		return err
	}
	_, err := d.remove(ctx, name)
	return err
}

// LoadStored starts the subscriptions kept in the Store, after those from
// configuration: a name defined in both runs the configuration's and is
// logged, and a stored subscription that no longer compiles or whose topic
// is gone is logged and skipped (it stays stored). It returns how many
// started, and an error only when the Store cannot be read.
func (d *Dispatcher) LoadStored(ctx context.Context) (int, error) {
	if d.Store == nil {
		return 0, nil
	}
	subs, err := d.Store.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("load stored subscriptions: %w", err)
	}
	d.manage.Lock()
	defer d.manage.Unlock()
	n := 0
	for _, sub := range subs {
		if d.Source(sub.Name) == SourceConfig {
			d.Logger.Warn("a subscription created through the API has the name of one in the configuration file; the file's runs", "subscription", sub.Name)
			continue
		}
		if err := d.add(ctx, sub, SourceAPI); err != nil {
			d.Logger.Error("stored subscription does not start; fix it with PUT /v1/subscriptions/{name} or drop it with DELETE", "subscription", sub.Name, "error", err)
			continue
		}
		n++
	}
	return n, nil
}
