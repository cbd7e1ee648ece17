// Package outbox is crossdock's source-side outbox: an application writes
// its business rows and the events they cause in one database transaction
// (Enqueue puts each event in the table crossdock_outbox), and a Relay
// publishes the table's rows to the hub in order, deleting each once the
// hub has stored it. So no event is lost when the hub is down while the
// application commits, and none is published for a transaction that rolled
// back.
//
// The table lives in the application's own database, SQLite or PostgreSQL;
// CreateTable creates it, and docs/outbox.md describes it so that programs
// in any language can write to it. A row that fails to publish stays in the
// table with attempts, last_error and next_attempt_at, waiting out an
// exponential back-off. Rows of the same topic and partition key are
// published in id order: a row waits while an earlier one of its partition
// is still in the table. Several relays may share a table; each row is
// published by one at a time.
//
// The package registers the database/sql drivers it needs: "sqlite"
// (modernc.org/sqlite) and "pgx" (github.com/jackc/pgx/v5/stdlib).
package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/crossdock/crossdock"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
)

// Table is the outbox table's name, Channel the PostgreSQL notification
// channel that a trigger on it notifies when rows are inserted or their
// next_attempt_at changes.
const (
	Table   = "crossdock_outbox"
	Channel = "crossdock_outbox"
)

// Dialect is the SQL spoken by the outbox's database.
type Dialect string

// The supported dialects.
const (
	SQLite     Dialect = "sqlite"
	PostgreSQL Dialect = "postgres"
)

// DialectOf returns the dialect of a database opened with the drivers this
// package registers: "sqlite" or "pgx". EINVALID for any other driver.
func DialectOf(db *sql.DB) (Dialect, error) {
	switch db.Driver().(type) {
	case *sqlite.Driver:
		return SQLite, nil
	case *stdlib.Driver:
		return PostgreSQL, nil
	}
	return "", crossdock.Errorf(crossdock.EINVALID, "outbox: the database driver %T is neither modernc.org/sqlite nor pgx: set the dialect", db.Driver())
}

// Enqueue writes the event into the outbox table inside the caller's
// transaction, to be published on the topic once the transaction commits.
// The same statement serves SQLite and PostgreSQL. EINVALID for a bad
// topic name or event; other errors come from the database (the table must
// exist: see CreateTable).
func Enqueue(ctx context.Context, tx *sql.Tx, topic string, ev *crossdock.Event) error {
	if tx == nil {
		return crossdock.Errorf(crossdock.EINVALID, "outbox: enqueue needs the caller's transaction")
	}
	body, err := encode(topic, ev)
	if err != nil {
		return err
	}
	// $1 and $2 are PostgreSQL's placeholders and, used once each in order,
	// SQLite's numbered ones too.
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+Table+` (topic, event) VALUES ($1, $2)`, topic, string(body)); err != nil {
		return fmt.Errorf("outbox: enqueue event %s on %s: %w", ev.ID, topic, err)
	}
	return nil
}

// encode validates the topic and the event and returns the event's
// structured JSON.
func encode(topic string, ev *crossdock.Event) ([]byte, error) {
	if !crossdock.ValidTopicName(topic) {
		return nil, crossdock.Errorf(crossdock.EINVALID, "outbox: topic name %q is invalid: use lower-case dot-separated segments such as sales.order.created", topic)
	}
	if ev == nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "outbox: the event is missing")
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	body, err := ev.MarshalJSON()
	if err != nil {
		if crossdock.ErrorCode(err) == crossdock.EINVALID {
			return nil, err
		}
		return nil, fmt.Errorf("outbox: encode event %s: %w", ev.ID, err)
	}
	return body, nil
}

// Schema returns the statements that create the outbox table, its indexes
// and, on PostgreSQL, its notification trigger. Each is idempotent.
func Schema(d Dialect) ([]string, error) {
	switch d {
	case SQLite:
		return sqliteSchema, nil
	case PostgreSQL:
		return postgresSchema, nil
	}
	return nil, crossdock.Errorf(crossdock.EINVALID, "outbox: unknown dialect %q: use %q or %q", d, SQLite, PostgreSQL)
}

// CreateTable creates the outbox table and what goes with it unless they
// exist. Several processes may call it at once. EINVALID for a database
// whose dialect DialectOf does not know.
func CreateTable(ctx context.Context, db *sql.DB) error {
	d, err := DialectOf(db)
	if err != nil {
		return err
	}
	stmts, err := Schema(d)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: create table: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit it does nothing
	if d == PostgreSQL {
		// CREATE ... IF NOT EXISTS races with itself; the lock serialises
		// relays that start together. SQLite's writer lock does the same.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('crossdock_outbox schema'))`); err != nil {
			return fmt.Errorf("outbox: create table: lock: %w", err)
		}
	}
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("outbox: create table: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: create table: commit: %w", err)
	}
	return nil
}

// errNoTable is returned by a relay that finds no outbox table.
var errNoTable = crossdock.Errorf(crossdock.ENOTFOUND, "outbox: table "+Table+" does not exist: create it with crossdock relay --init or outbox.CreateTable")

// checkTable returns errNoTable when the table is missing and the
// database's error when it cannot tell.
func checkTable(ctx context.Context, db *sql.DB, d Dialect) error {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+Table+` LIMIT 1) AS t`).Scan(&n)
	if err == nil {
		return nil
	}
	if isUndefinedTable(err, d) {
		return errNoTable
	}
	return fmt.Errorf("outbox: check table: %w", err)
}

// isUndefinedTable reports whether a database error says the table does not
// exist.
func isUndefinedTable(err error, d Dialect) bool {
	if d == PostgreSQL {
		var pe interface{ SQLState() string }
		return errors.As(err, &pe) && pe.SQLState() == "42P01"
	}
	var se *sqlite.Error
	return errors.As(err, &se) && strings.Contains(se.Error(), "no such table")
}
