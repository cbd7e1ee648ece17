package demo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/crossdock/crossdock"
)

// Names of the simulated targets, as Targets.URL and Targets.Counts know them.
const (
	Fulfilment = "fulfilment"
	SMS        = "sms"
	Warehouse  = "warehouse"
	Archive    = "archive"
)

// Kinds of failure a target counts.
const (
	FailUnauthorized = "unauthorized" // 401: missing or bad signature
	FailBadRequest   = "bad_request"  // 400: not a binary-mode CloudEvent
	FailRejected     = "rejected"     // 400: a well-formed event with an unacceptable order
	FailUnavailable  = "unavailable"  // 503
	FailSlow         = "slow"         // an answer delayed beyond the subscription timeout
	FailRateLimited  = "rate_limited" // 429
	FailError        = "error"        // 500
)

const (
	// slowDelay exceeds the 2s timeout the demo gives the fulfilment subscription.
	slowDelay = 3 * time.Second
	// signatureTolerance is the Standard Webhooks replay window.
	signatureTolerance = 5 * time.Minute
	maxBody            = 1 << 20
)

// TargetNames returns the names of the simulated targets.
func TargetNames() []string { return []string{Fulfilment, SMS, Warehouse, Archive} }

// TargetCounts is what one target has seen. A slow answer is counted under
// Failed[FailSlow] when it is delayed, and again as accepted or failed if the
// caller is still waiting when it completes.
type TargetCounts struct {
	Received   int64            `json:"received"`
	Accepted   int64            `json:"accepted"`
	Duplicates int64            `json:"duplicates"` // accepted redeliveries of an id already seen
	Failed     map[string]int64 `json:"failed"`     // by kind (Fail*)
}

// Targets are the simulated downstream systems of the order fan-out, served
// on one HTTP server on 127.0.0.1. Each verifies the Standard Webhooks
// signature of every delivery and fails now and then.
type Targets struct {
	DataDir     string       // the archive writes DataDir/lake/date=YYYY-MM-DD/orders.jsonl
	Secret      string       // whsec_...: the signing secret of every target's subscription
	Rand        *rand.Rand   // draws the failure schedule; guarded by Targets
	Logger      *slog.Logger // logs each answer at debug level
	FailureRate float64      // chance of a transient failure per request: 0 means 0.1, negative means never

	key     []byte
	base    string
	srv     *http.Server
	cancel  context.CancelFunc
	served  chan error
	archive sync.Mutex // serializes appends to the lake

	mu     sync.Mutex // guards Rand, counts and seen
	counts map[string]*TargetCounts
	seen   map[string]string // warehouse: webhook-id → reservation id
}

// Open applies the defaults (a time-seeded Rand, a discarding Logger, a 10%
// failure rate) and starts serving on a free port of 127.0.0.1. It returns
// EINVALID when the secret is not a whsec_ base64 key.
func (t *Targets) Open() error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(t.Secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return crossdock.Errorf(crossdock.EINVALID, "demo targets: secret must be whsec_ followed by base64")
	}
	t.key = key
	if t.Rand == nil {
		t.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if t.Logger == nil {
		t.Logger = slog.New(slog.DiscardHandler)
	}
	if t.FailureRate == 0 {
		t.FailureRate = 0.1
	}
	t.counts = make(map[string]*TargetCounts)
	for _, name := range TargetNames() {
		t.counts[name] = &TargetCounts{Failed: make(map[string]int64)}
	}
	t.seen = make(map[string]string)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for demo targets: %w", err)
	}
	t.base = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("POST /"+Fulfilment, t.handler(Fulfilment, t.fulfil))
	mux.Handle("POST /"+SMS, t.handler(SMS, t.sms))
	mux.Handle("POST /"+Warehouse, t.handler(Warehouse, t.warehouse))
	mux.Handle("POST /"+Archive, t.handler(Archive, t.archiveEvent))

	// Handlers derive from ctx, so Close ends slow answers at once.
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	t.srv, t.served = srv, served
	go func() { served <- srv.Serve(ln) }()
	return nil
}

// Close stops the server, ending requests in flight, and waits for it; a
// second Close does nothing.
func (t *Targets) Close(ctx context.Context) error {
	if t.srv == nil {
		return nil
	}
	t.cancel()
	err := t.srv.Shutdown(ctx)
	t.srv = nil
	if serr := <-t.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("close demo targets: %w", err)
	}
	return nil
}

// URL returns the endpoint of the named target ("fulfilment", "sms",
// "warehouse" or "archive"); Open must have been called.
func (t *Targets) URL(name string) string { return t.base + "/" + name }

