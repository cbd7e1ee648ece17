package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/demo"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const otherSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

// MustOpenCRM opens a CRM failing at rate (negative: never) with a seeded
// schedule.
func MustOpenCRM(tb testing.TB, rate float64) *demo.CRM {
	tb.Helper()
	crm := &demo.CRM{Secret: testSecret, Rand: rand.New(rand.NewPCG(3, 5)), FailureRate: rate}
	if err := crm.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := crm.Close(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return crm
}

// MustOpenERP opens an ERP that is slow at rate (negative: never) by delay.
func MustOpenERP(tb testing.TB, rate float64, delay time.Duration) *demo.ERP {
	tb.Helper()
	erp := &demo.ERP{Secret: otherSecret, Rand: rand.New(rand.NewPCG(3, 5)), FailureRate: rate, SlowDelay: delay}
	if err := erp.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := erp.Close(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return erp
}

// call makes one request with a JSON body, signed with secret by the
// Standard Webhooks reference library unless secret is empty, and decodes
// the JSON answer into out (when not nil).
func call(tb testing.TB, client *http.Client, method, url, secret string, body any, out any) (int, http.Header, error) {
	tb.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			tb.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(raw))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			tb.Fatal(err)
		}
		now := time.Now()
		sig, err := wh.Sign("msg_"+strconv.FormatInt(now.UnixNano(), 36), now, raw)
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("webhook-id", "msg_"+strconv.FormatInt(now.UnixNano(), 36))
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			tb.Fatalf("%s %s answered %d with a body that is not JSON: %v", method, url, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

func mustCall(tb testing.TB, method, url, secret string, body, out any) (int, http.Header) {
	tb.Helper()
	status, h, err := call(tb, http.DefaultClient, method, url, secret, body, out)
	if err != nil {
		tb.Fatal(err)
	}
	return status, h
}

func accountURL(crm *demo.CRM, id string) string { return crm.URL() + "/api/accounts/" + id }

func TestCRM_GetChangePatch(t *testing.T) {
	crm := MustOpenCRM(t, -1)
	acc, ev := crm.Create()
	if acc.Version != 1 || acc.AccountNumber != "ACC-00001" || acc.Name == "" || acc.ERPCustomerID != "" {
		t.Fatalf("created %+v", acc)
	}
	checkChangeEvent(t, ev, acc.ID)

	var got demo.Account
	if status, _ := mustCall(t, http.MethodGet, accountURL(crm, acc.ID), "", nil, &got); status != http.StatusOK {
		t.Fatalf("GET = %d", status)
	}
	if got.ID != acc.ID || got.Version != 1 || got.Name != acc.Name {
		t.Errorf("GET = %+v, want %+v", got, acc)
	}

	ev, err := crm.Change(acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkChangeEvent(t, ev, acc.ID)
	mustCall(t, http.MethodGet, accountURL(crm, acc.ID), "", nil, &got)
	if got.Version != 2 || got.Name == acc.Name || !strings.HasPrefix(got.Name, acc.Name) {
		t.Errorf("after Change GET = %+v; want version 2 and a new name extending %q", got, acc.Name)
	}

	var patched demo.Account
	status, _ := mustCall(t, http.MethodPatch, accountURL(crm, acc.ID), testSecret,
		map[string]string{"erp_customer_id": "C-000042"}, &patched)
	if status != http.StatusOK || patched.ERPCustomerID != "C-000042" || patched.Version != 2 {
		t.Errorf("PATCH = %d %+v; want 200, the id set and the version kept", status, patched)
	}
	rows := crm.Rows()
	if len(rows) != 1 || rows[0].ERPCustomerID != "C-000042" || rows[0].Version != 2 {
		t.Errorf("Rows = %+v", rows)
	}
	if c := crm.Counts(); c.Reads != 2 || c.Writes != 1 {
		t.Errorf("Counts = %+v", c)
	}
}

// checkChangeEvent checks a notification carries only the row id.
func checkChangeEvent(t *testing.T, ev crossdock.Event, id string) {
	t.Helper()
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	if ev.Type != demo.AccountType || ev.Subject != id || ev.Source != demo.AccountSource {
		t.Errorf("event type %q subject %q source %q", ev.Type, ev.Subject, ev.Source)
	}
	if ev.Extension(crossdock.ExtPartitionKey) != id {
		t.Errorf("partition key %q, want the account id", ev.Extension(crossdock.ExtPartitionKey))
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil || !reflect.DeepEqual(data, map[string]any{"id": id}) {
		t.Errorf("data = %s, want only the id", ev.Data)
	}
}

func TestCRM_NotFound(t *testing.T) {
	crm := MustOpenCRM(t, -1)
	if status, _ := mustCall(t, http.MethodGet, accountURL(crm, "nope"), "", nil, nil); status != http.StatusNotFound {
		t.Errorf("GET unknown = %d, want 404", status)
	}
	status, _ := mustCall(t, http.MethodPatch, accountURL(crm, "nope"), testSecret, map[string]string{"erp_customer_id": "C-1"}, nil)
	if status != http.StatusNotFound {
		t.Errorf("PATCH unknown = %d, want 404", status)
	}
	if _, err := crm.Change("nope"); crossdock.ErrorCode(err) != crossdock.ENOTFOUND {
		t.Errorf("Change unknown = %v, want ENOTFOUND", err)
	}
}

func TestCRM_RejectsBadPatches(t *testing.T) {
	crm := MustOpenCRM(t, -1)
	acc, _ := crm.Create()
	for _, tc := range []struct {
		name   string
		secret string
		body   any
		want   int
	}{
		{"unsigned", "", map[string]string{"erp_customer_id": "C-1"}, http.StatusUnauthorized},
		{"wrong secret", otherSecret, map[string]string{"erp_customer_id": "C-1"}, http.StatusUnauthorized},
		{"not an object", testSecret, []string{"C-1"}, http.StatusBadRequest},
		{"null", testSecret, nil, http.StatusBadRequest},
		{"read-only field", testSecret, map[string]any{"erp_customer_id": "C-1", "version": 9}, http.StatusBadRequest},
		{"no id", testSecret, map[string]any{}, http.StatusBadRequest},
		{"null id", testSecret, map[string]any{"erp_customer_id": nil}, http.StatusBadRequest},
		{"empty id", testSecret, map[string]any{"erp_customer_id": ""}, http.StatusBadRequest},
		{"numeric id", testSecret, map[string]any{"erp_customer_id": 7}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, _ := mustCall(t, http.MethodPatch, accountURL(crm, acc.ID), tc.secret, tc.body, nil); status != tc.want {
				t.Errorf("PATCH = %d, want %d", status, tc.want)
			}
		})
	}
	if rows := crm.Rows(); rows[0].ERPCustomerID != "" {
		t.Errorf("a rejected PATCH changed the row: %+v", rows[0])
	}
	if c := crm.Counts(); c.Unauthorized != 2 || c.Rejected != 7 || c.Writes != 0 {
		t.Errorf("Counts = %+v", c)
	}
}

func TestCRM_Unavailable(t *testing.T) {
	crm := MustOpenCRM(t, 1)
	acc, _ := crm.Create()
	status, h := mustCall(t, http.MethodGet, accountURL(crm, acc.ID), "", nil, nil)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("GET = %d Retry-After %q, want 503 with Retry-After", status, h.Get("Retry-After"))
	}
	body := map[string]string{"erp_customer_id": "C-1"}
	if status, _ := mustCall(t, http.MethodPatch, accountURL(crm, acc.ID), testSecret, body, nil); status != http.StatusServiceUnavailable {
		t.Errorf("PATCH = %d, want 503", status)
	}
	// The signature is checked before the failure draw.
	if status, _ := mustCall(t, http.MethodPatch, accountURL(crm, acc.ID), "", body, nil); status != http.StatusUnauthorized {
		t.Errorf("unsigned PATCH = %d, want 401", status)
	}
	if c := crm.Counts(); c.Unavailable != 2 || c.Writes != 0 || c.Reads != 0 {
		t.Errorf("Counts = %+v", c)
	}
}

func TestCRM_BearerKey(t *testing.T) {
	crm := &demo.CRM{Secret: testSecret, Key: "crm-key", FailureRate: -1}
	if err := crm.Open(); err != nil {
		t.Fatal(err)
	}
	defer crm.Close(context.Background())
	acc, _ := crm.Create()
	if status, _ := mustCall(t, http.MethodGet, accountURL(crm, acc.ID), "", nil, nil); status != http.StatusUnauthorized {
		t.Errorf("GET without key = %d, want 401", status)
	}
	req, _ := http.NewRequest(http.MethodGet, accountURL(crm, acc.ID), nil)
	for name, value := range demo.SyncSubscriptions(crm, MustOpenERP(t, -1, 0), time.Second)[0].Enrich.Headers {
		req.Header.Set(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET with the enrichment's headers = %d, want 200", resp.StatusCode)
	}
}

func TestSystems_OpenRejectBadSecret(t *testing.T) {
	if err := (&demo.CRM{Secret: "not base64!"}).Open(); crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("CRM.Open = %v, want EINVALID", err)
	}
	if err := (&demo.ERP{Secret: ""}).Open(); crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("ERP.Open = %v, want EINVALID", err)
	}
}

type customer struct {
	CustomerID string `json:"customerId"`
	Version    int64  `json:"version"`
}

func upsert(t *testing.T, erp *demo.ERP, number string, version int64) (int, customer) {
	t.Helper()
	var c customer
	status, _ := mustCall(t, http.MethodPost, erp.CustomersURL(), otherSecret,
		map[string]any{"number": number, "name": "Acme " + number, "version": version}, &c)
	return status, c
}

func TestERP_UpsertsWithStableIDs(t *testing.T) {
	erp := MustOpenERP(t, -1, 0)
	steps := []struct {
		number     string
		version    int64
		wantStatus int
		wantID     string
	}{
		{"ACC-00001", 1, http.StatusCreated, "C-000001"},
		{"ACC-00002", 1, http.StatusCreated, "C-000002"},
		{"ACC-00001", 2, http.StatusOK, "C-000001"},
		{"ACC-00001", 2, http.StatusOK, "C-000001"}, // a redelivery of the same version
		{"ACC-00001", 1, http.StatusOK, "C-000001"}, // an older snapshot: a regression
	}
	for i, s := range steps {
		status, c := upsert(t, erp, s.number, s.version)
		if status != s.wantStatus || c.CustomerID != s.wantID || c.Version != s.version {
			t.Errorf("step %d: %d %+v, want %d %s version %d", i, status, c, s.wantStatus, s.wantID, s.version)
		}
	}
	got := erp.Received()
	want := map[string]demo.ERPCustomer{
		"ACC-00001": {CustomerID: "C-000001", AccountNumber: "ACC-00001", Name: "Acme ACC-00001", Version: 1, Deliveries: 4, Regressions: 1},
		"ACC-00002": {CustomerID: "C-000002", AccountNumber: "ACC-00002", Name: "Acme ACC-00002", Version: 1, Deliveries: 1},
	}
	for number, w := range want {
		g := got[number]
		if g.CustomerID != w.CustomerID || g.Name != w.Name || g.Version != w.Version ||
			g.Deliveries != w.Deliveries || g.Regressions != w.Regressions {
			t.Errorf("Received[%s] = %+v, want %+v", number, g, w)
		}
	}
	if c := erp.Counts(); c.Created != 2 || c.Updated != 3 {
		t.Errorf("Counts = %+v", c)
	}
}

func TestERP_RejectsBadRequests(t *testing.T) {
	erp := MustOpenERP(t, -1, 0)
	for _, tc := range []struct {
		name   string
		secret string
		body   any
		want   int
	}{
		{"unsigned", "", map[string]any{"number": "A", "version": 1}, http.StatusUnauthorized},
		{"wrong secret", testSecret, map[string]any{"number": "A", "version": 1}, http.StatusUnauthorized},
		{"no number", otherSecret, map[string]any{"name": "x", "version": 1}, http.StatusBadRequest},
		{"no version", otherSecret, map[string]any{"number": "A"}, http.StatusBadRequest},
		{"not JSON", otherSecret, "{", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, _ := mustCall(t, http.MethodPost, erp.CustomersURL(), tc.secret, tc.body, nil); status != tc.want {
				t.Errorf("POST = %d, want %d", status, tc.want)
			}
		})
	}
	if n := len(erp.Received()); n != 0 {
		t.Errorf("%d customers after rejected requests", n)
	}
}

