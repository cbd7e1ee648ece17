package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crossdock/crossdock"
)

// DefaultClientTimeout bounds one publish request of a Client whose
// HTTPClient is nil.
const DefaultClientTimeout = 30 * time.Second

// Bounds on what a Client reads of an answer: a batch of results, or a
// problem.
const (
	maxResultsBody = 4 << 20
	maxProblemBody = 64 << 10
)

// defaultHTTPClient serves Clients whose HTTPClient is nil.
var defaultHTTPClient = &http.Client{Timeout: DefaultClientTimeout}

// Client publishes events to a hub through its HTTP API. It is a
// crossdock.Publisher, so whatever publishes to a broker in process can
// publish to a remote hub instead.
type Client struct {
	// BaseURL is the hub's address, such as http://127.0.0.1:8080.
	BaseURL string

	// HTTPClient sends the requests; nil uses one with a timeout of
	// DefaultClientTimeout.
	HTTPClient *http.Client

	// Token, when set, is sent as Authorization: Bearer TOKEN.
	Token string
}

var _ crossdock.Publisher = (*Client)(nil)

// NewClient returns a Client of the hub at baseURL.
func NewClient(baseURL string) *Client {
	return &Client{BaseURL: baseURL}
}

// Publish posts the events to the topic, one event in structured mode and
// several as a batch (stored all or nothing), and returns the hub's result
// for each. Errors carry the code of the hub's problem answer: EINVALID,
// ENOTFOUND, ETOOLARGE and so on; EUNAVAILABLE when the hub cannot be
// reached, answers 429, 502, 503 or 504, or the request timed out (the
// caller may retry: the hub stores an event id only once).
func (c *Client) Publish(ctx context.Context, topic string, events ...*crossdock.Event) ([]crossdock.PublishResult, error) {
	if len(events) == 0 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "publish to %s: no events given", topic)
	}
	body, contentType, err := encodeEvents(events)
	if err != nil {
		return nil, err
	}
	endpoint, err := c.endpoint(topic)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "publish to %s: %v", topic, err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}

	resp, err := c.httpClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("publish to %s: %w", topic, ctx.Err())
		}
		// net/http's error names the URL without its password.
		return nil, crossdock.Errorf(crossdock.EUNAVAILABLE, "publish to %s: the hub cannot be reached: %v", topic, err)
	}
	defer func() {
		// Drain what is left so the connection can serve the next request.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProblemBody))
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return nil, problemError(topic, resp)
	}
	return decodeResults(topic, resp.Body, len(events))
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient == nil {
		return defaultHTTPClient
	}
	return c.HTTPClient
}

// endpoint returns the publish URL of the topic.
func (c *Client) endpoint(topic string) (string, error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", crossdock.Errorf(crossdock.EINVALID, "hub URL must be an absolute http or https URL such as http://127.0.0.1:8080")
	}
	return strings.TrimRight(u.String(), "/") + "/v1/topics/" + url.PathEscape(topic) + "/events", nil
}

