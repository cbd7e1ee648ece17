package nats

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Dead-letter layout and paging.
const (
	deadLetterStreamPrefix = "DLQ_"
	deadLetterSubject      = "cd.dlq." // + subscription + "." + id token
	DefaultDeadLetterPage  = 50
	MaxDeadLetterPage      = 500
	maxPlainIDLen          = 150 // longer ids are hashed into their subject token
)

// deadLetterRecord is the body of a message in a dead-letter stream.
type deadLetterRecord struct {
	Topic          string          `json:"topic"`
	Event          json.RawMessage `json:"event"` // structured CloudEvents JSON
	Reason         string          `json:"reason"`
	Description    string          `json:"description"`
	Attempts       int             `json:"attempts"`
	DeadLetteredAt time.Time       `json:"dead_lettered_at"`
}

// deadLetterStream is a subscription's dead-letter stream.
type deadLetterStream struct {
	sub    string
	prefix string // cd.dlq.<sub>.
	stream jetstream.Stream
}

func deadLetterStreamName(sub string) string { return deadLetterStreamPrefix + sub }

// idToken returns the subject token of an event id: its unpadded base64url
// form, or for a long id "h" and the hex SHA-256 of it. The two never meet:
// unpadded base64 is never 65 characters long.
func idToken(id string) string {
	if len(id) <= maxPlainIDLen {
		return base64.RawURLEncoding.EncodeToString([]byte(id))
	}
	sum := sha256.Sum256([]byte(id))
	return "h" + hex.EncodeToString(sum[:])
}

// ensureDeadLetterStream creates or updates the subscription's dead-letter
// stream. One message per subject (per event id): dead-lettering an event
// again replaces the older record.
func (b *Broker) ensureDeadLetterStream(ctx context.Context, sub crossdock.Subscription) (*deadLetterStream, error) {
	prefix := deadLetterSubject + sub.Name + "."
	s, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              deadLetterStreamName(sub.Name),
		Description:       "crossdock dead letters of subscription " + sub.Name,
		Subjects:          []string{prefix + "*"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          b.cfg.Replicas,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
		Metadata:          map[string]string{metaSubscription: sub.Name},
	})
	if err != nil {
		return nil, brokerError("ensure dead-letter stream of "+sub.Name, err)
	}
	return &deadLetterStream{sub: sub.Name, prefix: prefix, stream: s}, nil
}

// deadLetters returns the subscription's dead-letter stream, or nil when it
// has none yet.
func (b *Broker) deadLetters(ctx context.Context, sub string) (*deadLetterStream, error) {
	if !crossdock.ValidName(sub) {
		return nil, nil
	}
	s, err := b.js.Stream(ctx, deadLetterStreamName(sub))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, brokerError("look up dead-letter stream of "+sub, err)
	}
	return &deadLetterStream{sub: sub, prefix: deadLetterSubject + sub + ".", stream: s}, nil
}

// storeDeadLetter stores a record and waits for the broker to confirm it.
func (b *Broker) storeDeadLetter(ctx context.Context, dlq *deadLetterStream, id string, rec deadLetterRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode dead letter %s: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: dlq.prefix + idToken(id), Data: data}); err != nil {
		if isUnavailable(err) {
			return fmt.Errorf("dead-letter %s: %w", id, crossdock.Errorf(crossdock.EUNAVAILABLE,
				"the broker did not confirm storing the dead letter (%v); the message stays unsettled", err))
		}
		return fmt.Errorf("dead-letter %s: %w", id, err)
	}
	return nil
}

// decodeDeadLetter turns a stored record into a DeadLetter.
func decodeDeadLetter(sub string, m *jetstream.RawStreamMsg) (crossdock.DeadLetter, error) {
	var rec deadLetterRecord
	if err := json.Unmarshal(m.Data, &rec); err != nil {
		return crossdock.DeadLetter{}, fmt.Errorf("decode dead letter %d of %s: %w", m.Sequence, sub, err)
	}
	ev := new(crossdock.Event)
	if err := ev.UnmarshalJSON(rec.Event); err != nil {
		return crossdock.DeadLetter{}, fmt.Errorf("decode dead-lettered event %d of %s: %w", m.Sequence, sub, err)
	}
	return crossdock.DeadLetter{
		ID:             ev.ID,
		Subscription:   sub,
		Topic:          rec.Topic,
		Event:          ev,
		Reason:         rec.Reason,
		Description:    rec.Description,
		Attempts:       rec.Attempts,
		DeadLetteredAt: rec.DeadLetteredAt,
	}, nil
}

// next returns the first record at or after seq, or nil at the end.
func (d *deadLetterStream) next(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	m, err := d.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(d.prefix+"*"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, brokerError("read dead letters of "+d.sub, err)
	}
	return m, nil
}

