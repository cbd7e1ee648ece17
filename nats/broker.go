// Package nats implements crossdock.Broker on NATS JetStream, either on an
// embedded server that keeps its file store under a data directory or on an
// external server or cluster reached by URL.
//
// Each topic is a stream (TOPIC_<name with dots as underscores>) holding
// published events on cd.t.<topic> and resubmitted dead letters on
// cd.r.<topic>.<subscription>. Each subscription is a durable pull consumer
// of its topic's stream and has a dead-letter stream DLQ_<subscription>.
// docs/broker.md describes the layout and what survives a crash.
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MinServerVersion is the oldest nats-server crossdock can use: atomic batch
// publishing arrived in 2.12 (multi-filter consumers in 2.10).
const MinServerVersion = "2.12.0"

// Defaults for a Config.
const (
	DefaultPublishTimeout = 5 * time.Second
	DefaultReplicas       = 1
)

// Config says which NATS server to use and how.
type Config struct {
	// URL is an external NATS server or cluster; empty starts an embedded
	// server.
	URL string

	// DataDir holds the embedded server's JetStream file store, under
	// DataDir/jetstream. Required when URL is empty.
	DataDir string

	// SyncAlways makes the embedded server fsync every write instead of
	// every two minutes.
	SyncAlways bool

	// Listen is an optional host:port on which the embedded server also
	// accepts TCP clients; empty keeps it in-process only.
	Listen string

	// Replicas is the replica count of the streams crossdock creates.
	Replicas int

	// PublishTimeout bounds the wait for the broker to confirm a publish.
	PublishTimeout time.Duration

	// Logger receives the broker's warnings; nil discards them.
	Logger *slog.Logger
}

// Broker is a crossdock.Broker on NATS JetStream.
type Broker struct {
	cfg    Config
	logger *slog.Logger
	srv    *server.Server // nil when external
	nc     *nats.Conn
	js     jetstream.JetStream

	mu     sync.RWMutex
	topics map[string]*topicStream

	cmu       sync.Mutex
	consumers map[*consumer]struct{}
}

var _ crossdock.Broker = (*Broker)(nil)

// Open connects to the server named by cfg.URL, or starts an embedded one
// when it is empty. EINVALID for a bad config or a server older than
// MinServerVersion, EUNAVAILABLE when the server cannot be reached.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = DefaultReplicas
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "nats: replicas must be between 1 and 5, not %d", cfg.Replicas)
	}
	if cfg.PublishTimeout < 0 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "nats: publish timeout must not be negative")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{
		cfg:       cfg,
		logger:    logger,
		topics:    make(map[string]*topicStream),
		consumers: make(map[*consumer]struct{}),
	}

	opts := []nats.Option{
		nats.Name("crossdock"),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1), // fail publishes while disconnected instead of queueing them
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats connection lost", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Warn("nats connection restored", "server", nc.ConnectedUrlRedacted())
		}),
	}
	url := cfg.URL
	if url == "" {
		srv, err := startServer(ctx, cfg, logger)
		if err != nil {
			return nil, err
		}
		b.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.shutdownServer(ctx)
		return nil, fmt.Errorf("connect to nats: %w", crossdock.Errorf(crossdock.EUNAVAILABLE, "nats server %s cannot be reached: %v", redact(url), err))
	}
	b.nc = nc
	if err := checkVersion(nc.ConnectedServerVersion(), redact(url)); err != nil {
		nc.Close()
		b.shutdownServer(ctx)
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.PublishTimeout))
	if err != nil {
		nc.Close()
		b.shutdownServer(ctx)
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	b.js = js
	if err := b.Ready(ctx); err != nil {
		nc.Close()
		b.shutdownServer(ctx)
		return nil, err
	}
	return b, nil
}

// startServer starts the embedded server and waits until it accepts
// connections.
func startServer(ctx context.Context, cfg Config, logger *slog.Logger) (*server.Server, error) {
	if cfg.DataDir == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "nats: the embedded broker needs a data directory")
	}
	opts := &server.Options{
		ServerName: "crossdock",
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, crossdock.Errorf(crossdock.EINVALID, "nats: listen address %q is not host:port", cfg.Listen)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, crossdock.Errorf(crossdock.EINVALID, "nats: listen port %q is not a port number", port)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create embedded nats server: %w", crossdock.Errorf(crossdock.EINVALID, "nats: embedded server: %v", err))
	}
	srv.SetLoggerV2(serverLogger{logger}, false, false, false)
	go srv.Start() // Start returns once the server runs; the goroutine only covers its start-up.
	wait := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, crossdock.Errorf(crossdock.EUNAVAILABLE, "nats: embedded server did not start within %s (data directory %s)", wait.Round(time.Millisecond), cfg.DataDir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, crossdock.Errorf(crossdock.EUNAVAILABLE, "nats: embedded server started without JetStream (data directory %s)", cfg.DataDir)
	}
	return srv, nil
}