// Counts returns a snapshot of what each target has seen, by name.
func (t *Targets) Counts() map[string]TargetCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]TargetCounts, len(t.counts))
	for name, c := range t.counts {
		cp := *c
		cp.Failed = make(map[string]int64, len(c.Failed))
		for k, v := range c.Failed {
			cp.Failed[k] = v
		}
		out[name] = cp
	}
	return out
}

// reply is a target's answer; kind is "" for success.
type reply struct {
	status     int
	body       any
	retryAfter string
	kind       string
	duplicate  bool
	abandoned  bool // the caller left; already counted as FailSlow
}

func failure(status int, kind, retryAfter string, body any) reply {
	return reply{status: status, body: body, kind: kind, retryAfter: retryAfter}
}

type target func(ctx context.Context, r *http.Request, ev *crossdock.Event) reply

// handler does what every target does before its own logic: read, verify
// the signature, parse the binary-mode event; and then counts and answers.
func (t *Targets) handler(name string, fn target) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.record(name, func(c *TargetCounts) { c.Received++ })
		var rep reply
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			rep = failure(http.StatusBadRequest, FailBadRequest, "", errorBody(fmt.Sprintf("read body: %v", err)))
		} else if err := verify(t.key, r.Header, body, time.Now()); err != nil {
			rep = failure(http.StatusUnauthorized, FailUnauthorized, "", errorBody(err.Error()))
		} else if ev, err := binaryEvent(r.Header, body); err != nil {
			rep = failure(http.StatusBadRequest, FailBadRequest, "", errorBody(err.Error()))
		} else {
			rep = fn(r.Context(), r, ev)
		}
		t.record(name, func(c *TargetCounts) {
			switch {
			case rep.abandoned:
			case rep.kind != "":
				c.Failed[rep.kind]++
			case rep.duplicate:
				c.Accepted++
				c.Duplicates++
			default:
				c.Accepted++
			}
		})
		t.Logger.Debug("demo target answered", "target", name, "status", rep.status,
			"failure", rep.kind, "webhook_id", r.Header.Get("webhook-id"))
		if rep.retryAfter != "" {
			w.Header().Set("Retry-After", rep.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		_ = json.NewEncoder(w).Encode(rep.body) // the caller may have gone
	})
}

func (t *Targets) record(name string, f func(*TargetCounts)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(t.counts[name])
}

// fail draws whether this request fails and, if so, one of kinds.
func (t *Targets) fail(kinds ...string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Rand.Float64() >= t.FailureRate {
		return ""
	}
	return kinds[t.Rand.IntN(len(kinds))]
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

// fulfil is an ERP's order API: maintenance 503s, slow answers, and 400 for
// orders it cannot fulfil.
func (t *Targets) fulfil(ctx context.Context, _ *http.Request, ev *crossdock.Event) reply {
	switch t.fail(FailUnavailable, FailUnavailable, FailSlow) {
	case FailUnavailable:
		return failure(http.StatusServiceUnavailable, FailUnavailable, "1", errorBody("ERP is in a maintenance window"))
	case FailSlow:
		t.record(Fulfilment, func(c *TargetCounts) { c.Failed[FailSlow]++ })
		select {
		case <-ctx.Done():
			return reply{status: http.StatusServiceUnavailable, body: errorBody("request abandoned"), abandoned: true}
		case <-time.After(slowDelay):
		}
	}
	var order OrderData
	if err := json.Unmarshal(ev.Data, &order); err != nil {
		return failure(http.StatusBadRequest, FailRejected, "", errorBody("order is not JSON: "+err.Error()))
	}
	if p := order.Problem(); p != "" {
		return failure(http.StatusBadRequest, FailRejected, "", errorBody(p))
	}
	return reply{status: http.StatusCreated, body: map[string]string{
		"fulfilmentId": "FUL-" + newID()[:8], "orderNumber": order.OrderNumber, "status": "accepted"}}
}

// sms answers like Twilio's Messages API: 201 with a queued message, 429
// when throttled, 500 now and then, 400 (code 21604) without a number.
func (t *Targets) sms(_ context.Context, _ *http.Request, ev *crossdock.Event) reply {
	switch t.fail(FailRateLimited, FailError) {
	case FailRateLimited:
		return failure(http.StatusTooManyRequests, FailRateLimited, "2", twilioError(20429, 429, "Too Many Requests"))
	case FailError:
		return failure(http.StatusInternalServerError, FailError, "", twilioError(20500, 500, "Internal Server Error"))
	}
	var order OrderData
	if err := json.Unmarshal(ev.Data, &order); err != nil || order.Customer.Phone == "" {
		return failure(http.StatusBadRequest, FailRejected, "", twilioError(21604, 400, "A 'To' phone number is required."))
	}
	const account = "AC00000000000000000000000000000000"
	sid := "SM" + strings.ReplaceAll(newID(), "-", "")
	return reply{status: http.StatusCreated, body: map[string]any{
		"sid":          sid,
		"account_sid":  account,
		"to":           order.Customer.Phone,
		"from":         "+15005550006",
		"body":         fmt.Sprintf("Thank you %s, your order %s is confirmed.", order.Customer.Name, order.OrderNumber),
		"status":       "queued",
		"direction":    "outbound-api",
		"num_segments": "1",
		"api_version":  "2010-04-01",
		"date_created": time.Now().UTC().Format(time.RFC1123Z),
		"error_code":   nil,
		"uri":          "/2010-04-01/Accounts/" + account + "/Messages/" + sid + ".json",
	}}
}

func twilioError(code, status int, msg string) map[string]any {
	return map[string]any{"code": code, "message": msg, "status": status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code)}
}

