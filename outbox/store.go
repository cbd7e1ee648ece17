package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// row is one outbox row as the relay claims it.
type row struct {
	id       int64
	topic    string
	event    []byte
	key      string
	attempts int
}

// failure is what the relay records on a row that was not published.
type failure struct {
	id        int64
	lastError string
	delay     time.Duration
}

// claim is a batch of rows a relay holds, with what is needed to settle it.
type claim struct {
	rows []row
	tx   *sql.Tx // PostgreSQL: the transaction that holds the rows' locks
}

// store runs the relay's statements in one dialect.
type store struct {
	db      *sql.DB
	dialect Dialect

	// lease is how long an SQLite claim keeps a row from other relays.
	lease time.Duration
}

// eligible is the condition every claimed row meets: it is due, and no
// earlier row of its topic and partition key waits out a back-off (or, on
// SQLite, is claimed by a relay). Rows are claimed in id order, so the
// earlier rows of a partition are in the same claim or were left out for
// one of those reasons. now is the database's clock.
func eligible(now string) string {
	return `o.next_attempt_at <= ` + now + `
  AND (o.partition_key = '' OR NOT EXISTS (
    SELECT 1 FROM ` + Table + ` p
    WHERE p.topic = o.topic AND p.partition_key = o.partition_key AND p.id < o.id
      AND p.next_attempt_at > ` + now + `))`
}

// sqliteNow is SQLite's current time in the table's text format.
const sqliteNow = `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`

// claim takes up to limit eligible rows in id order. On PostgreSQL they are
// locked (FOR UPDATE SKIP LOCKED) in a transaction that settle ends, so a
// crashed relay's rows are free again at once. SQLite has one writer at a
// time: the claim is one statement that pushes next_attempt_at past the
// lease, so no other relay takes the rows while they are published, and a
// crashed relay's rows come back when the lease ends.
func (s *store) claim(ctx context.Context, limit int) (*claim, error) {
	if s.dialect == PostgreSQL {
		return s.claimPostgres(ctx, limit)
	}
	rows, err := s.db.QueryContext(ctx, `UPDATE `+Table+`
SET next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', $1)
WHERE id IN (
  SELECT o.id FROM `+Table+` o
  WHERE `+eligible(sqliteNow)+`
  ORDER BY o.id LIMIT $2)
RETURNING id, topic, event, partition_key, attempts`, sqliteModifier(s.lease), limit)
	if err != nil {
		return nil, fmt.Errorf("claim rows: %w", err)
	}
	c := &claim{}
	if c.rows, err = scanRows(rows); err != nil {
		return nil, fmt.Errorf("claim rows: %w", err)
	}
	// RETURNING does not promise an order.
	slices.SortFunc(c.rows, func(a, b row) int { return int(a.id - b.id) })
	return c, nil
}

