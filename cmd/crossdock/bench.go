package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/config"
)

// benchOptions are the load every scenario runs under.
type benchOptions struct {
	clients  int
	size     int
	duration time.Duration
	rate     int // events/s of the latency scenario
	backlog  int // events waiting in the memory scenario
	workers  int // delivery workers of the pipelines
	dedup    time.Duration
	rounds   int
	only     string
}

// runBench measures crossdock against bare baselines built from the same
// parts (net/http, embedded JetStream, a pull consumer), in one run on one
// machine, and prints the figures and their ratios.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o benchOptions
	fs.IntVar(&o.clients, "clients", 32, "concurrent publishing clients")
	fs.IntVar(&o.size, "size", 1024, "event size in bytes")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each throughput scenario publishes")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds of each throughput comparison; the median ratio is reported")
	fs.IntVar(&o.rate, "rate", 1000, "events/s of the latency scenario")
	fs.IntVar(&o.backlog, "backlog", 1_000_000, "events waiting in the memory scenario (0 skips it)")
	fs.DurationVar(&o.dedup, "dedup-window", crossdock.DefaultDedupWindow, "dedup window of the bench topic")
	fs.IntVar(&o.workers, "workers", 64, "delivery workers (max_in_flight) of the pipelines")
	fs.StringVar(&o.only, "only", "", "comma-separated scenarios to run: publish,pipeline,latency,memory")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	want := func(s string) bool { return o.only == "" || slices.Contains(strings.Split(o.only, ","), s) }
	fmt.Fprintf(stdout, "crossdock bench: %d clients, %d-byte events, %v per scenario, GOMAXPROCS %d, %s\n\n",
		o.clients, o.size, o.duration, runtime.GOMAXPROCS(0), runtime.Version())

	if want("publish") {
		if err := compare(ctx, stdout, o, "publish        bare HTTP→JetStream", 0.8, benchBarePublish, benchHubPublish); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	if want("pipeline") {
		if err := compare(ctx, stdout, o, "end to end     bare pipeline      ", 0.7, benchBarePipeline, benchHubPipeline); err != nil {
			return fmt.Errorf("end to end: %w", err)
		}
	}
	if want("latency") {
		p50, p99, n, err := benchLatency(ctx, o)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		fmt.Fprintf(stdout, "latency        publish→delivery at %d events/s over %d events: p50 %.2f ms, p99 %.2f ms (target p99 ≤ 10 ms)\n", o.rate, n, p50, p99)
	}
	if want("memory") && o.backlog > 0 {
		samples, err := benchMemory(ctx, o)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		fmt.Fprintf(stdout, "memory         RSS while events wait for a subscription whose endpoint is down:\n")
		fmt.Fprintf(stdout, "               (dedup window %v: JetStream keeps every event id published within it in memory)\n", o.dedup)
		for _, s := range samples {
			when := "while publishing"
			if s.after > 0 {
				when = fmt.Sprintf("%v after", s.after)
			}
			fmt.Fprintf(stdout, "               %9d waiting   RSS %6.1f MiB   Go heap %6.1f MiB   %s\n", s.backlog, s.rss, s.heap, when)
		}
	}
	return nil
}

// compare runs a baseline and crossdock o.rounds times, alternating which
// goes first, and prints each round's rates and the median ratio: on a
// shared machine a single pair of runs can be off by a fifth either way.
func compare(ctx context.Context, w io.Writer, o benchOptions, label string, target float64,
	baseline, hub func(context.Context, benchOptions) (float64, error)) error {
	var ratios []float64
	for round := range o.rounds {
		var b, h float64
		var err error
		if round%2 == 0 {
			if b, err = baseline(ctx, o); err == nil {
				h, err = hub(ctx, o)
			}
		} else {
			if h, err = hub(ctx, o); err == nil {
				b, err = baseline(ctx, o)
			}
		}
		if err != nil {
			return err
		}
		ratios = append(ratios, h/b)
		fmt.Fprintf(w, "%s %8.0f events/s   crossdock %8.0f events/s   ratio %.2f\n", label, b, h, h/b)
	}
	slices.Sort(ratios)
	fmt.Fprintf(w, "%s median ratio of %d rounds: %.2f (target ≥ %.2f)\n\n", strings.TrimSpace(label[:15]), len(ratios), ratios[len(ratios)/2], target)
	return nil
}

// payload returns a structured CloudEvent of about size bytes.
func payload(id string, size int) []byte {
	head := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/bench","type":"bench.event.created","datacontenttype":"application/json","data":{"pad":"`, id)
	pad := size - len(head) - 3
	if pad < 0 {
		pad = 0
	}
	return []byte(head + strings.Repeat("x", pad) + `"}}`)
}

