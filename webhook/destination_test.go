package webhook_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/webhook"
)

func TestSendMethod(t *testing.T) {
	rcv := mustReceiver(t, nil)
	s := webhook.NewSender()
	for _, tt := range []struct{ method, want string }{
		{"", http.MethodPost},
		{"POST", http.MethodPost},
		{"PUT", http.MethodPut},
		{"PATCH", http.MethodPatch},
		{"patch", http.MethodPatch},
	} {
		t.Run(tt.method, func(t *testing.T) {
			ev := orderEvent()
			resp := mustSend(t, s, crossdock.Destination{URL: rcv.URL, Method: tt.method, Secret: secret(1)}, ev)
			if resp.Verdict != crossdock.Delivered {
				t.Fatalf("response = %+v", resp)
			}
			got := rcv.last(t)
			if got.method != tt.want {
				t.Errorf("method = %s, want %s", got.method, tt.want)
			}
			if string(got.body) != string(ev.Data) {
				t.Errorf("body = %q, want the event's data", got.body)
			}
			if err := mustWebhook(t, secret(1)).Verify(got.body, got.header); err != nil {
				t.Errorf("signature of a %s: %v", tt.want, err)
			}
		})
	}
	for _, bad := range []string{"GET", "DELETE", "POST ", "CONNECT"} {
		t.Run("refuses "+bad, func(t *testing.T) {
			_, err := s.Send(context.Background(), crossdock.Destination{URL: rcv.URL, Method: bad}, orderEvent())
			if crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Fatalf("Send with method %q = %v, want EINVALID", bad, err)
			}
		})
	}
}

func TestSendStaticHeaders(t *testing.T) {
	rcv := mustReceiver(t, nil)
	s := webhook.NewSender()
	dest := crossdock.Destination{URL: rcv.URL, Secret: secret(1), Headers: map[string]string{
		"Authorization":   "Bearer tok-123",
		"x-api-key":       "k\t9 ä",
		"X-Empty":         "",
		"User-Agent":      "erp-connector/2",
		"Idempotency-Key": "evt-0001",
	}}
	resp := mustSend(t, s, dest, orderEvent())
	if resp.Verdict != crossdock.Delivered {
		t.Fatalf("response = %+v", resp)
	}
	got := rcv.last(t)
	for k, want := range map[string]string{
		"Authorization": "Bearer tok-123", "X-Api-Key": "k\t9 ä", "User-Agent": "erp-connector/2",
		"Idempotency-Key": "evt-0001", "Ce-Id": "evt-0001", "Content-Type": "application/json",
	} {
		if v := got.header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if _, ok := got.header["X-Empty"]; !ok {
		t.Error("the empty header X-Empty did not arrive")
	}
	if err := mustWebhook(t, secret(1)).Verify(got.body, got.header); err != nil {
		t.Errorf("standard-webhooks Verify: %v", err)
	}
}

func TestSendRefusesHeaders(t *testing.T) {
	s := webhook.NewSender()
	for _, tt := range []struct {
		name    string
		headers map[string]string
	}{
		{"ce-id", map[string]string{"ce-id": "forged"}},
		{"Ce-Source", map[string]string{"Ce-Source": "forged"}},
		{"CE-TYPE", map[string]string{"CE-TYPE": "forged"}},
		{"ce-anything", map[string]string{"ce-priority": "9"}},
		{"webhook-signature", map[string]string{"webhook-signature": "v1,forged"}},
		{"Webhook-Id", map[string]string{"Webhook-Id": "forged"}},
		{"webhook-timestamp", map[string]string{"webhook-timestamp": "1"}},
		{"traceparent", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{"tracestate", map[string]string{"TraceState": "a=b"}},
		{"content-type", map[string]string{"content-type": "text/plain"}},
		{"host", map[string]string{"Host": "evil.example"}},
		{"content-length", map[string]string{"Content-Length": "1"}},
		{"transfer-encoding", map[string]string{"Transfer-Encoding": "chunked"}},
		{"connection", map[string]string{"Connection": "close"}},
		{"CRLF in value", map[string]string{"X-Token": "hunter2\r\nX-Injected: yes"}},
		{"LF in value", map[string]string{"X-Token": "hunter2\nX"}},
		{"NUL in value", map[string]string{"X-Token": "hunter2\x00"}},
		{"CRLF in name", map[string]string{"X-A\r\nX-Injected": "hunter2"}},
		{"space in name", map[string]string{"X A": "hunter2"}},
		{"colon in name", map[string]string{"X-A:": "hunter2"}},
		{"empty name", map[string]string{"": "hunter2"}},
		{"non-ASCII name", map[string]string{"X-Ä": "hunter2"}},
		{"twice in two cases", map[string]string{"X-Token": "hunter2", "x-token": "hunter2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rcv := mustReceiver(t, nil)
			_, err := s.Send(context.Background(), crossdock.Destination{URL: rcv.URL, Headers: tt.headers}, orderEvent())
			if crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Fatalf("Send = %v, want EINVALID", err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "forged") {
				t.Errorf("error %q repeats a header value", err)
			}
			if verr := webhook.ValidateHeaders(tt.headers); crossdock.ErrorCode(verr) != crossdock.EINVALID {
				t.Errorf("ValidateHeaders = %v, want EINVALID like Send", verr)
			}
			select {
			case <-rcv.requests:
				t.Error("a request was sent")
			default:
			}
		})
	}
}

func TestValidateFetchHeaders(t *testing.T) {
	for _, tt := range []struct {
		headers map[string]string
		ok      bool
	}{
		{nil, true},
		{map[string]string{"Authorization": "Bearer x", "Accept": "application/json;odata.metadata=minimal"}, true},
		{map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "ce-id": "x"}, true},
		{map[string]string{"Host": "evil.example"}, false},
		{map[string]string{"Content-Length": "0"}, false},
		{map[string]string{"X-A": "a\rb"}, false},
		{map[string]string{"X A": "a"}, false},
	} {
		err := webhook.ValidateFetchHeaders(tt.headers)
		if (err == nil) != tt.ok || err != nil && crossdock.ErrorCode(err) != crossdock.EINVALID {
			t.Errorf("ValidateFetchHeaders(%q) = %v, want ok %v", tt.headers, err, tt.ok)
		}
	}
}

func TestSendErrDoesNotRepeatSecrets(t *testing.T) {
	// A careless receiver echoes the request in its error body.
	rcv := mustReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "denied "+r.URL.RequestURI()+" auth="+r.Header.Get("Authorization"), http.StatusForbidden)
	})
	dest := crossdock.Destination{
		URL:     rcv.URL + "/hook?token=hunter2-query&x=1",
		Headers: map[string]string{"Authorization": "Bearer hunter2-header"},
	}
	resp := mustSend(t, webhook.NewSender(), dest, orderEvent())
	if resp.Verdict != crossdock.Rejected || resp.Err == nil {
		t.Fatalf("response = %+v, want rejected", resp)
	}
	if msg := resp.Err.Error(); strings.Contains(msg, "hunter2") || !strings.HasPrefix(msg, "HTTP 403 Forbidden: denied /hook?") {
		t.Errorf("Err = %q, want the status without the query or header values", msg)
	}
}
