package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/crossdock/crossdock/config"
	"github.com/crossdock/crossdock/dataverse"
	"github.com/crossdock/crossdock/delivery"
	"github.com/crossdock/crossdock/filter"
	cdhttp "github.com/crossdock/crossdock/http"
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/crossdock/crossdock/secret"
	"github.com/crossdock/crossdock/sqlite"
	"github.com/crossdock/crossdock/template"
	"github.com/crossdock/crossdock/transform"
	"github.com/crossdock/crossdock/webhook"
)

// HubOptions are what the serve and demo commands decide about a hub.
type HubOptions struct {
	Config  *config.Config
	DataDir string
	Listen  string
	NATSURL string
	Secrets *secret.Store
	Logger  *slog.Logger
}

// Hub is a running crossdock: broker, journey store, dispatcher and API,
// opened in that order and closed in reverse.
type Hub struct {
	Broker     *cdnats.Broker
	Store      *sqlite.DB
	Dispatcher *delivery.Dispatcher
	Server     *cdhttp.Server

	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// openHub starts every component of a hub. On error whatever was started is
// closed again.
func openHub(ctx context.Context, o HubOptions) (h *Hub, err error) {
	h = &Hub{}
	defer func() {
		if err != nil {
			if cerr := h.Close(context.WithoutCancel(ctx)); cerr != nil {
				o.Logger.Warn("close after failed start", "error", cerr)
			}
			h = nil
		}
	}()
	if o.Secrets == nil {
		o.Secrets = &secret.Store{Logger: o.Logger}
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}

	h.Broker, err = cdnats.Open(ctx, cdnats.Config{
		URL:        o.NATSURL,
		DataDir:    o.DataDir,
		SyncAlways: o.Config.JetStream.SyncAlways,
		Logger:     o.Logger,
	})
	if err != nil {
		return h, fmt.Errorf("open broker: %w", err)
	}
	for _, t := range o.Config.Topics {
		if err := h.Broker.EnsureTopic(ctx, t); err != nil {
			return h, fmt.Errorf("topic %s: %w", t.Name, err)
		}
	}

	h.Store, err = sqlite.Open(ctx, filepath.Join(o.DataDir, "crossdock.db"))
	if err != nil {
		return h, fmt.Errorf("open journey store: %w", err)
	}
	h.Store.Logger = o.Logger

	sender := webhook.NewSender()
	h.Dispatcher = delivery.NewDispatcher()
	h.Dispatcher.Broker = h.Broker
	h.Dispatcher.Sender = sender
	h.Dispatcher.Fetcher = sender
	h.Dispatcher.Journeys = h.Store
	h.Dispatcher.Compiler = compiler(o.Secrets)
	h.Dispatcher.Logger = o.Logger
	h.Dispatcher.Purger = h.Broker
	if h.Dispatcher.Store, err = h.Broker.SubscriptionStore(ctx); err != nil {
		return h, fmt.Errorf("open subscription store: %w", err)
	}
	if err := h.Dispatcher.Start(ctx, o.Config.Subscriptions); err != nil {
		return h, err
	}
	// Subscriptions created through the API come after the file's, which
	// win a name both define.
	n, err := h.Dispatcher.LoadStored(ctx)
	if err != nil {
		return h, err
	}
	if n > 0 {
		o.Logger.Info("subscriptions created through the API are running", "count", n)
	}

	// A changed secret file takes effect without a restart: the
	// subscriptions are compiled again with the new values.
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.stopWatch, h.watchDone = stop, make(chan struct{})
	go func() {
		defer close(h.watchDone)
		err := o.Secrets.Watch(wctx, func(name string) {
			o.Logger.Info("secret changed; recompiling subscriptions", "secret", name)
			if err := h.Dispatcher.Recompile(); err != nil {
				o.Logger.Error("recompile subscriptions after a secret changed; the old values stay in use", "secret", name, "error", err)
			}
		})
		if err != nil && wctx.Err() == nil {
			o.Logger.Error("watch secrets", "error", err)
		}
	}()

	h.Server = cdhttp.NewServer()
	h.Server.Addr = o.Listen
	h.Server.Logger = o.Logger
	h.Server.Broker = h.Broker
	h.Server.Journeys = h.Store
	h.Server.Subscriptions = h.Dispatcher
	h.Server.Manage = h.Dispatcher
	h.Server.StoreReady = h.Store.Ready
	for _, in := range o.Config.Ingress.Dataverse {
		// Checked now so a missing secret stops the start; resolved again
		// per request so a rotated key takes effect at once.
		if _, err := o.Secrets.Resolve(in.Key); err != nil {
			return h, fmt.Errorf("dataverse ingress for %s: %w", in.Topic, err)
		}
		h.Server.Dataverse = append(h.Server.Dataverse, dataverse.Ingress{Topic: in.Topic, Key: in.Key})
	}
	h.Server.ResolveKey = o.Secrets.Resolve
	if o.Config.Publish.MaxEventSize > 0 {
		h.Server.MaxEventSize = o.Config.Publish.MaxEventSize
	}
	if err := h.Server.Open(); err != nil {
		return h, fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	return h, nil
}

// Close stops taking events first, then lets deliveries under way finish
// (until ctx is done, after which they are released to the broker), then
// flushes journeys and closes the broker. It returns the first error.
func (h *Hub) Close(ctx context.Context) error {
	var errs []error
	if h.Server != nil {
		errs = append(errs, h.Server.Close(ctx))
	}
	if h.stopWatch != nil {
		h.stopWatch()
		<-h.watchDone
	}
	if h.Dispatcher != nil {
		errs = append(errs, h.Dispatcher.Close(ctx))
	}
	// The store and broker must close even when ctx ran out above.
	cctx := context.WithoutCancel(ctx)
	if h.Store != nil {
		errs = append(errs, h.Store.Close(cctx))
	}
	if h.Broker != nil {
		errs = append(errs, h.Broker.Close(cctx))
	}
	return errors.Join(errs...)
}

// compiler wires the filter, transform, template and secret packages into
// the dispatcher.
func compiler(secrets *secret.Store) delivery.Compiler {
	return delivery.Compiler{
		Filter: filter.Compile,
		Transform: func(program string) (delivery.Transformer, error) {
			return transform.Compile(program)
		},
		Template: func(text string, isURL bool) (delivery.Template, error) {
			return template.Compile(text, isURL, secrets.Resolve)
		},
		Secret: secrets.Resolve,
	}
}

var _ cdhttp.SubscriptionManager = (*delivery.Dispatcher)(nil)

// configChecks are the checks the configuration loader delegates to the
// packages that run what it describes.
func configChecks(secrets *secret.Store) config.Options {
	return config.Options{
		CheckFilter: func(expr string) error {
			_, err := filter.Compile(expr)
			return err
		},
		CheckTransform: func(program string) error {
			_, err := transform.Compile(program)
			return err
		},
		CheckURLTemplate: func(text string) error {
			_, err := template.ParseURL(text)
			return err
		},
		CheckHeaderTemplate: func(text string) error {
			_, err := template.Parse(text)
			return err
		},
		CheckSecret: func(name string) error {
			_, err := secrets.Value(name)
			return err
		},
	}
}
