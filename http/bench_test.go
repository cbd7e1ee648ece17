package http_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossdock/crossdock"
	cdhttp "github.com/crossdock/crossdock/http"
)

// benchClients is how many clients publish at once.
const benchClients = 32

// benchEvent returns a structured event of about 1 KiB with the id.
func benchEvent(id string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"bench","type":"order.created","time":"2025-01-02T03:04:05Z",` +
		`"data":{"order":"` + id + `","note":"` + strings.Repeat("x", 865) + `"}}`
}

// runPublishers posts b.N events to url from benchClients clients and
// reports events/s.
func runPublishers(b *testing.B, url string) {
	b.Helper()
	if n := len(benchEvent("bench-000000000")); n < 1000 || n > 1100 {
		b.Fatalf("event size %d, want about 1 KiB", n)
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: benchClients,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
	defer client.CloseIdleConnections()
	var seq atomic.Int64
	b.SetBytes(int64(len(benchEvent("bench-000000000"))))
	b.SetParallelism((benchClients + 1) / 2) // × GOMAXPROCS 2 on the target machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "bench-" + strconv.FormatInt(seq.Add(1), 10)
			req, err := http.NewRequest("POST", url, strings.NewReader(benchEvent(id)))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", cdhttp.ContentTypeCloudEvent)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublishHandler publishes 1 KiB structured events through the
// real server, embedded JetStream broker and SQLite journey store.
func BenchmarkPublishHandler(b *testing.B) {
	h := MustOpen(b)
	runPublishers(b, h.srv.URL()+"/v1/topics/"+topic+"/events")
}

// BenchmarkBareJetStreamPublish is the baseline: a handler that only reads
// the body and stores it with js.Publish on an embedded JetStream set up
// as the broker sets up its own (file store, 10-minute dedup window, an
// in-process connection).
func BenchmarkBareJetStreamPublish(b *testing.B) {
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: b.TempDir(), DontListen: true, NoSigs: true, NoLog: true})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats server did not start")
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
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
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH", Subjects: []string{"bench.events"}, Storage: jetstream.FileStorage,
		Duplicates: crossdock.DefaultDedupWindow, MaxAge: crossdock.DefaultRetention,
	}); err != nil {
		b.Fatal(err)
	}
	var id atomic.Int64
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		msg := &nats.Msg{Subject: "bench.events", Data: body,
			Header: nats.Header{jetstream.MsgIDHeader: []string{strconv.FormatInt(id.Add(1), 10)}}}
		if _, err := js.PublishMsg(r.Context(), msg); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: bare}
	go hs.Serve(ln)
	defer hs.Close()
	runPublishers(b, "http://"+ln.Addr().String()+"/")
}
