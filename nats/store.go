package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/crossdock/crossdock"
	"github.com/nats-io/nats.go/jetstream"
)

// SubscriptionBucket is the JetStream key-value bucket that keeps the
// subscriptions created through the API, one key per subscription name.
const SubscriptionBucket = "crossdock_subscriptions"

// SubscriptionStore keeps the subscriptions created through the API on the
// broker, so that they survive a restart and every process sharing the
// broker sees them.
//
// A record holds the subscription exactly as written, its signing secret
// included: usually a ${secret:NAME} reference, but a literal secret given
// to the API is stored as it is, readable by whoever can read the bucket.
type SubscriptionStore struct {
	kv jetstream.KeyValue
}

// subscriptionRecord is a stored subscription. The root type never encodes
// the secret, so it travels beside it.
type subscriptionRecord struct {
	Subscription crossdock.Subscription `json:"subscription"`
	Secret       string                 `json:"secret,omitempty"`
}

// SubscriptionStore creates the bucket if it does not exist (file storage,
// the broker's replica count) and returns the store over it. EUNAVAILABLE
// when the broker cannot be reached.
func (b *Broker) SubscriptionStore(ctx context.Context) (*SubscriptionStore, error) {
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      SubscriptionBucket,
		Description: "crossdock subscriptions created through the API",
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		History:     1,
	})
	if err != nil {
		return nil, brokerError("open subscription bucket", err)
	}
	return &SubscriptionStore{kv: kv}, nil
}

// Put stores the subscription, replacing any of the same name. EINVALID for
// a bad name, EUNAVAILABLE when the broker cannot store it.
func (s *SubscriptionStore) Put(ctx context.Context, sub crossdock.Subscription) error {
	if !crossdock.ValidName(sub.Name) {
		return crossdock.Errorf(crossdock.EINVALID, "subscription name %q is invalid", sub.Name)
	}
	b, err := json.Marshal(subscriptionRecord{Subscription: sub, Secret: sub.Destination.Secret})
	if err != nil {
		return fmt.Errorf("encode subscription %s: %w", sub.Name, err)
	}
	if _, err := s.kv.Put(ctx, sub.Name, b); err != nil {
		return brokerError("store subscription "+sub.Name, err)
	}
	return nil
}

// Delete removes the subscription and its earlier revisions; deleting one
// that is not stored is not an error. EUNAVAILABLE when the broker cannot
// be reached.
func (s *SubscriptionStore) Delete(ctx context.Context, name string) error {
	if !crossdock.ValidName(name) {
		return nil
	}
	if err := s.kv.Purge(ctx, name); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return brokerError("delete stored subscription "+name, err)
	}
	return nil
}

// List returns every stored subscription sorted by name. EUNAVAILABLE when
// the broker cannot be reached; a record that cannot be decoded is an
// error naming its key.
func (s *SubscriptionStore) List(ctx context.Context) ([]crossdock.Subscription, error) {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, brokerError("list stored subscriptions", err)
	}
	defer w.Stop() //nolint:errcheck // only stops the watcher's subscription
	var out []crossdock.Subscription
	for {
		select {
		case <-ctx.Done():
			return nil, brokerError("list stored subscriptions", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, crossdock.Errorf(crossdock.EUNAVAILABLE, "nats: the subscription bucket's watcher stopped")
			}
			if e == nil { // every current value has been seen
				sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
				return out, nil
			}
			var rec subscriptionRecord
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return nil, fmt.Errorf("decode stored subscription %s: %w", e.Key(), err)
			}
			rec.Subscription.Destination.Secret = rec.Secret
			out = append(out, rec.Subscription)
		}
	}
}

// DeleteSubscription deletes the subscription's durable consumer on its
// topic's stream, with its position and pending deliveries, and its
// dead-letter stream. What does not exist is skipped. Stop the
// subscription's consumer first. EUNAVAILABLE when the broker cannot be
// reached.
func (b *Broker) DeleteSubscription(ctx context.Context, sub crossdock.Subscription) error {
	if !crossdock.ValidName(sub.Name) {
		return crossdock.Errorf(crossdock.EINVALID, "subscription name %q is invalid", sub.Name)
	}
	if crossdock.ValidTopicName(sub.Topic) {
		err := b.js.DeleteConsumer(ctx, streamName(sub.Topic), sub.Name)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return brokerError("delete consumer "+sub.Name, err)
		}
	}
	err := b.js.DeleteStream(ctx, deadLetterStreamName(sub.Name))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return brokerError("delete dead-letter stream of "+sub.Name, err)
	}
	return nil
}
