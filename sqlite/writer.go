package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/crossdock/crossdock"
)

// dropLogEvery bounds the queue-full warnings to one per interval.
const dropLogEvery = 10 * time.Second

// pruneChunk is the most rows of a table one pruning transaction deletes, so
// that the writer goes back to the queue between chunks.
const pruneChunk = 2000

// record is one Publication or Outcome waiting for the writer. It is a value
// on the queue so that recording allocates nothing.
type record struct {
	outcome  bool
	topic    string
	id       string // the event id
	sequence uint64
	key      string // the correlation id of a publication, the subscription of an outcome
	status   crossdock.DeliveryStatus
	at       time.Time // when a publication was stored
	attempt  *crossdock.Attempt
}

// RecordPublication queues p for the writer. It never blocks: when the queue
// is full the record is dropped and counted by Dropped.
func (db *DB) RecordPublication(p crossdock.Publication) {
	db.startOnce.Do(db.start)
	db.enqueue(record{
		topic:    p.Topic,
		id:       p.ID,
		sequence: p.Sequence,
		key:      p.CorrelationID,
		at:       p.PublishedAt,
	})
}

// RecordOutcome queues o for the writer. It never blocks: when the queue is
// full the record is dropped and counted by Dropped.
func (db *DB) RecordOutcome(o crossdock.Outcome) {
	db.startOnce.Do(db.start)
	db.enqueue(record{
		outcome:  true,
		topic:    o.Topic,
		id:       o.EventID,
		sequence: o.Sequence,
		key:      o.Subscription,
		status:   o.Status,
		attempt:  o.Attempt,
	})
}

func (db *DB) enqueue(r record) {
	select {
	case db.queue <- r:
		return
	default:
	}
	if db.closed.Load() {
		return
	}
	n := db.dropped.Add(1)
	now := time.Now().UnixNano()
	last := db.lastDropLog.Load()
	if now-last >= int64(dropLogEvery) && db.lastDropLog.CompareAndSwap(last, now) {
		db.Logger.Warn("journey queue full, dropping records", "dropped_total", n, "queue_size", cap(db.queue))
	}
}

// Dropped returns how many records were dropped because the queue was full.
func (db *DB) Dropped() uint64 {
	return db.dropped.Load()
}

// Flush waits until every record queued before the call is written, and
// returns the first write error since the previous Flush. EUNAVAILABLE once
// the database is closed.
func (db *DB) Flush(ctx context.Context) error {
	db.startOnce.Do(db.start)
	if db.done == nil {
		return crossdock.Errorf(crossdock.EUNAVAILABLE, "journey database is closed")
	}
	reply := make(chan error, 1)
	select {
	case db.flushes <- reply:
	case <-db.done:
		return crossdock.Errorf(crossdock.EUNAVAILABLE, "journey database is closed")
	case <-ctx.Done():
		return fmt.Errorf("flush journeys: %w", ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("flush journeys: %w", ctx.Err())
	}
}

// start makes the queue from the tuning fields and starts the writer.
func (db *DB) start() {
	if db.FlushInterval <= 0 {
		db.FlushInterval = DefaultFlushInterval
	}
	if db.BatchSize <= 0 {
		db.BatchSize = DefaultBatchSize
	}
	if db.QueueSize <= 0 {
		db.QueueSize = DefaultQueueSize
	}
	if db.Retention <= 0 {
		db.Retention = DefaultRetention
	}
	if db.Logger == nil {
		db.Logger = slog.New(slog.DiscardHandler)
	}
	db.queue = make(chan record, db.QueueSize)
	db.flushes = make(chan chan error)
	db.quit = make(chan struct{})
	db.done = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	db.cancel = cancel
	w := &writer{db: db, counts: make(map[string]*[3]int64)}
	go w.run(ctx)
}

// writer is the state of the goroutine that owns the write connection.
type writer struct {
	db     *DB
	batch  []record
	counts map[string]*[3]int64 // per subscription within a batch: delivered, filtered, failed
	err    error                // the first write error since the last Flush
	stamp  int64                // recorded_at of the last batch

	pubArgs, outArgs []any // the batch's row values, reused
	publish, outcome insert
	count            *sql.Stmt
}

func (w *writer) run(ctx context.Context) {
	db := w.db
	defer close(db.done)
	if err := w.prepare(ctx); err != nil {
		db.Logger.Error("journey writer cannot start", "error", err)
		w.err = err
	}
	defer w.closeStatements()
	w.batch = make([]record, 0, db.BatchSize)

	w.prune(ctx)
	ticker := time.NewTicker(pruneInterval)
	defer ticker.Stop()
	timer := time.NewTimer(db.FlushInterval)
	timer.Stop()

	for {
		select {
		case r := <-db.queue:
			pending := w.wait(timer)
			w.batch = append(w.batch, r)
			w.drain(ctx, len(db.queue))
			if pending != nil {
				pending <- w.flush(ctx)
			}
		case reply := <-db.flushes:
			reply <- w.flush(ctx)
		case <-ticker.C:
			w.prune(ctx)
		case <-db.quit:
			db.closeErr = w.flush(ctx)
			return
		}
	}
}

// wait lets a batch gather for FlushInterval after its first record, unless
// a full batch is queued already. It waits on a timer rather than on the
// queue, so that recording does not wake the writer at every record. It
// returns early with a flush request, or when Close began.
func (w *writer) wait(timer *time.Timer) (flush chan error) {
	db := w.db
	if len(db.queue) >= db.BatchSize-1 {
		return nil
	}
	timer.Reset(db.FlushInterval)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case reply := <-db.flushes:
		return reply
	case <-db.quit:
		return nil
	}
}