// byID returns the record of the event id, or nil when there is none.
func (d *deadLetterStream) byID(ctx context.Context, id string) (*jetstream.RawStreamMsg, error) {
	m, err := d.stream.GetLastMsgForSubject(ctx, d.prefix+idToken(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, brokerError("read dead letter "+id+" of "+d.sub, err)
	}
	return m, nil
}

// DeadLetters returns up to limit dead letters of the subscription, oldest
// first, from cursor (a stream sequence; "" for the start), and the cursor
// of the next page ("" on the last). limit defaults to 50, at most 500.
// EINVALID for a bad cursor.
func (b *Broker) DeadLetters(ctx context.Context, sub crossdock.Subscription, cursor string, limit int) ([]crossdock.DeadLetter, string, error) {
	seq := uint64(1)
	if cursor != "" {
		n, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil || n == 0 {
			return nil, "", crossdock.Errorf(crossdock.EINVALID, "dead-letter cursor %q is invalid", cursor)
		}
		seq = n
	}
	if limit <= 0 {
		limit = DefaultDeadLetterPage
	}
	limit = min(limit, MaxDeadLetterPage)
	dlq, err := b.deadLetters(ctx, sub.Name)
	if err != nil || dlq == nil {
		return nil, "", err
	}
	var out []crossdock.DeadLetter
	for {
		m, err := dlq.next(ctx, seq)
		if err != nil {
			return nil, "", err
		}
		if m == nil {
			return out, "", nil
		}
		if len(out) == limit {
			return out, strconv.FormatUint(m.Sequence, 10), nil
		}
		seq = m.Sequence + 1
		dl, err := decodeDeadLetter(sub.Name, m)
		if err != nil {
			b.logger.Warn("skipping unreadable dead letter", "subscription", sub.Name, "sequence", m.Sequence, "error", err)
			continue
		}
		out = append(out, dl)
	}
}

// ResubmitDeadLetters publishes the dead letters with the ids (all of them
// when ids is empty) to the subscription alone, as new messages with a
// fresh attempt count, and removes them from the queue. Unknown ids are
// skipped. It returns how many it resubmitted; ENOTFOUND when the
// subscription's topic does not exist.
func (b *Broker) ResubmitDeadLetters(ctx context.Context, sub crossdock.Subscription, ids []string) (int, error) {
	ts, err := b.topic(ctx, sub.Topic)
	if err != nil {
		return 0, err
	}
	dlq, err := b.deadLetters(ctx, sub.Name)
	if err != nil || dlq == nil {
		return 0, err
	}
	subject := resubmitSubject + sub.Topic + "." + sub.Name
	n := 0
	if len(ids) > 0 {
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			m, err := dlq.byID(ctx, id)
			if err != nil {
				return n, err
			}
			if m == nil {
				continue
			}
			if err := b.resubmit(ctx, ts, dlq, subject, m); err != nil {
				return n, err
			}
			n++
		}
		return n, nil
	}
	// Stop at the last record present now, so that events dead-lettered
	// while this runs are left for the operator to see.
	info, err := dlq.stream.Info(ctx)
	if err != nil {
		return 0, brokerError("dead-letter stream info of "+sub.Name, err)
	}
	last := info.State.LastSeq
	for seq := uint64(1); seq <= last; {
		m, err := dlq.next(ctx, seq)
		if err != nil {
			return n, err
		}
		if m == nil || m.Sequence > last {
			break
		}
		seq = m.Sequence + 1
		if err := b.resubmit(ctx, ts, dlq, subject, m); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// resubmit publishes one dead-lettered event to the subscription's
// resubmit subject, then deletes the record. Its message id names the
// record (subscription, sequence, store time), so a retried resubmit is
// deduplicated and never meets the event id's own dedup entry.
func (b *Broker) resubmit(ctx context.Context, ts *topicStream, dlq *deadLetterStream, subject string, m *jetstream.RawStreamMsg) error {
	var rec deadLetterRecord
	if err := json.Unmarshal(m.Data, &rec); err != nil || len(rec.Event) == 0 {
		return fmt.Errorf("resubmit dead letter %d of %s: %w", m.Sequence, dlq.sub,
			crossdock.Errorf(crossdock.EINTERNAL, "dead letter %d of %s is unreadable", m.Sequence, dlq.sub))
	}
	msgID := "crossdock-resubmit/" + dlq.sub + "/" + strconv.FormatUint(m.Sequence, 10) + "/" + strconv.FormatInt(m.Time.UnixNano(), 10)
	pctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: subject, Data: rec.Event, Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}
	if _, err := b.js.PublishMsg(pctx, msg); err != nil {
		return b.publishError(ts, err)
	}
	// The record may be gone already: the resubmitted event can fail and
	// be dead-lettered again before this delete, replacing it.
	if _, err := dlq.delete(ctx, m.Sequence); err != nil {
		return err
	}
	return nil
}

// delete removes the record at seq. It reports false when there was none.
func (d *deadLetterStream) delete(ctx context.Context, seq uint64) (bool, error) {
	err := d.stream.DeleteMsg(ctx, seq)
	if err == nil {
		return true, nil
	}
	// The server answers a missing message with an error of its own, so
	// look whether the record is still there.
	if _, gerr := d.stream.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return false, brokerError(fmt.Sprintf("delete dead letter %d of %s", seq, d.sub), err)
}

// DeleteDeadLetter purges the subscription's dead letter of the event id.
// ENOTFOUND when there is none.
func (b *Broker) DeleteDeadLetter(ctx context.Context, sub crossdock.Subscription, id string) error {
	dlq, err := b.deadLetters(ctx, sub.Name)
	if err != nil {
		return err
	}
	notFound := crossdock.Errorf(crossdock.ENOTFOUND, "subscription %s has no dead letter %q", sub.Name, id)
	if dlq == nil || id == "" {
		return notFound
	}
	m, err := dlq.byID(ctx, id)
	if err != nil {
		return err
	}
	if m == nil {
		return notFound
	}
	deleted, err := dlq.delete(ctx, m.Sequence)
	if err != nil {
		return err
	}
	if !deleted {
		return notFound
	}
	return nil
}

// deadLetterCount returns how many dead letters the subscription has.
func (b *Broker) deadLetterCount(ctx context.Context, sub string) (uint64, error) {
	dlq, err := b.deadLetters(ctx, sub)
	if err != nil || dlq == nil {
		return 0, err
	}
	return dlq.stream.CachedInfo().State.Msgs, nil
}
