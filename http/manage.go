package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/crossdock/crossdock"
)

// SubscriptionManager changes the subscriptions a hub runs.
// delivery.Dispatcher implements it.
type SubscriptionManager interface {
	// PutSubscription creates or replaces a subscription owned by the API
	// and reports whether it was created. An empty secret with keepSecret
	// keeps the current one. EINVALID naming a bad field, ENOTFOUND for an
	// unknown topic, ECONFLICT for one defined in the configuration file.
	PutSubscription(ctx context.Context, sub crossdock.Subscription, keepSecret bool) (created bool, err error)

	// DeleteSubscription stops a subscription owned by the API and deletes
	// its consumer, dead letters and record. ENOTFOUND, or ECONFLICT for
	// one defined in the configuration file.
	DeleteSubscription(ctx context.Context, name string) error

	// Source returns where a running subscription was defined, "config" or
	// "api", or "" when none has the name.
	Source(name string) string
}

// subscriptionInput is the body of PUT /v1/subscriptions/{name}: the shape
// GET answers, plus destination.secret, which is write-only. source,
// secret_set (beyond keeping the secret) and stats are read-only and
// ignored.
type subscriptionInput struct {
	Name        string                       `json:"name"`
	Topic       string                       `json:"topic"`
	Source      string                       `json:"source"`
	Filter      string                       `json:"filter"`
	Enrich      *enrichInput                 `json:"enrich"`
	Transform   string                       `json:"transform"`
	Destination destinationInput             `json:"destination"`
	Retry       retryInput                   `json:"retry"`
	Reply       *crossdock.Reply             `json:"reply"`
	MaxInFlight int                          `json:"max_in_flight"`
	Stats       *crossdock.SubscriptionStats `json:"stats"`
}

type enrichInput struct {
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	OnNotFound string            `json:"on_not_found"`
	Timeout    string            `json:"timeout"`
}

type destinationInput struct {
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	Secret    string            `json:"secret"`
	SecretSet bool              `json:"secret_set"`
	Timeout   string            `json:"timeout"`
}

type retryInput struct {
	MaxAttempts     int     `json:"max_attempts"`
	InitialInterval string  `json:"initial_interval"`
	Multiplier      float64 `json:"multiplier"`
	MaxInterval     string  `json:"max_interval"`
}

// subscription returns the domain subscription the input describes, or
// EINVALID naming the field that is not a duration. Omitted fields take
// their defaults.
func (in subscriptionInput) subscription(name string) (crossdock.Subscription, error) {
	if in.Name != "" && in.Name != name {
		return crossdock.Subscription{}, crossdock.Errorf(crossdock.EINVALID, "name %q in the body differs from %q in the path", in.Name, name)
	}
	sub := crossdock.Subscription{
		Name:      name,
		Topic:     in.Topic,
		Filter:    in.Filter,
		Transform: in.Transform,
		Destination: crossdock.Destination{
			URL:     in.Destination.URL,
			Method:  in.Destination.Method,
			Headers: in.Destination.Headers,
			Secret:  in.Destination.Secret,
		},
		Retry: crossdock.RetryPolicy{
			MaxAttempts: in.Retry.MaxAttempts,
			Multiplier:  in.Retry.Multiplier,
		},
		Reply:       in.Reply,
		MaxInFlight: in.MaxInFlight,
	}
	var err error
	durations := []durationField{
		{"destination.timeout", in.Destination.Timeout, &sub.Destination.Timeout},
		{"retry.initial_interval", in.Retry.InitialInterval, &sub.Retry.InitialInterval},
		{"retry.max_interval", in.Retry.MaxInterval, &sub.Retry.MaxInterval},
	}
	if e := in.Enrich; e != nil {
		sub.Enrich = &crossdock.Enrichment{URL: e.URL, Headers: e.Headers, OnNotFound: e.OnNotFound}
		durations = append(durations, durationField{"enrich.timeout", e.Timeout, &sub.Enrich.Timeout})
	}
	for _, d := range durations {
		if *d.dst, err = parseDuration(d.field, d.text); err != nil {
			return sub, err
		}
	}
	if sub.Topic == "" {
		return sub, crossdock.Errorf(crossdock.EINVALID, "topic is required")
	}
	if sub.Destination.URL == "" {
		return sub, crossdock.Errorf(crossdock.EINVALID, "destination.url is required")
	}
	return sub, nil
}

// durationField is a duration of the input, by the name the API gives it.
type durationField struct {
	field string
	text  string
	dst   *time.Duration
}

// parseDuration reads a Go duration string; "" is zero, the default.
func parseDuration(field, text string) (time.Duration, error) {
	if text == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		return 0, crossdock.Errorf(crossdock.EINVALID, "%s %q is not a duration such as 10s or 1m30s", field, text)
	}
	return d, nil
}