// flush writes every record queued now and returns the first write error
// since the previous flush.
func (w *writer) flush(ctx context.Context) error {
	w.drain(ctx, len(w.db.queue))
	err := w.err
	w.err = nil
	return err
}

// drain writes the batch under way and n more queued records, in batches
// of at most BatchSize.
func (w *writer) drain(ctx context.Context, n int) {
	db := w.db
	for {
		for n > 0 && len(w.batch) < db.BatchSize {
			w.batch = append(w.batch, <-db.queue)
			n--
		}
		w.writeBatch(ctx)
		if n == 0 {
			return
		}
	}
}

// writeBatch writes the batch in one transaction. A failed batch is logged
// and lost: journeys are not the source of truth.
func (w *writer) writeBatch(ctx context.Context) {
	if len(w.batch) == 0 {
		return
	}
	if err := w.write(ctx); err != nil {
		w.db.Logger.Error("journey batch lost", "records", len(w.batch), "error", err)
		if w.err == nil {
			w.err = err
		}
	}
	clear(w.batch) // lets the strings go
	w.batch = w.batch[:0]
}

// rowsPerInsert is how many rows one multi-row INSERT carries: it spreads
// the cost of a statement over many rows.
const rowsPerInsert = 32

// insert is an INSERT prepared for one row and for rowsPerInsert rows.
type insert struct {
	cols      int
	one, many *sql.Stmt
}

// prepareInsert prepares head VALUES (...) tail for 1 and rowsPerInsert rows.
func (w *writer) prepareInsert(ctx context.Context, head string, cols int, tail string) (insert, error) {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	ins := insert{cols: cols}
	var err error
	if ins.one, err = w.db.write.PrepareContext(ctx, head+" VALUES "+row+" "+tail); err != nil {
		return ins, err
	}
	rows := strings.TrimSuffix(strings.Repeat(row+",", rowsPerInsert), ",")
	if ins.many, err = w.db.write.PrepareContext(ctx, head+" VALUES "+rows+" "+tail); err != nil {
		ins.one.Close()
		return ins, err
	}
	return ins, nil
}

// exec inserts the rows whose values args holds, in order.
func (ins insert) exec(tx *sql.Tx, args []any) error {
	if len(args) == 0 {
		return nil
	}
	bg := context.Background()
	chunk := rowsPerInsert * ins.cols
	if len(args) >= chunk {
		many := tx.StmtContext(bg, ins.many)
		for len(args) >= chunk {
			if _, err := many.ExecContext(bg, args[:chunk]...); err != nil {
				return err
			}
			args = args[chunk:]
		}
	}
	if len(args) > 0 {
		one := tx.StmtContext(bg, ins.one)
		for len(args) > 0 {
			if _, err := one.ExecContext(bg, args[:ins.cols]...); err != nil {
				return err
			}
			args = args[ins.cols:]
		}
	}
	return nil
}

// close closes the prepared statements.
func (ins insert) close() {
	for _, s := range []*sql.Stmt{ins.one, ins.many} {
		if s != nil {
			s.Close()
		}
	}
}

func (w *writer) prepare(ctx context.Context) error {
	var err error
	// REPLACE rather than an upsert: a republished event takes a new
	// rowid, which keeps recorded_at in rowid order for pruning.
	w.publish, err = w.prepareInsert(ctx,
		`INSERT OR REPLACE INTO publications (id, topic, sequence, correlation_id, published_at, recorded_at)`, 6, ``)
	if err != nil {
		return fmt.Errorf("prepare publication insert: %w", err)
	}
	// OR IGNORE although the batch fills every NOT NULL column: a
	// statement that cannot abort halfway needs no statement journal.
	w.outcome, err = w.prepareInsert(ctx,
		`INSERT OR IGNORE INTO outcomes (topic, event_id, subscription, sequence, status, recorded_at,
			attempt_at, status_code, error, duration_ms)`, 10, ``)
	if err != nil {
		return fmt.Errorf("prepare outcome insert: %w", err)
	}
	w.count, err = w.db.write.PrepareContext(ctx, `
INSERT INTO counts (subscription, delivered, filtered, failed)
VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (subscription) DO UPDATE SET
	delivered = delivered + excluded.delivered,
	filtered = filtered + excluded.filtered,
	failed = failed + excluded.failed`)
	if err != nil {
		return fmt.Errorf("prepare counts upsert: %w", err)
	}
	return nil
}

