// Package webhook delivers events to HTTP endpoints: one attempt per call,
// in CloudEvents HTTP binary mode, signed per the Standard Webhooks
// specification, with a W3C traceparent and the destination's static
// headers, and classifies the answer as delivered, retryable or rejected.
//
// Sender implements crossdock.Sender, and crossdock.Fetcher for
// enrichment: one GET of a record's latest state as JSON. Sign and Verify
// compute and check the webhook-signature header for receivers, tests and
// the demo.
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
	"strings"
	"sync"
	"time"

	"github.com/crossdock/crossdock"
)

// Defaults of a Sender.
const (
	DefaultUserAgent       = "crossdock/1"
	DefaultMaxResponseBody = 64 << 10
	DefaultMaxFetchBody    = 4 << 20

	// drainLimit bounds how much of a response body beyond MaxResponseBody
	// is read and discarded so the connection can be reused; a longer body
	// closes the connection instead.
	drainLimit = 256 << 10
)

var (
	_ crossdock.Sender  = (*Sender)(nil)
	_ crossdock.Fetcher = (*Sender)(nil)
)

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

	// MaxFetchBody is the largest answer Fetch accepts (DefaultMaxFetchBody
	// when not positive); a larger one fails the fetch.
	MaxFetchBody int64

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
		MaxFetchBody:    DefaultMaxFetchBody,
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
// malformed URL or secret, a method other than POST, PUT and PATCH, a
// static header that is invalid or reserved (see ValidateHeaders), or an
// event without an id. Everything the destination answers, or fails to, is
// in the Response; its Err never holds the URL's query or a header value.
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
	var out crossdock.Response
	if err != nil {
		out = crossdock.Response{Verdict: crossdock.Retryable, Err: transportError(ctx, dest.Timeout, err)}
	} else {
		out = s.readResponse(ctx, dest.Timeout, resp)
	}
	if out.Err != nil {
		redact(out.Err, req.URL, dest.Headers)
	}
	out.Duration = time.Since(start)
	return out, nil
}

// method returns the HTTP method of a destination: POST when empty, else
// POST, PUT or PATCH in any case.
func method(m string) (string, error) {
	switch {
	case m == "", strings.EqualFold(m, http.MethodPost):
		return http.MethodPost, nil
	case strings.EqualFold(m, http.MethodPut):
		return http.MethodPut, nil
	case strings.EqualFold(m, http.MethodPatch):
		return http.MethodPatch, nil
	}
	return "", crossdock.Errorf(crossdock.EINVALID, "webhook: method %q is not POST, PUT or PATCH", m)
}

// newRequest builds the request of ev to dest; its errors are EINVALID.
func (s *Sender) newRequest(ctx context.Context, dest crossdock.Destination, ev *crossdock.Event) (*http.Request, error) {
	if ev == nil || ev.ID == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "webhook: event has no id")
	}
	m, err := method(dest.Method)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if len(ev.Data) > 0 {
		body = bytes.NewReader(ev.Data)
	}
	req, err := newHTTPRequest(ctx, m, dest.URL, body)
	if err != nil {
		return nil, err
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
	req.Header = make(http.Header, 24+len(ev.Extensions)+len(dest.Headers))
	if err := setEventHeader(req.Header, ev, keys, now().Unix()); err != nil {
		return nil, err
	}
	req.Header["User-Agent"] = []string{s.userAgent()}
	// After the event's headers: a static User-Agent replaces crossdock's,
	// and the reserved names were refused.
	if err := setHeaders(req.Header, dest.Headers, reservedForDelivery); err != nil {
		return nil, err
	}
	return req, nil
}

// newHTTPRequest builds a request to an absolute http or https URL; its
// error is EINVALID and does not repeat the URL, which may carry
// credentials.
func newHTTPRequest(ctx context.Context, method, rawURL string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "webhook: URL must be an absolute http or https URL")
	}
	return req, nil
}

func (s *Sender) userAgent() string {
	if s.UserAgent == "" {
		return DefaultUserAgent
	}
	return s.UserAgent
}
