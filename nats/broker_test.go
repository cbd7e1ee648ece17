package nats_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/nats-io/nats-server/v2/server"
)

// impl opens brokers of one kind: embedded, or external through a URL.
type impl struct {
	name string
	// open returns a broker on fresh storage.
	open func(t *testing.T) *env
}

// env is one broker under test and the means to restart it on the same
// storage.
type env struct {
	t      *testing.T
	b      *cdnats.Broker
	reopen func() // closes b and opens a new broker on the same storage
}

func impls() []impl {
	return []impl{
		{name: "embedded", open: openEmbedded},
		{name: "external", open: openExternal},
	}
}

// MustOpen opens an embedded broker in dir and closes it when the test ends.
func MustOpen(tb testing.TB, cfg cdnats.Config) *cdnats.Broker {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := cdnats.Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("open broker: %v", err)
	}
	tb.Cleanup(func() { closeBroker(tb, b) })
	return b
}

func closeBroker(tb testing.TB, b *cdnats.Broker) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		tb.Errorf("close broker: %v", err)
	}
}

func openEmbedded(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t}
	var once sync.Once
	open := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := cdnats.Open(ctx, cdnats.Config{DataDir: dir})
		if err != nil {
			t.Fatalf("open embedded broker: %v", err)
		}
		e.b = b
	}
	open()
	e.reopen = func() {
		closeBroker(t, e.b)
		open()
	}
	t.Cleanup(func() { once.Do(func() { closeBroker(t, e.b) }) })
	return e
}

// startServer starts a nats-server with a TCP listener on a random
// loopback port and JetStream in dir.
func startServer(tb testing.TB, dir string) *server.Server {
	tb.Helper()
	s, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		tb.Fatalf("new nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatalf("nats server did not start")
	}
	return s
}

func stopServer(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

func openExternal(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t}
	var srv *server.Server
	open := func() {
		srv = startServer(t, dir)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := cdnats.Open(ctx, cdnats.Config{URL: srv.ClientURL()})
		if err != nil {
			t.Fatalf("open broker on %s: %v", srv.ClientURL(), err)
		}
		if b.ClientURL() != srv.ClientURL() {
			t.Errorf("ClientURL() = %q, want %q", b.ClientURL(), srv.ClientURL())
		}
		e.b = b
	}
	open()
	e.reopen = func() {
		closeBroker(t, e.b)
		stopServer(srv)
		open()
	}
	t.Cleanup(func() {
		closeBroker(t, e.b)
		stopServer(srv)
	})
	return e
}

// TestBroker runs the shared suite against the embedded and the external
// broker.
func TestBroker(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"PublishDuplicate", testPublishDuplicate},
		{"PublishBatch", testPublishBatch},
		{"BatchIsAtomic", testBatchIsAtomic},
		{"Topics", testTopics},
		{"UnknownTopic", testUnknownTopic},
		{"ConsumeAck", testConsumeAck},
		{"Retry", testRetry},
		{"TwoSubscriptions", testTwoSubscriptions},
		{"DeadLetters", testDeadLetters},
		{"Stats", testStats},
		{"StopReleases", testStopReleases},
		{"StopContext", testStopContext},
		{"Reopen", testReopen},
		{"Ready", testReady},
	}
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, im.open(t))
				})
			}
		})
	}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newEvent(id string) *crossdock.Event {
	return &crossdock.Event{
		ID:          id,
		Source:      "/test",
		SpecVersion: crossdock.SpecVersion,
		Type:        "test.happened",
		Time:        time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Data:        []byte(fmt.Sprintf(`{"id":%q}`, id)),
		Extensions:  map[string]any{crossdock.ExtCorrelationID: "corr-" + id},
	}
}

func ensureTopic(t *testing.T, b *cdnats.Broker, name string) {
	t.Helper()
	if err := b.EnsureTopic(ctxT(t), crossdock.Topic{Name: name}); err != nil {
		t.Fatalf("ensure topic %s: %v", name, err)
	}
}

