package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/crossdock/crossdock/outbox"
)

// outboxDB is an application database with an outbox, as relay --db names
// it.
type outboxDB struct {
	dsn string
	db  *sql.DB
}

// sqliteOutbox returns a new SQLite database file.
func sqliteOutbox(t *testing.T) *outboxDB {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	db, _, err := outbox.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// The application's own table: the file exists before the relay.
	if _, err := db.Exec(`CREATE TABLE orders (id TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	return &outboxDB{dsn: dsn, db: db}
}

// postgresOutbox returns a schema of its own on the server that
// CROSSDOCK_TEST_POSTGRES_URL names, and skips the test without one.
func postgresOutbox(t *testing.T) *outboxDB {
	t.Helper()
	base := os.Getenv("CROSSDOCK_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("CROSSDOCK_TEST_POSTGRES_URL is not set")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "cdrelay_" + hex.EncodeToString(b)
	admin, _, err := outbox.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
		admin.Close()
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	dsn := base + sep + "search_path=" + schema
	db, _, err := outbox.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &outboxDB{dsn: dsn, db: db}
}

func (o *outboxDB) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := o.db.QueryRow("SELECT count(*) FROM crossdock_outbox").Scan(&n); err != nil {
		t.Fatalf("count outbox rows: %v", err)
	}
	return n
}

// relayProcess is a running crossdock relay.
type relayProcess struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func startRelay(t *testing.T, args ...string) *relayProcess {
	t.Helper()
	p := &relayProcess{cmd: exec.Command(binary, append([]string{"relay"}, args...)...), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd.Stderr = &syncWriter{w: p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
	})
	return p
}

func TestRelayKill9LosesNothing(t *testing.T) {
	for _, tt := range []struct {
		name string
		open func(t *testing.T) *outboxDB
	}{{"sqlite", sqliteOutbox}, {"postgres", postgresOutbox}} {
		t.Run(tt.name, func(t *testing.T) {
			testRelayKill9(t, tt.open(t))
		})
	}
}

func testRelayKill9(t *testing.T, o *outboxDB) {
	if testing.Short() {
		t.Skip("kills and restarts the relay")
	}
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "topics:\n  - name: sales.order.created\n")
	h := startHub(t, "--config", cfg, "--data", filepath.Join(dir, "data"))

	out, err := exec.Command(binary, "relay", "--db", o.dsn, "--init").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "table crossdock_outbox is ready") {
		t.Fatalf("relay --init: %v\n%s", err, out)
	}

	// The application writes its orders and their events, some of them
	// while the hub is down (here: before any relay runs).
	const n = 3000
	ctx := context.Background()
	for i := 0; i < n; i += 250 {
		tx, err := o.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := i; j < i+250; j++ {
			ev := &crossdock.Event{
				ID: fmt.Sprintf("ord-%04d", j), Source: "/shop", SpecVersion: "1.0", Type: "sales.order.created",
				Data: []byte(fmt.Sprintf(`{"n":%d}`, j)),
			}
			ev.SetExtension(crossdock.ExtPartitionKey, fmt.Sprintf("cust-%d", j%13))
			if err := outbox.Enqueue(ctx, tx, "sales.order.created", ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}

	args := []string{"--db", o.dsn, "--hub", h.url, "--batch", "20", "--poll", "50ms", "--publish-timeout", "1s", "--log-level", "warn"}
	first := startRelay(t, args...)
	waitUntil(t, 30*time.Second, "a third of the rows relayed", func() bool { return o.count(t) <= n*2/3 })
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	first.done <- nil
	left := o.count(t)
	if left == 0 {
		t.Fatal("the relay finished before it was killed; the test proves nothing")
	}

	second := startRelay(t, args...)
	waitUntil(t, 60*time.Second, "an empty outbox", func() bool { return o.count(t) == 0 })
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second.done:
		second.done <- err
		if err != nil {
			t.Fatalf("relay exit after SIGTERM: %v\n%s", err, second.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("relay did not exit within 15s of SIGTERM")
	}

	// Every event reached the hub exactly once: publishing them all again
	// answers duplicates at n distinct sequences, and the next new event
	// lands right after them.
	seqs := make(map[uint64]bool)
	for i := 0; i < n; i += 500 {
		var batch []string
		for j := i; j < i+500; j++ {
			batch = append(batch, event(fmt.Sprintf("ord-%04d", j)))
		}
		code, body, err := publish(h.url, "sales.order.created", "application/cloudevents-batch+json", nil, "["+strings.Join(batch, ",")+"]")
		if err != nil || code != 202 {
			t.Fatalf("republish: %d %s %v", code, body, err)
		}
		var results []crossdock.PublishResult
		if err := json.Unmarshal(body, &results); err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if !r.Duplicate {
				t.Fatalf("%s was not at the hub", r.ID)
			}
			seqs[r.Sequence] = true
		}
	}
	if len(seqs) != n {
		t.Fatalf("%d distinct sequences for %d events", len(seqs), n)
	}
	code, body, err := publish(h.url, "sales.order.created", "application/cloudevents+json", nil, event("sentinel"))
	if err != nil || code != 202 || !strings.Contains(string(body), fmt.Sprintf(`"sequence":%d,`, n+1)) {
		t.Fatalf("the next event: %d %s %v; want sequence %d, so nothing was stored twice", code, body, err, n+1)
	}
	t.Logf("killed with %d of %d rows left; all %d events at the hub once", left, n, n)
}

func TestRelayUsage(t *testing.T) {
	o := sqliteOutbox(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no db", []string{"--hub", "http://127.0.0.1:1"}, "relay needs --db"},
		{"bad db", []string{"--db", "mysql://u:secret@h/db", "--hub", "http://127.0.0.1:1"}, "postgres://"},
		{"no target", []string{"--db", o.dsn}, "one of --hub URL and --nats-url URL"},
		{"two targets", []string{"--db", o.dsn, "--hub", "http://127.0.0.1:1", "--nats-url", "nats://127.0.0.1:1"}, "one of --hub"},
		{"missing file", []string{"--db", "sqlite:" + filepath.Join(t.TempDir(), "none.db"), "--hub", "http://127.0.0.1:1"}, "no SQLite database"},
		{"no table", []string{"--db", o.dsn, "--hub", "http://127.0.0.1:1"}, "crossdock relay --init"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(binary, append([]string{"relay"}, tt.args...)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("relay %v: %v\n%s\nwant an error naming %q", tt.args, err, out, tt.want)
			}
			if strings.Contains(string(out), "secret") {
				t.Errorf("the output shows a password:\n%s", out)
			}
		})
	}
}

func TestRelayToNATS(t *testing.T) {
	o := sqliteOutbox(t)
	if out, err := exec.Command(binary, "relay", "--db", o.dsn, "--init").CombinedOutput(); err != nil {
		t.Fatalf("relay --init: %v\n%s", err, out)
	}
	// A JetStream server that takes NATS clients, as a hub cluster's does.
	natsAddr := freeAddr(t)
	broker, err := cdnats.Open(context.Background(), cdnats.Config{DataDir: t.TempDir(), Listen: natsAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close(context.Background()) })
	if err := broker.EnsureTopic(context.Background(), crossdock.Topic{Name: "sales.order.created"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := &crossdock.Event{ID: "via-nats", Source: "/shop", SpecVersion: "1.0", Type: "sales.order.created"}
	if err := outbox.Enqueue(ctx, tx, "sales.order.created", ev); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	startRelay(t, "--db", o.dsn, "--nats-url", "nats://"+natsAddr, "--poll", "50ms")
	waitUntil(t, 20*time.Second, "an empty outbox", func() bool { return o.count(t) == 0 })
	got, _, err := broker.Event(context.Background(), "sales.order.created", 1)
	if err != nil || got.ID != "via-nats" {
		t.Fatalf("stored event: %+v, %v", got, err)
	}
}
