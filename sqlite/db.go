// Package sqlite keeps crossdock's queryable state in a SQLite database
// (modernc.org/sqlite, pure Go): the journeys of events, recorded
// asynchronously in batches by one writer goroutine and read through a
// separate pool of read-only connections.
//
// The database runs in WAL mode with synchronous=NORMAL: a commit is durable
// once the next checkpoint syncs it, so a power loss may cost the last
// batches. Journeys are the operator's view, not the source of truth, so that
// trade buys the write rate the publish path needs.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crossdock/crossdock"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Defaults of DB's tuning fields.
const (
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultBatchSize     = 2000
	DefaultQueueSize     = 65536
	DefaultRetention     = 7 * 24 * time.Hour
)

// pruneInterval is how often journeys past the retention are deleted.
const pruneInterval = time.Hour

// readConns is the size of the read pool. Readers never block the writer in
// WAL mode, so a few connections serve the API on a small machine.
const readConns = 4

// busyTimeoutMS is how long a statement waits for a lock held by another
// connection (another process, a backup) before failing with SQLITE_BUSY.
const busyTimeoutMS = 5000

var errClosed = errors.New("sqlite: database is closed")

// DB is a SQLite database holding the journeys of events. Set its fields
// after Open and before the first Record or Flush call; they are read once,
// when the writer starts.
type DB struct {
	// FlushInterval is how long the writer waits for a batch to fill
	// before writing what it has.
	FlushInterval time.Duration

	// BatchSize is the most records written in one transaction.
	BatchSize int

	// QueueSize is how many records may wait for the writer; more are
	// dropped and counted by Dropped.
	QueueSize int

	// Retention is how long journeys are kept: publications and outcomes
	// recorded longer ago are deleted when the writer starts and hourly.
	Retention time.Duration

	// Logger receives the writer's errors and the queue-full warnings.
	Logger *slog.Logger

	now   func() time.Time // stamps records and dates pruning; tests set it
	path  string
	write *sql.DB // one connection: SQLite has a single writer anyway
	read  *sql.DB // query_only connections for Journey and Counts

	startOnce sync.Once
	queue     chan record
	flushes   chan chan error
	quit      chan struct{}
	done      chan struct{}
	cancel    context.CancelFunc
	closeErr  error // the writer's final flush error, set before done closes

	dropped     atomic.Uint64
	lastDropLog atomic.Int64 // unix nanoseconds of the last queue-full log

	closeOnce sync.Once
	closed    atomic.Bool
}

var _ crossdock.JourneyService = (*DB)(nil)

