package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/crossdock/crossdock"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// MaxBatch is the most events one Publish call stores atomically: the
// server's default limit on an atomic batch.
const MaxBatch = 1000

// Atomic batch publish headers (nats-server 2.12+).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// JetStream API error codes the publish path acts on.
const (
	errCodeMsgTooLarge       = 10054
	errCodeBatchDuplicate    = 10201 // a message id of the batch is already stored, or repeated
	errCodeDuplicateInFlight = 10158 // a message id is being stored by another publish
	errCodeBatchIncomplete   = 10176
	errCodeBatchTooLarge     = 10199
	errCodeBatchTooMany      = 10210
)

// Publish stores the events on the topic and returns once the broker has
// stored each of them. A batch of several events is stored all or nothing.
// ENOTFOUND for an unknown topic, EINVALID for a bad event, ETOOLARGE for an
// event or batch over the broker's limits, EUNAVAILABLE when the broker did
// not confirm (the caller retries; the same ids are never stored twice).
func (b *Broker) Publish(ctx context.Context, topic string, events ...*crossdock.Event) ([]crossdock.PublishResult, error) {
	ts, err := b.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	if len(events) == 1 {
		data, err := encodeEvent(events[0])
		if err != nil {
			return nil, err
		}
		r, err := b.publishOne(ctx, ts, events[0].ID, data)
		if err != nil {
			return nil, err
		}
		return []crossdock.PublishResult{r}, nil
	}
	return b.publishBatch(ctx, ts, events)
}

// encodeEvent checks the event and returns its structured JSON.
func encodeEvent(ev *crossdock.Event) ([]byte, error) {
	if ev == nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "event is missing")
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	// MarshalJSON directly: json.Marshal would check and copy its output again.
	data, err := ev.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	return data, nil
}