// load posts events from o.clients goroutines for o.duration and returns
// the rate of 2xx answers.
func load(ctx context.Context, o benchOptions, url string) (float64, error) {
	client := benchClient(o.clients)
	var ok, failed atomic.Int64
	var seq atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				body := payload("e-"+strconv.FormatInt(seq.Add(1), 10), o.size)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/cloudevents+json")
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > ok.Load()/100 {
		return 0, fmt.Errorf("%d of %d requests failed", f, f+ok.Load())
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), nil
}

func benchClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = conns * 2
	t.MaxIdleConnsPerHost = conns * 2
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// serveHTTP serves h on 127.0.0.1:0 until the returned stop is called.
func serveHTTP(h http.Handler) (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}

// bareJetStream starts an embedded JetStream server in a temporary directory
// with one stream, the way the baselines use it.
func bareJetStream() (js jetstream.JetStream, stop func(), err error) {
	dir, err := os.MkdirTemp("", "crossdock-bench-bare")
	if err != nil {
		return nil, nil, err
	}
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, nil, errors.New("embedded server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return nil, nil, err
	}
	js, err = jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench"}, Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute})
	if err != nil {
		return nil, nil, err
	}
	return js, func() { nc.Close(); ns.Shutdown(); ns.WaitForShutdown(); os.RemoveAll(dir) }, nil
}

// bareHandler is the baseline publisher: read the body, publish it, wait for
// the acknowledgement, answer 202.
func bareHandler(js jetstream.JetStream) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if _, err := js.Publish(r.Context(), "bench", body); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

func benchBarePublish(ctx context.Context, o benchOptions) (float64, error) {
	js, stop, err := bareJetStream()
	if err != nil {
		return 0, err
	}
	defer stop()
	url, stopHTTP, err := serveHTTP(bareHandler(js))
	if err != nil {
		return 0, err
	}
	defer stopHTTP()
	return load(ctx, o, url)
}

// benchHub opens a hub on a temporary data directory with one topic and
// the subscriptions.
func benchHub(ctx context.Context, o benchOptions, subs ...crossdock.Subscription) (*Hub, func(), error) {
	dir, err := os.MkdirTemp("", "crossdock-bench-hub")
	if err != nil {
		return nil, nil, err
	}
	cfg := &config.Config{}
	cfg.Topics = []crossdock.Topic{crossdock.Topic{Name: "bench.event.created", DedupWindow: o.dedup}.WithDefaults()}
	cfg.Subscriptions = subs
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := openHub(ctx, HubOptions{Config: cfg, DataDir: dir, Listen: "127.0.0.1:0", Logger: logger})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return h, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Close(cctx)
		os.RemoveAll(dir)
	}, nil
}

func benchHubPublish(ctx context.Context, o benchOptions) (float64, error) {
	h, stop, err := benchHub(ctx, o)
	if err != nil {
		return 0, err
	}
	defer stop()
	return load(ctx, o, h.Server.URL()+"/v1/topics/bench.event.created/events")
}

// countingSink answers 204 and counts deliveries.
type countingSink struct {
	n       atomic.Int64
	observe func(r *http.Request)
}

func (s *countingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	if s.observe != nil {
		s.observe(r)
	}
	s.n.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// pipelineRate publishes for o.duration and returns the sink's delivery
// rate over the same window.
func pipelineRate(ctx context.Context, o benchOptions, url string, sink *countingSink) (float64, error) {
	before := sink.n.Load()
	start := time.Now()
	if _, err := load(ctx, o, url); err != nil {
		return 0, err
	}
	return float64(sink.n.Load()-before) / time.Since(start).Seconds(), nil
}

func benchBarePipeline(ctx context.Context, o benchOptions) (float64, error) {
	js, stop, err := bareJetStream()
	if err != nil {
		return 0, err
	}
	defer stop()
	sink := &countingSink{}
	sinkURL, stopSink, err := serveHTTP(sink)
	if err != nil {
		return 0, err
	}
	defer stopSink()
	cons, err := js.CreateOrUpdateConsumer(ctx, "BENCH", jetstream.ConsumerConfig{Durable: "sink", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1000})
	if err != nil {
		return 0, err
	}
	msgs := make(chan jetstream.Msg, o.workers)
	cc, err := cons.Consume(func(m jetstream.Msg) { msgs <- m }, jetstream.PullMaxMessages(2*o.workers))
	if err != nil {
		return 0, err
	}
	client := benchClient(o.workers)
	var wg sync.WaitGroup
	for range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				resp, err := client.Post(sinkURL, "application/json", bytes.NewReader(m.Data()))
				if err != nil {
					m.Nak()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				m.Ack()
			}
		}()
	}
	defer func() { cc.Drain(); <-cc.Closed(); close(msgs); wg.Wait() }()
	url, stopHTTP, err := serveHTTP(bareHandler(js))
	if err != nil {
		return 0, err
	}
	defer stopHTTP()
	return pipelineRate(ctx, o, url, sink)
}

