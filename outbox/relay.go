package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/crossdock/crossdock"
	"github.com/jackc/pgx/v5/stdlib"
)

// Defaults and bounds for a Relay.
const (
	DefaultBatchSize      = 100
	MaxBatchSize          = 1000
	DefaultPollInterval   = time.Second
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 5 * time.Minute
	DefaultPublishTimeout = 10 * time.Second
)

// maxLastError bounds the text kept in last_error.
const maxLastError = 2000

// Relay publishes the rows of an outbox table in id order and deletes each
// once the Publisher has stored its event. A row whose publication failed
// gets attempts, last_error and next_attempt_at, and is tried again after
// an exponential back-off; a row the hub refuses for good (a bad event, an
// unknown topic) waits BackoffMax between tries until an operator fixes or
// deletes it. On PostgreSQL the relay wakes on the table's notifications
// as well as every PollInterval.
type Relay struct {
	// DB is the database that holds the outbox table.
	DB *sql.DB

	// Dialect is DB's SQL dialect; empty detects it from the driver (see
	// DialectOf).
	Dialect Dialect

	// Publisher stores the events: the hub's API (package http's Client)
	// or a broker.
	Publisher crossdock.Publisher

	// BatchSize is the most rows claimed and published at once, at most
	// MaxBatchSize.
	BatchSize int

	// PollInterval is the longest the relay sleeps when no row is due.
	PollInterval time.Duration

	// BackoffInitial is the wait after a row's first failure; each further
	// failure doubles it (with jitter), up to BackoffMax.
	BackoffInitial time.Duration
	BackoffMax     time.Duration

	// PublishTimeout bounds the publishing of one batch, and then the
	// recording of its outcome. On SQLite a claimed row is kept from other
	// relays for twice as long plus five seconds.
	PublishTimeout time.Duration

	// Logger receives failures at warn and error and progress at debug.
	Logger *slog.Logger
}