func TestERP_SlowAnswers(t *testing.T) {
	t.Run("past the caller's timeout", func(t *testing.T) {
		erp := MustOpenERP(t, 1, time.Minute)
		client := &http.Client{Timeout: 200 * time.Millisecond}
		_, _, err := call(t, client, http.MethodPost, erp.CustomersURL(), otherSecret,
			map[string]any{"number": "ACC-00001", "version": 1}, nil)
		if err == nil {
			t.Fatal("a slow answer arrived within the client's timeout")
		}
		waitFor(t, func() bool { return erp.Counts().Abandoned == 1 })
		if n := len(erp.Received()); n != 0 {
			t.Errorf("an abandoned request was applied: %d customers", n)
		}
	})
	t.Run("within the caller's timeout", func(t *testing.T) {
		erp := MustOpenERP(t, 1, 20*time.Millisecond)
		status, c := upsert(t, erp, "ACC-00001", 1)
		if status != http.StatusCreated || c.CustomerID != "C-000001" {
			t.Errorf("slow upsert = %d %+v", status, c)
		}
		if cnt := erp.Counts(); cnt.Slow != 1 || cnt.Abandoned != 0 {
			t.Errorf("Counts = %+v", cnt)
		}
	})
	t.Run("Close ends slow answers", func(t *testing.T) {
		erp := &demo.ERP{Secret: otherSecret, FailureRate: 1, SlowDelay: time.Hour}
		if err := erp.Open(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := call(t, http.DefaultClient, http.MethodPost, erp.CustomersURL(), otherSecret,
				map[string]any{"number": "A", "version": 1}, nil)
			done <- err
		}()
		waitFor(t, func() bool { return erp.Counts().Slow == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := erp.Close(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a slow request outlived Close")
		}
	})
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
	}
}

func TestSyncTraffic_CreatesThenChanges(t *testing.T) {
	crm := MustOpenCRM(t, -1)
	h := &hub{t: t, path: "/v1/topics/crm.account.changed/events", statuses: []int{http.StatusServiceUnavailable}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &demo.SyncTraffic{HubURL: srv.URL, CRM: crm, Key: "k1", Rate: 50, Accounts: 3,
		Rand: rand.New(rand.NewPCG(1, 1)), Client: srv.Client()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	waitFor(t, func() bool { _, n := h.counts(); return n >= 12 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil when ctx ends", err)
	}

	rows := crm.Rows()
	if len(rows) != 3 {
		t.Fatalf("%d accounts, want 3", len(rows))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// The last event may be taken by the hub after Run's ctx ended and
	// before its answer arrived: then it is neither published nor failed.
	if lost := int64(len(h.events)) - tr.Published(); lost < 0 || lost > 1 || tr.Failed() != 0 || h.requests != len(h.events)+1 {
		t.Errorf("%d requests, %d events; published %d, failed %d", h.requests, len(h.events), tr.Published(), tr.Failed())
	}
	var versions int64
	changed := map[string]bool{}
	for i, row := range rows {
		versions += row.Version
		if h.events[i].Subject != row.ID {
			t.Errorf("event %d is about %s, want the creation of %s", i, h.events[i].Subject, row.ID)
		}
	}
	for _, ev := range h.events {
		checkChangeEvent(t, ev, ev.Subject)
		changed[ev.Subject] = true
	}
	// Every event is one version of one account.
	if versions != int64(len(h.events)) {
		t.Errorf("the accounts' versions add up to %d for %d events", versions, len(h.events))
	}
	if len(changed) != 3 {
		t.Errorf("%d accounts in the events, want 3", len(changed))
	}
}

func TestSyncTraffic_RequiresCRM(t *testing.T) {
	err := (&demo.SyncTraffic{HubURL: "http://127.0.0.1:1"}).Run(context.Background())
	if crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("Run without a CRM = %v, want EINVALID", err)
	}
}

func TestSyncReport(t *testing.T) {
	crm := MustOpenCRM(t, -1)
	erp := MustOpenERP(t, -1, 0)
	var accs []demo.Account
	for range 5 {
		acc, _ := crm.Create()
		accs = append(accs, acc)
	}
	change := func(i, times int) {
		for range times {
			if _, err := crm.Change(accs[i].ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeBack := func(i int, id string) {
		if status, _ := mustCall(t, http.MethodPatch, accountURL(crm, accs[i].ID), testSecret,
			map[string]string{"erp_customer_id": id}, nil); status != http.StatusOK {
			t.Fatalf("write back = %d", status)
		}
	}
	// 0: in sync and written back.
	change(0, 2)
	upsert(t, erp, accs[0].AccountNumber, 2)
	_, c0 := upsert(t, erp, accs[0].AccountNumber, 3)
	writeBack(0, c0.CustomerID)
	// 1: stale (changed after the last delivery), written back.
	_, c1 := upsert(t, erp, accs[1].AccountNumber, 1)
	writeBack(1, c1.CustomerID)
	change(1, 1)
	// 2: never sent.
	// 3: in sync but holding another account's ERP id.
	upsert(t, erp, accs[3].AccountNumber, 1)
	writeBack(3, c0.CustomerID)
	// 4: an old snapshot overwrote a newer one: a regression, and stale.
	change(4, 1)
	upsert(t, erp, accs[4].AccountNumber, 2)
	upsert(t, erp, accs[4].AccountNumber, 1)

	got := demo.SyncReport(crm, erp)
	want := demo.SyncStatus{Accounts: 5, InSync: 2, Stale: 2, Missing: 1, WrittenBack: 2, Mismatched: 1, Regressions: 1}
	if got != want {
		t.Errorf("SyncReport = %+v, want %+v", got, want)
	}
	if s := got.String(); !strings.Contains(s, "2 in sync") || !strings.Contains(s, "1 regressions") {
		t.Errorf("String = %q", s)
	}
	if got := demo.SyncReport(MustOpenCRM(t, -1), erp); got != (demo.SyncStatus{Regressions: 1}) {
		t.Errorf("SyncReport with no accounts = %+v", got)
	}
}

func TestSyncSubscriptions(t *testing.T) {
	crm := MustOpenCRM(t, -1)
	erp := MustOpenERP(t, -1, 0)
	subs := demo.SyncSubscriptions(crm, erp, 2*time.Second)
	if len(subs) != 2 {
		t.Fatalf("%d subscriptions", len(subs))
	}
	for _, s := range subs {
		if err := s.WithDefaults().Validate(); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
	sync, back := subs[0], subs[1]
	if sync.Topic != demo.AccountTopic || sync.Enrich == nil || sync.Enrich.URL != crm.URL()+"/api/accounts/{{subject}}" ||
		sync.Reply == nil || sync.Reply.Topic != demo.AckTopic || sync.Destination.Secret != erp.Secret ||
		sync.Transform != demo.AccountTransform {
		t.Errorf("sync subscription = %+v", sync)
	}
	if back.Topic != demo.AckTopic || back.Destination.Method != http.MethodPatch ||
		back.Destination.URL != crm.AccountURL() || back.Destination.Secret != crm.Secret {
		t.Errorf("write-back subscription = %+v", back)
	}
}

func FuzzParsePatch(f *testing.F) {
	for _, s := range []string{`{"erp_customer_id":"C-000001"}`, `{}`, `null`, `[]`, `{"erp_customer_id":null}`,
		`{"erp_customer_id":"a","name":"b"}`, `{"erp_customer_id":""}`, `{"erp_customer_id":"\u00e9"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, problem := demo.ParsePatch(body)
		if (id == "") == (problem == "") {
			t.Fatalf("ParsePatch(%q) = %q, %q: want exactly one of an id and a problem", body, id, problem)
		}
		if problem != "" {
			return
		}
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil || len(fields) != 1 || fields["erp_customer_id"] != id {
			t.Fatalf("ParsePatch(%q) accepted %q; the body decodes to %v (%v)", body, id, fields, err)
		}
	})
}
