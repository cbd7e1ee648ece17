package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/crossdock/crossdock"
)

// MaxRetryAfter caps the wait a Retry-After header can ask for, so one
// misconfigured receiver cannot park a delivery for days.
const MaxRetryAfter = time.Hour

// snippetSize is how much of a failed response's body goes into Response.Err.
const snippetSize = 200

// Classify returns the verdict of an HTTP status: 2xx Delivered; 408, 429
// and 5xx Retryable; anything else, 3xx included, Rejected.
func Classify(status int) crossdock.Verdict {
	switch {
	case status >= 200 && status <= 299:
		return crossdock.Delivered
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500 && status <= 599:
		return crossdock.Retryable
	default:
		return crossdock.Rejected
	}
}

// ParseRetryAfter returns the wait a Retry-After header value asks for:
// delta-seconds, or an HTTP-date relative to now. It returns 0 for an
// absent, malformed or past value and caps the wait at MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			var numErr *strconv.NumError
			if errors.As(err, &numErr) && numErr.Err == strconv.ErrRange {
				return MaxRetryAfter
			}
			return 0
		}
		if n >= uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return clampWait(t.Sub(now))
}

func clampWait(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d > MaxRetryAfter:
		return MaxRetryAfter
	}
	return d
}

// readResponse classifies resp, keeps the start of its body, and drains
// the rest so the connection can be reused.
func (s *Sender) readResponse(ctx context.Context, timeout time.Duration, resp *http.Response) crossdock.Response {
	defer resp.Body.Close()
	limit := s.MaxResponseBody
	if limit <= 0 {
		limit = DefaultMaxResponseBody
	}
	out := crossdock.Response{StatusCode: resp.StatusCode, Verdict: Classify(resp.StatusCode)}
	body, readErr := readBody(resp.Body, limit, resp.ContentLength)
	out.Body = body
	if readErr == nil {
		// Bounded: a longer body closes the connection instead of being read.
		_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	}
	if out.Verdict == crossdock.Retryable {
		if v := resp.Header.Get("Retry-After"); v != "" {
			now := time.Now
			if s.Now != nil {
				now = s.Now
			}
			out.RetryAfter = ParseRetryAfter(v, now())
		}
	}
	switch {
	case readErr != nil:
		// A 2xx whose body broke off is retried: the reply may be the
		// point of the delivery, and duplicates carry the same webhook-id.
		if out.Verdict == crossdock.Delivered {
			out.Verdict = crossdock.Retryable
		}
		cause := transportError(ctx, timeout, readErr)
		out.Err = &attemptError{msg: statusText(resp.StatusCode) + ": reading response body: " + cause.Error(), errs: []error{cause}}
	case out.Verdict != crossdock.Delivered:
		out.Err = &attemptError{msg: statusMessage(resp, body)}
	}
	return out
}

// readBody reads up to limit bytes of r, sized by the Content-Length hint
// when there is one.
func readBody(r io.Reader, limit, hint int64) ([]byte, error) {
	if hint == 0 {
		return nil, nil
	}
	size := int64(512)
	if hint > 0 {
		size = hint + 1 // room to see EOF without growing
	}
	size = min(size, limit)
	buf := make([]byte, 0, size)
	lr := io.LimitedReader{R: r, N: limit}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nilIfEmpty(buf), err
		}
	}
	return nilIfEmpty(buf), nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// statusText returns "HTTP 503 Service Unavailable".
func statusText(code int) string {
	s := "HTTP " + strconv.Itoa(code)
	if t := http.StatusText(code); t != "" {
		s += " " + t
	}
	return s
}

// statusMessage describes a failed answer for a dead letter: the status,
// where a redirect pointed, and the start of the body.
func statusMessage(resp *http.Response, body []byte) string {
	var b strings.Builder
	b.WriteString(statusText(resp.StatusCode))
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		b.WriteString(": redirects are not followed")
		if loc := resp.Header.Get("Location"); loc != "" {
			b.WriteString(" (Location: ")
			b.WriteString(snippet([]byte(loc)))
			b.WriteByte(')')
		}
	}
	if sn := snippet(body); sn != "" {
		b.WriteString(": ")
		b.WriteString(sn)
	}
	return b.String()
}

// snippet returns the first snippetSize bytes of b as one line of valid
// UTF-8, cut on a rune boundary, control characters made spaces.
func snippet(b []byte) string {
	if len(b) > snippetSize {
		b = b[:snippetSize]
		for len(b) > 0 && !utf8.Valid(b) && len(b) > snippetSize-utf8.UTFMax {
			b = b[:len(b)-1]
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// attemptError describes a failed attempt without the request URL (which
// may carry credentials) and unwraps to the underlying error.
type attemptError struct {
	msg  string
	errs []error
}

func (e *attemptError) Error() string   { return e.msg }
func (e *attemptError) Unwrap() []error { return e.errs }

// transportError describes why no (complete) answer arrived: the attempt's
// own timeout, the caller's cancellation, or the network failure.
func transportError(ctx context.Context, timeout time.Duration, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	errs := []error{err}
	if errors.Is(context.Cause(ctx), errAttemptTimeout) {
		// Callers test for timeouts the standard way, whatever the transport said.
		errs = append(errs, context.DeadlineExceeded)
	}
	return &attemptError{msg: describe(ctx, timeout, err), errs: errs}
}

func describe(ctx context.Context, timeout time.Duration, err error) string {
	if errors.Is(context.Cause(ctx), errAttemptTimeout) {
		return "timeout after " + timeout.String()
	}
	switch ctx.Err() {
	case context.Canceled:
		return "canceled"
	case context.DeadlineExceeded:
		return "deadline exceeded"
	}
	var (
		dnsErr     *net.DNSError
		certErr    *tls.CertificateVerificationError
		hostErr    x509.HostnameError
		authErr    x509.UnknownAuthorityError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		netErr     net.Error
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.As(err, &dnsErr):
		return "DNS lookup of " + dnsErr.Name + " failed: " + dnsErr.Err
	case errors.As(err, &certErr):
		return "TLS: " + certErr.Err.Error()
	case errors.As(err, &hostErr), errors.As(err, &authErr), errors.As(err, &invalidErr):
		return "TLS: " + err.Error()
	case errors.As(err, &recordErr):
		return "TLS: the server did not answer with TLS"
	case errors.As(err, &alertErr):
		return "TLS: " + alertErr.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before the answer was complete"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout: " + err.Error()
	}
	return err.Error()
}
