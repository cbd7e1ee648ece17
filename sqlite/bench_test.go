package sqlite_test

import (
	"crypto/rand"
	"encoding/hex"
	"syscall"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
)

// ids returns n random 32-character hex event ids, like the uuids
// publishers send.
func ids(n int) []string {
	out := make([]string, n)
	b := make([]byte, 16)
	for i := range out {
		rand.Read(b)
		out[i] = hex.EncodeToString(b)
	}
	return out
}

// benchWindow is how many records are recorded between two Flush calls: less
// than the queue, so that nothing is dropped while the writer catches up.
const benchWindow = 16384

// BenchmarkRecordPublication measures publications written per second, Flush
// included, and the cost of the RecordPublication call itself.
func BenchmarkRecordPublication(b *testing.B) {
	db := MustOpen(b)
	id := ids(min(b.N, 1<<20))
	at := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	var recording time.Duration
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; {
		t0 := time.Now()
		n := min(benchWindow, b.N-i)
		for k := range n {
			db.RecordPublication(crossdock.Publication{Topic: "sales.order.created", ID: id[(i+k)%len(id)],
				Sequence: uint64(i + k + 1), CorrelationID: id[(i+k)%len(id)], PublishedAt: at})
		}
		recording += time.Since(t0)
		i += n
		if err := db.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	report(b, db.Dropped(), elapsed, cpu, recording)
}

// BenchmarkRecordOutcome measures delivery outcomes (each with an attempt)
// written per second, Flush included: four subscriptions per event, the
// first attempt of one in four retried.
func BenchmarkRecordOutcome(b *testing.B) {
	db := MustOpen(b)
	id := ids(min(b.N/4+1, 1<<18))
	subs := []string{"fulfilment", "sms", "inventory", "archive"}
	at := time.Now()
	ok := &crossdock.Attempt{At: at, StatusCode: 200, DurationMS: 12}
	failed := &crossdock.Attempt{At: at, StatusCode: 503, Error: "503 Service Unavailable", DurationMS: 30}
	b.ReportAllocs()
	b.ResetTimer()
	var recording time.Duration
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; {
		t0 := time.Now()
		n := min(benchWindow, b.N-i)
		for k := range n {
			j := i + k
			o := crossdock.Outcome{Topic: "sales.order.created", EventID: id[(j/4)%len(id)], Sequence: uint64(j/4 + 1),
				Subscription: subs[j%4], Status: crossdock.StatusDelivered, Attempt: ok}
			if j%16 == 0 {
				o.Status, o.Attempt = crossdock.StatusRetrying, failed
			}
			db.RecordOutcome(o)
		}
		recording += time.Since(t0)
		i += n
		if err := db.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	report(b, db.Dropped(), elapsed, cpu, recording)
}

// BenchmarkRecordOutcomeCall measures the RecordOutcome call alone, the
// cost on the delivery path: the writer waits meanwhile, and the queue is
// emptied between rounds with the timer stopped.
func BenchmarkRecordOutcomeCall(b *testing.B) {
	db := MustOpen(b)
	db.BatchSize = db.QueueSize
	db.FlushInterval = time.Hour // the writer writes on Flush only
	o := crossdock.Outcome{Topic: "sales.order.created", EventID: "e", Sequence: 1, Subscription: "s",
		Status: crossdock.StatusDelivered, Attempt: &crossdock.Attempt{At: time.Now(), StatusCode: 200, DurationMS: 12}}
	round := db.QueueSize - 1
	for range round { // touches the whole queue once
		db.RecordOutcome(o)
	}
	if err := db.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(round, b.N-i)
		for range n {
			db.RecordOutcome(o)
		}
		i += n
		b.StopTimer()
		if err := db.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	if n := db.Dropped(); n != 0 {
		b.Fatalf("%d records dropped", n)
	}
}

// report adds the records written per second of wall time and per second
// of CPU time (the process's, user and system: the figure that holds when
// other processes share the machine), and the cost of the Record calls.
func report(b *testing.B, dropped uint64, elapsed, cpu, recording time.Duration) {
	if dropped != 0 {
		b.Fatalf("%d records dropped", dropped)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "records/cpu-s")
	b.ReportMetric(float64(recording.Nanoseconds())/float64(b.N), "record-ns/op")
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