// NewRelay returns a Relay of the outbox in db that publishes with p, with
// default settings and a logger that discards.
func NewRelay(db *sql.DB, p crossdock.Publisher) *Relay {
	return &Relay{
		DB:             db,
		Publisher:      p,
		BatchSize:      DefaultBatchSize,
		PollInterval:   DefaultPollInterval,
		BackoffInitial: DefaultBackoffInitial,
		BackoffMax:     DefaultBackoffMax,
		PublishTimeout: DefaultPublishTimeout,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

// check returns EINVALID for a field that cannot work and the dialect to
// use.
func (r *Relay) check() (Dialect, error) {
	switch {
	case r.DB == nil:
		return "", crossdock.Errorf(crossdock.EINVALID, "outbox relay: DB is not set")
	case r.Publisher == nil:
		return "", crossdock.Errorf(crossdock.EINVALID, "outbox relay: Publisher is not set")
	case r.BatchSize < 1 || r.BatchSize > MaxBatchSize:
		return "", crossdock.Errorf(crossdock.EINVALID, "outbox relay: batch size must be between 1 and %d, not %d", MaxBatchSize, r.BatchSize)
	case r.PollInterval <= 0 || r.BackoffInitial <= 0 || r.PublishTimeout <= 0:
		return "", crossdock.Errorf(crossdock.EINVALID, "outbox relay: poll interval, initial back-off and publish timeout must be positive")
	case r.BackoffMax < r.BackoffInitial:
		return "", crossdock.Errorf(crossdock.EINVALID, "outbox relay: the maximum back-off must not be less than the initial one")
	}
	if r.Dialect == "" {
		return DialectOf(r.DB)
	}
	if _, err := Schema(r.Dialect); err != nil {
		return "", err
	}
	return r.Dialect, nil
}

func (r *Relay) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// Run relays rows until ctx ends, then finishes the batch under way
// (bounded by PublishTimeout) so that nothing stays claimed, and returns
// nil. It returns EINVALID for a Relay that cannot work and ENOTFOUND when
// the outbox table does not exist. Database and publish failures are
// logged and retried, never returned.
func (r *Relay) Run(ctx context.Context) error {
	dialect, err := r.check()
	if err != nil {
		return err
	}
	st := &store{db: r.DB, dialect: dialect, lease: 2*r.PublishTimeout + 5*time.Second}
	log := r.logger()
	if err := r.waitForTable(ctx, dialect); err != nil {
		return err
	}

	wake := make(chan struct{}, 1)
	lctx, stopListening := context.WithCancel(ctx)
	listening := make(chan struct{})
	if dialect == PostgreSQL {
		go func() {
			defer close(listening)
			r.listen(lctx, wake)
		}()
	} else {
		close(listening)
	}
	defer func() {
		stopListening()
		<-listening
	}()

	log.Info("outbox relay started", "dialect", dialect, "batch", r.BatchSize, "poll", r.PollInterval)
	failures := 0
	for ctx.Err() == nil {
		res, err := r.relayBatch(ctx, st)
		var wait time.Duration
		switch {
		case err != nil && ctx.Err() != nil:
			continue // stopping: the claim was cut short, nothing was published
		case err != nil:
			failures++
			wait = r.backoff(failures)
			log.Warn("outbox relay: database failure; trying again", "error", err, "retry_in", wait)
		case res.published > 0, res.claimed == r.BatchSize && !res.unavailable:
			failures = 0
			continue // more may be due at once
		default:
			failures = 0
			wait = r.PollInterval
			d, ok, err := st.nextDue(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("outbox relay: database failure", "error", err)
			}
			if ok && d < wait {
				wait = d + time.Millisecond // the table's clock counts milliseconds
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
	log.Info("outbox relay stopped")
	return nil
}

// waitForTable returns once the outbox table is there, ENOTFOUND when it
// is not, and nil when ctx ends while the database cannot be reached.
func (r *Relay) waitForTable(ctx context.Context, d Dialect) error {
	for n := 1; ; n++ {
		err := checkTable(ctx, r.DB, d)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil, errors.Is(err, errNoTable):
			return err
		}
		wait := r.backoff(n)
		r.logger().Warn("outbox relay: the database cannot be read; trying again", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// backoff returns the wait after the n-th failure in a row.
func (r *Relay) backoff(n int) time.Duration {
	p := crossdock.RetryPolicy{InitialInterval: r.BackoffInitial, Multiplier: 2, MaxInterval: r.BackoffMax}
	return p.Backoff(n, rand.Float64())
}

// batchResult counts what one batch did.
type batchResult struct {
	claimed, published int

	// unavailable says a publish failed in a way that may pass later, so
	// the hub is probably down: the relay waits instead of trying more.
	unavailable bool
}

// relayBatch claims a batch, publishes it and settles it. The publishing
// and settling go on when ctx ends, so a stopping relay leaves no claim.
func (r *Relay) relayBatch(ctx context.Context, st *store) (batchResult, error) {
	c, err := st.claim(ctx, r.BatchSize)
	if err != nil {
		return batchResult{}, err
	}
	if len(c.rows) == 0 {
		return batchResult{}, st.release(ctx, c)
	}
	// Publishing a batch and settling it take at most PublishTimeout each,
	// well within an SQLite claim's lease.
	wctx := context.WithoutCancel(ctx)
	pctx, cancel := context.WithTimeout(wctx, r.PublishTimeout)
	o := r.publish(pctx, c.rows)
	cancel()
	sctx, cancel := context.WithTimeout(wctx, r.PublishTimeout)
	defer cancel()
	if err := st.settle(sctx, c, o.published, o.skipped, o.failures); err != nil {
		return batchResult{}, err
	}
	return batchResult{claimed: len(c.rows), published: len(o.published), unavailable: o.unavailable}, nil
}

// item is a claimed row with its decoded event.
type item struct {
	row
	ev *crossdock.Event
}

// partition names the rows that keep their order: one topic, one
// non-empty partition key.
type partition struct{ topic, key string }

// outcome is what publishing a batch's rows came to.
type outcome struct {
	published   []int64
	skipped     []int64
	failures    []failure
	unavailable bool

	// blocked holds the partitions in which a row failed: their later rows
	// in the batch are skipped.
	blocked map[partition]bool
}

// block records that rows of the item's partition must wait.
func (o *outcome) block(it item) {
	if it.key != "" {
		o.blocked[partition{it.topic, it.key}] = true
	}
}

func (o *outcome) isBlocked(it item) bool {
	return it.key != "" && o.blocked[partition{it.topic, it.key}]
}

// publish publishes the rows, grouped by topic in id order, one publish
// call per topic. A group the hub refuses as a whole for something one
// event may have caused is published again one event at a time, so only the
// bad events wait. Rows behind a failed row of their partition are skipped.
func (r *Relay) publish(ctx context.Context, rows []row) outcome {
	o := outcome{blocked: make(map[partition]bool)}
	var topics []string
	groups := make(map[string][]item)
	for _, rw := range rows {
		it := item{row: rw}
		if o.isBlocked(it) {
			o.skipped = append(o.skipped, it.id)
			continue
		}
		ev, err := decode(rw)
		it.ev = ev
		if err != nil {
			r.fail(&o, []item{it}, err)
			continue
		}
		if _, ok := groups[rw.topic]; !ok {
			topics = append(topics, rw.topic)
		}
		groups[rw.topic] = append(groups[rw.topic], it)
	}
	for _, topic := range topics {
		group := groups[topic]
		err := r.publishGroup(ctx, &o, topic, group)
		if err == nil {
			continue
		}
		// An unknown topic is the whole group's fault.
		if len(group) > 1 && refusedEvent(err) && crossdock.ErrorCode(err) != crossdock.ENOTFOUND {
			for _, it := range group {
				if o.isBlocked(it) {
					o.skipped = append(o.skipped, it.id)
					continue
				}
				if err := r.publishGroup(ctx, &o, topic, []item{it}); err != nil {
					r.fail(&o, []item{it}, err)
				}
			}
			continue
		}
		r.fail(&o, group, err)
	}
	return o
}

// decode returns a row's event, EINVALID when the row cannot be published
// as it is; the event then is what could be read, for the log.
func decode(rw row) (*crossdock.Event, error) {
	ev := new(crossdock.Event)
	if err := ev.UnmarshalJSON(rw.event); err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "the event column is not a valid structured CloudEvent: %s", crossdock.ErrorMessage(err))
	}
	if err := ev.Validate(); err != nil {
		return ev, crossdock.Errorf(crossdock.EINVALID, "the event column is not a valid structured CloudEvent: %s", crossdock.ErrorMessage(err))
	}
	if !crossdock.ValidTopicName(rw.topic) {
		return ev, crossdock.Errorf(crossdock.EINVALID, "topic %q is not a valid topic name", rw.topic)
	}
	return ev, nil
}

// publishGroup publishes the items of one topic in one call and records
// them as published, or returns the error.
func (r *Relay) publishGroup(ctx context.Context, o *outcome, topic string, group []item) error {
	events := make([]*crossdock.Event, len(group))
	for i, it := range group {
		events[i] = it.ev
	}
	results, err := r.Publisher.Publish(ctx, topic, events...)
	if err != nil {
		return err
	}
	if len(results) != len(events) {
		return fmt.Errorf("publish to %s: %d results for %d events", topic, len(results), len(events))
	}
	dups := 0
	for i, it := range group {
		o.published = append(o.published, it.id)
		if results[i].Duplicate {
			dups++
		}
	}
	r.logger().Debug("outbox relay: published", "topic", topic, "rows", len(group), "duplicates", dups)
	return nil
}

// fail records the error on the items: an error that may pass later backs
// off by the row's attempts, a refusal of the event backs off the most.
func (r *Relay) fail(o *outcome, items []item, err error) {
	code := crossdock.ErrorCode(err)
	msg := lastError(code, err)
	log := r.logger()
	if !refusedEvent(err) {
		o.unavailable = true
		for _, it := range items {
			o.failures = append(o.failures, failure{id: it.id, lastError: msg, delay: r.backoff(it.attempts + 1)})
			o.block(it)
		}
		log.Warn("outbox relay: publish failed; the rows wait and are tried again",
			"topic", items[0].topic, "rows", len(items), "error", err, "retry_in", o.failures[len(o.failures)-1].delay)
		return
	}
	for _, it := range items {
		o.failures = append(o.failures, failure{id: it.id, lastError: msg, delay: r.BackoffMax})
		o.block(it)
		eventID := ""
		if it.ev != nil {
			eventID = it.ev.ID
		}
		log.Error("outbox relay: the event is refused; its row waits for an operator to fix or delete it",
			"row", it.id, "topic", it.topic, "event", eventID, "code", code, "error", err, "retry_in", r.BackoffMax)
	}
}

// refusedEvent reports whether an error says the event or its topic is
// wrong, so trying again as it is will not help.
func refusedEvent(err error) bool {
	switch crossdock.ErrorCode(err) {
	case crossdock.EINVALID, crossdock.ENOTFOUND, crossdock.ETOOLARGE, crossdock.EUNSUPPORTED:
		return true
	}
	return false
}

// lastError is the text kept in last_error: the code, then the message,
// cut to maxLastError bytes.
func lastError(code string, err error) string {
	s := code + ": " + err.Error()
	if len(s) <= maxLastError {
		return s
	}
	s = s[:maxLastError]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// listen wakes the relay whenever the outbox table notifies, until ctx
// ends. It holds one of DB's connections for LISTEN and reconnects after a
// failure; with a driver other than pgx it returns and the relay polls.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	log := r.logger()
	for n := 1; ctx.Err() == nil; n++ {
		err := r.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNotPgx) {
			log.Info("outbox relay: the driver is not pgx, so no LISTEN: polling only", "poll", r.PollInterval)
			return
		}
		wait := r.backoff(n)
		log.Warn("outbox relay: LISTEN failed; polling until it is back", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

var errNotPgx = errors.New("the driver is not pgx")

// listenOnce listens until ctx ends or the connection fails. The
// connection is discarded afterwards, not returned to DB's pool in LISTEN
// state.
func (r *Relay) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	conn, err := r.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	var listenErr error
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			listenErr = errNotPgx
			return nil
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+Channel); err != nil {
			listenErr = fmt.Errorf("listen: %w", err)
			return driver.ErrBadConn
		}
		r.logger().Debug("outbox relay: listening", "channel", Channel)
		notify(wake) // rows may have come while nobody listened
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				listenErr = fmt.Errorf("wait for notification: %w", err)
				return driver.ErrBadConn
			}
			notify(wake)
		}
	})
	if listenErr != nil {
		return listenErr
	}
	return err
}

// notify wakes the relay unless a wake-up is pending already.
func notify(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
