package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/crossdock/crossdock"
)

// bufferPool holds request-body buffers of the publish path.
var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps the rare huge body from pinning its buffer.
const maxPooledBuffer = 256 << 10

// putBuffer returns a request-body buffer to the pool.
func putBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		buf.Reset()
		bufferPool.Put(buf)
	}
}

// Shared header values, so the hot path does not allocate them; net/http
// never modifies a header's value slice.
var (
	headerJSON = []string{"application/json"}
)

// handlePublish stores the request's events on the topic and answers 202
// with where each was stored, only after the broker has stored them. Bad
// input is refused before the broker sees anything.
func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) error {
	topic := r.PathValue("topic")
	if !crossdock.ValidTopicName(topic) {
		return crossdock.Errorf(crossdock.ENOTFOUND, "topic %q does not exist: topic names are lower-case dot-separated segments such as sales.order.created", topic)
	}
	buf := bufferPool.Get().(*bytes.Buffer)
	defer putBuffer(buf)
	if err := readBody(w, r, buf, s.maxEventSize()); err != nil {
		return err
	}
	events, batch, err := ParseRequest(r.Header, buf.Bytes())
	if err != nil {
		return err
	}
	results, err := s.publish(r.Context(), topic, events)
	if err != nil {
		return err
	}

	// The body is parsed and no event refers to it: its buffer holds the
	// answer now.
	buf.Reset()
	out := buf.AvailableBuffer()
	if batch {
		out = append(out, '[')
		for i, res := range results {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendPublishResult(out, res)
		}
		out = append(out, ']')
	} else {
		out = appendPublishResult(out, results[0])
	}
	out = append(out, '\n')
	w.Header()["Content-Type"] = headerJSON
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(out) // the events are stored; a client gone now retries and gets duplicate:true
	return nil
}

// publish stores the events on the topic and journals each one that was
// not a duplicate. It returns one result per event, in order.
func (s *Server) publish(ctx context.Context, topic string, events []*crossdock.Event) ([]crossdock.PublishResult, error) {
	results, err := s.Broker.Publish(ctx, topic, events...)
	if err != nil {
		return nil, fmt.Errorf("publish to %s: %w", topic, err)
	}
	if len(results) != len(events) {
		return nil, fmt.Errorf("publish to %s: broker answered %d results for %d events", topic, len(results), len(events))
	}
	now := time.Now().UTC()
	for i := range results {
		res := &results[i]
		if res.Topic == "" {
			res.Topic = topic
		}
		if !res.Duplicate {
			s.Journeys.RecordPublication(crossdock.Publication{
				Topic:         topic,
				ID:            res.ID,
				Sequence:      res.Sequence,
				CorrelationID: events[i].CorrelationID(),
				PublishedAt:   now,
			})
		}
	}
	return results, nil
}

// appendPublishResult appends {"id","topic","sequence","duplicate"} as
// encoding/json would write a crossdock.PublishResult, without reflection.
func appendPublishResult(b []byte, r crossdock.PublishResult) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, r.ID)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, r.Topic)
	b = append(b, `,"sequence":`...)
	b = strconv.AppendUint(b, r.Sequence, 10)
	if r.Duplicate {
		return append(b, `,"duplicate":true}`...)
	}
	return append(b, `,"duplicate":false}`...)
}

func (s *Server) maxEventSize() int64 {
	if s.MaxEventSize <= 0 {
		return DefaultMaxEventSize
	}
	return s.MaxEventSize
}

// readBody reads the whole request body into buf, ETOOLARGE past limit
// bytes.
func readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer, limit int64) error {
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	if r.ContentLength > 0 {
		// ReadFrom wants MinRead bytes free even for the final, empty read.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge(limit)
		}
		return crossdock.Errorf(crossdock.EINVALID, "the request body could not be read: %v", err)
	}
	return nil
}

func tooLarge(limit int64) error {
	return crossdock.Errorf(crossdock.ETOOLARGE, "the request body is larger than the limit of %d bytes", limit)
}
