package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/config"
	"github.com/crossdock/crossdock/demo"
)

// demoSecret signs the demo's deliveries; the simulated targets verify it.
const demoSecret = "whsec_ZGVtby1zaWduaW5nLWtleS1ub3QtZm9yLXByb2R1Y3Rpb24="

const demoTopic = "sales.order.created"

// runDemo starts a hub with the order fan-out scenario: simulated targets
// that fail now and then, a steady stream of orders, and a status table.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs, "./demo-data")
	fs.Lookup("log-level").DefValue = "warn"
	f.logLevel = "warn"
	rate := fs.Float64("rate", 5, "orders published per second")
	every := fs.Duration("report", 5*time.Second, "how often to print the status table")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, secrets, err := f.logging(stderr)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	targets := &demo.Targets{
		DataDir: f.data,
		Secret:  demoSecret,
		Rand:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)),
		Logger:  logger,
	}
	if err := targets.Open(); err != nil {
		return fmt.Errorf("start simulated targets: %w", err)
	}
	defer targets.Close(context.Background())

	crm := &demo.CRM{Secret: demoSecret, Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3)), Logger: logger}
	if err := crm.Open(); err != nil {
		return fmt.Errorf("start simulated CRM: %w", err)
	}
	defer crm.Close(context.Background())
	erp := &demo.ERP{Secret: demoSecret, Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4)), Logger: logger}
	if err := erp.Open(); err != nil {
		return fmt.Errorf("start simulated ERP: %w", err)
	}
	defer erp.Close(context.Background())

	listen := f.listen
	if !portFree(listen) {
		fmt.Fprintf(stdout, "%s is taken; using a free port instead\n", listen)
		listen = "127.0.0.1:0"
	}
	hub, err := openHub(ctx, HubOptions{Config: demoConfig(targets, crm, erp), DataDir: f.data, Listen: listen, NATSURL: f.natsURL, Secrets: secrets, Logger: logger})
	if err != nil {
		return err
	}
	api := hub.Server.URL()
	fmt.Fprintf(stdout, "crossdock demo: order fan-out (sales.order.created) and CRM→ERP snapshot sync (crm.account.changed)\n")
	fmt.Fprintf(stdout, "  API:      %s  (try %s/v1/subscriptions)\n", api, api)
	fmt.Fprintf(stdout, "  data:     %s  (the archive writes %s)\n", f.data, filepath.Join(f.data, "lake", "date=*", "orders.jsonl"))
	fmt.Fprintf(stdout, "  publish an order by hand:\n    %s\n\n", demo.CurlExample(api, demoTopic))

	traffic := &demo.Traffic{HubURL: api, Topic: demoTopic, Rate: *rate,
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2)), Logger: logger}
	sync := &demo.SyncTraffic{HubURL: api, CRM: crm, Rate: 2, Accounts: 10,
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5)), Logger: logger}
	trafficDone := make(chan error, 2)
	go func() { trafficDone <- traffic.Run(ctx) }()
	go func() { trafficDone <- sync.Run(ctx) }()

	ticker := time.NewTicker(*every)
	defer ticker.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-ticker.C:
			printStatus(ctx, stdout, hub, traffic.Published())
			fmt.Fprintf(stdout, "snapshot sync: %s\n\n", demo.SyncReport(crm, erp))
		}
	}
	for range 2 {
		if err := <-trafficDone; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			logger.Warn("traffic stopped", "error", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), f.grace)
	defer cancel()
	printStatus(sctx, stdout, hub, traffic.Published())
	fmt.Fprintf(stdout, "snapshot sync: %s\n", demo.SyncReport(crm, erp))
	return hub.Close(sctx)
}

// demoConfig is the order fan-out, four subscriptions to the simulated
// targets, and the snapshot sync between the simulated CRM and ERP, with
// short retry intervals so retries and dead letters show soon.
func demoConfig(t *demo.Targets, crm *demo.CRM, erp *demo.ERP) *config.Config {
	retry := crossdock.RetryPolicy{MaxAttempts: 5, InitialInterval: 500 * time.Millisecond, Multiplier: 2, MaxInterval: 5 * time.Second}
	sub := func(name, filter string) crossdock.Subscription {
		return crossdock.Subscription{
			Name:   name,
			Topic:  demoTopic,
			Filter: filter,
			Destination: crossdock.Destination{
				URL: t.URL(name), Secret: demoSecret, Timeout: 2 * time.Second,
			},
			Retry:       retry,
			MaxInFlight: 8,
		}.WithDefaults()
	}
	cfg := &config.Config{}
	cfg.Topics = []crossdock.Topic{
		crossdock.Topic{Name: demoTopic}.WithDefaults(),
		crossdock.Topic{Name: demo.AccountTopic}.WithDefaults(),
		crossdock.Topic{Name: demo.AckTopic}.WithDefaults(),
	}
	cfg.Subscriptions = []crossdock.Subscription{
		sub("fulfilment", ""),
		sub("sms", `has(data.customer.phone) && data.customer.phone != ""`),
		sub("warehouse", ""),
		sub("archive", ""),
	}
	for _, s := range demo.SyncSubscriptions(crm, erp, 2*time.Second) {
		s.Retry = retry
		s.Retry.MaxAttempts = 20 // the sync keeps trying: the demo shows every account arrive
		s.MaxInFlight = 1        // one account change at a time, in order
		cfg.Subscriptions = append(cfg.Subscriptions, s.WithDefaults())
	}
	return cfg
}

// printStatus prints one line per subscription.
func printStatus(ctx context.Context, w io.Writer, hub *Hub, published int64) {
	subs, err := hub.Dispatcher.Subscriptions(ctx)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "%s  published %d\n", time.Now().Format("15:04:05"), published)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "subscription\tdelivered\tretrying\tdead-lettered\tfiltered\tbacklog\t")
	for _, s := range subs {
		st, _ := hub.Broker.Stats(ctx, s)
		delivered, filtered, _, _ := hub.Store.Counts(ctx, s.Name)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", s.Name, delivered, st.InFlight, st.DeadLetters, filtered, st.Backlog)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// portFree reports whether addr can be listened on now.
func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}
