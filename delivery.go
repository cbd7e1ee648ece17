package crossdock

import (
	"context"
	"time"
)

// DeliveryStatus is where one event stands in one subscription.
type DeliveryStatus string

// Delivery statuses.
const (
	StatusPending      DeliveryStatus = "pending"
	StatusRetrying     DeliveryStatus = "retrying"
	StatusDelivered    DeliveryStatus = "delivered"
	StatusDeadLettered DeliveryStatus = "dead_lettered"
	StatusFiltered     DeliveryStatus = "filtered"
	StatusSkipped      DeliveryStatus = "skipped" // the enrichment found the record deleted
)

// Attempt is one try at delivering an event to a subscription's destination.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"` // 0 when no response arrived
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// Delivery is one event on its way through one subscription.
type Delivery struct {
	Subscription string         `json:"subscription"`
	Status       DeliveryStatus `json:"status"`
	Attempts     []Attempt      `json:"attempts"`
}

// Journey is everything known about one event: where it was stored and, per
// subscription, every attempt and the outcome.
type Journey struct {
	Event       *Event     `json:"event"`
	Topic       string     `json:"topic"`
	Sequence    uint64     `json:"sequence"`
	PublishedAt time.Time  `json:"published_at"`
	Deliveries  []Delivery `json:"deliveries"`
}

// Publication records that an event was stored on a topic.
type Publication struct {
	Topic         string
	ID            string
	Sequence      uint64
	CorrelationID string
	PublishedAt   time.Time
}

// Outcome records how one event fared in one subscription: an attempt (when
// Attempt is not nil) and the status it left the delivery in.
type Outcome struct {
	Topic        string
	EventID      string
	Sequence     uint64
	Subscription string
	Status       DeliveryStatus
	Attempt      *Attempt
}

// JourneyService keeps the journeys of events. Recording is asynchronous
// and batched: journeys are the operator's view, not the source of truth,
// so the last records before a crash may be missing from them.
type JourneyService interface {
	// RecordPublication notes a stored event. It does not block on I/O.
	RecordPublication(p Publication)

	// RecordOutcome notes an attempt or a settled delivery. It does not
	// block on I/O.
	RecordOutcome(o Outcome)

	// Journey returns what is known of the event with the id on the topic,
	// without its Event (the broker holds that). ENOTFOUND when nothing is.
	Journey(ctx context.Context, topic, id string) (*Journey, error)

	// Counts returns the settled and failed counts of a subscription.
	Counts(ctx context.Context, subscription string) (delivered, filtered, failed int64, err error)
}

// Message is one event handed to a subscription's handler by the broker.
// Exactly one of Ack, Retry, DeadLetter or Release settles it.
type Message interface {
	// Event returns the decoded event.
	Event() *Event

	// Topic, Sequence and PublishedAt say where and when it was stored.
	Topic() string
	Sequence() uint64
	PublishedAt() time.Time

	// Attempt is the 1-based number of this delivery attempt, counting
	// redeliveries after a crash; it starts again at 1 after a resubmit.
	Attempt() int

	// Ack settles the message as done.
	Ack(ctx context.Context) error

	// Retry hands the message back to be delivered again after delay. The
	// wait happens in the broker, not in a goroutine.
	Retry(ctx context.Context, delay time.Duration) error

	// DeadLetter stores the message in the subscription's dead-letter queue
	// durably, then settles it.
	DeadLetter(ctx context.Context, reason, description string) error

	// Release hands the message back for immediate redelivery, as on
	// shutdown.
	Release(ctx context.Context) error
}

// Handler handles one message. It must settle the message.
type Handler func(ctx context.Context, m Message)

// Consumer is a running subscription consumer.
type Consumer interface {
	// Stop stops fetching new messages and waits for handlers under way to
	// return. When ctx is done first it cancels the handlers' context,
	// waits for them, and returns ctx's error.
	Stop(ctx context.Context) error
}

// Broker is the durable store and router of events: topics, publishing,
// per-subscription consumers and dead-letter queues.
type Broker interface {
	TopicService
	Publisher
	EventReader
	DeadLetterService

	// Consume starts handing the subscription's messages to h, with at most
	// sub.MaxInFlight calls at once, creating the durable consumer if it
	// does not exist and updating it if it does. A new subscription starts
	// with events published after it was created. ENOTFOUND when the topic
	// does not exist.
	Consume(ctx context.Context, sub Subscription, h Handler) (Consumer, error)

	// Stats returns the subscription's broker-side counts: backlog, in
	// flight and dead letters. ENOTFOUND when it has no consumer.
	Stats(ctx context.Context, sub Subscription) (SubscriptionStats, error)

	// Ready returns nil when the broker can store and deliver.
	Ready(ctx context.Context) error
}
