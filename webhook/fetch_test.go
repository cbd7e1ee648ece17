package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/webhook"
)

// source is a real HTTP server on 127.0.0.1 standing for the system an
// enrichment reads; it records each request and answers with respond.
func source(tb testing.TB, respond http.HandlerFunc) *receiver {
	tb.Helper()
	return mustReceiver(tb, respond)
}

// jsonAnswer answers 200 with body as application/json.
func jsonAnswer(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(body)
	}
}

// mustFetch fetches and fails the test on an error.
func mustFetch(tb testing.TB, s *webhook.Sender, url string, headers map[string]string, timeout time.Duration) crossdock.Response {
	tb.Helper()
	resp, err := s.Fetch(context.Background(), url, headers, timeout)
	if err != nil {
		tb.Fatalf("Fetch: %v", err)
	}
	return resp
}

func TestFetchWholeJSONBody(t *testing.T) {
	// 100 KiB: above MaxResponseBody, which bounds only a delivery's reply.
	var b bytes.Buffer
	b.WriteString(`{"accountid":"a-1","rows":[`)
	for i := 0; b.Len() < 100<<10; i++ {
		fmt.Fprintf(&b, `{"n":%d,"name":"row %d"},`, i, i)
	}
	b.WriteString(`{"n":-1}]}`)
	body := b.Bytes()
	src := source(t, jsonAnswer(body))
	s := webhook.NewSender()
	if int64(len(body)) <= s.MaxResponseBody {
		t.Fatalf("body of %d bytes does not exceed MaxResponseBody", len(body))
	}

	resp := mustFetch(t, s, src.URL+"/api/accounts/a-1?$select=name", map[string]string{
		"Authorization": "Bearer tok", "OData-Version": "4.0",
	}, 5*time.Second)
	if resp.Verdict != crossdock.Delivered || resp.StatusCode != 200 || resp.Err != nil {
		t.Fatalf("response = %v %d %v, want delivered 200", resp.Verdict, resp.StatusCode, resp.Err)
	}
	if !bytes.Equal(resp.Body, body) {
		t.Errorf("Body has %d bytes, want the whole %d", len(resp.Body), len(body))
	}
	if resp.Duration <= 0 {
		t.Errorf("Duration = %v", resp.Duration)
	}
	got := src.last(t)
	if got.method != http.MethodGet || len(got.body) != 0 {
		t.Errorf("request = %s with %d body bytes, want GET without body", got.method, len(got.body))
	}
	for k, want := range map[string]string{
		"Accept": "application/json", "Authorization": "Bearer tok", "Odata-Version": "4.0",
		"User-Agent": webhook.DefaultUserAgent,
	} {
		if v := got.header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if tp := got.header.Get("Traceparent"); len(tp) != 55 {
		t.Errorf("traceparent = %q, want a new trace", tp)
	}
	for k := range got.header {
		if strings.HasPrefix(k, "Ce-") || strings.HasPrefix(k, "Webhook-") {
			t.Errorf("a fetch sent delivery header %s", k)
		}
	}
}

func TestFetchHeaders(t *testing.T) {
	src := source(t, jsonAnswer([]byte(`{}`)))
	s := webhook.NewSender()
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	t.Run("continues a trace and replaces Accept", func(t *testing.T) {
		mustFetch(t, s, src.URL, map[string]string{
			"traceparent": incoming, "tracestate": "v=1", "Accept": "application/json;odata.metadata=minimal",
		}, 0)
		got := src.last(t)
		tp := got.header.Get("Traceparent")
		if len(tp) != 55 || tp[3:35] != incoming[3:35] || tp[36:52] == incoming[36:52] {
			t.Errorf("traceparent = %q, want trace %s with a fresh span", tp, incoming[3:35])
		}
		if got.header.Get("Tracestate") != "v=1" || got.header.Get("Accept") != "application/json;odata.metadata=minimal" {
			t.Errorf("headers = %v", got.header)
		}
	})
	t.Run("replaces a malformed traceparent", func(t *testing.T) {
		mustFetch(t, s, src.URL, map[string]string{"traceparent": "garbage", "tracestate": "v=1"}, 0)
		got := src.last(t)
		if tp := got.header.Get("Traceparent"); len(tp) != 55 || got.header.Get("Tracestate") != "" {
			t.Errorf("traceparent = %q, tracestate = %q: want a new trace alone", tp, got.header.Get("Tracestate"))
		}
	})
	for name, headers := range map[string]map[string]string{
		"CRLF in value": {"Authorization": "Bearer hunter2\r\nX-Injected: yes"},
		"bad name":      {"X Token": "hunter2"},
		"host":          {"Host": "hunter2.example"},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			_, err := s.Fetch(context.Background(), src.URL, headers, 0)
			if crossdock.ErrorCode(err) != crossdock.EINVALID || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("Fetch = %v, want EINVALID without the value", err)
			}
			select {
			case <-src.requests:
				t.Error("a request was sent")
			default:
			}
		})
	}
	for _, bad := range []string{"/relative?token=hunter2", "ftp://h/?token=hunter2", "http://exa mple/?token=hunter2"} {
		_, err := s.Fetch(context.Background(), bad, nil, 0)
		if crossdock.ErrorCode(err) != crossdock.EINVALID || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Fetch(%q) = %v, want EINVALID without the URL", bad, err)
		}
	}
}

