package outbox_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	cdhttp "github.com/crossdock/crossdock/http"
	"github.com/crossdock/crossdock/outbox"
)

func TestRelayPublishesInOrderAndDeletes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		h := startHub(t, "127.0.0.1:0")
		db := b.open(t)
		var want []string
		for tx := range 5 {
			var events []*crossdock.Event
			for i := range 50 {
				id := fmt.Sprintf("ord-%d-%02d", tx, i)
				events = append(events, newEvent(id, fmt.Sprintf("cust-%d", i%7)))
				want = append(want, id)
			}
			enqueue(t, db, events...)
		}
		// A program in another language writes only topic and event.
		if _, err := db.Exec(`INSERT INTO crossdock_outbox (topic, event) VALUES ($1, $2)`, topic,
			`{"specversion":"1.0","id":"from-sql","source":"/erp","type":"sales.order.created","partitionkey":"cust-1","data":{"x":1}}`); err != nil {
			t.Fatal(err)
		}
		want = append(want, "from-sql")

		rec := newRecorder(cdhttp.NewClient(h.srv.URL()))
		startRelay(t, db, rec, func(r *outbox.Relay) { r.BatchSize = 40 })
		eventually(t, 20*time.Second, "an empty outbox", func() bool { return countRows(t, db) == 0 })

		if got := h.storedIDs(t); !slices.Equal(got, want) {
			t.Errorf("the hub stored %d events in another order than written:\n got %v\nwant %v", len(got), got, want)
		}
		if got := rec.published(); !slices.Equal(got, want) {
			t.Errorf("published %d events, want each of %d once in order", len(got), len(want))
		}
		// The event arrives as it was written.
		ev, _, err := h.broker.Event(context.Background(), topic, 1)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Subject != "SO-ord-0-00" || ev.Extension(crossdock.ExtPartitionKey) != "cust-0" || string(ev.Data) != `{"order":"ord-0-00","amount":12.5}` {
			t.Errorf("stored event %+v", ev)
		}
	})
}

func TestRelayWaitsOutHubDowntime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		// An address where nothing listens yet.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()

		db := b.open(t)
		enqueue(t, db, newEvent("while-down-1", "cust-1"), newEvent("while-down-2", ""))
		startRelay(t, db, cdhttp.NewClient("http://"+addr), nil)

		// Each row shows why it waits.
		eventually(t, 10*time.Second, "failures recorded on the rows", func() bool {
			states := rowStates(t, db, b.dialect)
			for _, s := range states {
				if s.attempts < 2 {
					return false
				}
			}
			return len(states) == 2
		})
		for _, s := range rowStates(t, db, b.dialect) {
			if !strings.Contains(s.lastError.String, "unavailable") || !strings.Contains(s.lastError.String, "cannot be reached") {
				t.Errorf("row %d: last_error %q", s.id, s.lastError.String)
			}
		}
		enqueue(t, db, newEvent("while-down-3", "cust-1"))

		// The hub comes up there: everything is published, nothing lost.
		h := startHub(t, addr)
		eventually(t, 10*time.Second, "an empty outbox", func() bool { return countRows(t, db) == 0 })
		// Rows of different partitions back off on their own; within one,
		// the order holds.
		stored := h.storedIDs(t)
		wantStored(t, stored, "while-down-1", "while-down-2", "while-down-3")
		wantBefore(t, stored, "while-down-1", "while-down-3")
	})
}

