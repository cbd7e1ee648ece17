package crossdock

import (
	"context"
	"time"
)

// Destination is an HTTP endpoint that receives deliveries.
type Destination struct {
	URL string `json:"url"`

	// Secret is the Standard Webhooks signing secret (whsec_...). It is
	// never encoded to JSON.
	Secret string `json:"-"`

	// Timeout bounds one attempt, from connecting to reading the response.
	Timeout time.Duration `json:"timeout"`
}

// Verdict classifies the answer of one delivery attempt.
type Verdict int

// Verdicts.
const (
	// Delivered: a 2xx answer.
	Delivered Verdict = iota
	// Retryable: 408, 429, 5xx, a timeout or a network error.
	Retryable
	// Rejected: any other answer; the event is dead-lettered at once.
	Rejected
)

// Response is the outcome of one delivery attempt.
type Response struct {
	Verdict    Verdict
	StatusCode int           // 0 when no response arrived
	RetryAfter time.Duration // from a Retry-After header; 0 when absent
	Body       []byte        // the start of the response body, for replies and diagnostics
	Err        error         // transport error or why the status failed
	Duration   time.Duration
}

// Sender delivers an event to a destination.
type Sender interface {
	// Send makes one attempt and classifies the answer. It returns an error
	// only for a request it could not build (EINVALID); everything the
	// destination answers, or fails to, is in the Response.
	Send(ctx context.Context, dest Destination, ev *Event) (Response, error)
}