// Open opens the SQLite database at path, creating the file and bringing its
// schema up to date. The writer starts with the first Record or Flush call.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, crossdock.Errorf(crossdock.EINVALID, "sqlite: invalid database path %q", path)
	}
	db := &DB{
		FlushInterval: DefaultFlushInterval,
		BatchSize:     DefaultBatchSize,
		QueueSize:     DefaultQueueSize,
		Retention:     DefaultRetention,
		Logger:        slog.Default(),
		now:           time.Now,
		path:          path,
	}

	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(0)", busyTimeoutMS)
	write, err := sql.Open("sqlite", path+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"+
		// 64 MiB of page cache keeps the hot part of the id indexes.
		"&_pragma=cache_size(-65536)"+
		// Multi-row REPLACEs keep a statement journal: in memory, not
		// in a temporary file (a third of the writer's time otherwise).
		"&_pragma=temp_store(MEMORY)"+
		// Checkpoints every 64 MiB of WAL rather than 4: a page written
		// by many batches is copied back once.
		"&_pragma=wal_autocheckpoint(16384)&_pragma=journal_size_limit(67108864)"+
		// BEGIN IMMEDIATE: a batch waits for the write lock at BEGIN, where
		// its context can interrupt the wait.
		"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s for writing: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	db.write = write

	// The writer connection creates the file and switches it to WAL before
	// any reader opens it.
	if err := db.migrate(ctx); err != nil {
		write.Close()
		return nil, err
	}

	read, err := sql.Open("sqlite", path+"?"+common+"&_pragma=cache_size(-8000)&_query_only=1")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	read.SetConnMaxIdleTime(0)
	db.read = read
	if err := read.PingContext(ctx); err != nil {
		db.read.Close()
		db.write.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	return db, nil
}

// migrations are applied in order; PRAGMA user_version counts those done.
// Never edit one that has shipped: append a new one.
var migrations = []string{
	`
-- Keyed by id first, so that a lookup by event id alone needs no other
-- index: the events of correlation id C are those with correlation_id = C
-- (the partial index) and the one with id = C and correlation_id IS NULL.
CREATE TABLE publications (
	id             TEXT    NOT NULL,
	topic          TEXT    NOT NULL,
	sequence       INTEGER NOT NULL,
	correlation_id TEXT,             -- NULL when it is the id, as by default
	published_at   INTEGER NOT NULL, -- unix nanoseconds
	recorded_at    INTEGER NOT NULL, -- unix nanoseconds, never decreasing in rowid order
	PRIMARY KEY (id, topic)
);
CREATE INDEX publications_correlation_id ON publications (correlation_id)
	WHERE correlation_id IS NOT NULL;

-- Every outcome, appended in arrival order. A delivery is the outcomes of
-- one event in one subscription: its status is the last one's, its attempts
-- those that carry one. Appending costs one index insert per outcome, where
-- a table of deliveries updated in place costs three.
CREATE TABLE outcomes (
	topic        TEXT    NOT NULL,
	event_id     TEXT    NOT NULL,
	subscription TEXT    NOT NULL,
	sequence     INTEGER NOT NULL,
	status       TEXT    NOT NULL,
	recorded_at  INTEGER NOT NULL, -- unix nanoseconds, never decreasing in rowid order
	attempt_at   INTEGER,          -- NULL when the outcome carries no attempt
	status_code  INTEGER,
	error        TEXT,
	duration_ms  INTEGER
);
CREATE INDEX outcomes_event ON outcomes (event_id, topic);

CREATE TABLE counts (
	subscription TEXT PRIMARY KEY,
	delivered    INTEGER NOT NULL DEFAULT 0,
	filtered     INTEGER NOT NULL DEFAULT 0,
	failed       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
`,
}

// migrate applies the migrations the file lacks, in one transaction each.
func (db *DB) migrate(ctx context.Context) error {
	for {
		done, err := db.migrateOne(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateOne applies the next missing migration and reports whether none was
// missing.
func (db *DB) migrateOne(ctx context.Context) (done bool, err error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate %s: begin: %w", db.path, err)
	}
	defer tx.Rollback()

	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return false, fmt.Errorf("migrate %s: read version: %w", db.path, err)
	}
	if version > len(migrations) {
		return false, fmt.Errorf("migrate %s: schema version %d is newer than this binary's %d", db.path, version, len(migrations))
	}
	if version == len(migrations) {
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[version]); err != nil {
		return false, fmt.Errorf("migrate %s to version %d: %w", db.path, version+1, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, version+1)); err != nil {
		return false, fmt.Errorf("migrate %s: set version %d: %w", db.path, version+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate %s to version %d: commit: %w", db.path, version+1, err)
	}
	return false, nil
}

// Ready returns nil when the database answers a query, EUNAVAILABLE once it
// is closed.
func (db *DB) Ready(ctx context.Context) error {
	if db.closed.Load() {
		return crossdock.Errorf(crossdock.EUNAVAILABLE, "journey database is closed")
	}
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM counts`).Scan(&n); err != nil {
		return fmt.Errorf("ready %s: %w", db.path, err)
	}
	return nil
}

// Close writes what is queued, stops the writer and closes the database. It
// returns the first error; when ctx ends first it abandons the queued
// records and returns ctx's error. Records after Close are discarded.
func (db *DB) Close(ctx context.Context) error {
	err := errClosed
	db.closeOnce.Do(func() { err = db.close(ctx) })
	return err
}

func (db *DB) close(ctx context.Context) error {
	db.closed.Store(true)
	// Keeps a writer from starting after Close when none ran before it.
	db.startOnce.Do(func() {})

	var first error
	if db.done != nil {
		close(db.quit)
		select {
		case <-db.done:
		case <-ctx.Done():
			db.cancel() // interrupts a transaction waiting for a lock
			<-db.done
			first = fmt.Errorf("close %s: %w", db.path, ctx.Err())
		}
		db.cancel()
		if first == nil && db.closeErr != nil {
			first = fmt.Errorf("close %s: %w", db.path, db.closeErr)
		}
	}
	if err := db.read.Close(); err != nil && first == nil {
		first = fmt.Errorf("close %s readers: %w", db.path, err)
	}
	if err := db.write.Close(); err != nil && first == nil {
		first = fmt.Errorf("close %s writer: %w", db.path, err)
	}
	return first
}