func publish(t *testing.T, b *cdnats.Broker, topic string, events ...*crossdock.Event) []crossdock.PublishResult {
	t.Helper()
	res, err := b.Publish(ctxT(t), topic, events...)
	if err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
	if len(res) != len(events) {
		t.Fatalf("publish returned %d results for %d events", len(res), len(events))
	}
	return res
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := crossdock.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testPublishDuplicate(t *testing.T, e *env) {
	b := e.b
	ensureTopic(t, b, "sales.order.created")
	first := publish(t, b, "sales.order.created", newEvent("e1"))[0]
	if first.Duplicate || first.Sequence != 1 || first.ID != "e1" || first.Topic != "sales.order.created" {
		t.Fatalf("first publish = %+v", first)
	}
	again := publish(t, b, "sales.order.created", newEvent("e1"))[0]
	if !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("republish = %+v, want duplicate of sequence %d", again, first.Sequence)
	}
	second := publish(t, b, "sales.order.created", newEvent("e2"))[0]
	if second.Duplicate || second.Sequence != 2 {
		t.Fatalf("second event = %+v", second)
	}

	ev, at, err := b.Event(ctxT(t), "sales.order.created", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := newEvent("e1")
	if ev.ID != want.ID || ev.Type != want.Type || string(ev.Data) != string(want.Data) ||
		!ev.Time.Equal(want.Time) || ev.CorrelationID() != "corr-e1" {
		t.Errorf("stored event = %+v, want %+v", ev, want)
	}
	if time.Since(at) > time.Minute || at.IsZero() {
		t.Errorf("stored at %v", at)
	}
	_, _, err = b.Event(ctxT(t), "sales.order.created", 3)
	wantCode(t, err, crossdock.ENOTFOUND)
	_, _, err = b.Event(ctxT(t), "no.such", 1)
	wantCode(t, err, crossdock.ENOTFOUND)

	_, err = b.Publish(ctxT(t), "sales.order.created", &crossdock.Event{ID: "x", Source: "/s"})
	wantCode(t, err, crossdock.EINVALID)
}

func testPublishBatch(t *testing.T, e *env) {
	b := e.b
	ensureTopic(t, b, "batch")
	res := publish(t, b, "batch", newEvent("a"), newEvent("b"), newEvent("c"))
	for i, r := range res {
		if r.Duplicate || r.Sequence != uint64(i+1) || r.ID != string(rune('a'+i)) {
			t.Errorf("result %d = %+v", i, r)
		}
	}
	for i, id := range []string{"a", "b", "c"} {
		ev, _, err := b.Event(ctxT(t), "batch", uint64(i+1))
		if err != nil || ev.ID != id {
			t.Fatalf("event %d = %v, %v; want %s", i+1, ev, err, id)
		}
	}

	// A batch repeating a stored id, and an id twice within itself: the
	// server refuses such an atomic batch, the broker stores the new ones.
	res = publish(t, b, "batch", newEvent("c"), newEvent("d"), newEvent("d"))
	want := []crossdock.PublishResult{
		{ID: "c", Topic: "batch", Sequence: 3, Duplicate: true},
		{ID: "d", Topic: "batch", Sequence: 4},
		{ID: "d", Topic: "batch", Sequence: 4, Duplicate: true},
	}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, res[i], want[i])
		}
	}
	// A whole batch sent again is a duplicate throughout.
	res = publish(t, b, "batch", newEvent("a"), newEvent("b"))
	if !res[0].Duplicate || !res[1].Duplicate || res[0].Sequence != 1 || res[1].Sequence != 2 {
		t.Errorf("republished batch = %+v", res)
	}
	next := publish(t, b, "batch", newEvent("e"))[0]
	if next.Sequence != 5 {
		t.Errorf("next sequence = %d, want 5", next.Sequence)
	}

	big := make([]*crossdock.Event, cdnats.MaxBatch+1)
	for i := range big {
		big[i] = newEvent(fmt.Sprintf("big-%d", i))
	}
	_, err := b.Publish(ctxT(t), "batch", big...)
	wantCode(t, err, crossdock.ETOOLARGE)
}

// testBatchIsAtomic sends a batch whose second event the connection refuses
// after the first reached the server: nothing of it may be stored.
func testBatchIsAtomic(t *testing.T, e *env) {
	b := e.b
	ensureTopic(t, b, "atomic")
	huge := newEvent("huge")
	huge.Data = []byte(`"` + strings.Repeat("x", 2<<20) + `"`)
	_, err := b.Publish(ctxT(t), "atomic", newEvent("small"), huge)
	wantCode(t, err, crossdock.ETOOLARGE)
	r := publish(t, b, "atomic", newEvent("after"))[0]
	if r.Sequence != 1 {
		t.Fatalf("after a failed batch the next event got sequence %d, want 1: part of the batch was stored", r.Sequence)
	}
	// The first event of the failed batch was not remembered either.
	r = publish(t, b, "atomic", newEvent("small"))[0]
	if r.Duplicate || r.Sequence != 2 {
		t.Fatalf("republishing the failed batch's first event = %+v", r)
	}
}

