package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/crossdock/crossdock"
)

// attemptRun is one message's way through a subscription's plan.
type attemptRun struct {
	d   *Dispatcher
	p   *plan
	m   crossdock.Message
	out crossdock.Outcome
}

// handle takes one message through filter, enrich, transform, send, reply
// and settlement.
func (d *Dispatcher) handle(ctx context.Context, p *plan, m crossdock.Message) {
	ev := m.Event()
	a := &attemptRun{d: d, p: p, m: m, out: crossdock.Outcome{
		Topic:        m.Topic(),
		EventID:      ev.ID,
		Sequence:     m.Sequence(),
		Subscription: p.sub.Name,
	}}

	ok, err := p.filter.Match(ev)
	if err != nil {
		a.deadLetter(ctx, nil, crossdock.ReasonFilterError, err.Error())
		return
	}
	if !ok {
		a.settle(ctx, crossdock.StatusFiltered, nil, a.m.Ack)
		return
	}

	if p.sub.Enrich != nil {
		if ev, ok = a.enrich(ctx, ev); !ok {
			return
		}
	}
	if p.transform != nil {
		body, err := p.transform.Apply(ctx, ev)
		switch {
		case ctx.Err() != nil:
			a.release()
			return
		case err != nil && crossdock.ErrorCode(err) == crossdock.EINVALID:
			a.deadLetter(ctx, nil, crossdock.ReasonTransformError, err.Error())
			return
		case err != nil:
			a.fail(ctx, nil, crossdock.ReasonTransformError, err.Error(), 0)
			return
		}
		ev = withData(ev, body)
	}

	dest, err := a.destination(ev)
	if err != nil {
		// The event's values cannot make a request: no retry changes that.
		a.deadLetter(ctx, nil, crossdock.ReasonRejected, err.Error())
		return
	}
	resp, err := d.Sender.Send(ctx, dest, ev)
	if err != nil {
		a.deadLetter(ctx, nil, crossdock.ReasonRejected, err.Error())
		return
	}
	if ctx.Err() != nil {
		// Shutting down: this attempt does not count against the event.
		a.release()
		return
	}
	attempt := attemptOf(resp, "")
	switch resp.Verdict {
	case crossdock.Delivered:
		if p.sub.Reply != nil {
			if err := a.reply(ctx, resp); err != nil {
				attempt.Error = "publish reply: " + crossdock.ErrorMessage(err)
				d.Logger.Warn("publish reply; retrying the delivery", "subscription", p.sub.Name, "event", a.out.EventID, "error", err)
				a.fail(ctx, attempt, crossdock.ReasonMaxDeliveryCountExceeded, attempt.Error, 0)
				return
			}
		}
		a.settle(ctx, crossdock.StatusDelivered, attempt, a.m.Ack)
	case crossdock.Rejected:
		a.deadLetter(ctx, attempt, crossdock.ReasonRejected, describe(resp))
	default:
		a.fail(ctx, attempt, crossdock.ReasonMaxDeliveryCountExceeded, describe(resp), resp.RetryAfter)
	}
}

