package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// call sends a JSON request to the hub and returns the status and body.
func call(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestServeWithoutConfigTakesTopicsAndSubscriptionsThroughTheAPI starts an
// empty hub, creates a topic and a signed subscription through the API,
// sees a delivery, restarts on the same data directory and sees the
// subscription still there and delivering.
func TestServeWithoutConfigTakesTopicsAndSubscriptionsThroughTheAPI(t *testing.T) {
	t.Setenv("CROSSDOCK_SECRET_HOOK", secret)
	sink := newRecorder(t, func(string, int) int { return 204 })
	data := filepath.Join(t.TempDir(), "data")
	h := startHub(t, "--data", data)

	if code, b := call(t, "PUT", h.url+"/v1/topics/sales.order.created", `{"dedup_window":"5m"}`); code != 201 {
		t.Fatalf("PUT topic = %d %s", code, b)
	}
	sub := `{"topic":"sales.order.created","filter":"subject.startsWith('SO-')","destination":{"url":"` + sink.URL +
		`/orders","secret":"${secret:hook}","timeout":"5s"},"retry":{"max_attempts":3,"initial_interval":"50ms"}}`
	code, b := call(t, "PUT", h.url+"/v1/subscriptions/fulfilment", sub)
	if code != 201 {
		t.Fatalf("PUT subscription = %d %s", code, b)
	}
	if strings.Contains(string(b), "secret:hook") || !strings.Contains(string(b), `"source":"api"`) || !strings.Contains(string(b), `"secret_set":true`) {
		t.Errorf("PUT answered %s", b)
	}
	if code, b, err := publish(h.url, "sales.order.created", "application/cloudevents+json", nil, event("o1")); err != nil || code != 202 {
		t.Fatalf("publish = %d %s (%v)", code, b, err)
	}
	waitUntil(t, 15*time.Second, "delivery of o1", func() bool { return sink.has("o1") })

	// Restart on the same data directory, still without a config file.
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("crossdock exited with %v\n%s", err, h.stderr)
		}
		h.done <- err // for the cleanup's wait
	case <-time.After(30 * time.Second):
		t.Fatal("crossdock did not stop")
	}
	h = startHub(t, "--data", data)

	code, b = call(t, "GET", h.url+"/v1/subscriptions/fulfilment", "")
	var got struct {
		Source      string `json:"source"`
		Filter      string `json:"filter"`
		Destination struct {
			SecretSet bool   `json:"secret_set"`
			Timeout   string `json:"timeout"`
		} `json:"destination"`
	}
	if err := json.Unmarshal(b, &got); err != nil || code != 200 {
		t.Fatalf("GET after restart = %d %s (%v)", code, b, err)
	}
	if got.Source != "api" || got.Filter != "subject.startsWith('SO-')" || !got.Destination.SecretSet || got.Destination.Timeout != "5s" {
		t.Errorf("after restart: %s", b)
	}
	if code, b, err := publish(h.url, "sales.order.created", "application/cloudevents+json", nil, event("o2")); err != nil || code != 202 {
		t.Fatalf("publish after restart = %d %s (%v)", code, b, err)
	}
	waitUntil(t, 15*time.Second, "delivery of o2 after restart", func() bool { return sink.has("o2") })
	sink.mu.Lock()
	bad, verified := sink.bad, sink.verified
	sink.mu.Unlock()
	if len(bad) > 0 || verified < 2 {
		t.Errorf("signatures: %d verified, bad %v", verified, bad)
	}

	// The topic is in use; the subscription goes, then the topic.
	if code, b := call(t, "DELETE", h.url+"/v1/topics/sales.order.created", ""); code != 409 {
		t.Errorf("DELETE topic in use = %d %s", code, b)
	}
	if code, b := call(t, "DELETE", h.url+"/v1/subscriptions/fulfilment", ""); code != 204 {
		t.Fatalf("DELETE subscription = %d %s", code, b)
	}
	if code, b := call(t, "DELETE", h.url+"/v1/topics/sales.order.created", ""); code != 204 {
		t.Errorf("DELETE topic = %d %s", code, b)
	}
}
