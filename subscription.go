package crossdock

import (
	"context"
	"math"
	"net/url"
	"strings"
	"time"
)

// Defaults for a subscription.
const (
	DefaultMaxAttempts     = 10
	DefaultInitialInterval = time.Second
	DefaultMultiplier      = 2.0
	DefaultMaxInterval     = 5 * time.Minute
	DefaultTimeout         = 10 * time.Second
	DefaultMaxInFlight     = 16
)

// Subscription is a named consumer of one topic: the events that pass its
// filter are delivered to its destination, retried by its policy, and
// dead-lettered when they cannot be delivered.
type Subscription struct {
	Name  string `json:"name"`
	Topic string `json:"topic"`

	// Filter is a CEL expression over the event (id, source, type, subject,
	// time, data, extensions); empty matches every event.
	Filter string `json:"filter,omitempty"`

	// Enrich, when set, fetches the latest state of the record before
	// every attempt; the answer replaces the event's data.
	Enrich *Enrichment `json:"enrich,omitempty"`

	// Transform is a jq program over the event whose output is the body
	// sent; empty sends the data as it is.
	Transform string `json:"transform,omitempty"`

	Destination Destination `json:"destination"`
	Retry       RetryPolicy `json:"retry"`

	// Reply, when set, publishes the destination's answer to a topic.
	Reply *Reply `json:"reply,omitempty"`

	// MaxInFlight caps the deliveries of this subscription under way at once.
	MaxInFlight int `json:"max_in_flight"`
}

