package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/crossdock/crossdock/config"
	"github.com/crossdock/crossdock/secret"
)

// serveFlags are the flags serve and demo share.
type serveFlags struct {
	data, listen, natsURL, logLevel string
	secretsDir                      string
	grace                           time.Duration
}

func (f *serveFlags) register(fs *flag.FlagSet, dataDefault string) {
	fs.StringVar(&f.data, "data", dataDefault, "data `directory` (JetStream store, journeys, archive)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "API listen `address`")
	fs.StringVar(&f.natsURL, "nats-url", "", "external NATS server or cluster `URL` (default: embedded JetStream)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.secretsDir, "secrets-dir", "", "`directory` of secret files, one per secret, for ${secret:NAME} references (the environment's CROSSDOCK_SECRET_NAME comes first)")
	fs.DurationVar(&f.grace, "grace", 25*time.Second, "on SIGTERM, how long deliveries under way may finish")
}

// logging returns the secret store of the flags and a logger that never
// prints a resolved secret.
func (f *serveFlags) logging(w io.Writer) (*slog.Logger, *secret.Store, error) {
	logger, err := newLogger(w, f.logLevel)
	if err != nil {
		return nil, nil, err
	}
	secrets := &secret.Store{Dir: f.secretsDir}
	logger = slog.New(secrets.Handler(logger.Handler()))
	secrets.Logger = logger
	return logger, secrets, nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs, "./data")
	configPath := fs.String("config", "", "configuration `file` (YAML); none starts an empty hub")
	syncAlways := fs.Bool("sync-always", false, "fsync every JetStream write (overrides jetstream.sync_always)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	logger, secrets, err := f.logging(stderr)
	if err != nil {
		return err
	}
	cfg := &config.Config{}
	if *configPath != "" {
		if cfg, err = config.Load(*configPath, configChecks(secrets)); err != nil {
			return err
		}
	}
	if *syncAlways {
		cfg.JetStream.SyncAlways = true
	}

	hub, err := openHub(ctx, HubOptions{Config: cfg, DataDir: f.data, Listen: f.listen, NATSURL: f.natsURL, Secrets: secrets, Logger: logger})
	if err != nil {
		return err
	}
	logger.Info("crossdock is serving", "api", hub.Server.URL(), "data", f.data,
		"topics", len(cfg.Topics), "subscriptions", len(cfg.Subscriptions))
	fmt.Fprintf(stdout, "crossdock listening on %s\n", hub.Server.URL())

	<-ctx.Done()
	logger.Info("shutting down", "grace", f.grace)
	sctx, cancel := context.WithTimeout(context.Background(), f.grace)
	defer cancel()
	err = hub.Close(sctx)
	if errors.Is(err, context.DeadlineExceeded) && sctx.Err() != nil {
		// Deliveries still under way were cancelled and handed back to the
		// broker for redelivery: nothing is lost, the shutdown is clean.
		logger.Warn("grace period over; deliveries under way were released for redelivery", "grace", f.grace)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Info("stopped")
	return nil
}
