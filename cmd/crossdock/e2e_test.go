package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// binary is the crossdock command built once for every test of the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crossdock-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "crossdock")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build crossdock: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// recorder is a real HTTP sink that records each delivery by its ce-id and
// answers what the test scripts.
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	got      map[string]int
	verified int
	bad      []string
	answer   func(id string, n int) int
}

func newRecorder(t *testing.T, answer func(id string, n int) int) *recorder {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{got: map[string]int{}, answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get("ce-id")
		// An independent implementation of the Standard Webhooks check.
		verr := wh.Verify(body, req.Header)
		r.mu.Lock()
		r.got[id]++
		n := r.got[id]
		if verr != nil {
			r.bad = append(r.bad, fmt.Sprintf("%s: %v", id, verr))
		} else {
			r.verified++
		}
		r.mu.Unlock()
		w.WriteHeader(r.answer(id, n))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id] > 0
}

// hub is a crossdock serve process.
type hub struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startHub runs crossdock serve and waits until /readyz answers 200.
func startHub(t *testing.T, args ...string) *hub {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binary, append([]string{"serve", "--listen", addr, "--log-level", "warn"}, args...)...)
	h := &hub{cmd: cmd, url: "http://" + addr, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = &syncWriter{w: h.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-h.done
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(h.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		select {
		case err := <-h.done:
			t.Fatalf("crossdock exited before it was ready: %v\n%s", err, h.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("crossdock not ready in time\n%s", h.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "hub.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func publish(url, topic, contentType string, header http.Header, body string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/topics/"+topic+"/events", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func event(id string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/e2e","type":"sales.order.created","subject":"SO-%s","data":{"id":%q}}`, id, id, id)
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeDeliversSignedEvents(t *testing.T) {
	dir := t.TempDir()
	a := newRecorder(t, func(string, int) int { return http.StatusOK })
	b := newRecorder(t, func(id string, n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable // every event needs a retry here
		}
		return http.StatusAccepted
	})
	cfg := writeConfig(t, dir, fmt.Sprintf(`
topics:
  - name: sales.order.created
subscriptions:
  - name: erp
    topic: sales.order.created
    destination: {url: %q, secret: %q}
  - name: warehouse
    topic: sales.order.created
    destination: {url: %q, secret: %q}
    retry: {initial_interval: 20ms, max_interval: 100ms}
`, a.URL, secret, b.URL, secret))
	h := startHub(t, "--config", cfg, "--data", filepath.Join(dir, "data"))

	// Structured, binary and batch mode.
	if code, body, err := publish(h.url, "sales.order.created", "application/cloudevents+json", nil, event("s-1")); err != nil || code != 202 {
		t.Fatalf("structured: %d %s %v", code, body, err)
	}
	binHeader := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"b-1"}, "Ce-Source": {"/e2e"}, "Ce-Type": {"sales.order.created"}}
	if code, body, err := publish(h.url, "sales.order.created", "application/json", binHeader, `{"id":"b-1"}`); err != nil || code != 202 {
		t.Fatalf("binary: %d %s %v", code, body, err)
	}
	batch := "[" + event("batch-1") + "," + event("batch-2") + "]"
	code, body, err := publish(h.url, "sales.order.created", "application/cloudevents-batch+json", nil, batch)
	if err != nil || code != 202 {
		t.Fatalf("batch: %d %s %v", code, body, err)
	}
	var results []struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.Unmarshal(body, &results); err != nil || len(results) != 2 || results[1].ID != "batch-2" {
		t.Fatalf("batch answer %s: %v", body, err)
	}

	ids := []string{"s-1", "b-1", "batch-1", "batch-2"}
	waitUntil(t, 20*time.Second, "every event at both sinks", func() bool {
		for _, id := range ids {
			if !a.has(id) || !b.has(id) {
				return false
			}
		}
		return true
	})
	for _, r := range []*recorder{a, b} {
		r.mu.Lock()
		if len(r.bad) > 0 {
			t.Errorf("signature check failed: %v", r.bad)
		}
		r.mu.Unlock()
	}

	// The journey shows the retry at the warehouse.
	waitUntil(t, 10*time.Second, "the journey", func() bool {
		resp, err := http.Get(h.url + "/v1/topics/sales.order.created/events/s-1")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var j struct {
			Deliveries []struct {
				Subscription string
				Status       string
				Attempts     []json.RawMessage
			}
		}
		if json.NewDecoder(resp.Body).Decode(&j) != nil {
			return false
		}
		for _, d := range j.Deliveries {
			if d.Subscription == "warehouse" {
				return d.Status == "delivered" && len(d.Attempts) == 2
			}
		}
		return false
	})

	// SIGTERM: exit 0.
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.done:
		h.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, h.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
}

func TestKill9LosesNothingAccepted(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the hub")
	}
	dir := t.TempDir()
	flaky := newRecorder(t, func(id string, n int) int {
		if n == 1 && len(id)%3 == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	steady := newRecorder(t, func(string, int) int { return http.StatusNoContent })
	cfg := writeConfig(t, dir, fmt.Sprintf(`
topics:
  - name: sales.order.created
subscriptions:
  - name: flaky
    topic: sales.order.created
    destination: {url: %q, secret: %q}
    retry: {initial_interval: 10ms, max_interval: 50ms, max_attempts: 100}
  - name: steady
    topic: sales.order.created
    destination: {url: %q, secret: %q}
`, flaky.URL, secret, steady.URL, secret))
	data := filepath.Join(dir, "data")

	var (
		mu       sync.Mutex
		accepted []string
	)
	// Publishers run across the kill and the restart; only 202s count.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var target struct {
		sync.Mutex
		url string
	}
	pub := func(w int) {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			target.Lock()
			url := target.url
			target.Unlock()
			id := fmt.Sprintf("w%d-%d", w, i)
			code, _, err := publish(url, "sales.order.created", "application/cloudevents+json", nil, event(id))
			if err == nil && code == http.StatusAccepted {
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
			}
		}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}

	h := startHub(t, "--config", cfg, "--data", data)
	target.url = h.url
	for w := range 8 {
		wg.Add(1)
		go pub(w)
	}
	// Kill the hub twice while it publishes and delivers, restarting it on
	// the same data directory each time.
	var killedAt []int
	for round := 1; round <= 2; round++ {
		base := count()
		waitUntil(t, 30*time.Second, "accepted events before the kill", func() bool { return count() >= base+400 })
		if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-h.done
		h.done <- nil
		killedAt = append(killedAt, count())
		h = startHub(t, "--config", cfg, "--data", data)
		target.Lock()
		target.url = h.url
		target.Unlock()
	}
	last := count()
	waitUntil(t, 30*time.Second, "more events after the last restart", func() bool { return count() >= last+300 })
	stop()
	wg.Wait()

	mu.Lock()
	ids := append([]string(nil), accepted...)
	mu.Unlock()
	waitUntil(t, 90*time.Second, "every accepted event at both sinks", func() bool {
		for _, id := range ids {
			if !flaky.has(id) || !steady.has(id) {
				return false
			}
		}
		return true
	})
	t.Logf("%d events accepted, kills after %v; all delivered to both subscriptions", len(ids), killedAt)
}

func TestValidateNamesFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `topics:
  - name: sales.order.created
subscriptions:
  - name: erp
    topic: sales.order.created
    filtr: "data.amount > 1"
    destination: {url: "http://127.0.0.1:1/x"}
`)
	out, err := exec.Command(binary, "validate", "--config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted a bad config:\n%s", out)
	}
	if want := "hub.yaml:6: subscriptions[0].filtr"; !strings.Contains(string(out), want) {
		t.Fatalf("output does not name %q:\n%s", want, out)
	}
	// serve refuses the same file.
	addr := freeAddr(t)
	out, err = exec.Command(binary, "serve", "--config", cfg, "--data", filepath.Join(dir, "data"), "--listen", addr).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "subscriptions[0].filtr") {
		t.Fatalf("serve started with a bad config (err %v):\n%s", err, out)
	}
}