// Enrichment fetches a record's latest state from its source system.
type Enrichment struct {
	// URL is a template over the event's attributes, such as
	// http://crm.local/api/accounts/{{subject}}.
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`

	// OnNotFound says what a 404 means: OnNotFoundDeadLetter (the default)
	// dead-letters with reason SourceNotFound, OnNotFoundSkip settles the
	// delivery as skipped (the record was deleted).
	OnNotFound string `json:"on_not_found,omitempty"`

	// Timeout bounds one fetch; 0 takes the destination's timeout.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// What an enrichment does when the source answers 404.
const (
	OnNotFoundDeadLetter = "dead_letter"
	OnNotFoundSkip       = "skip"
)

// Reply publishes a destination's answer as an event on a topic, so that a
// separate subscription can act on it (write the target's key back to the
// source, say) and retry that on its own.
type Reply struct {
	Topic string `json:"topic"`
}

// RetryPolicy says how often and how far apart failed deliveries are retried.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included; then the
	// delivery is dead-lettered with reason MaxDeliveryCountExceeded.
	MaxAttempts     int           `json:"max_attempts"`
	InitialInterval time.Duration `json:"initial_interval"`
	Multiplier      float64       `json:"multiplier"`
	MaxInterval     time.Duration `json:"max_interval"`
}

// WithDefaults returns the subscription with zero fields set to defaults.
func (s Subscription) WithDefaults() Subscription {
	if s.MaxInFlight == 0 {
		s.MaxInFlight = DefaultMaxInFlight
	}
	if s.Destination.Timeout == 0 {
		s.Destination.Timeout = DefaultTimeout
	}
	if s.Destination.Method == "" {
		s.Destination.Method = "POST"
	}
	if s.Enrich != nil {
		e := *s.Enrich
		if e.OnNotFound == "" {
			e.OnNotFound = OnNotFoundDeadLetter
		}
		if e.Timeout == 0 {
			e.Timeout = s.Destination.Timeout
		}
		s.Enrich = &e
	}
	s.Retry = s.Retry.WithDefaults()
	return s
}

// WithDefaults returns the policy with zero fields set to defaults.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = DefaultMaxInterval
	}
	return p
}

// Backoff returns how long to wait after the given failed attempt (1-based)
// before the next: InitialInterval·Multiplier^(attempt-1), capped at
// MaxInterval, scaled by a jitter factor in [0.5, 1.0) taken from rnd, a
// number in [0, 1).
func (p RetryPolicy) Backoff(attempt int, rnd float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(p.InitialInterval) * math.Pow(p.Multiplier, float64(attempt-1))
	if d > float64(p.MaxInterval) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(p.MaxInterval)
	}
	return time.Duration(d * (0.5 + rnd/2))
}

// Validate returns EINVALID naming the first bad field. It does not compile
// the filter; the filter package does.
func (s Subscription) Validate() error {
	if !ValidName(s.Name) {
		return Errorf(EINVALID, "subscription name %q is invalid: use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit", s.Name)
	}
	if !ValidTopicName(s.Topic) {
		return Errorf(EINVALID, "subscription %s: topic %q is not a valid topic name", s.Name, s.Topic)
	}
	if !absoluteHTTP(s.Destination.URL) {
		return Errorf(EINVALID, "subscription %s: destination url %q must be an absolute http or https URL", s.Name, s.Destination.URL)
	}
	switch s.Destination.Method {
	case "", "POST", "PUT", "PATCH":
	default:
		return Errorf(EINVALID, "subscription %s: destination method %q is not one of POST, PUT, PATCH", s.Name, s.Destination.Method)
	}
	if e := s.Enrich; e != nil {
		if !absoluteHTTP(e.URL) {
			return Errorf(EINVALID, "subscription %s: enrich url %q must be an absolute http or https URL", s.Name, e.URL)
		}
		switch e.OnNotFound {
		case "", OnNotFoundDeadLetter, OnNotFoundSkip:
		default:
			return Errorf(EINVALID, "subscription %s: enrich on_not_found %q is not one of dead_letter, skip", s.Name, e.OnNotFound)
		}
		if e.Timeout < 0 {
			return Errorf(EINVALID, "subscription %s: enrich timeout must not be negative", s.Name)
		}
	}
	if s.Reply != nil && !ValidTopicName(s.Reply.Topic) {
		return Errorf(EINVALID, "subscription %s: reply topic %q is not a valid topic name", s.Name, s.Reply.Topic)
	}
	if s.Destination.Timeout < 0 {
		return Errorf(EINVALID, "subscription %s: destination timeout must not be negative", s.Name)
	}
	if s.MaxInFlight < 0 || s.MaxInFlight > 10000 {
		return Errorf(EINVALID, "subscription %s: max_in_flight must be between 1 and 10000", s.Name)
	}
	r := s.Retry
	switch {
	case r.MaxAttempts < 0:
		return Errorf(EINVALID, "subscription %s: retry.max_attempts must be at least 1", s.Name)
	case r.InitialInterval < 0 || r.MaxInterval < 0:
		return Errorf(EINVALID, "subscription %s: retry intervals must not be negative", s.Name)
	case r.Multiplier != 0 && r.Multiplier < 1:
		return Errorf(EINVALID, "subscription %s: retry.multiplier must be at least 1", s.Name)
	case r.MaxInterval != 0 && r.InitialInterval > r.MaxInterval:
		return Errorf(EINVALID, "subscription %s: retry.initial_interval must not exceed retry.max_interval", s.Name)
	}
	return nil
}

// absoluteHTTP reports whether raw is an absolute http(s) URL; templates
// such as {{subject}} may stand in its path and query.
func absoluteHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && !strings.Contains(u.Host, "{{")
}

// ValidName reports whether name is a subscription name: 1 to 64 lower-case
// letters, digits, '-' or '_', starting with a letter or digit.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// SubscriptionStats are a subscription's live counts.
type SubscriptionStats struct {
	Backlog     uint64 `json:"backlog"`      // stored events not yet handed out
	InFlight    int    `json:"in_flight"`    // handed out, not yet settled (includes waiting retries)
	Delivered   int64  `json:"delivered"`    // settled with a 2xx
	Filtered    int64  `json:"filtered"`     // settled by the filter
	Failed      int64  `json:"failed"`       // attempts that failed
	DeadLetters uint64 `json:"dead_letters"` // now in the dead-letter queue
}

// SubscriptionService lists the subscriptions the hub runs.
type SubscriptionService interface {
	// Subscriptions returns every subscription, sorted by name.
	Subscriptions(ctx context.Context) ([]Subscription, error)

	// Subscription returns one; ENOTFOUND when there is none of that name.
	Subscription(ctx context.Context, name string) (*Subscription, error)
}
