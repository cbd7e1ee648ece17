package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/nats-io/nats.go/jetstream"
)

// Consumer settings derived from a subscription.
const (
	minAckWait       = 30 * time.Second
	minMaxAckPending = 1000
	minPrefetch      = 8
)

// consumerConfig returns the durable pull consumer of a subscription. The
// dispatcher counts attempts, so the broker redelivers without limit.
func consumerConfig(sub crossdock.Subscription) jetstream.ConsumerConfig {
	ackWait := max(minAckWait, 2*sub.Destination.Timeout+5*time.Second)
	return jetstream.ConsumerConfig{
		Durable:        sub.Name,
		Description:    "crossdock subscription " + sub.Name,
		FilterSubjects: []string{topicSubject + sub.Topic, resubmitSubject + sub.Topic + "." + sub.Name},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		MaxDeliver:     -1,
		MaxAckPending:  max(minMaxAckPending, 4*sub.MaxInFlight),
		Metadata:       map[string]string{metaSubscription: sub.Name, metaTopic: sub.Topic},
	}
}

// Consume starts handing the subscription's messages to h from at most
// sub.MaxInFlight goroutines, creating the durable consumer and the
// dead-letter stream if they do not exist and updating them if they do.
// ctx bounds the setup only; the consumer runs until Stop. ENOTFOUND when
// the topic does not exist, EINVALID for a bad subscription name.
func (b *Broker) Consume(ctx context.Context, sub crossdock.Subscription, h crossdock.Handler) (crossdock.Consumer, error) {
	sub = sub.WithDefaults()
	if !crossdock.ValidName(sub.Name) {
		return nil, crossdock.Errorf(crossdock.EINVALID, "subscription name %q is invalid", sub.Name)
	}
	if sub.MaxInFlight < 1 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "subscription %s: max_in_flight must be at least 1", sub.Name)
	}
	if h == nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "subscription %s: no handler", sub.Name)
	}
	ts, err := b.topic(ctx, sub.Topic)
	if err != nil {
		return nil, err
	}
	dlq, err := b.ensureDeadLetterStream(ctx, sub)
	if err != nil {
		return nil, err
	}
	cfg := consumerConfig(sub)
	jc, err := b.js.CreateOrUpdateConsumer(ctx, streamName(ts.topic.Name), cfg)
	if err != nil {
		return nil, brokerError("create consumer "+sub.Name, err)
	}
	prefetch := min(max(2*sub.MaxInFlight, minPrefetch), cfg.MaxAckPending)
	it, err := jc.Messages(jetstream.PullMaxMessages(prefetch))
	if err != nil {
		return nil, brokerError("start consumer "+sub.Name, err)
	}
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &consumer{
		b:        b,
		sub:      sub,
		dlq:      dlq,
		h:        h,
		it:       it,
		work:     make(chan jetstream.Msg),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
		hctx:     hctx,
		hcancel:  hcancel,
	}
	b.cmu.Lock()
	b.consumers[c] = struct{}{}
	b.cmu.Unlock()

	c.wg.Add(1 + sub.MaxInFlight)
	go c.feed()
	for range sub.MaxInFlight {
		go c.work1()
	}
	go func() {
		c.wg.Wait()
		hcancel()
		b.cmu.Lock()
		delete(b.consumers, c)
		b.cmu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// consumer runs one subscription: a feeder goroutine reads the pull
// iterator and hands messages to a fixed pool of workers.
type consumer struct {
	b        *Broker
	sub      crossdock.Subscription
	dlq      *deadLetterStream
	h        crossdock.Handler
	it       jetstream.MessagesContext
	work     chan jetstream.Msg
	stopping chan struct{} // closed by Stop
	stopOnce sync.Once
	done     chan struct{} // closed when the feeder and every worker returned
	wg       sync.WaitGroup
	hctx     context.Context
	hcancel  context.CancelFunc
}

var _ crossdock.Consumer = (*consumer)(nil)

// Stop stops fetching, releases the messages fetched but not handed out,
// and waits for handlers under way. When ctx ends first it cancels the
// handlers' context, waits for them and returns ctx's error.
func (c *consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		close(c.stopping)
		// Drain rather than Stop: the messages already on their way are
		// still read, so the feeder can release them at once instead of
		// leaving them to the ack wait.
		c.it.Drain()
	})
	select {
	case <-c.done:
	case <-ctx.Done():
		c.hcancel()
		<-c.done
		return fmt.Errorf("stop consumer %s: %w", c.sub.Name, ctx.Err())
	}
	// Acks and releases are sent without waiting for an answer; the flush
	// makes sure the server has them.
	if err := c.b.flush(ctx); err != nil && !errors.Is(err, context.Canceled) && !isUnavailable(err) {
		return fmt.Errorf("stop consumer %s: flush: %w", c.sub.Name, err)
	}
	return nil
}

// feed reads the iterator until it closes and hands each message to a
// worker; once stopping, it releases what is still buffered.
func (c *consumer) feed() {
	defer c.wg.Done()
	defer close(c.work)
	for {
		m, err := c.it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				select {
				case <-c.stopping:
				default:
					c.b.logger.Error("subscription consumer ended", "subscription", c.sub.Name, "error", err)
				}
				return
			}
			c.b.logger.Warn("subscription consumer", "subscription", c.sub.Name, "error", err)
			continue
		}
		select {
		case <-c.stopping:
			c.release(m)
			continue
		default:
		}
		select {
		case c.work <- m:
		case <-c.stopping:
			c.release(m)
		}
	}
}

