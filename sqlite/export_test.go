package sqlite

import "time"

// SetNow replaces db's clock, which stamps records and dates pruning. Call
// it before the first Record or Flush.
func SetNow(db *DB, now func() time.Time) {
	db.now = now
}