// encodeEvents returns the request body and its media type: one structured
// event, or a JSON array of them.
func encodeEvents(events []*crossdock.Event) ([]byte, string, error) {
	if len(events) == 1 {
		b, err := encodeEvent(events[0], -1)
		return b, ContentTypeCloudEvent, err
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, ev := range events {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := encodeEvent(ev, i)
		if err != nil {
			return nil, "", err
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return buf.Bytes(), ContentTypeBatch, nil
}

// encodeEvent returns an event's structured JSON; index names it within a
// batch, -1 outside one.
func encodeEvent(ev *crossdock.Event, index int) ([]byte, error) {
	where := "event"
	if index >= 0 {
		where = fmt.Sprintf("event %d", index)
	}
	if ev == nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "%s is missing", where)
	}
	b, err := ev.MarshalJSON()
	if err != nil {
		if crossdock.ErrorCode(err) == crossdock.EINVALID {
			return nil, crossdock.Errorf(crossdock.EINVALID, "%s: %s", where, crossdock.ErrorMessage(err))
		}
		return nil, fmt.Errorf("encode %s: %w", where, err)
	}
	return b, nil
}

// decodeResults reads a 202 answer: one result, or a list of n.
func decodeResults(topic string, body io.Reader, n int) ([]crossdock.PublishResult, error) {
	b, err := io.ReadAll(io.LimitReader(body, maxResultsBody))
	if err != nil {
		return nil, crossdock.Errorf(crossdock.EUNAVAILABLE, "publish to %s: the hub's answer could not be read: %v", topic, err)
	}
	var results []crossdock.PublishResult
	if n == 1 {
		var r crossdock.PublishResult
		err = json.Unmarshal(b, &r)
		results = []crossdock.PublishResult{r}
	} else {
		err = json.Unmarshal(b, &results)
	}
	if err != nil {
		return nil, fmt.Errorf("publish to %s: decode the hub's answer: %w", topic, err)
	}
	if len(results) != n {
		return nil, fmt.Errorf("publish to %s: the hub answered %d results for %d events", topic, len(results), n)
	}
	return results, nil
}

// codeOfStatus maps a status to an error code for answers whose problem
// type does not name one.
var codeOfStatus = map[int]string{
	http.StatusBadRequest:            crossdock.EINVALID,
	http.StatusUnauthorized:          crossdock.EUNAUTHORIZED,
	http.StatusForbidden:             crossdock.EFORBIDDEN,
	http.StatusNotFound:              crossdock.ENOTFOUND,
	http.StatusMethodNotAllowed:      crossdock.ENOTFOUND,
	http.StatusConflict:              crossdock.ECONFLICT,
	http.StatusRequestEntityTooLarge: crossdock.ETOOLARGE,
	http.StatusUnsupportedMediaType:  crossdock.EUNSUPPORTED,
	http.StatusUnprocessableEntity:   crossdock.EINVALID,
	http.StatusTooManyRequests:       crossdock.EUNAVAILABLE,
	http.StatusNotImplemented:        crossdock.ENOTIMPLEMENTED,
	http.StatusBadGateway:            crossdock.EUNAVAILABLE,
	http.StatusServiceUnavailable:    crossdock.EUNAVAILABLE,
	http.StatusGatewayTimeout:        crossdock.EUNAVAILABLE,
}

// problemError turns an answer other than 202 into a domain error. The
// code comes from the problem type when it is one of crossdock's, else from
// the status; the message carries the problem's detail.
func problemError(topic string, resp *http.Response) error {
	code, ok := codeOfStatus[resp.StatusCode]
	if !ok {
		code = crossdock.EINTERNAL
	}
	detail := http.StatusText(resp.StatusCode)
	var p Problem
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemBody)) // a cut body leaves the status's text
	if json.Unmarshal(b, &p) == nil {
		if c, found := strings.CutPrefix(p.Type, ProblemTypeBase); found && knownCode(c) && !retryableStatus(resp.StatusCode) {
			code = c
		}
		if p.Detail != "" {
			detail = p.Detail
		}
	}
	return &crossdock.Error{Code: code, Message: fmt.Sprintf("publish to %s: the hub answered %d: %s", topic, resp.StatusCode, detail)}
}

// retryableStatus reports whether a status says to try again later,
// whatever the problem type.
func retryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusBadGateway ||
		status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

func knownCode(code string) bool {
	switch code {
	case crossdock.ECONFLICT, crossdock.EINTERNAL, crossdock.EINVALID, crossdock.ENOTFOUND,
		crossdock.EUNAUTHORIZED, crossdock.EFORBIDDEN, crossdock.EUNAVAILABLE, crossdock.ETOOLARGE,
		crossdock.EUNSUPPORTED, crossdock.ENOTIMPLEMENTED:
		return true
	}
	return false
}