// publishOne stores one encoded event with its id as the dedup key.
func (b *Broker) publishOne(ctx context.Context, ts *topicStream, id string, data []byte) (crossdock.PublishResult, error) {
	msg := &nats.Msg{
		Subject: ts.subject,
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
	}
	ack, err := b.js.PublishMsg(ctx, msg)
	if err != nil {
		return crossdock.PublishResult{}, b.publishError(ts, err)
	}
	return crossdock.PublishResult{ID: id, Topic: ts.topic.Name, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// publishBatch stores several events in one atomic batch. An id repeated
// within the batch is stored once; its later copies report Duplicate with
// the first one's sequence.
func (b *Broker) publishBatch(ctx context.Context, ts *topicStream, events []*crossdock.Event) ([]crossdock.PublishResult, error) {
	results := make([]crossdock.PublishResult, len(events))
	datas := make([][]byte, 0, len(events))
	unique := make([]int, 0, len(events)) // indexes of first occurrences
	firstOf := make(map[string]int, len(events))
	for i, ev := range events {
		data, err := encodeEvent(ev)
		if err != nil {
			return nil, fmt.Errorf("event %d of the batch: %w", i+1, err)
		}
		if _, seen := firstOf[ev.ID]; seen {
			continue
		}
		firstOf[ev.ID] = i
		unique = append(unique, i)
		datas = append(datas, data)
	}
	if len(unique) > MaxBatch {
		return nil, crossdock.Errorf(crossdock.ETOOLARGE, "a batch holds at most %d events, not %d", MaxBatch, len(unique))
	}

	var err error
	switch {
	case len(unique) == 1:
		results[0], err = b.publishOne(ctx, ts, events[0].ID, datas[0])
	default:
		err = b.publishAtomic(ctx, ts, events, unique, datas, results)
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeBatchIncomplete {
			// The server lost part of the batch (an overflowing ingest
			// queue); nothing was stored, so one more try is safe.
			err = b.publishAtomic(ctx, ts, events, unique, datas, results)
		}
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeBatchDuplicate || apiErr.ErrorCode == errCodeDuplicateInFlight) {
			// The server refuses a whole atomic batch when one of its ids is
			// already stored, and stores nothing. Storing the events one by
			// one lets each known id answer Duplicate with its sequence.
			err = b.publishEach(ctx, ts, events, unique, datas, results)
		}
	}
	if err != nil {
		return nil, b.publishError(ts, err)
	}
	for i, ev := range events {
		if first := firstOf[ev.ID]; first != i {
			results[i] = results[first]
			results[i].Duplicate = true
		}
	}
	return results, nil
}

// publishEach stores the events one at a time, in order.
func (b *Broker) publishEach(ctx context.Context, ts *topicStream, events []*crossdock.Event, unique []int, datas [][]byte, results []crossdock.PublishResult) error {
	for k, i := range unique {
		r, err := b.publishOne(ctx, ts, events[i].ID, datas[k])
		if err != nil {
			return err
		}
		results[i] = r
	}
	return nil
}

// batchAck is the server's answer to the commit of an atomic batch.
type batchAck struct {
	Stream string              `json:"stream"`
	Seq    uint64              `json:"seq"`
	Batch  string              `json:"batch"`
	Count  uint64              `json:"count"`
	Error  *jetstream.APIError `json:"error"`
}

// publishAtomic sends the events as one JetStream atomic batch: every
// message carries the batch id and its position, the last one commits and
// is the only one answered. The server stores all of them or none.
func (b *Broker) publishAtomic(ctx context.Context, ts *topicStream, events []*crossdock.Event, unique []int, datas [][]byte, results []crossdock.PublishResult) error {
	batchID := nuid.Next()
	n := len(unique)
	var reply *nats.Msg
	for k, i := range unique {
		msg := &nats.Msg{
			Subject: ts.subject,
			Data:    datas[k],
			Header: nats.Header{
				jetstream.MsgIDHeader: []string{events[i].ID},
				hdrBatchID:            []string{batchID},
				hdrBatchSeq:           []string{strconv.Itoa(k + 1)},
			},
		}
		if k < n-1 {
			if err := b.nc.PublishMsg(msg); err != nil {
				return fmt.Errorf("send batch message %d/%d: %w", k+1, n, err)
			}
			continue
		}
		msg.Header[hdrBatchCommit] = []string{"1"}
		var err error
		reply, err = b.nc.RequestMsgWithContext(ctx, msg)
		if errors.Is(err, nats.ErrNoResponders) {
			err = jetstream.ErrNoStreamResponse
		}
		if err != nil {
			return fmt.Errorf("commit batch of %d: %w", n, err)
		}
	}
	var ack batchAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return fmt.Errorf("decode batch ack: %w", err)
	}
	if ack.Error != nil {
		return fmt.Errorf("commit batch of %d: %w", n, ack.Error)
	}
	if ack.Count != uint64(n) || ack.Seq < ack.Count {
		return fmt.Errorf("commit batch of %d: the server acknowledged %d messages ending at %d", n, ack.Count, ack.Seq)
	}
	first := ack.Seq - ack.Count + 1
	for k, i := range unique {
		results[i] = crossdock.PublishResult{ID: events[i].ID, Topic: ts.topic.Name, Sequence: first + uint64(k)}
	}
	return nil
}

// publishError turns a publish failure into a domain error.
func (b *Broker) publishError(ts *topicStream, err error) error {
	step := "publish to " + ts.subject
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// The stream may have been deleted behind our back: look it up again
		// next time.
		b.forgetTopic(ts.topic.Name)
	}
	if isUnavailable(err) {
		return fmt.Errorf("%s: %w", step, crossdock.Errorf(crossdock.EUNAVAILABLE,
			"the broker did not confirm storing the events (%v): retry; a retry with the same ids is never stored twice", err))
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return fmt.Errorf("%s: %w", step, crossdock.Errorf(crossdock.ETOOLARGE, "the event is larger than the broker accepts"))
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.ErrorCode == errCodeMsgTooLarge:
			return fmt.Errorf("%s: %w", step, crossdock.Errorf(crossdock.ETOOLARGE, "the event is larger than the broker accepts"))
		case apiErr.ErrorCode == errCodeBatchTooLarge:
			return fmt.Errorf("%s: %w", step, crossdock.Errorf(crossdock.ETOOLARGE, "the batch is larger than the broker accepts: %s", apiErr.Description))
		case apiErr.ErrorCode == errCodeBatchTooMany || apiErr.ErrorCode == errCodeBatchIncomplete || apiErr.Code == 503:
			return fmt.Errorf("%s: %w", step, crossdock.Errorf(crossdock.EUNAVAILABLE,
				"the broker stored nothing (%s): retry", apiErr.Description))
		}
	}
	return fmt.Errorf("%s: %w", step, err)
}