func (w *writer) closeStatements() {
	w.publish.close()
	w.outcome.close()
	if w.count != nil {
		w.count.Close()
	}
}

// write runs the batch in one transaction. Only BEGIN, which may wait for
// the write lock, watches ctx: a cancellable context costs the driver a
// goroutine per statement.
func (w *writer) write(ctx context.Context) error {
	if w.count == nil {
		return errors.New("journey statements not prepared")
	}
	// recorded_at never decreases, so that pruning may stop at the first
	// young outcome in rowid order.
	w.stamp = max(w.stamp, w.db.now().UnixNano())
	pubs, outs := w.pubArgs[:0], w.outArgs[:0]
	for i := range w.batch {
		r := &w.batch[i]
		if !r.outcome {
			var corr any
			if r.key != r.id {
				corr = r.key
			}
			pubs = append(pubs, r.id, r.topic, int64(r.sequence), corr, unixNano(r.at), w.stamp)
			continue
		}
		outs = append(outs, r.topic, r.id, r.key, int64(r.sequence), string(r.status), w.stamp)
		if a := r.attempt; a != nil {
			outs = append(outs, unixNano(a.At), int64(a.StatusCode), a.Error, a.DurationMS)
		} else {
			outs = append(outs, nil, nil, nil, nil)
		}
		w.countOutcome(r)
	}
	defer func() {
		clear(pubs)
		clear(outs)
		w.pubArgs, w.outArgs = pubs[:0], outs[:0]
		clear(w.counts)
	}()

	tx, err := w.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write journeys: begin: %w", err)
	}
	defer tx.Rollback()
	if err := w.publish.exec(tx, pubs); err != nil {
		return fmt.Errorf("write journeys: publications: %w", err)
	}
	if err := w.outcome.exec(tx, outs); err != nil {
		return fmt.Errorf("write journeys: outcomes: %w", err)
	}
	if len(w.counts) > 0 {
		bg := context.Background()
		count := tx.StmtContext(bg, w.count)
		for sub, c := range w.counts {
			if _, err := count.ExecContext(bg, sub, c[0], c[1], c[2]); err != nil {
				return fmt.Errorf("write journeys: counts of %s: %w", sub, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write journeys: commit: %w", err)
	}
	return nil
}

// countOutcome adds r to the batch's counts: a delivered or filtered outcome
// settles the delivery; an attempt that left it retrying or dead-lettered is
// a failure.
func (w *writer) countOutcome(r *record) {
	var i int
	switch {
	case r.status == crossdock.StatusDelivered:
		i = 0
	case r.status == crossdock.StatusFiltered:
		i = 1
	case r.attempt != nil && (r.status == crossdock.StatusRetrying || r.status == crossdock.StatusDeadLettered):
		i = 2
	default:
		return
	}
	c := w.counts[r.key]
	if c == nil {
		c = new([3]int64)
		w.counts[r.key] = c
	}
	c[i]++
}

// prune deletes journeys past the retention, a chunk per transaction,
// writing what was queued meanwhile between chunks.
func (w *writer) prune(ctx context.Context) {
	cutoff := w.db.now().Add(-w.db.Retention).UnixNano()
	total := 0
	for {
		n, more, err := w.pruneChunk(ctx, cutoff)
		total += n
		if err != nil {
			w.db.Logger.Error("prune journeys", "error", err)
			return
		}
		if !more {
			break
		}
		w.drain(ctx, len(w.db.queue))
	}
	if total > 0 {
		w.db.Logger.Info("pruned journeys", "rows", total, "retention", w.db.Retention)
	}
}

// pruneChunk deletes up to pruneChunk publications and outcomes older than
// cutoff. It returns the rows deleted and whether more may be left.
func (w *writer) pruneChunk(ctx context.Context, cutoff int64) (n int, more bool, err error) {
	tx, err := w.db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("prune: begin: %w", err)
	}
	defer tx.Rollback()

	for _, q := range []string{
		// Rows are old up to the first young one in rowid order: look no
		// further than the oldest chunk.
		`DELETE FROM publications WHERE rowid IN (
			SELECT rowid FROM publications ORDER BY rowid LIMIT ?2) AND recorded_at < ?1`,
		`DELETE FROM outcomes WHERE rowid IN (
			SELECT rowid FROM outcomes ORDER BY rowid LIMIT ?2) AND recorded_at < ?1`,
	} {
		res, err := tx.ExecContext(ctx, q, cutoff, pruneChunk)
		if err != nil {
			return 0, false, fmt.Errorf("prune: %w", err)
		}
		deleted, err := res.RowsAffected()
		if err != nil {
			return 0, false, fmt.Errorf("prune: %w", err)
		}
		n += int(deleted)
		more = more || deleted == pruneChunk
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("prune: commit: %w", err)
	}
	return n, more, nil
}

// unixNano returns t in unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano is the inverse of unixNano, in UTC.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
