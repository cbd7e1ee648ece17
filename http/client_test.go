package http_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/crossdock/crossdock"
	cdhttp "github.com/crossdock/crossdock/http"
)

func clientEvent(id string) *crossdock.Event {
	return &crossdock.Event{
		ID: id, Source: "/crm", SpecVersion: "1.0", Type: "sales.order.created",
		Data: []byte(`{"order":"` + id + `"}`),
	}
}

// wantClientError fails unless err carries the code and its message contains
// each part.
func wantClientError(t *testing.T, err error, code string, parts ...string) {
	t.Helper()
	if got := crossdock.ErrorCode(err); got != code {
		t.Fatalf("error %v has code %q, want %q", err, got, code)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestClientPublish(t *testing.T) {
	h := MustOpen(t)
	c := cdhttp.NewClient(h.srv.URL())
	ctx := context.Background()

	res, err := c.Publish(ctx, topic, clientEvent("one"))
	if err != nil {
		t.Fatal(err)
	}
	want := crossdock.PublishResult{ID: "one", Topic: topic, Sequence: 1}
	if len(res) != 1 || res[0] != want {
		t.Fatalf("results %+v, want [%+v]", res, want)
	}

	// A batch: results in order, the repeated id a duplicate of its first
	// sequence.
	res, err = c.Publish(ctx, topic, clientEvent("two"), clientEvent("one"), clientEvent("three"))
	if err != nil {
		t.Fatal(err)
	}
	wantAll := []crossdock.PublishResult{
		{ID: "two", Topic: topic, Sequence: 2},
		{ID: "one", Topic: topic, Sequence: 1, Duplicate: true},
		{ID: "three", Topic: topic, Sequence: 3},
	}
	if len(res) != len(wantAll) {
		t.Fatalf("results %+v, want %+v", res, wantAll)
	}
	for i := range wantAll {
		if res[i] != wantAll[i] {
			t.Errorf("result %d = %+v, want %+v", i, res[i], wantAll[i])
		}
	}

	// What the hub stored reads back as sent.
	ev, _, err := h.broker.Event(ctx, topic, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "three" || string(ev.Data) != `{"order":"three"}` || ev.CorrelationID() != "three" {
		t.Errorf("stored event %+v", ev)
	}
}

func TestClientErrors(t *testing.T) {
	h := MustOpen(t)
	c := cdhttp.NewClient(h.srv.URL() + "/") // a trailing slash is fine
	ctx := context.Background()

	_, err := c.Publish(ctx, "crm.unknown", clientEvent("a"))
	wantClientError(t, err, crossdock.ENOTFOUND, "crm.unknown", "404")

	bad := clientEvent("b")
	bad.Source = ""
	_, err = c.Publish(ctx, topic, bad)
	wantClientError(t, err, crossdock.EINVALID, "400", "source")

	_, err = c.Publish(ctx, topic, clientEvent("c"), bad)
	wantClientError(t, err, crossdock.EINVALID, "event 1")

	big := clientEvent("d")
	big.Data = []byte(`"` + strings.Repeat("x", 70<<10) + `"`)
	_, err = c.Publish(ctx, topic, big)
	wantClientError(t, err, crossdock.ETOOLARGE, "413")

	notJSON := clientEvent("e")
	notJSON.Data = []byte("{")
	_, err = c.Publish(ctx, topic, notJSON)
	wantClientError(t, err, crossdock.EINVALID, "not valid JSON")

	_, err = c.Publish(ctx, topic)
	wantClientError(t, err, crossdock.EINVALID, "no events")

	_, err = c.Publish(ctx, topic, nil)
	wantClientError(t, err, crossdock.EINVALID, "missing")

	_, err = cdhttp.NewClient("127.0.0.1:8080").Publish(ctx, topic, clientEvent("f"))
	wantClientError(t, err, crossdock.EINVALID, "absolute http")

	// Nothing above was stored.
	res, err := c.Publish(ctx, topic, clientEvent("ok"))
	if err != nil || res[0].Sequence != 1 {
		t.Fatalf("after the refusals: %+v, %v", res, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Publish(cctx, topic, clientEvent("g"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled publish: %v, want context.Canceled", err)
	}

	// The broker is gone: 503, which may pass later.
	if err := h.broker.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.Publish(ctx, topic, clientEvent("h"))
	wantClientError(t, err, crossdock.EUNAVAILABLE, "503")
}

func TestClientHubDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = cdhttp.NewClient("http://user:hunter2@"+addr).Publish(context.Background(), topic, clientEvent("a"))
	wantClientError(t, err, crossdock.EUNAVAILABLE, "cannot be reached")
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q shows the URL's password", err)
	}
}

// TestClientWire checks what the client sends and how it reads answers
// that do not come from crossdock, such as a proxy's.
func TestClientWire(t *testing.T) {
	type seen struct {
		path, contentType, auth, body string
	}
	got := make(chan seen, 1)
	var (
		mu     sync.Mutex
		answer func(w http.ResponseWriter)
	)
	setAnswer := func(f func(w http.ResponseWriter)) {
		mu.Lock()
		defer mu.Unlock()
		answer = f
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.URL.EscapedPath(), r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b)}
		mu.Lock()
		f := answer
		mu.Unlock()
		f(w)
	}))
	defer srv.Close()
	c := &cdhttp.Client{BaseURL: srv.URL, HTTPClient: srv.Client(), Token: "k-123"}
	ctx := context.Background()

	tests := []struct {
		name   string
		answer func(w http.ResponseWriter)
		code   string
		detail string
	}{
		{"html 502 from a proxy", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>bad gateway</html>")
		}, crossdock.EUNAVAILABLE, "Bad Gateway"},
		{"429", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"type":"https://crossdock.dev/problems/rate_limited","status":429,"detail":"slow down"}`)
		}, crossdock.EUNAVAILABLE, "slow down"},
		{"401 problem", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"type":"https://crossdock.dev/problems/unauthorized","status":401,"detail":"bad key"}`)
		}, crossdock.EUNAUTHORIZED, "bad key"},
		{"422 problem of another kind", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			io.WriteString(w, `{"type":"about:blank","status":422,"detail":"/data/total: must be >= 0"}`)
		}, crossdock.EINVALID, "/data/total"},
		{"500", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
		}, crossdock.EINTERNAL, "500"},
		{"202 with too few results", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `[{"id":"a","topic":"x.y","sequence":1}]`)
		}, crossdock.EINTERNAL, "1 results for 2 events"},
		{"202 that is not JSON", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `ok`)
		}, crossdock.EINTERNAL, "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setAnswer(tt.answer)
			_, err := c.Publish(ctx, "crm.account.changed", clientEvent("a"), clientEvent("b"))
			wantClientError(t, err, tt.code, tt.detail)
			s := <-got
			if s.path != "/v1/topics/crm.account.changed/events" || s.contentType != cdhttp.ContentTypeBatch || s.auth != "Bearer k-123" {
				t.Errorf("request %+v", s)
			}
			if !strings.HasPrefix(s.body, `[{"specversion":"1.0","id":"a"`) {
				t.Errorf("body %s", s.body)
			}
		})
	}

	// One event goes in structured mode; an odd topic name stays one path
	// segment.
	setAnswer(func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"id":"a","topic":"a/b","sequence":7,"duplicate":true}`)
	})
	res, err := c.Publish(ctx, "a/b", clientEvent("a"))
	if err != nil || res[0] != (crossdock.PublishResult{ID: "a", Topic: "a/b", Sequence: 7, Duplicate: true}) {
		t.Fatalf("results %+v, %v", res, err)
	}
	if s := <-got; s.path != "/v1/topics/a%2Fb/events" || s.contentType != cdhttp.ContentTypeCloudEvent {
		t.Errorf("request %+v", s)
	}
}
