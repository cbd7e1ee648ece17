package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/crossdock/crossdock"
	cdhttp "github.com/crossdock/crossdock/http"
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/crossdock/crossdock/outbox"
)

// tokenEnv names the environment variable that holds the hub's API key for
// relay: a flag would show it in the process list.
const tokenEnv = "CROSSDOCK_TOKEN"

// runRelay publishes the rows of an application's outbox table until a
// signal, or with --init creates the table and exits.
func runRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("db", "", "the outbox's `database`: postgres://USER:PASSWORD@HOST:PORT/DB or sqlite:PATH")
	hubURL := fs.String("hub", "", "publish through the hub API at `URL`, such as http://127.0.0.1:8080 (API key from $"+tokenEnv+")")
	natsURL := fs.String("nats-url", "", "publish straight to the NATS JetStream server or cluster at `URL`")
	initTable := fs.Bool("init", false, "create the table crossdock_outbox unless it exists, then exit")
	batch := fs.Int("batch", outbox.DefaultBatchSize, fmt.Sprintf("most rows published at once (1 to %d)", outbox.MaxBatchSize))
	poll := fs.Duration("poll", outbox.DefaultPollInterval, "longest sleep when no row is due (PostgreSQL also wakes on NOTIFY)")
	publishTimeout := fs.Duration("publish-timeout", outbox.DefaultPublishTimeout, "bound on publishing one batch, and again on recording its outcome")
	backoffInitial := fs.Duration("backoff-initial", outbox.DefaultBackoffInitial, "wait after a row's first failure, doubled after each further one")
	backoffMax := fs.Duration("backoff-max", outbox.DefaultBackoffMax, "longest wait between tries of a row")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("relay takes no arguments, got %q", fs.Args())}
	}
	if *dsn == "" {
		return usageError{"relay needs --db postgres://... or --db sqlite:PATH"}
	}
	parsed, err := outbox.ParseDSN(*dsn)
	if err != nil {
		return usageError{"--db: " + crossdock.ErrorMessage(err)}
	}
	if !*initTable && (*hubURL == "") == (*natsURL == "") {
		return usageError{"relay needs one of --hub URL and --nats-url URL"}
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	if parsed.Dialect == outbox.SQLite {
		// SQLite would create an empty file; the application's is wanted.
		if _, err := os.Stat(parsed.Path); err != nil && !*initTable {
			return fmt.Errorf("--db: no SQLite database at %s: %w", parsed.Path, err)
		}
	}
	db, _, err := outbox.Open(*dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	if *initTable {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := outbox.CreateTable(ictx, db); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "table %s is ready (%s)\n", outbox.Table, parsed.Dialect)
		return nil
	}

	var pub crossdock.Publisher
	target := "nats"
	if *hubURL != "" {
		if u, err := url.Parse(*hubURL); err == nil {
			target = u.Redacted()
		}
		pub = &cdhttp.Client{BaseURL: *hubURL, Token: os.Getenv(tokenEnv)}
	} else {
		broker, err := cdnats.Open(ctx, cdnats.Config{URL: *natsURL, PublishTimeout: *publishTimeout, Logger: logger})
		if err != nil {
			return fmt.Errorf("open broker: %w", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := broker.Close(cctx); err != nil {
				logger.Warn("close broker", "error", err)
			}
		}()
		pub = broker
	}

	r := outbox.NewRelay(db, pub)
	r.Dialect = parsed.Dialect
	r.BatchSize = *batch
	r.PollInterval = *poll
	r.PublishTimeout = *publishTimeout
	r.BackoffInitial = *backoffInitial
	r.BackoffMax = *backoffMax
	r.Logger = logger
	logger.Info("relaying the outbox", "db", parsed.Dialect, "to", target)
	if err := r.Run(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	return nil
}
