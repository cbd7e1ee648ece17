package outbox_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	cdhttp "github.com/crossdock/crossdock/http"
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/crossdock/crossdock/outbox"
	"github.com/crossdock/crossdock/sqlite"
)

const topic = "sales.order.created"

// backend is a database the shared suite runs against.
type backend struct {
	name    string
	dialect outbox.Dialect

	// open returns a new connection pool on the backend's outbox database;
	// each call of one backend reaches the same database.
	open func(t *testing.T) *sql.DB

	// dsn is the address crossdock relay --db takes.
	dsn string
}

// forEachBackend runs the test on SQLite in a temporary directory and, when
// CROSSDOCK_TEST_POSTGRES_URL is set, on PostgreSQL in a schema of its own
// that is dropped afterwards. The outbox table exists in both.
func forEachBackend(t *testing.T, test func(t *testing.T, b *backend)) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, newSQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		test(t, newPostgres(t))
	})
}

func newSQLite(t *testing.T) *backend {
	t.Helper()
	b := &backend{name: "sqlite", dialect: outbox.SQLite, dsn: "sqlite:" + filepath.Join(t.TempDir(), "app.db")}
	b.open = func(t *testing.T) *sql.DB { return openDSN(t, b.dsn) }
	mustCreateTable(t, b.open(t))
	return b
}

// newPostgres skips the test when no PostgreSQL server is configured.
func newPostgres(t *testing.T) *backend {
	t.Helper()
	base := os.Getenv("CROSSDOCK_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("CROSSDOCK_TEST_POSTGRES_URL is not set")
	}
	schema := "cdtest_" + randomHex(6)
	admin := openDSN(t, base)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	b := &backend{
		name: "postgres", dialect: outbox.PostgreSQL,
		dsn: base + sep + "search_path=" + schema + "&application_name=" + schema,
	}
	b.open = func(t *testing.T) *sql.DB { return openDSN(t, b.dsn) }
	mustCreateTable(t, b.open(t))
	return b
}

// openDSN opens a database that is closed when the test ends (after the
// relays the test started, whose cleanups run first).
func openDSN(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, _, err := outbox.Open(dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustCreateTable(t *testing.T, db *sql.DB) {
	t.Helper()
	if err := outbox.CreateTable(context.Background(), db); err != nil {
		t.Fatalf("create table: %v", err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// newEvent returns a valid event; a non-empty key sets its partitionkey.
func newEvent(id, key string) *crossdock.Event {
	ev := &crossdock.Event{
		ID: id, Source: "/crm/orders", SpecVersion: "1.0", Type: "sales.order.created",
		Subject: "SO-" + id, Data: []byte(`{"order":"` + id + `","amount":12.5}`),
	}
	if key != "" {
		ev.SetExtension(crossdock.ExtPartitionKey, key)
	}
	return ev
}

// enqueue writes the events in one committed transaction.
func enqueue(t *testing.T, db *sql.DB, events ...*crossdock.Event) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := outbox.Enqueue(ctx, tx, topic, ev); err != nil {
			tx.Rollback()
			t.Fatalf("enqueue %s: %v", ev.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func countRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM crossdock_outbox").Scan(&n); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return n
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testHub is a real hub API (embedded JetStream, SQLite journeys) with the
// topic sales.order.created.
type testHub struct {
	broker *cdnats.Broker
	srv    *cdhttp.Server
}

// startHub starts a hub on addr ("127.0.0.1:0" for any port).
func startHub(t *testing.T, addr string) *testHub {
	t.Helper()
	ctx := context.Background()
	broker, err := cdnats.Open(ctx, cdnats.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open broker: %v", err)
	}
	t.Cleanup(func() { _ = broker.Close(context.Background()) }) // a test may have closed it
	if err := broker.EnsureTopic(ctx, crossdock.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	journeys, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "journeys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = journeys.Close(context.Background()) })
	srv := cdhttp.NewServer()
	srv.Addr = addr
	srv.Broker = broker
	srv.Journeys = journeys
	srv.Subscriptions = noSubscriptions{}
	if err := srv.Open(); err != nil {
		t.Fatalf("open hub: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) }) // a test may have closed it
	return &testHub{broker: broker, srv: srv}
}

// storedIDs returns the ids of the events on the topic in stream order.
func (h *testHub) storedIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for seq := uint64(1); ; seq++ {
		ev, _, err := h.broker.Event(context.Background(), topic, seq)
		if crossdock.ErrorCode(err) == crossdock.ENOTFOUND {
			return ids
		}
		if err != nil {
			t.Fatalf("read event %d: %v", seq, err)
		}
		ids = append(ids, ev.ID)
	}
}

type noSubscriptions struct{}

func (noSubscriptions) Subscriptions(context.Context) ([]crossdock.Subscription, error) {
	return nil, nil
}

func (noSubscriptions) Subscription(_ context.Context, name string) (*crossdock.Subscription, error) {
	return nil, crossdock.Errorf(crossdock.ENOTFOUND, "subscription %s does not exist", name)
}

// recorder wraps a Publisher: it counts every event of every successful
// publish call, remembers their order, and fails calls a test scripts.
type recorder struct {
	next crossdock.Publisher

	mu     sync.Mutex
	order  []string
	counts map[string]int
	calls  int
	fail   func(events []*crossdock.Event) error
}

func newRecorder(next crossdock.Publisher) *recorder {
	return &recorder{next: next, counts: make(map[string]int)}
}

func (r *recorder) Publish(ctx context.Context, topic string, events ...*crossdock.Event) ([]crossdock.PublishResult, error) {
	r.mu.Lock()
	r.calls++
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(events); err != nil {
			return nil, err
		}
	}
	res, err := r.next.Publish(ctx, topic, events...)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range events {
		r.order = append(r.order, ev.ID)
		r.counts[ev.ID]++
	}
	return res, nil
}

func (r *recorder) setFail(f func(events []*crossdock.Event) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = f
}

func (r *recorder) published() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

var _ crossdock.Publisher = (*recorder)(nil)

// startRelay runs a relay with fast test settings until the test ends.
// configure may change its settings before it starts.
func startRelay(t *testing.T, db *sql.DB, p crossdock.Publisher, configure func(r *outbox.Relay)) *logBuffer {
	t.Helper()
	logs := &logBuffer{}
	r := outbox.NewRelay(db, p)
	r.PollInterval = 20 * time.Millisecond
	r.BackoffInitial = 20 * time.Millisecond
	r.BackoffMax = 200 * time.Millisecond
	r.PublishTimeout = 5 * time.Second
	r.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if configure != nil {
		configure(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relay: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("relay did not stop within 10s of its context's end")
		}
	})
	return logs
}

// logBuffer collects a relay's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rowState is what an operator reads of a waiting row.
type rowState struct {
	id          int64
	attempts    int
	lastError   sql.NullString
	waitsFuture bool
}

func rowStates(t *testing.T, db *sql.DB, d outbox.Dialect) []rowState {
	t.Helper()
	now := "now()"
	if d == outbox.SQLite {
		now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
	}
	rows, err := db.Query(fmt.Sprintf(`SELECT id, attempts, last_error, next_attempt_at > %s FROM crossdock_outbox ORDER BY id`, now))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []rowState
	for rows.Next() {
		var s rowState
		if err := rows.Scan(&s.id, &s.attempts, &s.lastError, &s.waitsFuture); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