// readJSONBody decodes a control request's one JSON object into v,
// refusing unknown fields. An empty body decodes to nothing when empty is
// allowed.
func readJSONBody(w http.ResponseWriter, r *http.Request, v any, empty bool) error {
	var buf bytes.Buffer
	if err := readBody(w, r, &buf, maxControlBody); err != nil {
		return err
	}
	if len(bytes.TrimSpace(buf.Bytes())) == 0 {
		if empty {
			return nil
		}
		return crossdock.Errorf(crossdock.EINVALID, "the body is empty: send a JSON object")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !crossdock.IsJSONContentType(ct) {
		return crossdock.Errorf(crossdock.EUNSUPPORTED, "Content-Type %q is not accepted: send application/json", mediaType(ct))
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return crossdock.Errorf(crossdock.EINVALID, "%s must be a JSON %s", te.Field, jsonKind(te.Type.Kind().String()))
		}
		return crossdock.Errorf(crossdock.EINVALID, "the body is not a valid JSON object for this resource: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return crossdock.Errorf(crossdock.EINVALID, "the body must be one JSON object")
	}
	return nil
}

// jsonKind names a Go kind as JSON does.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	default:
		return "number"
	}
}

// handlePutSubscription creates (201) or replaces (200) a subscription
// owned by the API and answers it as GET would, without stats.
func (s *Server) handlePutSubscription(w http.ResponseWriter, r *http.Request) error {
	if s.Manage == nil {
		return crossdock.Errorf(crossdock.ENOTIMPLEMENTED, "this server does not manage subscriptions")
	}
	name := r.PathValue("name")
	if !crossdock.ValidName(name) {
		return crossdock.Errorf(crossdock.EINVALID, "subscription name %q is invalid: use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	var in subscriptionInput
	if err := readJSONBody(w, r, &in, false); err != nil {
		return err
	}
	sub, err := in.subscription(name)
	if err != nil {
		return err
	}
	created, err := s.Manage.PutSubscription(r.Context(), sub, in.Destination.SecretSet)
	if err != nil {
		return err
	}
	cur, err := s.Subscriptions.Subscription(r.Context(), name)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/subscriptions/"+name)
	}
	return writeJSON(w, status, newSubscriptionView(*cur, s.source(name)))
}

// handleDeleteSubscription deletes a subscription owned by the API: 204.
func (s *Server) handleDeleteSubscription(w http.ResponseWriter, r *http.Request) error {
	if s.Manage == nil {
		return crossdock.Errorf(crossdock.ENOTIMPLEMENTED, "this server does not manage subscriptions")
	}
	if err := s.Manage.DeleteSubscription(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// topicInput is the body of PUT /v1/topics/{topic}; omitted settings take
// their defaults.
type topicInput struct {
	Name        string `json:"name"`
	DedupWindow string `json:"dedup_window"`
	Retention   string `json:"retention"`
}

// handlePutTopic creates (201) or updates (200) a topic and answers it.
func (s *Server) handlePutTopic(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("topic")
	var in topicInput
	if err := readJSONBody(w, r, &in, true); err != nil {
		return err
	}
	if in.Name != "" && in.Name != name {
		return crossdock.Errorf(crossdock.EINVALID, "name %q in the body differs from %q in the path", in.Name, name)
	}
	t := crossdock.Topic{Name: name}
	var err error
	if t.DedupWindow, err = parseDuration("dedup_window", in.DedupWindow); err != nil {
		return err
	}
	if t.Retention, err = parseDuration("retention", in.Retention); err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return err
	}
	_, err = s.Broker.Topic(ctx, name)
	created := crossdock.ErrorCode(err) == crossdock.ENOTFOUND
	if err != nil && !created {
		return err
	}
	if err := s.Broker.EnsureTopic(ctx, t); err != nil {
		return err
	}
	cur, err := s.Broker.Topic(ctx, name)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/topics/"+name)
	}
	return writeJSON(w, status, newTopicView(*cur))
}

// handleDeleteTopic deletes a topic with its events: 204, or 409 while a
// subscription consumes it or replies to it.
func (s *Server) handleDeleteTopic(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("topic")
	if _, err := s.Broker.Topic(ctx, name); err != nil {
		return err
	}
	subs, err := s.Subscriptions.Subscriptions(ctx)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if sub.Topic == name || (sub.Reply != nil && sub.Reply.Topic == name) {
			return crossdock.Errorf(crossdock.ECONFLICT, "topic %s is used by subscription %s: delete the subscription first", name, sub.Name)
		}
	}
	if err := s.Broker.DeleteTopic(ctx, name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