func TestSIGTERMReleasesDeliveriesUnderWay(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	hang := true
	got := make(chan string, 10)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		h := hang
		mu.Unlock()
		if h {
			<-r.Context().Done() // a target that never answers
			return
		}
		got <- r.Header.Get("ce-id")
	}))
	defer sink.Close()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
topics:
  - name: sales.order.created
subscriptions:
  - name: erp
    topic: sales.order.created
    destination: {url: %q, timeout: 5m}
`, sink.URL))
	data := filepath.Join(dir, "data")
	h := startHub(t, "--config", cfg, "--data", data, "--grace", "500ms")
	if code, body, err := publish(h.url, "sales.order.created", "application/cloudevents+json", nil, event("hang-1")); err != nil || code != 202 {
		t.Fatalf("publish: %d %s %v", code, body, err)
	}
	waitUntil(t, 10*time.Second, "the delivery to be under way", func() bool {
		resp, err := http.Get(h.url + "/v1/subscriptions/erp")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var s struct {
			Stats struct {
				InFlight int `json:"in_flight"`
			}
		}
		return json.NewDecoder(resp.Body).Decode(&s) == nil && s.Stats.InFlight == 1
	})
	start := time.Now()
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.done:
		h.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, h.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20s of SIGTERM with a 500ms grace")
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))

	mu.Lock()
	hang = false
	mu.Unlock()
	startHub(t, "--config", cfg, "--data", data)
	select {
	case id := <-got:
		if id != "hang-1" {
			t.Fatalf("got %q", id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the released delivery was not redelivered after the restart (well within its ack wait)")
	}
}
