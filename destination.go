package crossdock

import (
	"context"
	"time"
)

// Destination is an HTTP endpoint that receives deliveries.
//
// URL and header values may hold templates ({{subject}}, {{id}}, ...) and
// secret references (${secret:NAME}); the domain keeps them as written and
// the dispatcher expands them per attempt, so an API never shows a
// resolved secret.
type Destination struct {
	URL string `json:"url"`

	// Method is POST (the default), PUT or PATCH.
	Method string `json:"method,omitempty"`

	// Headers are static request headers.
	Headers map[string]string `json:"headers,omitempty"`

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

// Fetcher reads the latest state of a record from its source system.
type Fetcher interface {
	// Fetch makes one GET of url with the headers, bounded by timeout (0:
	// none), and classifies the answer like a delivery: Delivered for 2xx
	// with the whole body in Response.Body, Retryable or Rejected otherwise.
	// It returns an error only for a request it could not build (EINVALID).
	Fetch(ctx context.Context, url string, headers map[string]string, timeout time.Duration) (Response, error)
}

// Sender delivers an event to a destination.
type Sender interface {
	// Send makes one attempt and classifies the answer. The destination is
	// already expanded: no templates or secret references remain. The body
	// is the event's data. It returns an error
	// only for a request it could not build (EINVALID); everything the
	// destination answers, or fails to, is in the Response.
	Send(ctx context.Context, dest Destination, ev *Event) (Response, error)
}