// enrich replaces the event's data with the record's latest state. It
// returns false when it settled the message itself.
func (a *attemptRun) enrich(ctx context.Context, ev *crossdock.Event) (*crossdock.Event, bool) {
	e := a.p.sub.Enrich
	url, err := a.p.enrichURL.Expand(ev)
	if err != nil {
		a.deadLetter(ctx, nil, crossdock.ReasonEnrichmentFailed, "enrich: "+err.Error())
		return nil, false
	}
	headers, err := expandAll(a.p.enrichHeaders, ev)
	if err != nil {
		a.deadLetter(ctx, nil, crossdock.ReasonEnrichmentFailed, "enrich: "+err.Error())
		return nil, false
	}
	if tp := ev.Extension(crossdock.ExtTraceParent); tp != "" {
		// The fetch joins the event's trace.
		if headers == nil {
			headers = make(map[string]string, 1)
		}
		headers["traceparent"] = tp
	}
	resp, err := a.d.Fetcher.Fetch(ctx, url, headers, e.Timeout)
	if err != nil {
		a.deadLetter(ctx, nil, crossdock.ReasonEnrichmentFailed, "enrich: "+err.Error())
		return nil, false
	}
	if ctx.Err() != nil {
		a.release()
		return nil, false
	}
	attempt := attemptOf(resp, "enrich: ")
	switch {
	case resp.Verdict == crossdock.Delivered:
		return withData(ev, resp.Body), true
	case resp.StatusCode == 404 && e.OnNotFound == crossdock.OnNotFoundSkip:
		a.settle(ctx, crossdock.StatusSkipped, attempt, a.m.Ack)
	case resp.StatusCode == 404:
		a.deadLetter(ctx, attempt, crossdock.ReasonSourceNotFound, "enrich: the source answered 404: the record does not exist")
	default:
		// Every other failure of the source is retried, rejections too: the
		// source, not the event, is at fault.
		a.fail(ctx, attempt, crossdock.ReasonEnrichmentFailed, "enrich: "+describe(resp), resp.RetryAfter)
	}
	return nil, false
}

// destination expands the destination for the event.
func (a *attemptRun) destination(ev *crossdock.Event) (crossdock.Destination, error) {
	d := a.p.sub.Destination
	url, err := a.p.url.Expand(ev)
	if err != nil {
		return d, fmt.Errorf("destination url: %w", err)
	}
	headers, err := expandAll(a.p.headers, ev)
	if err != nil {
		return d, fmt.Errorf("destination: %w", err)
	}
	d.URL, d.Headers, d.Secret = url, headers, a.p.secret
	return d, nil
}

// reply publishes the destination's answer to the reply topic. Its id is
// derived from the event's, so publishing it again after a crash is a
// duplicate the broker drops.
func (a *attemptRun) reply(ctx context.Context, resp crossdock.Response) error {
	ev := a.m.Event()
	response := json.RawMessage("null")
	if len(resp.Body) > 0 && json.Valid(resp.Body) {
		response = resp.Body
	}
	data, err := json.Marshal(struct {
		Status    int             `json:"status"`
		Response  json.RawMessage `json:"response"`
		RequestID string          `json:"request_id"`
	}{resp.StatusCode, response, ev.ID})
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	r := &crossdock.Event{
		ID:              ReplyID(a.p.sub.Name, ev.ID),
		Source:          "crossdock/subscriptions/" + a.p.sub.Name,
		SpecVersion:     crossdock.SpecVersion,
		Type:            ev.Type + ".reply",
		Subject:         ev.Subject,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            data,
	}
	r.SetExtension(crossdock.ExtCorrelationID, ev.CorrelationID())
	if tp := ev.Extension(crossdock.ExtTraceParent); tp != "" {
		r.SetExtension(crossdock.ExtTraceParent, tp)
	}
	if pk := ev.Extension(crossdock.ExtPartitionKey); pk != "" {
		r.SetExtension(crossdock.ExtPartitionKey, pk)
	}
	sctx, cancel := settleContext(ctx)
	defer cancel()
	topic := a.p.sub.Reply.Topic
	res, err := a.d.Broker.Publish(sctx, topic, r)
	if err != nil {
		return err
	}
	if len(res) == 1 && !res[0].Duplicate {
		a.d.Journeys.RecordPublication(crossdock.Publication{
			Topic: topic, ID: r.ID, Sequence: res[0].Sequence,
			CorrelationID: r.CorrelationID(), PublishedAt: r.Time,
		})
	}
	return nil
}

// ReplyID is the id of the reply to an event delivered by a subscription.
func ReplyID(subscription, eventID string) string {
	return eventID + "/reply/" + subscription
}