func benchSubscription(url string, workers int) crossdock.Subscription {
	return crossdock.Subscription{
		Name: "sink", Topic: "bench.event.created", MaxInFlight: workers,
		Destination: crossdock.Destination{URL: url, Secret: demoSecret},
	}.WithDefaults()
}

func benchHubPipeline(ctx context.Context, o benchOptions) (float64, error) {
	sink := &countingSink{}
	sinkURL, stopSink, err := serveHTTP(sink)
	if err != nil {
		return 0, err
	}
	defer stopSink()
	h, stop, err := benchHub(ctx, o, benchSubscription(sinkURL, o.workers))
	if err != nil {
		return 0, err
	}
	defer stop()
	return pipelineRate(ctx, o, h.Server.URL()+"/v1/topics/bench.event.created/events", sink)
}

// benchLatency publishes at o.rate for o.duration and measures from the
// moment each publish was sent to the moment the sink received it.
func benchLatency(ctx context.Context, o benchOptions) (p50, p99 float64, n int, err error) {
	var mu sync.Mutex
	sent := make(map[string]time.Time)
	var lat []float64
	sink := &countingSink{observe: func(r *http.Request) {
		now := time.Now()
		mu.Lock()
		if t, ok := sent[r.Header.Get("ce-id")]; ok {
			lat = append(lat, float64(now.Sub(t).Microseconds())/1000)
		}
		mu.Unlock()
	}}
	sinkURL, stopSink, err := serveHTTP(sink)
	if err != nil {
		return 0, 0, 0, err
	}
	defer stopSink()
	h, stop, err := benchHub(ctx, o, benchSubscription(sinkURL, o.workers))
	if err != nil {
		return 0, 0, 0, err
	}
	defer stop()
	url := h.Server.URL() + "/v1/topics/bench.event.created/events"
	client := benchClient(o.clients)
	total := int(o.duration.Seconds() * float64(o.rate))
	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range total {
		<-tick.C
		id := "lat-" + strconv.Itoa(i)
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post(url, "application/cloudevents+json", bytes.NewReader(payload(id, o.size)))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for sink.n.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		return 0, 0, 0, errors.New("nothing was delivered")
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], len(lat), nil
}

type memSample struct {
	backlog   int
	after     time.Duration // since the last publish; 0 while publishing
	rss, heap float64
}

// benchMemory publishes o.backlog events to a subscription whose endpoint
// refuses connections and samples the process's memory as the backlog grows.
func benchMemory(ctx context.Context, o benchOptions) ([]memSample, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	down := "http://" + l.Addr().String() + "/down"
	l.Close() // nothing listens there now: every attempt is refused
	sub := benchSubscription(down, o.workers)
	sub.Retry = crossdock.RetryPolicy{MaxAttempts: 1_000_000, InitialInterval: time.Second, MaxInterval: 30 * time.Second, Multiplier: 2}
	h, stop, err := benchHub(ctx, o, sub)
	if err != nil {
		return nil, err
	}
	defer stop()

	const batch = 100
	var samples []memSample
	next := o.backlog / 10
	events := make([]*crossdock.Event, batch)
	for published := 0; published < o.backlog; {
		for i := range events {
			ev := &crossdock.Event{}
			if err := ev.UnmarshalJSON(payload(fmt.Sprintf("m-%d", published+i), o.size)); err != nil {
				return nil, err
			}
			events[i] = ev
		}
		if _, err := h.Broker.Publish(ctx, "bench.event.created", events...); err != nil {
			return nil, err
		}
		published += batch
		if published >= next {
			samples = append(samples, sampleMemory(published))
			next += o.backlog / 10
		}
	}
	// The backlog now waits, retried in the broker; memory must not move.
	for i := 0; i < 3 && ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
		s := sampleMemory(o.backlog)
		s.after = time.Duration(i+1) * 10 * time.Second
		samples = append(samples, s)
	}
	return samples, nil
}

func sampleMemory(backlog int) memSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{backlog: backlog, rss: rssMiB(), heap: float64(ms.HeapInuse) / (1 << 20)}
}

// rssMiB reads the resident set size from /proc; 0 where there is none.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}
