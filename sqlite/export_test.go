package sqlite

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/crossdock/crossdock"
)

// SetNow replaces db's clock, which stamps records and dates pruning. Call
// it before the first Record or Flush.
func SetNow(db *DB, now func() time.Time) {
	db.now = now
}

// Prefill writes pubs publications and outs outcomes (four subscriptions
// per event, of the published events first) of random event ids straight
// into db, bypassing the queue: a benchmark's setup. Rows go in index-key
// order, the fast way to build a large table. Call it before the first
// Record or Flush.
func Prefill(ctx context.Context, db *DB, pubs, outs int) error {
	rng := rand.New(rand.NewPCG(uint64(pubs), uint64(outs)))
	events := max(pubs, outs/4+1)
	ids := make([]string, events)
	var b [16]byte
	for i := range ids {
		for k := 0; k < 16; k += 8 {
			v := rng.Uint64()
			for j := range 8 {
				b[k+j] = byte(v >> (8 * j))
			}
		}
		ids[i] = hex.EncodeToString(b[:])
	}
	const topic = "sales.order.created"
	slices.SortFunc(ids, func(a, b string) int { return prefillCompare(topic, a, b) })

	w := &writer{db: db, counts: make(map[string]*[3]int64)}
	if err := w.prepare(ctx); err != nil {
		return err
	}
	defer w.closeStatements()
	subs := []string{"fulfilment", "sms", "inventory", "archive"}
	at := time.Now()
	attempt := &crossdock.Attempt{At: at, StatusCode: 200, DurationMS: 12}
	const batch = 50000
	for i := 0; i < pubs+outs; {
		w.batch = w.batch[:0]
		for ; i < pubs+outs && len(w.batch) < batch; i++ {
			if i >= pubs {
				i := i - pubs
				w.batch = append(w.batch, record{outcome: true, topic: topic, id: ids[i/4], sequence: uint64(i/4 + 1),
					key: subs[i%4], status: crossdock.StatusDelivered, attempt: attempt})
				continue
			}
			w.batch = append(w.batch, record{topic: topic, id: ids[i], sequence: uint64(i + 1), key: ids[i], at: at})
		}
		if err := w.write(ctx); err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
	}
	return nil
}

// prefillCompare orders events as the indexes do.
func prefillCompare(topic, a, b string) int {
	return cmp.Compare(eventKey(topic, a), eventKey(topic, b))
}

// EventKey is the key publications and outcomes are indexed by.
var EventKey = eventKey