// fail retries the message after its back-off, or dead-letters it with
// reason when it has had all its attempts.
func (a *attemptRun) fail(ctx context.Context, attempt *crossdock.Attempt, reason, description string, retryAfter time.Duration) {
	n := a.m.Attempt()
	retry := a.p.sub.Retry
	if n >= retry.MaxAttempts {
		a.deadLetter(ctx, attempt, reason, "gave up after "+strconv.Itoa(n)+" attempts; last: "+description)
		return
	}
	delay := max(retry.Backoff(n, a.d.Rand()), retryAfter)
	a.settle(ctx, crossdock.StatusRetrying, attempt, func(ctx context.Context) error { return a.m.Retry(ctx, delay) })
}

// settle records the outcome and applies the settlement. A failed
// settlement leaves the message to the broker's redelivery: at least once.
func (a *attemptRun) settle(ctx context.Context, status crossdock.DeliveryStatus, attempt *crossdock.Attempt, apply func(context.Context) error) {
	sctx, cancel := settleContext(ctx)
	defer cancel()
	if err := apply(sctx); err != nil {
		a.d.Logger.Warn("settle delivery", "subscription", a.p.sub.Name, "event", a.out.EventID, "status", status, "error", err)
	}
	a.record(status, attempt)
}

func (a *attemptRun) record(status crossdock.DeliveryStatus, attempt *crossdock.Attempt) {
	out := a.out
	out.Status, out.Attempt = status, attempt
	a.d.Journeys.RecordOutcome(out)
}

// deadLetter moves the message to the subscription's dead-letter queue.
// When the queue cannot take it, the message is retried later instead, so
// it is never dropped.
func (a *attemptRun) deadLetter(ctx context.Context, attempt *crossdock.Attempt, reason, description string) {
	sctx, cancel := settleContext(ctx)
	defer cancel()
	name := a.p.sub.Name
	if err := a.m.DeadLetter(sctx, reason, description); err != nil {
		delay := a.p.sub.Retry.Backoff(a.m.Attempt(), a.d.Rand())
		a.d.Logger.Error("dead-letter delivery; retrying later", "subscription", name, "event", a.out.EventID, "reason", reason, "error", err)
		if rerr := a.m.Retry(sctx, delay); rerr != nil && !errors.Is(rerr, context.Canceled) {
			a.d.Logger.Warn("retry after failed dead-letter", "subscription", name, "event", a.out.EventID, "error", rerr)
		}
		a.record(crossdock.StatusRetrying, attempt)
		return
	}
	a.record(crossdock.StatusDeadLettered, attempt)
	a.d.Logger.Info("dead-lettered", "subscription", name, "event", a.out.EventID, "correlationid", a.m.Event().CorrelationID(), "reason", reason)
}

// release hands a message back when the dispatcher stops mid-attempt.
func (a *attemptRun) release() {
	ctx, cancel := settleContext(context.Background())
	defer cancel()
	if err := a.m.Release(ctx); err != nil {
		a.d.Logger.Warn("release delivery", "subscription", a.p.sub.Name, "event", a.out.EventID, "error", err)
	}
}

// attemptOf records an HTTP exchange as an attempt.
func attemptOf(resp crossdock.Response, prefix string) *crossdock.Attempt {
	at := &crossdock.Attempt{
		At:         time.Now().Add(-resp.Duration),
		StatusCode: resp.StatusCode,
		DurationMS: resp.Duration.Milliseconds(),
	}
	if resp.Err != nil {
		at.Error = prefix + resp.Err.Error()
	}
	return at
}

// describe says in one line why an exchange failed, for a dead letter.
func describe(resp crossdock.Response) string {
	if resp.Err != nil {
		return resp.Err.Error()
	}
	return fmt.Sprintf("HTTP %d", resp.StatusCode)
}

// withData returns a copy of the event carrying JSON data.
func withData(ev *crossdock.Event, data []byte) *crossdock.Event {
	c := *ev
	c.Data = data
	c.DataContentType = "application/json"
	return &c
}

// settleContext gives settlement its own short deadline: the outcome of an
// attempt that completed must reach the broker even when the handler's
// context is being cancelled for shutdown.
func settleContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}