// warehouse is an inventory API that reserves stock once per webhook-id and
// answers a redelivery with the reservation it already made.
func (t *Targets) warehouse(_ context.Context, r *http.Request, _ *crossdock.Event) reply {
	if t.fail(FailUnavailable) != "" {
		return failure(http.StatusServiceUnavailable, FailUnavailable, "", errorBody("inventory service unavailable"))
	}
	id := r.Header.Get("webhook-id")
	t.mu.Lock()
	reservation, dup := t.seen[id]
	if !dup {
		reservation = "RES-" + newID()[:8]
		t.seen[id] = reservation
	}
	t.mu.Unlock()
	if dup {
		return reply{status: http.StatusOK, duplicate: true, body: map[string]any{"reservationId": reservation, "duplicate": true}}
	}
	return reply{status: http.StatusCreated, body: map[string]any{"reservationId": reservation}}
}

// archiveEvent appends the event as one structured JSON line to the lake
// partition of its date.
func (t *Targets) archiveEvent(_ context.Context, _ *http.Request, ev *crossdock.Event) reply {
	if t.fail(FailUnavailable) != "" {
		return failure(http.StatusServiceUnavailable, FailUnavailable, "", errorBody("data lake is unavailable"))
	}
	day := ev.Time
	if day.IsZero() {
		day = time.Now()
	}
	partition := "date=" + day.UTC().Format("2006-01-02")
	if err := t.appendLine(filepath.Join(t.DataDir, "lake", partition, "orders.jsonl"), ev); err != nil {
		t.Logger.Warn("demo archive write failed", "error", err)
		return failure(http.StatusInternalServerError, FailError, "", errorBody("archive write failed"))
	}
	return reply{status: http.StatusCreated, body: map[string]string{"partition": partition}}
}

func (t *Targets) appendLine(path string, ev *crossdock.Event) error {
	line, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	t.archive.Lock()
	defer t.archive.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create partition: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open partition file: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// verify checks a Standard Webhooks signature: one of the space-separated
// "v1,<base64>" values of webhook-signature must be the HMAC-SHA256 of
// "id.timestamp.body", and the timestamp must be within the tolerance. It
// returns EUNAUTHORIZED otherwise.
func verify(key []byte, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return crossdock.Errorf(crossdock.EUNAUTHORIZED, "webhook-id, webhook-timestamp and webhook-signature are required")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return crossdock.Errorf(crossdock.EUNAUTHORIZED, "webhook-timestamp is not a Unix time")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > signatureTolerance || d < -signatureTolerance {
		return crossdock.Errorf(crossdock.EUNAUTHORIZED, "webhook-timestamp is outside the tolerance")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return crossdock.Errorf(crossdock.EUNAUTHORIZED, "no matching webhook signature")
}

// binaryEvent reads a CloudEvents HTTP binary-mode event (ce-* headers,
// the body as data) with the CloudEvents SDK, as a real receiver would, so
// the demo also checks crossdock's output against an independent reader.
// It returns EINVALID for a malformed or incomplete event.
func binaryEvent(h http.Header, body []byte) (*crossdock.Event, error) {
	for name := range h {
		// sdk-go v2.16.2 indexes past the end of a header named just "ce-";
		// refuse it first (found by FuzzBinaryEvent).
		if len(name) == 3 && strings.EqualFold(name, "ce-") {
			return nil, crossdock.Errorf(crossdock.EINVALID, "a ce- header without an attribute name")
		}
	}
	msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body)))
	e, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "not a CloudEvent: %v", err)
	}
	ev := &crossdock.Event{
		ID: e.ID(), Source: e.Source(), SpecVersion: e.SpecVersion(), Type: e.Type(),
		Subject: e.Subject(), Time: e.Time(), DataContentType: e.DataContentType(),
		DataSchema: e.DataSchema(),
	}
	if d := e.Data(); len(d) > 0 {
		ev.Data = d
	}
	for name, v := range e.Extensions() {
		ev.SetExtension(name, fmt.Sprint(v))
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}