func TestFetchClassifies(t *testing.T) {
	s := webhook.NewSender()
	tests := []struct {
		name       string
		respond    http.HandlerFunc
		verdict    crossdock.Verdict
		status     int
		retryAfter time.Duration
		err        string
	}{
		{"404", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "account not found", http.StatusNotFound)
		}, crossdock.Rejected, 404, 0, "HTTP 404 Not Found: account not found"},
		{"503 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		}, crossdock.Retryable, 503, 30 * time.Second, "HTTP 503 Service Unavailable: maintenance"},
		{"429", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
		}, crossdock.Retryable, 429, 2 * time.Second, "HTTP 429 Too Many Requests"},
		{"401", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
		}, crossdock.Rejected, 401, 0, "HTTP 401 Unauthorized"},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, crossdock.Rejected, 302, 0, `HTTP 302 Found: redirects are not followed (Location: /elsewhere): <a href="/elsewhere">Found</a>.`},
		{"HTML", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>login</html>")
		}, crossdock.Rejected, 200, 0, "enrichment answer is not JSON (Content-Type text/html)"},
		{"no Content-Type", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			io.WriteString(w, `{"a":1}`)
		}, crossdock.Rejected, 200, 0, "enrichment answer is not JSON (Content-Type none)"},
		{"invalid JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"a":`)
		}, crossdock.Rejected, 200, 0, "enrichment answer is not valid JSON (5 bytes)"},
		{"204 without body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNoContent)
		}, crossdock.Rejected, 204, 0, "enrichment answer is not valid JSON (0 bytes)"},
		{"problem+json is JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.api+json")
			io.WriteString(w, `[1]`)
		}, crossdock.Delivered, 200, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := source(t, tt.respond)
			resp := mustFetch(t, s, src.URL, nil, 5*time.Second)
			if resp.Verdict != tt.verdict || resp.StatusCode != tt.status || resp.RetryAfter != tt.retryAfter {
				t.Errorf("response = verdict %v status %d retry-after %v, want %v %d %v",
					resp.Verdict, resp.StatusCode, resp.RetryAfter, tt.verdict, tt.status, tt.retryAfter)
			}
			if got := fmt.Sprint(resp.Err); tt.err == "" && resp.Err != nil || tt.err != "" && got != tt.err {
				t.Errorf("Err = %q, want %q", got, tt.err)
			}
			if tt.verdict != crossdock.Delivered && tt.status == 200 && resp.Body != nil {
				t.Errorf("a refused answer kept a Body of %d bytes", len(resp.Body))
			}
		})
	}
}

