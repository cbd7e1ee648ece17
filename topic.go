package crossdock

import (
	"context"
	"time"
)

// Defaults for a topic.
const (
	DefaultDedupWindow = 10 * time.Minute
	DefaultRetention   = 7 * 24 * time.Hour
)

// Topic is a named, durable, append-only channel of events. Names are
// lower-case dot-separated segments such as sales.order.created.
type Topic struct {
	Name string `json:"name"`

	// DedupWindow is how long an event id is remembered: publishing the
	// same id again within it stores nothing and reports a duplicate.
	DedupWindow time.Duration `json:"dedup_window"`

	// Retention is how long the broker keeps an event after publication.
	Retention time.Duration `json:"retention"`
}

// WithDefaults returns the topic with zero fields set to their defaults.
func (t Topic) WithDefaults() Topic {
	if t.DedupWindow == 0 {
		t.DedupWindow = DefaultDedupWindow
	}
	if t.Retention == 0 {
		t.Retention = DefaultRetention
	}
	return t
}

// Validate returns EINVALID when the name or a setting is malformed.
func (t Topic) Validate() error {
	if !ValidTopicName(t.Name) {
		return Errorf(EINVALID, "topic name %q is invalid: use lower-case dot-separated segments of letters, digits and '-', such as sales.order.created", t.Name)
	}
	if t.DedupWindow < 0 {
		return Errorf(EINVALID, "topic %s: dedup_window must not be negative", t.Name)
	}
	if t.Retention < 0 {
		return Errorf(EINVALID, "topic %s: retention must not be negative", t.Name)
	}
	return nil
}

// ValidTopicName reports whether name is 1 to 200 characters of lower-case
// segments ([a-z0-9-], starting with a letter or digit) separated by dots.
func ValidTopicName(name string) bool {
	if name == "" || len(name) > 200 {
		return false
	}
	segStart := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if segStart {
				return false
			}
			segStart = true
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			segStart = false
		case c == '-':
			if segStart {
				return false
			}
		default:
			return false
		}
	}
	return !segStart
}

// PublishResult is what the broker answers once it has stored an event.
type PublishResult struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	Sequence  uint64 `json:"sequence"`
	Duplicate bool   `json:"duplicate"`
}

// TopicService manages topics.
type TopicService interface {
	// EnsureTopic creates the topic or updates its settings. EINVALID for a
	// bad topic, EUNAVAILABLE when the broker cannot be reached.
	EnsureTopic(ctx context.Context, t Topic) error

	// Topics returns every topic, sorted by name.
	Topics(ctx context.Context) ([]Topic, error)

	// Topic returns one topic; ENOTFOUND when it does not exist.
	Topic(ctx context.Context, name string) (*Topic, error)

	// DeleteTopic deletes the topic and every event stored on it.
	// ENOTFOUND when it does not exist, EUNAVAILABLE when the broker cannot
	// be reached. It does not check for subscriptions: callers refuse to
	// delete a topic that one still uses.
	DeleteTopic(ctx context.Context, name string) error
}

// Publisher stores events durably on a topic.
type Publisher interface {
	// Publish stores the events on the topic and returns once the broker has
	// stored each of them, one result per event in order. An event whose id
	// was published within the dedup window is not stored again and its
	// result says Duplicate. A batch of several events is stored all or
	// nothing. ENOTFOUND for an unknown topic, EUNAVAILABLE when the broker
	// cannot store (nothing was stored; the caller may retry).
	Publish(ctx context.Context, topic string, events ...*Event) ([]PublishResult, error)
}

// EventReader reads stored events back.
type EventReader interface {
	// Event returns the event stored at the sequence of the topic's stream,
	// and when it was stored. ENOTFOUND when it is gone or never existed.
	Event(ctx context.Context, topic string, sequence uint64) (*Event, time.Time, error)
}
