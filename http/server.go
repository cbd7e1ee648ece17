// Package http serves crossdock's REST API: publishing CloudEvents to
// topics, reading, creating, changing and deleting topics and
// subscriptions (with their live stats), browsing,
// resubmitting and purging dead letters, looking up an event's journey,
// health and readiness probes, and the OpenAPI document that describes all
// of it. Errors are RFC 9457 problem details (application/problem+json).
//
// Callers alias it cdhttp, since it shares its name with net/http.
package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/dataverse"
)

// Defaults for a Server.
const (
	DefaultAddr         = "127.0.0.1:8080"
	DefaultMaxEventSize = 1 << 20
)

// maxControlBody bounds the bodies of requests other than publishing.
const maxControlBody = 1 << 20

// Server is the HTTP API of the hub. Set its fields, then Open it, or
// mount Handler in a server of your own.
type Server struct {
	// Addr is the TCP address to listen on; port 0 picks a free one.
	Addr   string
	Logger *slog.Logger

	// Broker stores and reads events and dead letters, and reports
	// subscription stats and its readiness.
	Broker crossdock.Broker

	// Journeys records publications and answers journey lookups and
	// delivery counts.
	Journeys crossdock.JourneyService

	// Subscriptions lists the subscriptions the hub runs.
	Subscriptions crossdock.SubscriptionService

	// Manage creates, replaces and deletes subscriptions through the API;
	// nil answers PUT and DELETE on subscriptions with 501.
	Manage SubscriptionManager

	// StoreReady reports the readiness of the journey store; nil means
	// there is nothing to check.
	StoreReady func(ctx context.Context) error

	// MaxEventSize bounds a publish request's body in bytes: one event, or
	// the whole of a batch.
	MaxEventSize int64

	// Dataverse lists the Dataverse webhook ingresses: the topics that
	// POST /v1/ingress/dataverse/{topic} takes events for, and their keys.
	Dataverse []dataverse.Ingress

	// ResolveKey resolves the secret references (${secret:NAME}) of a
	// Dataverse ingress key on every request, so a rotated key file takes
	// effect at once; nil uses keys as they are.
	ResolveKey func(text string) (string, error)

	handlerOnce sync.Once
	mux         *http.ServeMux
	handler     http.Handler

	ln       net.Listener
	srv      *http.Server
	done     chan struct{}
	serveErr error
}

// NewServer returns a Server with default settings and a logger that
// discards.
func NewServer() *Server {
	return &Server{
		Addr:         DefaultAddr,
		Logger:       discardLogger,
		MaxEventSize: DefaultMaxEventSize,
	}
}

// Open listens on Addr and serves in a goroutine until Close. It returns an
// error when a required component is missing or the address cannot be
// listened on.
func (s *Server) Open() error {
	switch {
	case s.Broker == nil:
		return errors.New("open http server: Broker is not set")
	case s.Journeys == nil:
		return errors.New("open http server: Journeys is not set")
	case s.Subscriptions == nil:
		return errors.New("open http server: Subscriptions is not set")
	case s.srv != nil:
		return errors.New("open http server: already open")
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.logger().Handler(), slog.LevelWarn),
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = fmt.Errorf("serve http: %w", err)
		}
	}()
	s.logger().Info("http api listening", "url", s.URL())
	return nil
}

// URL returns the server's base URL, such as http://127.0.0.1:8080, once it
// is open, and "" before.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Close stops taking requests and waits for those under way to finish.
// When ctx ends first it closes the remaining connections and returns ctx's
// error.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close() // ctx ended: drop what is left; err already says why
		err = fmt.Errorf("shut down http server: %w", err)
	}
	<-s.done
	if err == nil {
		err = s.serveErr
	}
	return err
}

// Handler returns the API's handler: every route, problem answers for
// unknown routes and methods, and debug request logs.
func (s *Server) Handler() http.Handler {
	s.handlerOnce.Do(func() {
		s.mux = http.NewServeMux()
		for _, rt := range s.routes() {
			s.mux.Handle(rt.method+" "+rt.path, s.adapt(rt.handle))
		}
		// The least specific pattern: every request no route matches.
		s.mux.HandleFunc("/", s.handleUnrouted)
		s.handler = http.HandlerFunc(s.serveHTTP)
	})
	return s.handler
}

// route is one endpoint of the API.
type route struct {
	method string
	path   string
	handle func(w http.ResponseWriter, r *http.Request) error
}

// routes lists every endpoint; the OpenAPI document must describe exactly
// these, which the tests check.
func (s *Server) routes() []route {
	return []route{
		{"POST", "/v1/topics/{topic}/events", s.handlePublish},
		{"GET", "/v1/topics/{topic}/events/{id}", s.handleJourney},
		{"POST", "/v1/ingress/dataverse/{topic}", s.handleDataverse},
		{"GET", "/v1/topics", s.handleTopics},
		{"GET", "/v1/topics/{topic}", s.handleTopic},
		{"PUT", "/v1/topics/{topic}", s.handlePutTopic},
		{"DELETE", "/v1/topics/{topic}", s.handleDeleteTopic},
		{"GET", "/v1/subscriptions", s.handleSubscriptions},
		{"GET", "/v1/subscriptions/{name}", s.handleSubscription},
		{"PUT", "/v1/subscriptions/{name}", s.handlePutSubscription},
		{"DELETE", "/v1/subscriptions/{name}", s.handleDeleteSubscription},
		{"GET", "/v1/subscriptions/{name}/dead-letters", s.handleDeadLetters},
		// ServeMux takes ':' inside a literal segment, so the custom method
		// needs no dispatch of its own; %3A in the request path matches too.
		{"POST", "/v1/subscriptions/{name}/dead-letters:resubmit", s.handleResubmit},
		{"DELETE", "/v1/subscriptions/{name}/dead-letters/{id}", s.handleDeleteDeadLetter},
		{"GET", "/healthz", s.handleHealthz},
		{"GET", "/readyz", s.handleReadyz},
		{"GET", "/openapi.json", s.handleOpenAPI},
	}
}

// adapt turns a handler that returns an error into an http.Handler that
// answers the error as a problem.
func (s *Server) adapt(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// discardLogger stands in for a nil Logger.
var discardLogger = slog.New(slog.DiscardHandler)

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return discardLogger
	}
	return s.Logger
}

// serveHTTP routes a request and, when debug logging is on, logs it: method,
// path, status and duration, never headers or bodies.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	log := s.logger()
	if !log.Enabled(r.Context(), slog.LevelDebug) {
		s.mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	s.mux.ServeHTTP(sw, r)
	log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", sw.status()), slog.Duration("duration", time.Since(start)))
}

// handleUnrouted answers a request that no route matches with a problem:
// 405 listing the allowed methods in Allow when the path is routed for
// others, else 404.
func (s *Server) handleUnrouted(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		probe := r.WithContext(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeProblem(w, Problem{
			Type:     ProblemTypeBase + crossdock.ENOTFOUND,
			Title:    http.StatusText(http.StatusNotFound),
			Status:   http.StatusNotFound,
			Detail:   fmt.Sprintf("no route matches %s %s", r.Method, r.URL.Path),
			Instance: r.URL.Path,
		})
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeProblem(w, Problem{
		Type:     ProblemTypeBase + "method_not_allowed",
		Title:    http.StatusText(http.StatusMethodNotAllowed),
		Status:   http.StatusMethodNotAllowed,
		Detail:   fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, ", ")),
		Instance: r.URL.Path,
	})
}

// statusWriter remembers the status a handler answered, for the request log.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