func TestFetchOversize(t *testing.T) {
	s := webhook.NewSender()
	s.MaxFetchBody = 1 << 10
	big := []byte(`"` + strings.Repeat("x", 2000) + `"`)
	exact := []byte(`"` + strings.Repeat("x", 1<<10-2) + `"`)

	for name, respond := range map[string]http.HandlerFunc{
		"with Content-Length": jsonAnswer(big),
		"chunked": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for i := 0; i < len(big); i += 100 {
				w.Write(big[i:min(i+100, len(big))])
				w.(http.Flusher).Flush()
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp := mustFetch(t, s, source(t, respond).URL, nil, 5*time.Second)
			if resp.Verdict != crossdock.Rejected || resp.Body != nil || fmt.Sprint(resp.Err) != "response larger than 1 KiB" {
				t.Fatalf("response = %v, %d bytes, %v; want rejected, larger than 1 KiB", resp.Verdict, len(resp.Body), resp.Err)
			}
		})
	}
	t.Run("exactly the limit", func(t *testing.T) {
		resp := mustFetch(t, s, source(t, jsonAnswer(exact)).URL, nil, 5*time.Second)
		if resp.Verdict != crossdock.Delivered || !bytes.Equal(resp.Body, exact) {
			t.Fatalf("response = %v, %d bytes, %v; want the %d bytes", resp.Verdict, len(resp.Body), resp.Err, len(exact))
		}
	})
	t.Run("default is 4 MiB", func(t *testing.T) {
		huge := make([]byte, 4<<20+1)
		huge[0], huge[len(huge)-1] = '"', '"'
		for i := 1; i < len(huge)-1; i++ {
			huge[i] = 'y'
		}
		resp := mustFetch(t, webhook.NewSender(), source(t, jsonAnswer(huge)).URL, nil, 10*time.Second)
		if resp.Verdict != crossdock.Rejected || fmt.Sprint(resp.Err) != "response larger than 4 MiB" {
			t.Fatalf("response = %v, %v; want rejected, larger than 4 MiB", resp.Verdict, resp.Err)
		}
	})
}

func TestFetchTimeoutAndNetwork(t *testing.T) {
	s := webhook.NewSender()
	t.Run("no answer", func(t *testing.T) {
		src := source(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		resp := mustFetch(t, s, src.URL, nil, 100*time.Millisecond)
		if resp.Verdict != crossdock.Retryable || resp.StatusCode != 0 || fmt.Sprint(resp.Err) != "timeout after 100ms" {
			t.Fatalf("response = %+v, want retryable timeout", resp)
		}
		if !errors.Is(resp.Err, context.DeadlineExceeded) {
			t.Errorf("Err %v does not unwrap to context.DeadlineExceeded", resp.Err)
		}
	})
	t.Run("body stalls", func(t *testing.T) {
		src := source(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"partial":`)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		resp := mustFetch(t, s, src.URL, nil, 100*time.Millisecond)
		want := "HTTP 200 OK: reading response body: timeout after 100ms"
		if resp.Verdict != crossdock.Retryable || resp.Body != nil || fmt.Sprint(resp.Err) != want {
			t.Fatalf("response = %v %q %v, want retryable %q", resp.Verdict, resp.Body, resp.Err, want)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		resp := mustFetch(t, s, "http://"+addr+"/x?token=hunter2", nil, time.Second)
		if resp.Verdict != crossdock.Retryable || fmt.Sprint(resp.Err) != "connection refused" {
			t.Fatalf("response = %+v, want retryable connection refused", resp)
		}
	})
}

func TestFetchErrDoesNotRepeatSecrets(t *testing.T) {
	// A careless source echoes the request in its error body and redirect.
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", r.URL.RequestURI())
			w.WriteHeader(status)
			fmt.Fprintf(w, "no access to %s with %s / key %s / %s", r.URL.RequestURI(),
				r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"), r.URL.Query().Get("code"))
		}
	}
	headers := map[string]string{"Authorization": "Bearer hunter2-bearer", "X-Api-Key": "hunter2-key"}
	for _, status := range []int{http.StatusForbidden, http.StatusNotFound, http.StatusBadGateway, http.StatusFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			src := source(t, echo(status))
			resp := mustFetch(t, webhook.NewSender(), src.URL+"/rows/7?sig=hunter2-sig&code=a%20hunter2+b", headers, time.Second)
			msg := fmt.Sprint(resp.Err)
			if resp.Err == nil || strings.Contains(msg, "hunter2") || !strings.Contains(msg, "/rows/7") {
				t.Errorf("Err = %q, want the path without the query or header values", msg)
			}
		})
	}
}
