package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/crossdock/crossdock/config"
	"github.com/crossdock/crossdock/delivery"
	"github.com/crossdock/crossdock/filter"
	cdhttp "github.com/crossdock/crossdock/http"
	cdnats "github.com/crossdock/crossdock/nats"
	"github.com/crossdock/crossdock/sqlite"
	"github.com/crossdock/crossdock/webhook"
)

// HubOptions are what the serve and demo commands decide about a hub.
type HubOptions struct {
	Config  *config.Config
	DataDir string
	Listen  string
	NATSURL string
	Logger  *slog.Logger
}

// Hub is a running crossdock: broker, journey store, dispatcher and API,
// opened in that order and closed in reverse.
type Hub struct {
	Broker     *cdnats.Broker
	Store      *sqlite.DB
	Dispatcher *delivery.Dispatcher
	Server     *cdhttp.Server
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

	h.Dispatcher = delivery.NewDispatcher()
	h.Dispatcher.Broker = h.Broker
	h.Dispatcher.Sender = webhook.NewSender()
	h.Dispatcher.Journeys = h.Store
	h.Dispatcher.CompileFilter = filter.Compile
	h.Dispatcher.Logger = o.Logger
	if err := h.Dispatcher.Start(ctx, o.Config.Subscriptions); err != nil {
		return h, err
	}

	h.Server = cdhttp.NewServer()
	h.Server.Addr = o.Listen
	h.Server.Logger = o.Logger
	h.Server.Broker = h.Broker
	h.Server.Journeys = h.Store
	h.Server.Subscriptions = h.Dispatcher
	h.Server.StoreReady = h.Store.Ready
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

// checkFilter is the config loader's filter check.
func checkFilter(expr string) error {
	_, err := filter.Compile(expr)
	return err
}
