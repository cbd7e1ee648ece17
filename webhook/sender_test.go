package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/webhook"
)

// received is one request as a receiver saw it.
type received struct {
	method string
	header http.Header
	body   []byte
}

// receiver is a real HTTP server on 127.0.0.1 that records every request
// and answers with its respond function.
type receiver struct {
	*httptest.Server
	requests chan received
}

// mustReceiver starts a receiver; respond may be nil for 204 No Content.
func mustReceiver(tb testing.TB, respond http.HandlerFunc) *receiver {
	tb.Helper()
	r := &receiver{requests: make(chan received, 64)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case r.requests <- received{method: req.Method, header: req.Header.Clone(), body: body}:
		default:
		}
		if respond == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		respond(w, req)
	}))
	tb.Cleanup(r.Close)
	return r
}

// last returns the request the receiver got most recently.
func (r *receiver) last(tb testing.TB) received {
	tb.Helper()
	select {
	case got := <-r.requests:
		return got
	default:
		tb.Fatal("the receiver got no request")
		return received{}
	}
}

// mustSend sends ev and fails the test on an error.
func mustSend(tb testing.TB, s *webhook.Sender, dest crossdock.Destination, ev *crossdock.Event) crossdock.Response {
	tb.Helper()
	resp, err := s.Send(context.Background(), dest, ev)
	if err != nil {
		tb.Fatalf("Send: %v", err)
	}
	return resp
}

