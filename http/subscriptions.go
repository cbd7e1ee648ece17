package http

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/crossdock/crossdock"
)

// Paging of dead letters.
const (
	defaultDeadLetterLimit = 50
	maxDeadLetterLimit     = 500
)

// subscriptionView is a subscription as the API shows it and takes it on
// PUT: the root type's fields with defaults filled in, durations as Go
// duration strings, where it was defined, and the secret replaced by
// whether one is set. Templates and ${secret:NAME} references show as
// written.
type subscriptionView struct {
	Name        string                       `json:"name"`
	Topic       string                       `json:"topic"`
	Source      string                       `json:"source,omitempty"`
	Filter      string                       `json:"filter,omitempty"`
	Enrich      *enrichView                  `json:"enrich,omitempty"`
	Transform   string                       `json:"transform,omitempty"`
	Destination destinationView              `json:"destination"`
	Retry       retryView                    `json:"retry"`
	Reply       *crossdock.Reply             `json:"reply,omitempty"`
	MaxInFlight int                          `json:"max_in_flight"`
	Stats       *crossdock.SubscriptionStats `json:"stats,omitempty"`
}

type enrichView struct {
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers,omitempty"`
	OnNotFound string            `json:"on_not_found"`
	Timeout    string            `json:"timeout"`
}

type destinationView struct {
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers,omitempty"`
	SecretSet bool              `json:"secret_set"`
	Timeout   string            `json:"timeout"`
}

type retryView struct {
	MaxAttempts     int     `json:"max_attempts"`
	InitialInterval string  `json:"initial_interval"`
	Multiplier      float64 `json:"multiplier"`
	MaxInterval     string  `json:"max_interval"`
}

// newSubscriptionView returns the view of sub; source is "" when unknown.
func newSubscriptionView(sub crossdock.Subscription, source string) subscriptionView {
	sub = sub.WithDefaults()
	v := subscriptionView{
		Name:      sub.Name,
		Topic:     sub.Topic,
		Source:    source,
		Filter:    sub.Filter,
		Transform: sub.Transform,
		Destination: destinationView{
			URL:       redactURL(sub.Destination.URL),
			Method:    sub.Destination.Method,
			Headers:   sub.Destination.Headers,
			SecretSet: sub.Destination.Secret != "",
			Timeout:   sub.Destination.Timeout.String(),
		},
		Retry: retryView{
			MaxAttempts:     sub.Retry.MaxAttempts,
			InitialInterval: sub.Retry.InitialInterval.String(),
			Multiplier:      sub.Retry.Multiplier,
			MaxInterval:     sub.Retry.MaxInterval.String(),
		},
		Reply:       sub.Reply,
		MaxInFlight: sub.MaxInFlight,
	}
	if e := sub.Enrich; e != nil {
		v.Enrich = &enrichView{URL: redactURL(e.URL), Headers: e.Headers, OnNotFound: e.OnNotFound, Timeout: e.Timeout.String()}
	}
	return v
}

// source returns where a subscription was defined, "" without a manager.
func (s *Server) source(name string) string {
	if s.Manage == nil {
		return ""
	}
	return s.Manage.Source(name)
}

// redactURL hides a password in a URL's user information and otherwise
// returns the URL as written, so templates such as {{subject}} read as
// they were configured.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); !ok {
		return raw
	}
	rest, ok := strings.CutPrefix(raw, u.Scheme+"://")
	at := strings.IndexByte(rest, '@')
	colon := strings.IndexByte(rest, ':')
	if !ok || at < 0 || colon < 0 || colon > at {
		return u.Redacted()
	}
	return u.Scheme + "://" + rest[:colon] + ":xxxxx" + rest[at:]
}

// handleSubscriptions answers every subscription's settings, without stats.
func (s *Server) handleSubscriptions(w http.ResponseWriter, r *http.Request) error {
	subs, err := s.Subscriptions.Subscriptions(r.Context())
	if err != nil {
		return err
	}
	items := make([]subscriptionView, 0, len(subs))
	for _, sub := range subs {
		items = append(items, newSubscriptionView(sub, s.source(sub.Name)))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// handleSubscription answers one subscription's settings and live stats:
// the broker's backlog, in-flight and dead-letter counts (zero while it has
// no consumer yet) and the journey store's delivered, filtered and failed.
func (s *Server) handleSubscription(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	sub, err := s.Subscriptions.Subscription(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	stats, err := s.Broker.Stats(ctx, *sub)
	if err != nil {
		if crossdock.ErrorCode(err) != crossdock.ENOTFOUND {
			return err
		}
		stats = crossdock.SubscriptionStats{} // no consumer yet: nothing stored for it
	}
	stats.Delivered, stats.Filtered, stats.Failed, err = s.Journeys.Counts(ctx, sub.Name)
	if err != nil {
		return err
	}
	view := newSubscriptionView(*sub, s.source(sub.Name))
	view.Stats = &stats
	return writeJSON(w, http.StatusOK, view)
}

// handleDeadLetters answers a page of the subscription's dead letters,
// oldest first.
func (s *Server) handleDeadLetters(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q := r.URL.Query()
	limit := defaultDeadLetterLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeadLetterLimit {
			return crossdock.Errorf(crossdock.EINVALID, "limit %q must be an integer from 1 to %d", v, maxDeadLetterLimit)
		}
		limit = n
	}
	sub, err := s.Subscriptions.Subscription(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	items, next, err := s.Broker.DeadLetters(ctx, *sub, q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	if items == nil {
		items = []crossdock.DeadLetter{}
	}
	return writeJSON(w, http.StatusOK, struct {
		Items      []crossdock.DeadLetter `json:"items"`
		NextCursor string                 `json:"next_cursor"`
	}{items, next})
}

// handleResubmit hands dead letters back to their subscription: those named
// in {"ids":[...]}, or all of them for an empty body or {}.
func (s *Server) handleResubmit(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ids, err := readResubmitBody(w, r)
	if err != nil {
		return err
	}
	sub, err := s.Subscriptions.Subscription(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	n, err := s.Broker.ResubmitDeadLetters(ctx, *sub, ids)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int{"resubmitted": n})
}

// readResubmitBody returns the ids a resubmit names, nil for all. An
// explicit empty list is refused rather than taken to mean every dead
// letter.
func readResubmitBody(w http.ResponseWriter, r *http.Request) ([]string, error) {
	var buf bytes.Buffer
	if err := readBody(w, r, &buf, maxControlBody); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(buf.Bytes())) == 0 {
		return nil, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !crossdock.IsJSONContentType(ct) {
		return nil, crossdock.Errorf(crossdock.EUNSUPPORTED, "Content-Type %q is not accepted: send application/json", mediaType(ct))
	}
	var body struct {
		IDs *[]string `json:"ids"`
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "the body must be {} or {\"ids\":[...]}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, crossdock.Errorf(crossdock.EINVALID, "the body must be one JSON object")
	}
	if body.IDs == nil {
		return nil, nil
	}
	if len(*body.IDs) == 0 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "ids is empty: omit it to resubmit every dead letter")
	}
	for i, id := range *body.IDs {
		if id == "" {
			return nil, crossdock.Errorf(crossdock.EINVALID, "ids[%d] is empty", i)
		}
	}
	return *body.IDs, nil
}

// handleDeleteDeadLetter purges one dead letter: 204, or 404 when the
// subscription has none with the id.
func (s *Server) handleDeleteDeadLetter(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	sub, err := s.Subscriptions.Subscription(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := s.Broker.DeleteDeadLetter(ctx, *sub, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