func (c *consumer) release(m jetstream.Msg) {
	if err := m.NakWithDelay(releaseDelay); err != nil {
		c.b.logger.Warn("release message on stop", "subscription", c.sub.Name, "error", err)
	}
}

// work1 is one worker of the pool.
func (c *consumer) work1() {
	defer c.wg.Done()
	for m := range c.work {
		// The feeder may hand out a message just as Stop begins.
		select {
		case <-c.stopping:
			c.release(m)
			continue
		default:
		}
		c.handle(m)
	}
}

// handle decodes one message, calls the handler and releases the message
// if the handler left it unsettled.
func (c *consumer) handle(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		c.b.logger.Error("message without JetStream metadata", "subscription", c.sub.Name, "subject", m.Subject(), "error", err)
		_ = m.Term()
		return
	}
	ev := new(crossdock.Event)
	if err := ev.UnmarshalJSON(m.Data()); err != nil {
		// Only a publisher bypassing crossdock can store this; no retry
		// will make it readable.
		c.b.logger.Error("undecodable event dropped", "subscription", c.sub.Name, "topic", c.sub.Topic,
			"sequence", md.Sequence.Stream, "error", err)
		_ = m.TermWithReason("undecodable event")
		return
	}
	msg := &message{c: c, m: m, ev: ev, md: md}
	c.h(c.hctx, msg)
	if !msg.settled.Load() {
		c.b.logger.Warn("handler returned without settling; releasing", "subscription", c.sub.Name, "event", ev.ID)
		_ = m.NakWithDelay(releaseDelay)
	}
}

// message is a crossdock.Message backed by a JetStream message.
type message struct {
	c       *consumer
	m       jetstream.Msg
	ev      *crossdock.Event
	md      *jetstream.MsgMetadata
	settled atomic.Bool
}

var _ crossdock.Message = (*message)(nil)

// Event returns the decoded event.
func (m *message) Event() *crossdock.Event { return m.ev }

// Topic returns the subscription's topic.
func (m *message) Topic() string { return m.c.sub.Topic }

// Sequence returns the message's sequence in the topic's stream.
func (m *message) Sequence() uint64 { return m.md.Sequence.Stream }

// PublishedAt returns when the broker stored the message.
func (m *message) PublishedAt() time.Time { return m.md.Timestamp }

// Attempt returns the broker's delivery count of this message.
func (m *message) Attempt() int { return int(m.md.NumDelivered) }

// Ack settles the message as done.
func (m *message) Ack(ctx context.Context) error {
	m.settled.Store(true)
	if err := m.m.Ack(); err != nil {
		return brokerError("ack "+m.ev.ID, err)
	}
	return nil
}

// Retry asks the broker to redeliver the message after delay.
func (m *message) Retry(ctx context.Context, delay time.Duration) error {
	m.settled.Store(true)
	if err := m.m.NakWithDelay(max(delay, releaseDelay)); err != nil {
		return brokerError("retry "+m.ev.ID, err)
	}
	return nil
}

// releaseDelay is the delay of a release. A plain Nak only queues the
// message for redelivery in the server's memory: when the server stops
// before that happens, the message waits out the whole ack wait after a
// restart. A Nak with a delay, however short, also records the new
// redelivery time in the consumer's stored state.
const releaseDelay = time.Millisecond

// Release asks the broker to redeliver the message at once.
func (m *message) Release(ctx context.Context) error {
	m.settled.Store(true)
	if err := m.m.NakWithDelay(releaseDelay); err != nil {
		return brokerError("release "+m.ev.ID, err)
	}
	return nil
}

// DeadLetter stores the message in the subscription's dead-letter stream,
// waits for the broker to confirm, and only then acks it: a crash between
// the two leaves a redelivery, never a loss.
func (m *message) DeadLetter(ctx context.Context, reason, description string) error {
	rec := deadLetterRecord{
		Topic:          m.c.sub.Topic,
		Event:          m.m.Data(),
		Reason:         reason,
		Description:    description,
		Attempts:       m.Attempt(),
		DeadLetteredAt: time.Now().UTC(),
	}
	if err := m.c.b.storeDeadLetter(ctx, m.c.dlq, m.ev.ID, rec); err != nil {
		return err
	}
	m.settled.Store(true)
	if err := m.m.Ack(); err != nil {
		return brokerError("ack dead-lettered "+m.ev.ID, err)
	}
	return nil
}

// Stats returns the subscription's backlog, messages in flight (waiting
// retries included) and dead letters. ENOTFOUND when it has no consumer.
func (b *Broker) Stats(ctx context.Context, sub crossdock.Subscription) (crossdock.SubscriptionStats, error) {
	var st crossdock.SubscriptionStats
	if !crossdock.ValidName(sub.Name) || !crossdock.ValidTopicName(sub.Topic) {
		return st, crossdock.Errorf(crossdock.ENOTFOUND, "subscription %q has no consumer", sub.Name)
	}
	jc, err := b.js.Consumer(ctx, streamName(sub.Topic), sub.Name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return st, crossdock.Errorf(crossdock.ENOTFOUND, "subscription %s has no consumer on topic %s", sub.Name, sub.Topic)
	}
	if err != nil {
		return st, brokerError("consumer info "+sub.Name, err)
	}
	info := jc.CachedInfo()
	st.Backlog = info.NumPending
	st.InFlight = info.NumAckPending
	n, err := b.deadLetterCount(ctx, sub.Name)
	if err != nil {
		return st, err
	}
	st.DeadLetters = n
	return st, nil
}