func (s *store) claimPostgres(ctx context.Context, limit int) (_ *claim, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim rows: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // err says what went wrong
		}
	}()
	// The planner's estimate for the claim, a filtered scan under a LIMIT,
	// is far above the real cost and above jit_above_cost: compiling the
	// query would take a hundred times longer than running it.
	if _, err := tx.ExecContext(ctx, `SET LOCAL jit = off`); err != nil {
		return nil, fmt.Errorf("claim rows: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT o.id, o.topic, o.event, o.partition_key, o.attempts
FROM `+Table+` o
WHERE `+eligible("now()")+`
ORDER BY o.id
LIMIT $1
FOR UPDATE OF o SKIP LOCKED`, limit)
	if err != nil {
		return nil, fmt.Errorf("claim rows: %w", err)
	}
	c := &claim{tx: tx}
	if c.rows, err = scanRows(rows); err != nil {
		return nil, fmt.Errorf("claim rows: %w", err)
	}
	if err := s.keepPartitionPrefixes(ctx, c); err != nil {
		return nil, fmt.Errorf("claim rows: %w", err)
	}
	return c, nil
}

// keepPartitionPrefixes drops from a PostgreSQL claim the rows of a
// partition that have an earlier row outside the claim: SKIP LOCKED passed
// over it because another relay is publishing it. The dropped rows stay
// locked until the claim ends, unpublished.
func (s *store) keepPartitionPrefixes(ctx context.Context, c *claim) error {
	var ids []int64
	var maxID int64
	claimed := make(map[int64]bool)
	for _, r := range c.rows {
		if r.key != "" {
			ids = append(ids, r.id)
			maxID = max(maxID, r.id)
			claimed[r.id] = true
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := c.tx.QueryContext(ctx, `SELECT p.id, p.topic, p.partition_key FROM `+Table+` p
WHERE p.partition_key <> '' AND p.id <= $1
  AND (p.topic, p.partition_key) IN (SELECT o.topic, o.partition_key FROM `+Table+` o WHERE o.id = ANY($2))
ORDER BY p.id`, maxID, ids)
	if err != nil {
		return fmt.Errorf("check partitions: %w", err)
	}
	defer rows.Close()
	type partition struct{ topic, key string }
	broken := make(map[partition]bool)
	drop := make(map[int64]bool)
	for rows.Next() {
		var id int64
		var p partition
		if err := rows.Scan(&id, &p.topic, &p.key); err != nil {
			return fmt.Errorf("check partitions: %w", err)
		}
		switch {
		case !claimed[id]:
			broken[p] = true
		case broken[p]:
			drop[id] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check partitions: %w", err)
	}
	if len(drop) > 0 {
		c.rows = slices.DeleteFunc(c.rows, func(r row) bool { return drop[r.id] })
	}
	return nil
}

func scanRows(rows *sql.Rows) ([]row, error) {
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.topic, &r.event, &r.key, &r.attempts); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// settle deletes the published rows and records each failure, then ends
// the claim. When the claim's transaction or the statements fail, the rows
// stay as they were and are claimed again later (on SQLite after the
// lease): published ones are then published again, which the hub answers
// as duplicates.
//
// skipped rows were claimed but not tried, because an earlier row of their
// partition failed: on SQLite their lease is taken back.
func (s *store) settle(ctx context.Context, c *claim, published, skipped []int64, failures []failure) (err error) {
	tx := c.tx
	if tx == nil {
		// One transaction on SQLite too: one commit to wait for, not one
		// per statement.
		if tx, err = s.db.BeginTx(ctx, nil); err != nil {
			return fmt.Errorf("settle rows: begin: %w", err)
		}
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // err says what went wrong
		}
	}()
	if len(published) > 0 {
		args := make([]any, len(published))
		for i, id := range published {
			args[i] = id
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+Table+` WHERE id IN (`+placeholders(len(args))+`)`, args...); err != nil {
			return fmt.Errorf("delete published rows: %w", err)
		}
	}
	if len(skipped) > 0 && s.dialect == SQLite {
		if err := s.unlease(ctx, tx, skipped); err != nil {
			return err
		}
	}
	for _, f := range failures {
		var q string
		var delay any
		if s.dialect == PostgreSQL {
			// now() is when the claim began, before the publish.
			q = `UPDATE ` + Table + ` SET attempts = attempts + 1, last_error = $1,
  next_attempt_at = clock_timestamp() + make_interval(secs => $2) WHERE id = $3`
			delay = f.delay.Seconds()
		} else {
			q = `UPDATE ` + Table + ` SET attempts = attempts + 1, last_error = $1,
  next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', $2) WHERE id = $3`
			delay = sqliteModifier(f.delay)
		}
		if _, err := tx.ExecContext(ctx, q, f.lastError, delay, f.id); err != nil {
			return fmt.Errorf("record failure of row %d: %w", f.id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("settle rows: commit: %w", err)
	}
	return nil
}

// release ends a claim without settling it: PostgreSQL's locks go at once,
// SQLite's leases are taken back so the rows are due again.
func (s *store) release(ctx context.Context, c *claim) error {
	if c.tx != nil {
		return c.tx.Rollback()
	}
	if len(c.rows) == 0 {
		return nil
	}
	ids := make([]int64, len(c.rows))
	for i, r := range c.rows {
		ids[i] = r.id
	}
	return s.unlease(ctx, s.db, ids)
}

// unlease makes claimed SQLite rows due again.
func (s *store) unlease(ctx context.Context, ex execer, ids []int64) error {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	_, err := ex.ExecContext(ctx, `UPDATE `+Table+` SET next_attempt_at = `+sqliteNow+` WHERE id IN (`+placeholders(len(args))+`)`, args...)
	if err != nil {
		return fmt.Errorf("release claimed rows: %w", err)
	}
	return nil
}

// execer runs statements on a database or in a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// nextDue returns how long until the earliest row that is not yet due
// becomes due, and false when every row is due or the table is empty.
func (s *store) nextDue(ctx context.Context) (time.Duration, bool, error) {
	q := `SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 FROM ` + Table + ` WHERE next_attempt_at > now()`
	if s.dialect == SQLite {
		q = `SELECT (julianday(min(next_attempt_at)) - julianday('now')) * 86400.0 FROM ` + Table + ` WHERE next_attempt_at > ` + sqliteNow
	}
	var secs sql.NullFloat64
	if err := s.db.QueryRowContext(ctx, q).Scan(&secs); err != nil {
		return 0, false, fmt.Errorf("find the next due row: %w", err)
	}
	if !secs.Valid {
		return 0, false, nil
	}
	return max(time.Duration(secs.Float64*float64(time.Second)), 0), true, nil
}

// placeholders returns "$1, $2, ..., $n".
func placeholders(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

// sqliteModifier returns an SQLite date modifier that adds d, such as
// "+1.500 seconds".
func sqliteModifier(d time.Duration) string {
	return fmt.Sprintf("%+.3f seconds", d.Seconds())
}