// secret returns a whsec_ secret of 32 bytes derived from seed.
func secret(seed byte) string {
	key := bytes.Repeat([]byte{seed}, 32)
	for i := range key {
		key[i] += byte(i)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

func orderEvent() *crossdock.Event {
	return &crossdock.Event{
		ID:              "evt-0001",
		Source:          "/crm/orders",
		SpecVersion:     "1.0",
		Type:            "sales.order.created",
		Subject:         "order/42",
		Time:            time.Date(2025, 3, 14, 15, 9, 26, 535000000, time.UTC),
		DataContentType: "application/json",
		DataSchema:      "https://schemas.example.com/order/v1",
		Data:            []byte(`{"order":42,"total":"19.99"}`),
		Extensions: map[string]any{
			"correlationid": "corr-7",
			"partitionkey":  "customer-9",
			"priority":      int64(3),
			"vip":           true,
		},
	}
}

func TestSendBinaryMode(t *testing.T) {
	rcv := mustReceiver(t, nil)
	s := webhook.NewSender()
	ev := orderEvent()

	resp := mustSend(t, s, crossdock.Destination{URL: rcv.URL + "/hook"}, ev)
	if resp.Verdict != crossdock.Delivered || resp.StatusCode != http.StatusNoContent || resp.Err != nil {
		t.Fatalf("response = %+v, want delivered 204", resp)
	}
	if resp.Duration <= 0 {
		t.Errorf("Duration = %v, want > 0", resp.Duration)
	}
	got := rcv.last(t)

	want := map[string]string{
		"Content-Type":      "application/json",
		"Ce-Specversion":    "1.0",
		"Ce-Id":             "evt-0001",
		"Ce-Source":         "/crm/orders",
		"Ce-Type":           "sales.order.created",
		"Ce-Subject":        "order/42",
		"Ce-Time":           "2025-03-14T15:09:26.535Z",
		"Ce-Dataschema":     "https://schemas.example.com/order/v1",
		"Ce-Correlationid":  "corr-7",
		"Ce-Partitionkey":   "customer-9",
		"Ce-Priority":       "3",
		"Ce-Vip":            "true",
		"Webhook-Id":        "evt-0001",
		"User-Agent":        "crossdock/1",
		"Webhook-Signature": "",
	}
	for k, v := range want {
		if g := got.header.Get(k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	if ts := got.header.Get("Webhook-Timestamp"); ts == "" {
		t.Error("webhook-timestamp is missing")
	}
	if !bytes.Equal(got.body, ev.Data) {
		t.Errorf("body = %q, want %q", got.body, ev.Data)
	}

	// An independent CloudEvents reader must see the same event.
	msg := cehttp.NewMessage(got.header, io.NopCloser(bytes.NewReader(got.body)))
	if enc := msg.ReadEncoding(); enc != binding.EncodingBinary {
		t.Fatalf("sdk-go reads encoding %v, want binary", enc)
	}
	ce, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		t.Fatalf("sdk-go ToEvent: %v", err)
	}
	if err := ce.Validate(); err != nil {
		t.Fatalf("sdk-go Validate: %v", err)
	}
	if ce.ID() != ev.ID || ce.Source() != ev.Source || ce.Type() != ev.Type || ce.Subject() != ev.Subject ||
		ce.SpecVersion() != "1.0" || !ce.Time().Equal(ev.Time) || ce.DataContentType() != ev.DataContentType ||
		ce.DataSchema() != ev.DataSchema {
		t.Errorf("sdk-go event = %v, want the attributes of %+v", ce, ev)
	}
	if !bytes.Equal(ce.Data(), ev.Data) {
		t.Errorf("sdk-go data = %q, want %q", ce.Data(), ev.Data)
	}
	ext := ce.Extensions()
	for name, v := range map[string]string{"correlationid": "corr-7", "partitionkey": "customer-9", "priority": "3", "vip": "true"} {
		if ext[name] != v {
			t.Errorf("sdk-go extension %s = %v, want %q", name, ext[name], v)
		}
	}
	if _, ok := ext["traceparent"]; ok {
		t.Error("an event without a traceparent extension must not get ce-traceparent")
	}
}

func TestSendDefaults(t *testing.T) {
	rcv := mustReceiver(t, nil)
	s := webhook.NewSender()

	t.Run("json content type and correlation id by default", func(t *testing.T) {
		ev := &crossdock.Event{ID: "e1", Source: "s", SpecVersion: "1.0", Type: "t", Data: []byte(`{}`)}
		mustSend(t, s, crossdock.Destination{URL: rcv.URL}, ev)
		got := rcv.last(t)
		if ct := got.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		if c := got.header.Get("Ce-Correlationid"); c != "e1" {
			t.Errorf("ce-correlationid = %q, want the event id", c)
		}
	})
	t.Run("no data, no content type, empty body", func(t *testing.T) {
		ev := &crossdock.Event{ID: "e2", Source: "s", SpecVersion: "1.0", Type: "t"}
		mustSend(t, s, crossdock.Destination{URL: rcv.URL}, ev)
		got := rcv.last(t)
		if ct, ok := got.header["Content-Type"]; ok {
			t.Errorf("Content-Type = %q, want none", ct)
		}
		if len(got.body) != 0 {
			t.Errorf("body = %q, want empty", got.body)
		}
	})
	t.Run("zero Sender works", func(t *testing.T) {
		var zero webhook.Sender
		ev := &crossdock.Event{ID: "e3", Source: "s", SpecVersion: "1.0", Type: "t"}
		resp := mustSend(t, &zero, crossdock.Destination{URL: rcv.URL}, ev)
		if resp.Verdict != crossdock.Delivered {
			t.Fatalf("verdict = %v, want delivered", resp.Verdict)
		}
		if ua := rcv.last(t).header.Get("User-Agent"); ua != webhook.DefaultUserAgent {
			t.Errorf("User-Agent = %q", ua)
		}
	})
}

func TestSendPercentEncodesHeaderValues(t *testing.T) {
	rcv := mustReceiver(t, nil)
	s := webhook.NewSender()
	ev := &crossdock.Event{
		ID:          "id with space",
		Source:      "/crm/Kunden ä",
		SpecVersion: "1.0",
		Type:        `quote"type`,
		Subject:     "100%\r\nInjected: yes",
		Extensions:  map[string]any{"note": "naïve €\t"},
	}
	resp := mustSend(t, s, crossdock.Destination{URL: rcv.URL, Secret: secret(1)}, ev)
	if resp.Verdict != crossdock.Delivered {
		t.Fatalf("response = %+v", resp)
	}
	got := rcv.last(t)
	if got.header.Get("Injected") != "" {
		t.Fatal("a header value injected a header")
	}
	for k, want := range map[string]string{
		"Ce-Id": ev.ID, "Ce-Source": ev.Source, "Ce-Type": ev.Type, "Ce-Subject": ev.Subject,
		"Ce-Note": "naïve €\t", "Webhook-Id": ev.ID,
	} {
		raw := got.header.Get(k)
		for i := 0; i < len(raw); i++ {
			if c := raw[i]; c <= ' ' || c >= 0x7f || c == '"' {
				t.Errorf("header %s = %q carries byte %q unencoded", k, raw, c)
			}
		}
		dec, err := url.PathUnescape(raw)
		if err != nil || dec != want {
			t.Errorf("header %s = %q decodes to %q (%v), want %q", k, raw, dec, err, want)
		}
	}
	// The signature covers webhook-id exactly as the receiver reads it.
	if err := webhook.Verify(secret(1), got.header, got.body, 0, time.Now()); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestSendRejectsUnbuildableRequests(t *testing.T) {
	s := webhook.NewSender()
	good := &crossdock.Event{ID: "e", Source: "s", SpecVersion: "1.0", Type: "t"}
	tests := []struct {
		name string
		dest crossdock.Destination
		ev   *crossdock.Event
	}{
		{"no event id", crossdock.Destination{URL: "http://127.0.0.1:1/"}, &crossdock.Event{Source: "s", Type: "t"}},
		{"nil event", crossdock.Destination{URL: "http://127.0.0.1:1/"}, nil},
		{"relative URL", crossdock.Destination{URL: "/hook?token=hunter2"}, good},
		{"ftp URL", crossdock.Destination{URL: "ftp://example.com/?token=hunter2"}, good},
		{"malformed URL", crossdock.Destination{URL: "http://exa mple.com/?token=hunter2"}, good},
		{"bad secret", crossdock.Destination{URL: "http://127.0.0.1:1/", Secret: "whsec_hunter2!!"}, good},
		{"bad second secret", crossdock.Destination{URL: "http://127.0.0.1:1/", Secret: secret(1) + " hunter2"}, good},
		{"bad extension name", crossdock.Destination{URL: "http://127.0.0.1:1/"},
			&crossdock.Event{ID: "e", Source: "s", Type: "t", Extensions: map[string]any{"Bad-Name": "x"}}},
		{"content type with newline", crossdock.Destination{URL: "http://127.0.0.1:1/"},
			&crossdock.Event{ID: "e", Source: "s", Type: "t", DataContentType: "text/plain\r\nX: y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Send(context.Background(), tt.dest, tt.ev)
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Fatalf("Send error = %v (code %q), want EINVALID", err, code)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q leaks the URL or secret", err)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		want   crossdock.Verdict
	}{
		{200, crossdock.Delivered}, {201, crossdock.Delivered}, {202, crossdock.Delivered},
		{204, crossdock.Delivered}, {299, crossdock.Delivered},
		{100, crossdock.Rejected}, {101, crossdock.Rejected},
		{301, crossdock.Rejected}, {302, crossdock.Rejected}, {304, crossdock.Rejected}, {307, crossdock.Rejected},
		{400, crossdock.Rejected}, {401, crossdock.Rejected}, {403, crossdock.Rejected}, {404, crossdock.Rejected},
		{409, crossdock.Rejected}, {410, crossdock.Rejected}, {413, crossdock.Rejected}, {422, crossdock.Rejected},
		{408, crossdock.Retryable}, {429, crossdock.Retryable},
		{500, crossdock.Retryable}, {502, crossdock.Retryable}, {503, crossdock.Retryable},
		{504, crossdock.Retryable}, {599, crossdock.Retryable},
		{600, crossdock.Rejected}, {0, crossdock.Rejected},
	}
	for _, tt := range tests {
		if got := webhook.Classify(tt.status); got != tt.want {
			t.Errorf("Classify(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestSendClassifiesStatuses(t *testing.T) {
	tests := []struct {
		status  int
		body    string
		verdict crossdock.Verdict
		err     string // the start of Response.Err, "" for none
	}{
		{200, `{"id":"erp-1"}`, crossdock.Delivered, ""},
		{202, "", crossdock.Delivered, ""},
		{400, `{"error":"bad order"}`, crossdock.Rejected, `HTTP 400 Bad Request: {"error":"bad order"}`},
		{404, "", crossdock.Rejected, "HTTP 404 Not Found"},
		{408, "", crossdock.Retryable, "HTTP 408 Request Timeout"},
		{422, "line1\nline2", crossdock.Rejected, "HTTP 422 Unprocessable Entity: line1 line2"},
		{429, "slow down", crossdock.Retryable, "HTTP 429 Too Many Requests: slow down"},
		{500, "boom", crossdock.Retryable, "HTTP 500 Internal Server Error: boom"},
		{503, strings.Repeat("x", 1000), crossdock.Retryable, "HTTP 503 Service Unavailable: " + strings.Repeat("x", 200)},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			rcv := mustReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			resp := mustSend(t, webhook.NewSender(), crossdock.Destination{URL: rcv.URL}, orderEvent())
			if resp.Verdict != tt.verdict || resp.StatusCode != tt.status {
				t.Errorf("verdict, status = %v, %d; want %v, %d", resp.Verdict, resp.StatusCode, tt.verdict, tt.status)
			}
			if string(resp.Body) != tt.body {
				t.Errorf("Body = %q, want %q", resp.Body, tt.body)
			}
			switch {
			case tt.err == "" && resp.Err != nil:
				t.Errorf("Err = %v, want nil", resp.Err)
			case tt.err != "" && (resp.Err == nil || resp.Err.Error() != tt.err):
				t.Errorf("Err = %v, want %q", resp.Err, tt.err)
			}
		})
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	target := mustReceiver(t, func(w http.ResponseWriter, r *http.Request) { followed.Store(true) })
	rcv := mustReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	resp := mustSend(t, webhook.NewSender(), crossdock.Destination{URL: rcv.URL, Secret: secret(1)}, orderEvent())
	if resp.Verdict != crossdock.Rejected || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("response = %+v, want rejected 307", resp)
	}
	if followed.Load() {
		t.Error("the redirect was followed")
	}
	if !strings.Contains(resp.Err.Error(), "redirects are not followed (Location: "+target.URL+"/elsewhere)") {
		t.Errorf("Err = %q", resp.Err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"3600", time.Hour},
		{"3601", webhook.MaxRetryAfter},
		{"99999999999999999999999", webhook.MaxRetryAfter},
		{"-5", 0},
		{"1.5", 0},
		{"7s", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), webhook.MaxRetryAfter},
		{now.Add(30 * time.Second).Format(time.RFC850), 30 * time.Second},
		{now.Add(30 * time.Second).Format(time.ANSIC), 30 * time.Second},
	}
	for _, tt := range tests {
		if got := webhook.ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSendRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		want       time.Duration
	}{
		{"delta seconds", 429, "7", 7 * time.Second},
		{"http date", 503, now.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute},
		{"capped", 503, "86400", time.Hour},
		{"ignored on rejections", 400, "7", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := mustReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", tt.retryAfter)
				w.WriteHeader(tt.status)
			})
			s := webhook.NewSender()
			s.Now = func() time.Time { return now }
			resp := mustSend(t, s, crossdock.Destination{URL: rcv.URL}, orderEvent())
			if resp.RetryAfter != tt.want {
				t.Errorf("RetryAfter = %v, want %v", resp.RetryAfter, tt.want)
			}
		})
	}
}

func TestSendTimeout(t *testing.T) {
	t.Run("no answer", func(t *testing.T) {
		rcv := mustReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // answers only when the client gives up
		})
		dest := crossdock.Destination{URL: rcv.URL, Timeout: 100 * time.Millisecond}
		resp := mustSend(t, webhook.NewSender(), dest, orderEvent())
		if resp.Verdict != crossdock.Retryable || resp.StatusCode != 0 {
			t.Fatalf("response = %+v, want retryable without status", resp)
		}
		if resp.Err == nil || resp.Err.Error() != "timeout after 100ms" {
			t.Errorf("Err = %v, want %q", resp.Err, "timeout after 100ms")
		}
		if !errors.Is(resp.Err, context.DeadlineExceeded) {
			t.Errorf("Err %v does not unwrap to context.DeadlineExceeded", resp.Err)
		}
	})
	t.Run("body stalls after 200", func(t *testing.T) {
		rcv := mustReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, `{"partial":`)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		dest := crossdock.Destination{URL: rcv.URL, Timeout: 100 * time.Millisecond}
		resp := mustSend(t, webhook.NewSender(), dest, orderEvent())
		if resp.Verdict != crossdock.Retryable || resp.StatusCode != http.StatusOK {
			t.Fatalf("response = %+v, want retryable 200", resp)
		}
		want := "HTTP 200 OK: reading response body: timeout after 100ms"
		if resp.Err == nil || resp.Err.Error() != want {
			t.Errorf("Err = %v, want %q", resp.Err, want)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		rcv := mustReceiver(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		resp, err := webhook.NewSender().Send(ctx, crossdock.Destination{URL: rcv.URL, Timeout: time.Minute}, orderEvent())
		if err != nil || resp.Verdict != crossdock.Retryable || resp.Err == nil || resp.Err.Error() != "canceled" {
			t.Fatalf("Send = %+v, %v; want retryable, canceled", resp, err)
		}
	})
}

func TestSendConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	resp := mustSend(t, webhook.NewSender(), crossdock.Destination{URL: "http://" + addr + "/hook?token=hunter2"}, orderEvent())
	if resp.Verdict != crossdock.Retryable || resp.StatusCode != 0 {
		t.Fatalf("response = %+v, want retryable without status", resp)
	}
	if resp.Err == nil || resp.Err.Error() != "connection refused" {
		t.Errorf("Err = %v, want connection refused", resp.Err)
	}
}

func TestSendTLSError(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure is the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// The default client does not trust the test server's certificate.
	resp := mustSend(t, webhook.NewSender(), crossdock.Destination{URL: srv.URL}, orderEvent())
	if resp.Verdict != crossdock.Retryable || resp.Err == nil || !strings.HasPrefix(resp.Err.Error(), "TLS: ") {
		t.Fatalf("response = %+v, want retryable TLS error", resp)
	}
}

func TestSendResponseBody(t *testing.T) {
	big := strings.Repeat("b", 10_000)
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, big)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s := webhook.NewSender()
	s.MaxResponseBody = 100
	for range 5 {
		resp := mustSend(t, s, crossdock.Destination{URL: srv.URL}, orderEvent())
		if resp.Verdict != crossdock.Delivered || string(resp.Body) != big[:100] {
			t.Fatalf("response = %v %d bytes, want delivered with 100 bytes kept", resp.Verdict, len(resp.Body))
		}
	}
	// The rest of each body was drained, so keep-alive reused one connection.
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential deliveries, want 1", n)
	}
}

