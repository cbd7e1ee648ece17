// Package webhook delivers events to HTTP endpoints: one attempt per call,
// in CloudEvents HTTP binary mode, signed per the Standard Webhooks
// specification, with a W3C traceparent, and classifies the answer as
// delivered, retryable or rejected.
//
// Sender implements crossdock.Sender. Sign and Verify compute and check the
// webhook-signature header for receivers, tests and the demo.
//
// Redirects are not followed: a 3xx answer is a rejection, because a
// signed delivery must not be replayed to a host the subscription did not
// name.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/crossdock/crossdock"
)

// Defaults of a Sender.
const (
	DefaultUserAgent       = "crossdock/1"
	DefaultMaxResponseBody = 64 << 10

	// drainLimit bounds how much of a response body beyond MaxResponseBody
	// is read and discarded so the connection can be reused; a longer body
	// closes the connection instead.
	drainLimit = 256 << 10
)

var _ crossdock.Sender = (*Sender)(nil)

// Sender delivers events to HTTP endpoints. Its fields may be set after
// NewSender and before the first Send; a Sender is safe for concurrent use.
type Sender struct {
	// Client sends the requests. The default keeps many idle connections
	// per host and does not follow redirects; a Client set by the caller
	// should set CheckRedirect to return http.ErrUseLastResponse too.
	Client *http.Client

	// UserAgent is sent in the User-Agent header (DefaultUserAgent when empty).
	UserAgent string

	// MaxResponseBody is how many bytes of the response body are kept in
	// Response.Body (DefaultMaxResponseBody when not positive); the rest is
	// read and discarded, up to a limit, so the connection can be reused.
	MaxResponseBody int64

	// Now returns the time written to webhook-timestamp and the time an
	// HTTP-date Retry-After is measured from (time.Now when nil).
	Now func() time.Time

	keys keyCache
}

// NewSender returns a Sender with a tuned HTTP client and the defaults.
func NewSender() *Sender {
	return &Sender{
		Client:          NewClient(),
		UserAgent:       DefaultUserAgent,
		MaxResponseBody: DefaultMaxResponseBody,
		Now:             time.Now,
	}
}

// NewClient returns the HTTP client a Sender uses by default: keep-alive
// with up to 512 idle connections per host (one subscription may run
// hundreds of deliveries to one host at once), HTTP/2 where the server
// offers it, proxies from the environment, and no redirects. It sets no
// overall timeout: each attempt is bounded by its Destination's Timeout.
func NewClient() *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          4096,
			MaxIdleConnsPerHost:   512,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// defaultClient serves a Sender whose Client is nil, so a zero Sender never
// builds a client per call.
var defaultClient = sync.OnceValue(NewClient)

// errAttemptTimeout is the cause of the context of an attempt that ran out
// of its Destination's Timeout, which tells it apart from the caller's own
// deadline or cancellation.
var errAttemptTimeout = errors.New("attempt timeout")

// Send makes one delivery attempt of ev to dest and classifies the answer.
// It returns EINVALID, and no attempt, when the request cannot be built: a
// malformed URL or secret, or an event without an id. Everything the
// destination answers, or fails to, is in the Response.
func (s *Sender) Send(ctx context.Context, dest crossdock.Destination, ev *crossdock.Event) (crossdock.Response, error) {
	start := time.Now()
	if dest.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, dest.Timeout, errAttemptTimeout)
		defer cancel()
	}
	req, err := s.newRequest(ctx, dest, ev)
	if err != nil {
		return crossdock.Response{}, err
	}
	client := s.Client
	if client == nil {
		client = defaultClient()
	}
	resp, err := client.Do(req)
	if err != nil {
		return crossdock.Response{
			Verdict:  crossdock.Retryable,
			Err:      transportError(ctx, dest.Timeout, err),
			Duration: time.Since(start),
		}, nil
	}
	out := s.readResponse(ctx, dest.Timeout, resp)
	out.Duration = time.Since(start)
	return out, nil
}

// newRequest builds the POST of ev to dest; its errors are EINVALID.
func (s *Sender) newRequest(ctx context.Context, dest crossdock.Destination, ev *crossdock.Event) (*http.Request, error) {
	if ev == nil || ev.ID == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "webhook: event has no id")
	}
	var body io.Reader
	if len(ev.Data) > 0 {
		body = bytes.NewReader(ev.Data)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest.URL, body)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		// The URL may carry credentials: name the problem, not the value.
		return nil, crossdock.Errorf(crossdock.EINVALID, "webhook: destination URL must be an absolute http or https URL")
	}
	var keys []*signingKey
	if dest.Secret != "" {
		if keys, err = s.keys.get(dest.Secret); err != nil {
			return nil, err
		}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	// Sized once: growing the map header by header costs more than filling it.
	req.Header = make(http.Header, 24+len(ev.Extensions))
	if err := setEventHeader(req.Header, ev, keys, now().Unix()); err != nil {
		return nil, err
	}
	ua := s.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	req.Header["User-Agent"] = []string{ua}
	return req, nil
}
