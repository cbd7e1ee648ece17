package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/outbox"
)

func TestEnqueueIsPartOfTheTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		db := b.open(t)
		ctx := context.Background()

		// Rolled back: nothing stays.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.Enqueue(ctx, tx, topic, newEvent("rolled-back", "")); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db); n != 0 {
			t.Fatalf("%d rows after a rollback, want 0", n)
		}

		// Committed: one row with the event as structured JSON, its
		// partition key, and no failure yet.
		enqueue(t, db, newEvent("committed", "cust-7"))
		var (
			gotTopic, event, key string
			attempts             int
			lastError            sql.NullString
			due                  bool
		)
		q := `SELECT topic, event, partition_key, attempts, last_error, next_attempt_at <= created_at FROM crossdock_outbox`
		if err := db.QueryRow(q).Scan(&gotTopic, &event, &key, &attempts, &lastError, &due); err != nil {
			t.Fatal(err)
		}
		if gotTopic != topic || key != "cust-7" || attempts != 0 || lastError.Valid || !due {
			t.Errorf("row: topic %q key %q attempts %d last_error %v due %v", gotTopic, key, attempts, lastError, due)
		}
		var ev crossdock.Event
		if err := json.Unmarshal([]byte(event), &ev); err != nil {
			t.Fatalf("event column %s: %v", event, err)
		}
		if ev.ID != "committed" || ev.Subject != "SO-committed" || string(ev.Data) != `{"order":"committed","amount":12.5}` {
			t.Errorf("event column decodes to %+v", ev)
		}
	})
}

func TestEnqueueRefusesBadInput(t *testing.T) {
	db := newSQLite(t).open(t)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	noSource := newEvent("a", "")
	noSource.Source = ""
	badData := newEvent("b", "")
	badData.Data = []byte("{")
	badExt := newEvent("c", "")
	badExt.SetExtension("Bad-Name", "x")
	tests := []struct {
		name  string
		tx    *sql.Tx
		topic string
		ev    *crossdock.Event
		want  string
	}{
		{"no transaction", nil, topic, newEvent("x", ""), "transaction"},
		{"bad topic", tx, "Sales Orders", newEvent("x", ""), "topic name"},
		{"no event", tx, topic, nil, "missing"},
		{"no source", tx, topic, noSource, "source"},
		{"data not JSON", tx, topic, badData, "not valid JSON"},
		{"bad extension name", tx, topic, badExt, "Bad-Name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := outbox.Enqueue(ctx, tt.tx, tt.topic, tt.ev)
			if crossdock.ErrorCode(err) != crossdock.EINVALID || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Enqueue: %v, want EINVALID naming %q", err, tt.want)
			}
		})
	}
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM crossdock_outbox").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows written (%v), want none", n, err)
	}
}

func TestCreateTableIsIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		db := b.open(t)
		enqueue(t, db, newEvent("kept", ""))
		// Twice more, concurrently: nothing fails and the row stays.
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- outbox.CreateTable(context.Background(), b.open(t)) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if n := countRows(t, db); n != 1 {
			t.Errorf("%d rows, want 1", n)
		}
	})
}

// TestDocsShowTheSchema holds docs/outbox.md to the DDL CreateTable runs.
func TestDocsShowTheSchema(t *testing.T) {
	doc, err := os.ReadFile("../docs/outbox.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []outbox.Dialect{outbox.SQLite, outbox.PostgreSQL} {
		stmts, err := outbox.Schema(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stmts {
			if !strings.Contains(string(doc), s+";") {
				t.Errorf("docs/outbox.md does not show this %s statement verbatim:\n%s;", d, s)
			}
		}
	}
	if _, err := outbox.Schema("oracle"); crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("Schema(oracle): %v, want EINVALID", err)
	}
}

func TestDialectOf(t *testing.T) {
	sq, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	pg, err := sql.Open("pgx", "postgres://127.0.0.1:1/x")
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if d, err := outbox.DialectOf(sq); d != outbox.SQLite || err != nil {
		t.Errorf("sqlite: %q, %v", d, err)
	}
	if d, err := outbox.DialectOf(pg); d != outbox.PostgreSQL || err != nil {
		t.Errorf("pgx: %q, %v", d, err)
	}
}