// checkVersion returns EINVALID when the server is older than
// MinServerVersion.
func checkVersion(version, url string) error {
	if versionAtLeast(version, MinServerVersion) {
		return nil
	}
	where := "the embedded nats server"
	if url != "" {
		where = "the nats server at " + url
	}
	return crossdock.Errorf(crossdock.EINVALID,
		"%s is version %s; crossdock needs nats-server %s or later (atomic batch publish, multi-filter consumers)",
		where, version, MinServerVersion)
}

// versionAtLeast reports whether version (major.minor.patch, with any
// pre-release suffix ignored) is at least min.
func versionAtLeast(version, min string) bool {
	v, ok1 := parseVersion(version)
	m, ok2 := parseVersion(min)
	if !ok1 || !ok2 {
		return false
	}
	for i := range v {
		if v[i] != m[i] {
			return v[i] > m[i]
		}
	}
	return true
}

func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

// Close stops the consumers still running, closes the connection and, when
// embedded, shuts the server down and waits for it. It returns ctx's error
// when ctx ends first.
func (b *Broker) Close(ctx context.Context) error {
	var first error
	b.cmu.Lock()
	running := make([]*consumer, 0, len(b.consumers))
	for c := range b.consumers {
		running = append(running, c)
	}
	b.cmu.Unlock()
	for _, c := range running {
		if err := c.Stop(ctx); err != nil && first == nil {
			first = fmt.Errorf("stop consumer %s: %w", c.sub.Name, err)
		}
	}
	if b.nc != nil {
		// Acks are sent without waiting; the flush makes sure the server
		// has them before the connection goes.
		if err := b.flush(ctx); err != nil && first == nil && !errors.Is(err, nats.ErrConnectionClosed) {
			first = fmt.Errorf("flush nats connection: %w", err)
		}
		b.nc.Close()
	}
	if err := b.shutdownServer(ctx); err != nil && first == nil {
		first = err
	}
	return first
}

// flush waits until the server has processed everything sent so far,
// within PublishTimeout when ctx has no deadline.
func (b *Broker) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.PublishTimeout)
		defer cancel()
	}
	return b.nc.FlushWithContext(ctx)
}

// shutdownServer shuts the embedded server down, if any, and waits for it.
func (b *Broker) shutdownServer(ctx context.Context) error {
	if b.srv == nil {
		return nil
	}
	srv := b.srv
	done := make(chan struct{})
	go func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shut down embedded nats server: %w", ctx.Err())
	}
}

// ClientURL returns a URL another NATS client can connect to: the external
// URL, the embedded server's listener, or "" for an in-process-only server.
func (b *Broker) ClientURL() string {
	if b.cfg.URL != "" {
		return b.cfg.URL
	}
	if b.srv != nil && b.cfg.Listen != "" {
		return b.srv.ClientURL()
	}
	return ""
}

// Ready returns nil when the connection is up and JetStream answers,
// EUNAVAILABLE otherwise.
func (b *Broker) Ready(ctx context.Context) error {
	if b.nc == nil || !b.nc.IsConnected() {
		return crossdock.Errorf(crossdock.EUNAVAILABLE, "nats: not connected to the broker")
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream account info: %w", crossdock.Errorf(crossdock.EUNAVAILABLE, "nats: JetStream does not answer: %v", err))
	}
	return nil
}

// redact hides any credentials in a server URL.
func redact(url string) string {
	at := strings.LastIndexByte(url, '@')
	if at < 0 {
		return url
	}
	scheme := strings.Index(url, "://")
	if scheme < 0 || scheme > at {
		return "***" + url[at:]
	}
	return url[:scheme+3] + "***" + url[at:]
}

// isUnavailable reports whether err says the broker could not be reached or
// did not answer in time.
func isUnavailable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// brokerError turns a client or server error into a domain error: EUNAVAILABLE
// when the broker could not be reached, the error itself otherwise.
func brokerError(step string, err error) error {
	if isUnavailable(err) {
		return fmt.Errorf("%s: %w", step, crossdock.Errorf(crossdock.EUNAVAILABLE, "nats broker unavailable: %v", err))
	}
	return fmt.Errorf("%s: %w", step, err)
}

// serverLogger routes the embedded server's warnings and errors to slog and
// drops its notices, debug and trace lines.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(string, ...any) {}
func (s serverLogger) Debugf(string, ...any)  {}
func (s serverLogger) Tracef(string, ...any)  {}
func (s serverLogger) Warnf(format string, v ...any) {
	s.l.Warn(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (s serverLogger) Errorf(format string, v ...any) {
	s.l.Error(fmt.Sprintf(format, v...), "component", "nats-server")
}
func (s serverLogger) Fatalf(format string, v ...any) {
	s.l.Error(fmt.Sprintf(format, v...), "component", "nats-server", "fatal", true)
}
