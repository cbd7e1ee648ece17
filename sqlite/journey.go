package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/crossdock/crossdock"
)

// Journey returns what is recorded of the event with the id on the topic:
// its publication and its deliveries by subscription, each with its attempts
// in time order. Event is left nil. ENOTFOUND when neither a publication nor
// an outcome is recorded.
func (db *DB) Journey(ctx context.Context, topic, id string) (*crossdock.Journey, error) {
	// One read transaction, so the publication and the outcomes come from
	// the same snapshot.
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("journey %s/%s: begin: %w", topic, id, err)
	}
	defer tx.Rollback()

	j := &crossdock.Journey{Topic: topic, Deliveries: []crossdock.Delivery{}}
	var sequence, publishedAt int64
	err = tx.QueryRowContext(ctx, `
SELECT sequence, published_at FROM publications WHERE id = ?1 AND topic = ?2`,
		id, topic).Scan(&sequence, &publishedAt)
	published := err == nil
	switch {
	case published:
		j.Sequence = uint64(sequence)
		j.PublishedAt = fromUnixNano(publishedAt)
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("journey %s/%s: publication: %w", topic, id, err)
	}

	rows, err := tx.QueryContext(ctx, `
SELECT subscription, sequence, status, attempt_at, status_code, error, duration_ms
FROM outcomes WHERE event_id = ?1 AND topic = ?2 ORDER BY rowid`, id, topic)
	if err != nil {
		return nil, fmt.Errorf("journey %s/%s: outcomes: %w", topic, id, err)
	}
	defer rows.Close()
	index := make(map[string]int) // subscription → position in Deliveries
	for rows.Next() {
		var (
			sub, status string
			seq         int64
			at, code    sql.NullInt64
			msg         sql.NullString
			duration    sql.NullInt64
		)
		if err := rows.Scan(&sub, &seq, &status, &at, &code, &msg, &duration); err != nil {
			return nil, fmt.Errorf("journey %s/%s: outcomes: %w", topic, id, err)
		}
		if !published && seq != 0 {
			j.Sequence = uint64(seq)
		}
		i, ok := index[sub]
		if !ok {
			i = len(j.Deliveries)
			index[sub] = i
			j.Deliveries = append(j.Deliveries, crossdock.Delivery{Subscription: sub, Attempts: []crossdock.Attempt{}})
		}
		d := &j.Deliveries[i]
		d.Status = crossdock.DeliveryStatus(status) // the last outcome's wins
		if at.Valid {
			d.Attempts = append(d.Attempts, crossdock.Attempt{
				At:         fromUnixNano(at.Int64),
				StatusCode: int(code.Int64),
				Error:      msg.String,
				DurationMS: duration.Int64,
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journey %s/%s: outcomes: %w", topic, id, err)
	}
	if !published && len(j.Deliveries) == 0 {
		return nil, crossdock.Errorf(crossdock.ENOTFOUND, "no journey of event %q on topic %q", id, topic)
	}

	slices.SortFunc(j.Deliveries, func(a, b crossdock.Delivery) int { return strings.Compare(a.Subscription, b.Subscription) })
	for _, d := range j.Deliveries {
		// Stable: attempts at the same instant keep their arrival order.
		slices.SortStableFunc(d.Attempts, func(a, b crossdock.Attempt) int { return a.At.Compare(b.At) })
	}
	return j, nil
}

// Counts returns how many deliveries of the subscription were delivered and
// filtered, and how many attempts failed; zeros for an unknown subscription.
func (db *DB) Counts(ctx context.Context, subscription string) (delivered, filtered, failed int64, err error) {
	err = db.read.QueryRowContext(ctx, `
SELECT delivered, filtered, failed FROM counts WHERE subscription = ?1`,
		subscription).Scan(&delivered, &filtered, &failed)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, 0, nil
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("counts of %s: %w", subscription, err)
	}
	return delivered, filtered, failed, nil
}