func testTopics(t *testing.T, e *env) {
	b := e.b
	ctx := ctxT(t)
	for _, name := range []string{"b.two", "a.one", "c-three"} {
		ensureTopic(t, b, name)
	}
	if err := b.EnsureTopic(ctx, crossdock.Topic{Name: "a.one", DedupWindow: time.Minute, Retention: time.Hour}); err != nil {
		t.Fatalf("update topic: %v", err)
	}
	topics, err := b.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []crossdock.Topic{
		{Name: "a.one", DedupWindow: time.Minute, Retention: time.Hour},
		{Name: "b.two", DedupWindow: crossdock.DefaultDedupWindow, Retention: crossdock.DefaultRetention},
		{Name: "c-three", DedupWindow: crossdock.DefaultDedupWindow, Retention: crossdock.DefaultRetention},
	}
	if fmt.Sprint(topics) != fmt.Sprint(want) {
		t.Errorf("Topics() = %v, want %v", topics, want)
	}
	got, err := b.Topic(ctx, "a.one")
	if err != nil || *got != want[0] {
		t.Errorf("Topic(a.one) = %v, %v", got, err)
	}
	for _, bad := range []crossdock.Topic{
		{Name: "Bad.Name"},
		{Name: "x", DedupWindow: time.Hour, Retention: time.Minute},
		{Name: "x", Retention: -time.Second},
	} {
		wantCode(t, b.EnsureTopic(ctx, bad), crossdock.EINVALID)
	}
}

func testUnknownTopic(t *testing.T, e *env) {
	b := e.b
	ctx := ctxT(t)
	start := time.Now()
	_, err := b.Publish(ctx, "no.such.topic", newEvent("x"))
	wantCode(t, err, crossdock.ENOTFOUND)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("publish to an unknown topic took %s", d)
	}
	_, err = b.Publish(ctx, "Not A Topic", newEvent("x"))
	wantCode(t, err, crossdock.ENOTFOUND)
	_, err = b.Topic(ctx, "no.such.topic")
	wantCode(t, err, crossdock.ENOTFOUND)
	_, err = b.Consume(ctx, sub("s", "no.such.topic"), func(context.Context, crossdock.Message) {})
	wantCode(t, err, crossdock.ENOTFOUND)
	_, err = b.Stats(ctx, sub("s", "no.such.topic"))
	wantCode(t, err, crossdock.ENOTFOUND)
}

func testReady(t *testing.T, e *env) {
	if err := e.b.Ready(ctxT(t)); err != nil {
		t.Fatalf("Ready() = %v", err)
	}
}

func TestOpenInvalid(t *testing.T) {
	ctx := ctxT(t)
	for _, cfg := range []cdnats.Config{
		{},
		{DataDir: t.TempDir(), Listen: "nonsense"},
		{DataDir: t.TempDir(), Replicas: 7},
	} {
		b, err := cdnats.Open(ctx, cfg)
		if err == nil {
			closeBroker(t, b)
		}
		wantCode(t, err, crossdock.EINVALID)
	}
	_, err := cdnats.Open(ctx, cdnats.Config{URL: "nats://127.0.0.1:1", PublishTimeout: time.Second})
	wantCode(t, err, crossdock.EUNAVAILABLE)
}

func TestEmbeddedListen(t *testing.T) {
	dir := t.TempDir()
	b := MustOpen(t, cdnats.Config{DataDir: dir, Listen: "127.0.0.1:0", SyncAlways: true})
	u, err := url.Parse(b.ClientURL())
	if err != nil || u.Hostname() != "127.0.0.1" || u.Port() == "0" || u.Port() == "" {
		t.Fatalf("ClientURL() = %q", b.ClientURL())
	}
	ensureTopic(t, b, "listen")
	// With SyncAlways an atomic batch is synced once, at its commit.
	if res := publish(t, b, "listen", newEvent("l1"), newEvent("l2")); res[1].Sequence != 2 {
		t.Errorf("batch with SyncAlways = %+v", res)
	}
	// A second client over TCP sees the topic the first created.
	other := MustOpen(t, cdnats.Config{URL: b.ClientURL()})
	if _, err := other.Topic(ctxT(t), "listen"); err != nil {
		t.Fatalf("topic through the listener: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Errorf("no jetstream directory in the data directory: %v", err)
	}
	if MustOpen(t, cdnats.Config{DataDir: t.TempDir()}).ClientURL() != "" {
		t.Errorf("an in-process broker reported a client URL")
	}
}

// TestOldServer checks that Open refuses a server too old for crossdock.
// CROSSDOCK_TEST_NATS_URL names such a server (Debian's 2.9).
func TestOldServer(t *testing.T) {
	u := os.Getenv("CROSSDOCK_TEST_NATS_URL")
	if u == "" {
		t.Skip("CROSSDOCK_TEST_NATS_URL is not set")
	}
	b, err := cdnats.Open(ctxT(t), cdnats.Config{URL: u})
	if err == nil {
		closeBroker(t, b)
		t.Fatalf("Open(%s) accepted the server", u)
	}
	wantCode(t, err, crossdock.EINVALID)
	msg := crossdock.ErrorMessage(err)
	if !strings.Contains(msg, cdnats.MinServerVersion) || !strings.Contains(msg, "2.") || !strings.Contains(msg, "version") {
		t.Errorf("message %q does not name both versions", msg)
	}
	t.Log(msg)
}