func TestSendTraceParent(t *testing.T) {
	rcv := mustReceiver(t, nil)
	s := webhook.NewSender()
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	send := func(tp string) string {
		ev := orderEvent()
		if tp != "" {
			ev.SetExtension("traceparent", tp)
		}
		mustSend(t, s, crossdock.Destination{URL: rcv.URL}, ev)
		got := rcv.last(t)
		if tp != "" && got.header.Get("Ce-Traceparent") != tp {
			t.Errorf("ce-traceparent = %q, want the event's %q", got.header.Get("Ce-Traceparent"), tp)
		}
		return got.header.Get("Traceparent")
	}
	valid := func(tp string) bool {
		if len(tp) != 55 || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
			return false
		}
		for i, c := range tp {
			if i == 2 || i == 35 || i == 52 {
				continue
			}
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return tp[3:35] != strings.Repeat("0", 32) && tp[36:52] != strings.Repeat("0", 16)
	}

	t.Run("continues the event's trace", func(t *testing.T) {
		first, second := send(incoming), send(incoming)
		for _, tp := range []string{first, second} {
			if !valid(tp) || tp[3:35] != incoming[3:35] || tp[53:] != "01" {
				t.Errorf("traceparent = %q, want trace %s with flags 01", tp, incoming[3:35])
			}
			if tp[36:52] == incoming[36:52] {
				t.Errorf("traceparent %q reuses the parent span id", tp)
			}
		}
		if first[36:52] == second[36:52] {
			t.Errorf("two attempts share span id %s", first[36:52])
		}
	})
	t.Run("keeps an unsampled flag", func(t *testing.T) {
		tp := send(incoming[:53] + "00")
		if tp[3:35] != incoming[3:35] || tp[53:] != "00" {
			t.Errorf("traceparent = %q", tp)
		}
	})
	t.Run("starts a trace", func(t *testing.T) {
		a, b := send(""), send("")
		if !valid(a) || !valid(b) || a[3:35] == b[3:35] {
			t.Errorf("traceparents %q, %q: want two valid new traces", a, b)
		}
	})
	for _, bad := range []string{
		"garbage",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
		incoming + "-extra", // version 00 has no more fields
	} {
		t.Run("replaces malformed "+bad, func(t *testing.T) {
			tp := send(bad)
			if !valid(tp) || strings.Contains(bad, tp[3:35]) {
				t.Errorf("traceparent = %q for malformed %q, want a new trace", tp, bad)
			}
		})
	}
	t.Run("accepts a later version", func(t *testing.T) {
		tp := send("01" + incoming[2:] + "-future")
		if !valid(tp) || tp[3:35] != incoming[3:35] {
			t.Errorf("traceparent = %q", tp)
		}
	})
}
