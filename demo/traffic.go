package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crossdock/crossdock"
)

// publishAttempts bounds the tries of one event; retryBase is the first
// back-off, doubled on each retry, unless the hub says Retry-After.
const (
	publishAttempts = 4
	retryBase       = 200 * time.Millisecond
	maxRetryAfter   = 5 * time.Second
)

// Traffic is a CRM that publishes OrderCreated events to the hub at a
// steady rate, in CloudEvents structured mode.
type Traffic struct {
	HubURL string       // e.g. http://127.0.0.1:8080
	Topic  string       // default "sales.order.created"
	Key    string       // sent as Authorization: Bearer when set
	Rate   float64      // events per second; default 5
	Rand   *rand.Rand   // draws the orders; used by Run only
	Client *http.Client // default: a client with a 10s timeout
	Logger *slog.Logger // logs events the hub did not take

	published atomic.Int64
	failed    atomic.Int64
}

// Run publishes one order per tick until ctx is done, retrying a 429, a 503
// or a network error a few times with back-off. It returns nil when ctx
// ends; an event the hub does not take is counted as failed and logged.
func (t *Traffic) Run(ctx context.Context) error {
	topic := t.Topic
	if topic == "" {
		topic = OrderType
	}
	rate := t.Rate
	if rate <= 0 {
		rate = 5
	}
	r, client, logger := t.Rand, t.Client, t.Logger
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	endpoint := strings.TrimRight(t.HubURL, "/") + "/v1/topics/" + url.PathEscape(topic) + "/events"

	ticker := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer ticker.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		ev := Order(r, n)
		if err := publish(ctx, client, endpoint, t.Key, &ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			t.failed.Add(1)
			logger.Warn("demo traffic: event not published", "topic", topic, "event", ev.ID, "error", err)
			continue
		}
		t.published.Add(1)
	}
}

// Published returns how many events the hub has accepted (202).
func (t *Traffic) Published() int64 { return t.published.Load() }

// Failed returns how many events Run gave up on.
func (t *Traffic) Failed() int64 { return t.failed.Load() }

// publish posts one event with the bearer key (if any), retrying what a
// real publisher would retry.
func publish(ctx context.Context, client *http.Client, endpoint, key string, ev *crossdock.Event) error {
	body, err := ev.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	wait := retryBase
	for attempt := 1; ; attempt++ {
		retryAfter, err := post(ctx, client, endpoint, key, body)
		if err == nil {
			return nil
		}
		if retryAfter < 0 || attempt == publishAttempts {
			return err
		}
		if retryAfter > 0 {
			wait = min(retryAfter, maxRetryAfter)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// post makes one attempt. On failure it returns how long the hub asked to
// wait (0 when it did not say) or -1 when a retry cannot help.
func post(ctx context.Context, client *http.Client, endpoint, key string, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return -1, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post event: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return 0, nil
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
		var wait time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return wait, fmt.Errorf("hub answered %s", resp.Status)
	default:
		return -1, fmt.Errorf("hub answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
}