func TestRelayKeepsPartitionOrderBehindAFailingRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		h := startHub(t, "127.0.0.1:0")
		db := b.open(t)

		// Row 1, written by hand, is no CloudEvent (no source): the hub
		// would refuse it, so it waits for an operator, and row 3 of the
		// same partition waits behind it. Rows of other partitions, or of
		// none, go.
		if _, err := db.Exec(`INSERT INTO crossdock_outbox (topic, event) VALUES ($1, $2)`, topic,
			`{"specversion":"1.0","id":"k1-first","type":"sales.order.created","partitionkey":"k1"}`); err != nil {
			t.Fatal(err)
		}
		enqueue(t, db, newEvent("k2-first", "k2"), newEvent("k1-second", "k1"), newEvent("no-key", ""), newEvent("k2-second", "k2"))
		// Transient failures of a head hold its partition back too.
		rec := newRecorder(cdhttp.NewClient(h.srv.URL()))
		failures := 0
		rec.setFail(func(events []*crossdock.Event) error {
			for _, ev := range events {
				if ev.ID == "k2-first" && failures < 3 {
					failures++
					return crossdock.Errorf(crossdock.EUNAVAILABLE, "scripted outage")
				}
			}
			return nil
		})
		logs := startRelay(t, db, rec, func(r *outbox.Relay) { r.BackoffMax = time.Hour })

		eventually(t, 10*time.Second, "all but the k1 partition published", func() bool { return countRows(t, db) == 2 })
		stored := h.storedIDs(t)
		wantStored(t, stored, "no-key", "k2-first", "k2-second")
		wantBefore(t, stored, "k2-first", "k2-second")
		states := rowStates(t, db, b.dialect)
		if states[0].attempts < 1 || !strings.Contains(states[0].lastError.String, "invalid: the event column is not a valid structured CloudEvent: required attribute source is missing") || !states[0].waitsFuture {
			t.Errorf("refused row: %+v", states[0])
		}
		if states[1].attempts != 0 || states[1].lastError.Valid {
			t.Errorf("the row behind it was tried: %+v", states[1])
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "k1-first") {
			t.Errorf("the refusal is not logged at error:\n%s", logs)
		}

		// The operator mends the event and asks for a try now.
		if _, err := db.Exec(`UPDATE crossdock_outbox SET event = $1, next_attempt_at = created_at WHERE id = $2`,
			`{"specversion":"1.0","id":"k1-first","source":"/mended","type":"sales.order.created","partitionkey":"k1"}`, states[0].id); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "an empty outbox", func() bool { return countRows(t, db) == 0 })
		stored = h.storedIDs(t)
		wantStored(t, stored, "no-key", "k2-first", "k2-second", "k1-first", "k1-second")
		wantBefore(t, stored, "k1-first", "k1-second")
	})
}

// wantStored fails unless the hub stored exactly the ids, in any order.
func wantStored(t *testing.T, stored []string, ids ...string) {
	t.Helper()
	got := slices.Sorted(slices.Values(stored))
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("stored %v, want %v", stored, ids)
	}
}

// wantBefore fails unless a was stored before b.
func wantBefore(t *testing.T, stored []string, a, b string) {
	t.Helper()
	if i, j := slices.Index(stored, a), slices.Index(stored, b); i < 0 || j < 0 || i > j {
		t.Errorf("stored %v: want %s before %s", stored, a, b)
	}
}

func TestRelayRefusalsWaitTheMost(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		h := startHub(t, "127.0.0.1:0")
		db := b.open(t)
		ctx := context.Background()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.Enqueue(ctx, tx, "crm.unknown", newEvent("lost-topic", "")); err != nil {
			t.Fatal(err)
		}
		big := newEvent("too-big", "")
		big.Data = []byte(`"` + strings.Repeat("x", 2<<20) + `"`)
		for _, ev := range []*crossdock.Event{newEvent("fine-1", ""), big, newEvent("fine-2", "")} {
			if err := outbox.Enqueue(ctx, tx, topic, ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		rec := newRecorder(cdhttp.NewClient(h.srv.URL()))
		startRelay(t, db, rec, func(r *outbox.Relay) { r.BackoffMax = time.Hour })

		// The batch of three is refused for one event: the other two go.
		eventually(t, 10*time.Second, "the fine events published", func() bool { return countRows(t, db) == 2 })
		if got, want := h.storedIDs(t), []string{"fine-1", "fine-2"}; !slices.Equal(got, want) {
			t.Errorf("stored %v, want %v", got, want)
		}
		eventually(t, 10*time.Second, "both refusals recorded", func() bool {
			states := rowStates(t, db, b.dialect)
			return len(states) == 2 && states[0].attempts == 1 && states[1].attempts == 1
		})
		states := rowStates(t, db, b.dialect)
		if !strings.HasPrefix(states[0].lastError.String, "not_found: ") || !strings.HasPrefix(states[1].lastError.String, "too_large: ") {
			t.Errorf("last errors %q, %q", states[0].lastError.String, states[1].lastError.String)
		}
		// They wait an hour: no second try.
		calls := func() int {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return rec.calls
		}
		before := calls()
		time.Sleep(200 * time.Millisecond) // ten poll intervals in which nothing may happen
		if after := calls(); after != before {
			t.Errorf("%d publish calls during the back-off", after-before)
		}
	})
}

func TestTwoRelaysPublishEachRowOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		h := startHub(t, "127.0.0.1:0")
		db := b.open(t)
		const n = 1500
		var events []*crossdock.Event
		for i := range n {
			key := ""
			if i%3 == 0 {
				key = fmt.Sprintf("cust-%d", i%11)
			}
			events = append(events, newEvent(fmt.Sprintf("e%04d", i), key))
		}
		rec := newRecorder(cdhttp.NewClient(h.srv.URL()))
		for range 2 {
			startRelay(t, b.open(t), rec, func(r *outbox.Relay) { r.BatchSize = 25 })
		}
		for i := 0; i < n; i += 100 {
			enqueue(t, db, events[i:i+100]...)
		}
		eventually(t, 60*time.Second, "an empty outbox", func() bool { return countRows(t, db) == 0 })

		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, ev := range events {
			if c := rec.counts[ev.ID]; c != 1 {
				t.Errorf("%s published %d times", ev.ID, c)
			}
		}
		// Within a partition the hub holds the events in written order.
		stored := h.storedIDs(t)
		if len(stored) != n {
			t.Fatalf("the hub stored %d events, want %d", len(stored), n)
		}
		last := map[string]string{}
		for _, id := range stored {
			var i int
			fmt.Sscanf(id, "e%d", &i)
			key := events[i].Extension(crossdock.ExtPartitionKey)
			if key == "" {
				continue
			}
			if prev, ok := last[key]; ok && prev > id {
				t.Errorf("partition %s: %s stored after %s", key, id, prev)
			}
			last[key] = id
		}
	})
}

func TestListenWakesTheRelay(t *testing.T) {
	b := newPostgres(t)
	h := startHub(t, "127.0.0.1:0")
	db := b.open(t)
	startRelay(t, b.open(t), cdhttp.NewClient(h.srv.URL()), func(r *outbox.Relay) { r.PollInterval = time.Minute })

	// Once the relay listens, a commit reaches the hub in well under the
	// minute it would otherwise sleep.
	schema := b.dsn[strings.LastIndex(b.dsn, "=")+1:]
	eventually(t, 10*time.Second, "the relay listening", func() bool {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query = 'LISTEN crossdock_outbox'`, schema).Scan(&n)
		return err == nil && n == 1
	})
	for i := range 3 {
		id := fmt.Sprintf("woken-%d", i)
		enqueue(t, db, newEvent(id, ""))
		eventually(t, 5*time.Second, id+" at the hub", func() bool { return len(h.storedIDs(t)) == i+1 })
	}
}

func TestRelayNeedsTheTable(t *testing.T) {
	db := openDSN(t, "sqlite:"+t.TempDir()+"/empty.db")
	r := outbox.NewRelay(db, newRecorder(nil))
	if err := r.Run(context.Background()); crossdock.ErrorCode(err) != crossdock.ENOTFOUND || !strings.Contains(err.Error(), "--init") {
		t.Errorf("Run without a table: %v, want ENOTFOUND naming --init", err)
	}
	r.BatchSize = outbox.MaxBatchSize + 1
	if err := r.Run(context.Background()); crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("Run with batch size %d: %v, want EINVALID", r.BatchSize, err)
	}
	if err := outbox.NewRelay(db, nil).Run(context.Background()); crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("Run without a publisher: %v, want EINVALID", err)
	}
}
