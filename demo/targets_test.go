package demo_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/demo"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// MustOpenTargets opens targets failing at rate (negative: never) with a
// seeded schedule.
func MustOpenTargets(tb testing.TB, rate float64) *demo.Targets {
	tb.Helper()
	ts := &demo.Targets{DataDir: tb.TempDir(), Secret: testSecret, Rand: rand.New(rand.NewPCG(7, 11)), FailureRate: rate}
	if err := ts.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := ts.Close(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return ts
}

type answer struct {
	status     int
	retryAfter string
	body       map[string]any
}

// deliver sends ev in CloudEvents binary mode as the hub does, signed with
// secret by the Standard Webhooks reference library, with webhook-id msgID.
func deliver(tb testing.TB, client *http.Client, url, secret, msgID string, ev crossdock.Event) (answer, error) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(ev.Data))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", ev.DataContentType)
	req.Header.Set("ce-specversion", ev.SpecVersion)
	req.Header.Set("ce-id", ev.ID)
	req.Header.Set("ce-source", ev.Source)
	req.Header.Set("ce-type", ev.Type)
	req.Header.Set("ce-subject", ev.Subject)
	req.Header.Set("ce-time", ev.Time.Format(time.RFC3339Nano))
	req.Header.Set("ce-correlationid", ev.CorrelationID())
	if secret != "" {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			tb.Fatal(err)
		}
		now := time.Now()
		sig, err := wh.Sign(msgID, now, ev.Data)
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("webhook-id", msgID)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		tb.Fatalf("%s answered %d with a body that is not JSON: %v", url, resp.StatusCode, err)
	}
	return a, nil
}

func validOrder(tb testing.TB, r *rand.Rand) crossdock.Event {
	tb.Helper()
	for n := 1; ; n++ {
		ev := demo.Order(r, n)
		var d demo.OrderData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			tb.Fatal(err)
		}
		if d.Problem() == "" {
			return ev
		}
	}
}

func TestTargets_AcceptSignedDeliveries(t *testing.T) {
	ts := MustOpenTargets(t, -1)
	ev := validOrder(t, rand.New(rand.NewPCG(1, 2)))
	for _, tc := range []struct {
		target, field, prefix string
	}{
		{demo.Fulfilment, "fulfilmentId", "FUL-"},
		{demo.SMS, "sid", "SM"},
		{demo.Warehouse, "reservationId", "RES-"},
		{demo.Archive, "partition", "date="},
	} {
		t.Run(tc.target, func(t *testing.T) {
			a, err := deliver(t, http.DefaultClient, ts.URL(tc.target), testSecret, "msg_"+tc.target, ev)
			if err != nil {
				t.Fatal(err)
			}
			if a.status != http.StatusCreated {
				t.Fatalf("status = %d %v, want 201", a.status, a.body)
			}
			if got, _ := a.body[tc.field].(string); !strings.HasPrefix(got, tc.prefix) {
				t.Errorf("%s = %q, want prefix %q", tc.field, got, tc.prefix)
			}
			if c := ts.Counts()[tc.target]; c.Received != 1 || c.Accepted != 1 {
				t.Errorf("counts = %+v, want 1 received and accepted", c)
			}
		})
	}
	a, _ := deliver(t, http.DefaultClient, ts.URL(demo.SMS), testSecret, "msg_sms2", ev)
	if a.body["status"] != "queued" || a.body["api_version"] != "2010-04-01" {
		t.Errorf("sms answer is not Twilio-like: %v", a.body)
	}
}

func TestTargets_RejectBadSignatures(t *testing.T) {
	ts := MustOpenTargets(t, -1)
	ev := validOrder(t, rand.New(rand.NewPCG(3, 4)))
	otherSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("not the right key at all"))
	for _, name := range demo.TargetNames() {
		for _, secret := range []string{"", otherSecret} {
			a, err := deliver(t, http.DefaultClient, ts.URL(name), secret, "msg_1", ev)
			if err != nil {
				t.Fatal(err)
			}
			if a.status != http.StatusUnauthorized {
				t.Errorf("%s with secret %q: status = %d, want 401", name, secret, a.status)
			}
		}
		if got := ts.Counts()[name].Failed[demo.FailUnauthorized]; got != 2 {
			t.Errorf("%s counted %d unauthorized, want 2", name, got)
		}
	}
}

func TestVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"orderNumber":"SO-1"}`)
	good, _ := wh.Sign("msg_1", now, body)
	headers := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		h.Set("webhook-signature", sig)
		return h
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		body string
		ok   bool
	}{
		{"valid", headers("msg_1", now, good), string(body), true},
		{"one of several during rotation", headers("msg_1", now, "v1,bm9wZQ== "+good), string(body), true},
		{"tampered body", headers("msg_1", now, good), `{"orderNumber":"SO-2"}`, false},
		{"other id", headers("msg_2", now, good), string(body), false},
		{"stale timestamp", headers("msg_1", now.Add(-10*time.Minute), good), string(body), false},
		{"wrong version", headers("msg_1", now, "v2"+strings.TrimPrefix(good, "v1")), string(body), false},
		{"garbage", headers("msg_1", now, "v1,%%%"), string(body), false},
		{"no headers", http.Header{}, string(body), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := demo.Verify(key, tc.h, []byte(tc.body), now)
			if (err == nil) != tc.ok {
				t.Fatalf("verify = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && crossdock.ErrorCode(err) != crossdock.EUNAUTHORIZED {
				t.Errorf("code = %q, want unauthorized", crossdock.ErrorCode(err))
			}
		})
	}
}

func TestArchive_WritesDatePartition(t *testing.T) {
	ts := MustOpenTargets(t, -1)
	ev := validOrder(t, rand.New(rand.NewPCG(5, 6)))
	ev.Time = time.Date(2024, 2, 29, 23, 30, 0, 0, time.UTC)
	for i := range 2 {
		if a, err := deliver(t, http.DefaultClient, ts.URL(demo.Archive), testSecret, "msg_"+strconv.Itoa(i), ev); err != nil || a.status != http.StatusCreated {
			t.Fatalf("archive: %v %+v", err, a)
		}
	}
	f, err := os.Open(filepath.Join(ts.DataDir, "lake", "date=2024-02-29", "orders.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines int
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		var got crossdock.Event
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d: %v", lines+1, err)
		}
		if got.ID != ev.ID || got.Subject != ev.Subject || !bytes.Equal(got.Data, ev.Data) || got.CorrelationID() != ev.CorrelationID() {
			t.Errorf("archived %+v, want %+v", got, ev)
		}
	}
	if lines != 2 {
		t.Errorf("archived %d lines, want 2", lines)
	}
}

func TestFulfilment_RejectsBadOrders(t *testing.T) {
	ts := MustOpenTargets(t, -1)
	ev := validOrder(t, rand.New(rand.NewPCG(8, 9)))
	for _, data := range []string{
		`{"orderNumber":"SO-1","lines":[],"amount":0}`,
		`{"orderNumber":"SO-2","lines":[{"sku":"A","qty":1,"price":2}],"amount":-2}`,
		`[1,2`,
	} {
		ev.Data = []byte(data)
		a, err := deliver(t, http.DefaultClient, ts.URL(demo.Fulfilment), testSecret, "msg", ev)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusBadRequest || a.body["error"] == nil {
			t.Errorf("%s: answer %+v, want 400 with an error", data, a)
		}
	}
	if got := ts.Counts()[demo.Fulfilment].Failed[demo.FailRejected]; got != 3 {
		t.Errorf("rejected = %d, want 3", got)
	}
}

func TestWarehouse_DeduplicatesByWebhookID(t *testing.T) {
	ts := MustOpenTargets(t, -1)
	ev := validOrder(t, rand.New(rand.NewPCG(10, 11)))
	first, _ := deliver(t, http.DefaultClient, ts.URL(demo.Warehouse), testSecret, "msg_same", ev)
	again, _ := deliver(t, http.DefaultClient, ts.URL(demo.Warehouse), testSecret, "msg_same", ev)
	if first.status != http.StatusCreated || again.status != http.StatusOK {
		t.Fatalf("statuses = %d, %d; want 201, 200", first.status, again.status)
	}
	if first.body["reservationId"] != again.body["reservationId"] || again.body["duplicate"] != true {
		t.Errorf("redelivery answered %v after %v", again.body, first.body)
	}
	if c := ts.Counts()[demo.Warehouse]; c.Accepted != 2 || c.Duplicates != 1 {
		t.Errorf("counts = %+v, want 2 accepted, 1 duplicate", c)
	}
}

func TestTargets_FailOnSchedule(t *testing.T) {
	ts := MustOpenTargets(t, 1.0)
	ev := validOrder(t, rand.New(rand.NewPCG(12, 13)))
	// The slow answer outlasts this timeout as it outlasts a subscription's.
	client := &http.Client{Timeout: 300 * time.Millisecond}
	for _, tc := range []struct {
		target string
		want   map[string]string // failure kind → status and Retry-After
	}{
		{demo.Fulfilment, map[string]string{demo.FailUnavailable: "503 1", demo.FailSlow: "timeout"}},
		{demo.SMS, map[string]string{demo.FailRateLimited: "429 2", demo.FailError: "500 "}},
		{demo.Warehouse, map[string]string{demo.FailUnavailable: "503 "}},
		{demo.Archive, map[string]string{demo.FailUnavailable: "503 "}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			seen := map[string]bool{}
			for i := range 12 {
				a, err := deliver(t, client, ts.URL(tc.target), testSecret, "msg_"+strconv.Itoa(i), ev)
				got := strconv.Itoa(a.status) + " " + a.retryAfter
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "Timeout") {
						t.Fatal(err)
					}
					got = "timeout"
				}
				seen[got] = true
			}
			counts := ts.Counts()[tc.target]
			for kind, answer := range tc.want {
				if !seen[answer] {
					t.Errorf("never answered %q; saw %v", answer, seen)
				}
				if counts.Failed[kind] == 0 {
					t.Errorf("no %s failure counted: %+v", kind, counts)
				}
			}
			if len(seen) != len(tc.want) || counts.Accepted != 0 {
				t.Errorf("answers %v, counts %+v: want only failures %v", seen, counts, tc.want)
			}
		})
	}
}

func TestTargets_DefaultFailureRate(t *testing.T) {
	ts := MustOpenTargets(t, 0) // 0 means the default, 10%
	ev := validOrder(t, rand.New(rand.NewPCG(14, 15)))
	for i := range 100 {
		if _, err := deliver(t, http.DefaultClient, ts.URL(demo.Warehouse), testSecret, "msg_"+strconv.Itoa(i), ev); err != nil {
			t.Fatal(err)
		}
	}
	if c := ts.Counts()[demo.Warehouse]; c.Failed[demo.FailUnavailable] < 3 || c.Failed[demo.FailUnavailable] > 25 || c.Accepted < 75 {
		t.Errorf("counts = %+v, want about 10 unavailable in 100", c)
	}
}

func TestTargets_CloseEndsSlowAnswers(t *testing.T) {
	ts := MustOpenTargets(t, 1.0)
	ev := validOrder(t, rand.New(rand.NewPCG(16, 17)))
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		// 503s come back at once; the first slow answer hangs until Close.
		for i := 0; ; i++ {
			if _, err := deliver(t, http.DefaultClient, ts.URL(demo.Fulfilment), testSecret, "msg_"+strconv.Itoa(i), ev); err != nil {
				return
			}
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); ts.Counts()[demo.Fulfilment].Failed[demo.FailSlow] == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no slow answer began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := ts.Close(ctx); err != nil {
		t.Fatalf("Close with a slow answer in flight = %v", err)
	}
	<-stopped
}

func TestTargets_OpenRejectsBadSecret(t *testing.T) {
	ts := &demo.Targets{DataDir: t.TempDir(), Secret: "whsec_%%%"}
	if err := ts.Open(); crossdock.ErrorCode(err) != crossdock.EINVALID {
		ts.Close(context.Background())
		t.Fatalf("Open = %v, want invalid", err)
	}
}

func FuzzVerify(f *testing.F) {
	key := []byte("fuzz-key-0123456789")
	wh, _ := standardwebhooks.NewWebhookRaw(key)
	now := time.Unix(1_700_000_000, 0)
	good, _ := wh.Sign("msg_1", now, []byte("{}"))
	f.Add("msg_1", "1700000000", good, []byte("{}"))
	f.Add("", "-9223372036854775808", "v1, v1,,", []byte(nil))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sig}}
		if err := demo.Verify(key, h, body, now); err != nil {
			return
		}
		// Accepted: then one of the signatures is the reference one.
		sec, _ := strconv.ParseInt(ts, 10, 64)
		want, _ := wh.Sign(id, time.Unix(sec, 0), body)
		if !containsField(sig, want) {
			t.Fatalf("accepted %q for id %q ts %q body %q, reference %q", sig, id, ts, body, want)
		}
	})
}

func containsField(list, want string) bool {
	for _, f := range strings.Fields(list) {
		if f == want {
			return true
		}
	}
	return false
}

func FuzzBinaryEvent(f *testing.F) {
	f.Add("1", "/crm", "1.0", "t", "2024-01-01T00:00:00Z", "application/json", "x", []byte(`{}`))
	f.Add("%41", "%zz", "1.0", "t", "", "text/plain", "", []byte(nil))
	f.Fuzz(func(t *testing.T, id, source, spec, typ, ts, ct, ext string, body []byte) {
		h := http.Header{}
		for k, v := range map[string]string{"ce-id": id, "ce-source": source, "ce-specversion": spec,
			"ce-type": typ, "ce-time": ts, "Content-Type": ct, "ce-" + ext: "v"} {
			h.Set(k, v)
		}
		ev, err := demo.BinaryEvent(h, body)
		if err != nil {
			if crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Fatalf("code %q for %v", crossdock.ErrorCode(err), err)
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("returned an invalid event: %v", err)
		}
	})
}
