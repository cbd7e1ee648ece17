package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/sqlite"
	"github.com/crossdock/crossdock/sqlite/journeytest"
)

// MustOpen opens a database in a fresh temporary directory and closes it
// when the test ends.
func MustOpen(tb testing.TB) *sqlite.DB {
	tb.Helper()
	return MustOpenPath(tb, filepath.Join(tb.TempDir(), "crossdock.db"))
}

// MustOpenPath opens the database at path and closes it when the test ends.
func MustOpenPath(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open(%q): %v", path, err)
	}
	db.Logger = slog.New(slog.DiscardHandler)
	tb.Cleanup(func() { db.Close(context.Background()) })
	return db
}

func TestJourneyService(t *testing.T) {
	db := MustOpen(t)
	journeytest.Run(t, db, db.Flush)
}

func TestJourneyServiceSmallBatches(t *testing.T) {
	// Small batches and a long interval: records span several batches,
	// and Flush must not wait for the interval.
	db := MustOpen(t)
	db.BatchSize = 7
	db.FlushInterval = time.Hour
	journeytest.Run(t, db, db.Flush)
}

func TestCloseFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crossdock.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.FlushInterval = time.Hour // nothing is written before Close
	db.BatchSize = 1000
	at := time.Now()
	for i := range 10 {
		db.RecordPublication(crossdock.Publication{Topic: "t", ID: fmt.Sprint(i), Sequence: uint64(i + 1), CorrelationID: "c", PublishedAt: at})
	}
	db.RecordOutcome(crossdock.Outcome{Topic: "t", EventID: "3", Sequence: 4, Subscription: "s", Status: crossdock.StatusDelivered,
		Attempt: &crossdock.Attempt{At: at, StatusCode: 200}})
	if err := db.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(t.Context()); err == nil {
		t.Errorf("second Close: nil error, want one")
	}
	if err := db.Flush(t.Context()); crossdock.ErrorCode(err) != crossdock.EUNAVAILABLE {
		t.Errorf("Flush after Close: %v, want EUNAVAILABLE", err)
	}
	if err := db.Ready(t.Context()); crossdock.ErrorCode(err) != crossdock.EUNAVAILABLE {
		t.Errorf("Ready after Close: %v, want EUNAVAILABLE", err)
	}
	db.RecordPublication(crossdock.Publication{Topic: "t", ID: "late"}) // must neither block nor panic

	// Reopening keeps the data.
	db = MustOpenPath(t, path)
	if err := db.Ready(t.Context()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	for i := range 10 {
		if _, err := db.Journey(t.Context(), "t", fmt.Sprint(i)); err != nil {
			t.Errorf("Journey of %d after reopening: %v", i, err)
		}
	}
	j, err := db.Journey(t.Context(), "t", "3")
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Deliveries) != 1 || j.Deliveries[0].Status != crossdock.StatusDelivered || len(j.Deliveries[0].Attempts) != 1 {
		t.Errorf("deliveries after reopening = %+v, want one delivered with one attempt", j.Deliveries)
	}
	if d, _, _, err := db.Counts(t.Context(), "s"); err != nil || d != 1 {
		t.Errorf("Counts after reopening = %d, %v; want 1 delivered", d, err)
	}
	if _, err := db.Journey(t.Context(), "t", "late"); crossdock.ErrorCode(err) != crossdock.ENOTFOUND {
		t.Errorf("Journey of a record made after Close: %v, want ENOTFOUND", err)
	}
}

func TestCloseWithoutRecords(t *testing.T) {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "crossdock.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db.RecordOutcome(crossdock.Outcome{Topic: "t", EventID: "e", Subscription: "s", Status: crossdock.StatusDelivered})
	if n := db.Dropped(); n != 0 {
		t.Errorf("Dropped after Close = %d, want 0: records after Close are discarded, not dropped", n)
	}
}

func TestQueueFullDrops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crossdock.db")
	db := MustOpenPath(t, path)
	db.QueueSize = 4
	db.BatchSize = 1
	db.FlushInterval = time.Millisecond
	if err := db.Flush(t.Context()); err != nil { // starts the writer and its first pruning
		t.Fatal(err)
	}

	// Another connection holds the write lock: the writer takes at most
	// one record (its batch) and waits in BEGIN, the queue holds four, and
	// every record after those is dropped.
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}

	const total = 20
	for i := range total {
		db.RecordPublication(crossdock.Publication{Topic: "t", ID: fmt.Sprint(i), Sequence: uint64(i + 1), CorrelationID: "c", PublishedAt: time.Now()})
	}
	dropped := db.Dropped()
	if dropped < total-5 {
		t.Errorf("Dropped = %d with the writer stalled, want at least %d", dropped, total-5)
	}

	if _, err := conn.ExecContext(t.Context(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(t.Context()); err != nil {
		t.Fatalf("Flush after the lock is released: %v", err)
	}
	kept := 0
	for i := range total {
		_, err := db.Journey(t.Context(), "t", fmt.Sprint(i))
		switch crossdock.ErrorCode(err) {
		case "":
			kept++
		case crossdock.ENOTFOUND:
		default:
			t.Fatalf("Journey: %v", err)
		}
	}
	if kept+int(dropped) != total || kept == 0 {
		t.Errorf("kept %d and dropped %d of %d records, want them to add up with some kept", kept, dropped, total)
	}
}

func TestFlushHonoursContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crossdock.db")
	db := MustOpenPath(t, path)
	db.BatchSize = 1
	if err := db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	db.RecordPublication(crossdock.Publication{Topic: "t", ID: "e", CorrelationID: "e", PublishedAt: time.Now()})

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := db.Flush(ctx); err == nil {
		t.Errorf("Flush with a cancelled context and the writer stalled: nil error")
	}
	if _, err := conn.ExecContext(t.Context(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if _, err := db.Journey(t.Context(), "t", "e"); err != nil {
		t.Errorf("Journey after the lock is released: %v", err)
	}
}

func TestCloseHonoursContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crossdock.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Logger = slog.New(slog.DiscardHandler)
	db.BatchSize = 1
	if err := db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	db.RecordPublication(crossdock.Publication{Topic: "t", ID: "e", CorrelationID: "e", PublishedAt: time.Now()})

	// The writer waits for the lock; Close gives up when ctx ends, stops
	// the writer anyway and reports why.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := db.Close(ctx); err == nil {
		t.Errorf("Close with a cancelled context and the writer stalled: nil error")
	}
}

func TestRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crossdock.db")
	now := time.Now()
	record := func(clock time.Time, topic string, n int) {
		t.Helper()
		db, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		db.Logger = slog.New(slog.DiscardHandler)
		sqlite.SetNow(db, func() time.Time { return clock })
		for i := range n {
			id := fmt.Sprint(i)
			db.RecordPublication(crossdock.Publication{Topic: topic, ID: id, Sequence: uint64(i + 1), CorrelationID: "c", PublishedAt: clock})
			db.RecordOutcome(crossdock.Outcome{Topic: topic, EventID: id, Sequence: uint64(i + 1), Subscription: "s", Status: crossdock.StatusDelivered,
				Attempt: &crossdock.Attempt{At: clock, StatusCode: 200}})
		}
		if err := db.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// More old journeys than one pruning transaction deletes.
	record(now.Add(-48*time.Hour), "old", 2100)
	record(now.Add(-time.Minute), "new", 3)

	// Pruning runs when the writer starts: Flush waits for it.
	db := MustOpenPath(t, path)
	sqlite.SetNow(db, func() time.Time { return now })
	db.Retention = 24 * time.Hour
	if err := db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"0", "1000", "2099"} {
		if _, err := db.Journey(t.Context(), "old", id); crossdock.ErrorCode(err) != crossdock.ENOTFOUND {
			t.Errorf("Journey of %s past the retention: %v, want ENOTFOUND", id, err)
		}
	}
	for _, id := range []string{"0", "2"} {
		j, err := db.Journey(t.Context(), "new", id)
		if err != nil || len(j.Deliveries) != 1 || j.PublishedAt.IsZero() {
			t.Errorf("Journey of a recent event = %+v, %v; want it with its delivery", j, err)
		}
	}
	if d, _, _, err := db.Counts(t.Context(), "s"); err != nil || d != 2103 {
		t.Errorf("Counts after pruning = %d, %v; want all 2103 delivered: counts are not pruned", d, err)
	}
}

func TestConcurrentRecording(t *testing.T) {
	db := MustOpen(t)
	db.BatchSize = 64
	const writers, each = 4, 250
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("%d-%d", w, i)
				db.RecordOutcome(crossdock.Outcome{Topic: "t", EventID: id, Sequence: 1, Subscription: "s", Status: crossdock.StatusDelivered,
					Attempt: &crossdock.Attempt{At: time.Now(), StatusCode: 200}})
				db.RecordPublication(crossdock.Publication{Topic: "t", ID: id, Sequence: 1, CorrelationID: id, PublishedAt: time.Now()})
			}
		})
	}
	// Reads run while the writer writes.
	wg.Go(func() {
		for range 50 {
			if _, _, _, err := db.Counts(t.Context(), "s"); err != nil {
				t.Errorf("Counts: %v", err)
				return
			}
		}
	})
	wg.Wait()
	if err := db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := db.Dropped(); n != 0 {
		t.Fatalf("Dropped = %d, want 0", n)
	}
	if d, _, _, err := db.Counts(t.Context(), "s"); err != nil || d != writers*each {
		t.Errorf("Counts = %d, %v; want %d delivered", d, err, writers*each)
	}
}

func TestOpenDefaults(t *testing.T) {
	db := MustOpen(t)
	if db.FlushInterval != sqlite.DefaultFlushInterval || db.BatchSize != sqlite.DefaultBatchSize ||
		db.QueueSize != sqlite.DefaultQueueSize || db.Retention != sqlite.DefaultRetention {
		t.Errorf("defaults = %v %d %d %v", db.FlushInterval, db.BatchSize, db.QueueSize, db.Retention)
	}
	if err := db.Ready(t.Context()); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestOpenInvalidPath(t *testing.T) {
	for _, path := range []string{"", "a?b", filepath.Join(t.TempDir(), "missing", "dir", "x.db")} {
		if db, err := sqlite.Open(t.Context(), path); err == nil {
			db.Close(t.Context())
			t.Errorf("Open(%q): nil error", path)
		}
	}
}
