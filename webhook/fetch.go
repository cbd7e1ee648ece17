package webhook

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crossdock/crossdock"
)

// Fetch makes one GET of rawURL for an enrichment, asking for JSON, with
// the headers, bounded by timeout (0: none), and classifies the answer
// like a delivery: Delivered for 2xx with the whole body in
// Response.Body; Retryable for 408, 429, 5xx, a timeout or a network
// error, with Retry-After honoured; Rejected otherwise, 404 included
// (the caller tells it apart by StatusCode). A 2xx whose body is larger
// than MaxFetchBody or is not JSON is Rejected too.
//
// A "traceparent" entry in headers continues that trace with a fresh span
// id; without a valid one the fetch starts a new trace. Fetch returns
// EINVALID, and makes no request, for a URL that is not absolute http or
// https, or a header that is invalid or reserved (see
// ValidateFetchHeaders). Response.Err never holds the URL's query or a
// header value, which may be credentials.
func (s *Sender) Fetch(ctx context.Context, rawURL string, headers map[string]string, timeout time.Duration) (crossdock.Response, error) {
	start := time.Now()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, errAttemptTimeout)
		defer cancel()
	}
	req, err := s.newFetchRequest(ctx, rawURL, headers)
	if err != nil {
		return crossdock.Response{}, err
	}
	client := s.Client
	if client == nil {
		client = defaultClient()
	}
	resp, err := client.Do(req)
	var out crossdock.Response
	switch {
	case err != nil:
		out = crossdock.Response{Verdict: crossdock.Retryable, Err: transportError(ctx, timeout, err)}
	case Classify(resp.StatusCode) != crossdock.Delivered:
		out = s.readResponse(ctx, timeout, resp)
	default:
		out = s.readFetchAnswer(ctx, timeout, resp)
	}
	if out.Err != nil {
		redact(out.Err, req.URL, headers)
	}
	out.Duration = time.Since(start)
	return out, nil
}

// newFetchRequest builds the GET of an enrichment; its errors are EINVALID.
func (s *Sender) newFetchRequest(ctx context.Context, rawURL string, headers map[string]string) (*http.Request, error) {
	req, err := newHTTPRequest(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header = make(http.Header, 4+len(headers))
	req.Header["Accept"] = []string{"application/json"}
	req.Header["User-Agent"] = []string{s.userAgent()}
	// The caller's headers may replace Accept (an OData source wants
	// parameters on it) and User-Agent.
	if err := setHeaders(req.Header, headers, reservedForFetch); err != nil {
		return nil, err
	}
	if tp, ok := continueTrace(req.Header.Get(hTraceParent)); ok {
		req.Header[hTraceParent] = []string{tp}
	} else {
		req.Header[hTraceParent] = []string{newTrace()}
		delete(req.Header, hTraceState)
	}
	return req, nil
}

// readFetchAnswer reads the whole body of a 2xx answer to a fetch and
// checks that it is JSON of at most MaxFetchBody bytes.
func (s *Sender) readFetchAnswer(ctx context.Context, timeout time.Duration, resp *http.Response) crossdock.Response {
	defer resp.Body.Close()
	limit := s.MaxFetchBody
	if limit <= 0 {
		limit = DefaultMaxFetchBody
	}
	out := crossdock.Response{StatusCode: resp.StatusCode, Verdict: crossdock.Delivered}
	fail := func(v crossdock.Verdict, msg string, errs ...error) crossdock.Response {
		out.Verdict = v
		out.Err = &attemptError{msg: msg, errs: errs}
		return out
	}
	tooLarge := "response larger than " + sizeText(limit)
	if resp.ContentLength > limit {
		out.Body = nil
		return fail(crossdock.Rejected, tooLarge)
	}
	body, err := readBody(resp.Body, limit+1, resp.ContentLength)
	if err != nil {
		// As for a delivery: a body that broke off is retried.
		cause := transportError(ctx, timeout, err)
		return fail(crossdock.Retryable, statusText(resp.StatusCode)+": reading response body: "+cause.Error(), cause)
	}
	if int64(len(body)) > limit {
		return fail(crossdock.Rejected, tooLarge)
	}
	// Drained so the connection can be reused, as for a delivery.
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	ct := resp.Header.Get("Content-Type")
	if !jsonMediaType(ct) {
		if ct == "" {
			ct = "none"
		}
		return fail(crossdock.Rejected, "enrichment answer is not JSON (Content-Type "+snippet([]byte(ct))+")")
	}
	if !json.Valid(body) {
		return fail(crossdock.Rejected, "enrichment answer is not valid JSON ("+strconv.Itoa(len(body))+" bytes)")
	}
	out.Body = body
	return out
}

// jsonMediaType reports whether a Content-Type names JSON:
// application/json or any type with a +json suffix.
func jsonMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// sizeText returns n bytes as "4 MiB", "64 KiB" or "1000 bytes".
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// minSecretLen is the shortest header or query value that redact removes;
// shorter ones are not credentials, and removing them would garble the
// status text ("HTTP 401").
const minSecretLen = 4

// redact removes from the description of a failed attempt the URL's
// query, its query values, its password and the header values (and each
// word of them, for "Bearer <token>"), in case the server echoed them.
func redact(err error, u *url.URL, headers map[string]string) {
	var ae *attemptError
	if !errors.As(err, &ae) {
		return
	}
	var secrets []string
	add := func(v string) {
		if v = strings.TrimSpace(v); len(v) >= minSecretLen {
			secrets = append(secrets, v)
		}
	}
	for _, v := range headers {
		add(v)
		for _, f := range strings.Fields(v) {
			add(f)
		}
	}
	if u != nil {
		add(u.RawQuery)
		for _, vs := range u.Query() {
			for _, v := range vs {
				add(v)
				add(url.QueryEscape(v))
			}
		}
		if p, ok := u.User.Password(); ok {
			add(p)
		}
	}
	if len(secrets) == 0 {
		return
	}
	// Longest first, so a value is removed whole before any word of it.
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, v := range secrets {
		pairs = append(pairs, v, "[redacted]")
	}
	ae.msg = strings.NewReplacer(pairs...).Replace(ae.msg)
}
