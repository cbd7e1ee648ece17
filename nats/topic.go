package nats

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream and subject layout.
const (
	topicStreamPrefix = "TOPIC_"
	topicSubject      = "cd.t." // + topic: published events
	resubmitSubject   = "cd.r." // + topic + "." + subscription: resubmitted dead letters
	metaTopic         = "crossdock.topic"
	metaSubscription  = "crossdock.subscription"
)

// topicStream is what the broker keeps in memory about a topic's stream so
// that publishing needs no lookup beyond a map read.
type topicStream struct {
	topic   crossdock.Topic
	subject string // cd.t.<topic>
	stream  jetstream.Stream
}

// streamName returns the name of the topic's stream. Topic names have no '_',
// so replacing the dots keeps names unique.
func streamName(topic string) string {
	return topicStreamPrefix + strings.ReplaceAll(topic, ".", "_")
}

func topicStreamConfig(t crossdock.Topic, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               streamName(t.Name),
		Description:        "crossdock topic " + t.Name,
		Subjects:           []string{topicSubject + t.Name, resubmitSubject + t.Name + ".*"},
		Retention:          jetstream.LimitsPolicy,
		Storage:            jetstream.FileStorage,
		Replicas:           replicas,
		MaxAge:             t.Retention,
		Duplicates:         t.DedupWindow,
		Discard:            jetstream.DiscardOld,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		Metadata:           map[string]string{metaTopic: t.Name},
	}
}

// topicFromStream returns the topic a stream holds, or false when the
// stream is not a crossdock topic stream.
func topicFromStream(info *jetstream.StreamInfo) (crossdock.Topic, bool) {
	name, ok := info.Config.Metadata[metaTopic]
	if !ok || streamName(name) != info.Config.Name {
		return crossdock.Topic{}, false
	}
	return crossdock.Topic{Name: name, DedupWindow: info.Config.Duplicates, Retention: info.Config.MaxAge}, true
}

// EnsureTopic creates the topic's stream or updates its settings. EINVALID
// for a bad topic, EUNAVAILABLE when the broker cannot be reached.
func (b *Broker) EnsureTopic(ctx context.Context, t crossdock.Topic) error {
	t = t.WithDefaults()
	if err := t.Validate(); err != nil {
		return err
	}
	if t.DedupWindow > t.Retention {
		return crossdock.Errorf(crossdock.EINVALID, "topic %s: dedup_window (%s) must not exceed retention (%s)", t.Name, t.DedupWindow, t.Retention)
	}
	s, err := b.js.CreateOrUpdateStream(ctx, topicStreamConfig(t, b.cfg.Replicas))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code == 400 {
			return fmt.Errorf("ensure topic %s: %w", t.Name, crossdock.Errorf(crossdock.EINVALID, "topic %s: the broker refused its settings: %s", t.Name, apiErr.Description))
		}
		return brokerError("ensure topic "+t.Name, err)
	}
	b.cacheTopic(t, s)
	return nil
}

func (b *Broker) cacheTopic(t crossdock.Topic, s jetstream.Stream) *topicStream {
	ts := &topicStream{topic: t, subject: topicSubject + t.Name, stream: s}
	b.mu.Lock()
	b.topics[t.Name] = ts
	b.mu.Unlock()
	return ts
}

// Topics returns every topic, sorted by name.
func (b *Broker) Topics(ctx context.Context) ([]crossdock.Topic, error) {
	lister := b.js.ListStreams(ctx, jetstream.WithStreamListSubject(topicSubject+">"))
	var topics []crossdock.Topic
	for info := range lister.Info() {
		if t, ok := topicFromStream(info); ok {
			topics = append(topics, t)
		}
	}
	if err := lister.Err(); err != nil {
		return nil, brokerError("list topic streams", err)
	}
	sort.Slice(topics, func(i, j int) bool { return topics[i].Name < topics[j].Name })
	return topics, nil
}

// Topic returns one topic; ENOTFOUND when it does not exist.
func (b *Broker) Topic(ctx context.Context, name string) (*crossdock.Topic, error) {
	ts, err := b.lookupTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	t := ts.topic
	return &t, nil
}

// topic returns the cached topic stream, asking the server on a miss so
// that topics created by another process are found. ENOTFOUND when there is
// no such topic.
func (b *Broker) topic(ctx context.Context, name string) (*topicStream, error) {
	b.mu.RLock()
	ts := b.topics[name]
	b.mu.RUnlock()
	if ts != nil {
		return ts, nil
	}
	return b.lookupTopic(ctx, name)
}

// lookupTopic asks the server for the topic's stream and caches it.
func (b *Broker) lookupTopic(ctx context.Context, name string) (*topicStream, error) {
	if !crossdock.ValidTopicName(name) {
		return nil, crossdock.Errorf(crossdock.ENOTFOUND, "topic %q does not exist", name)
	}
	s, err := b.js.Stream(ctx, streamName(name))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		b.forgetTopic(name)
		return nil, crossdock.Errorf(crossdock.ENOTFOUND, "topic %s does not exist", name)
	}
	if err != nil {
		return nil, brokerError("look up topic "+name, err)
	}
	t, ok := topicFromStream(s.CachedInfo())
	if !ok || t.Name != name {
		return nil, crossdock.Errorf(crossdock.ENOTFOUND, "topic %s does not exist (stream %s is not a crossdock topic)", name, streamName(name))
	}
	return b.cacheTopic(t, s), nil
}

func (b *Broker) forgetTopic(name string) {
	b.mu.Lock()
	delete(b.topics, name)
	b.mu.Unlock()
}

// Event returns the event stored at the sequence of the topic's stream and
// when it was stored. ENOTFOUND when it is gone or never existed.
func (b *Broker) Event(ctx context.Context, topic string, seq uint64) (*crossdock.Event, time.Time, error) {
	ts, err := b.topic(ctx, topic)
	if err != nil {
		return nil, time.Time{}, err
	}
	if seq == 0 {
		return nil, time.Time{}, crossdock.Errorf(crossdock.ENOTFOUND, "topic %s has no event at sequence 0", topic)
	}
	m, err := ts.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, time.Time{}, crossdock.Errorf(crossdock.ENOTFOUND, "topic %s has no event at sequence %d", topic, seq)
	}
	if err != nil {
		return nil, time.Time{}, brokerError(fmt.Sprintf("get event %s/%d", topic, seq), err)
	}
	ev := new(crossdock.Event)
	if err := ev.UnmarshalJSON(m.Data); err != nil {
		return nil, time.Time{}, fmt.Errorf("decode event %s/%d: %w", topic, seq, err)
	}
	return ev, m.Time, nil
}

// DeleteTopic deletes the topic's stream with every event on it, and the
// durable consumers of that stream. ENOTFOUND when the topic does not
// exist, EUNAVAILABLE when the broker cannot be reached.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if _, err := b.lookupTopic(ctx, name); err != nil {
		return err
	}
	err := b.js.DeleteStream(ctx, streamName(name))
	b.forgetTopic(name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return crossdock.Errorf(crossdock.ENOTFOUND, "topic %s does not exist", name)
	}
	if err != nil {
		return brokerError("delete topic "+name, err)
	}
	return nil
}
