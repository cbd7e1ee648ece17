package nats_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/crossdock/crossdock"
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// benchClients is the number of concurrent publishers, as 32 HTTP clients
// would be.
const benchClients = 32

// benchEvent returns an event whose structured JSON is about 1 KiB.
func benchEvent() *crossdock.Event {
	ev := newEvent("template")
	ev.Data = []byte(fmt.Sprintf(`{"order":"SO-1001","customer":"C-77","lines":[%s]}`,
		strings.TrimSuffix(strings.Repeat(`{"sku":"SKU-123456","qty":2,"price":"19.99"},`, 21), ",")))
	return ev
}

func parallelism(b *testing.B) {
	b.SetParallelism(max(1, benchClients/testingGOMAXPROCS()))
}

// BenchmarkPublish publishes 1 KiB events from 32 goroutines through the
// embedded broker, each waiting for its ack.
func BenchmarkPublish(b *testing.B) {
	br := MustOpen(b, cdnats.Config{DataDir: b.TempDir()})
	if err := br.EnsureTopic(context.Background(), crossdock.Topic{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	tmpl := benchEvent()
	size, _ := tmpl.MarshalJSON()
	b.SetBytes(int64(len(size)))
	var n atomic.Int64
	parallelism(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			ev := *tmpl
			ev.ID = fmt.Sprintf("ev-%d", n.Add(1))
			if _, err := br.Publish(ctx, "bench", &ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublishBare is the baseline: the same events, already encoded,
// published with js.PublishMsg straight to an embedded server's stream.
func BenchmarkPublishBare(b *testing.B) {
	srv := startServer(b, b.TempDir())
	defer stopServer(srv)
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// The same stream settings as a crossdock topic's.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "BARE", Subjects: []string{"bare"}, Storage: jetstream.FileStorage,
		Duplicates: crossdock.DefaultDedupWindow, MaxAge: crossdock.DefaultRetention,
		AllowDirect: true, AllowAtomicPublish: true,
	}); err != nil {
		b.Fatal(err)
	}
	data, _ := benchEvent().MarshalJSON()
	b.SetBytes(int64(len(data)))
	var n atomic.Int64
	parallelism(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("ev-%d", n.Add(1))
			if _, err := js.Publish(ctx, "bare", data, jetstream.WithMsgID(id)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func testingGOMAXPROCS() int { return runtime.GOMAXPROCS(0) }
