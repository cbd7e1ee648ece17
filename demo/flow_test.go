package demo_test

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/demo"
)

// syncHub plays the hub's part of the snapshot sync, as the subscriptions
// of demo.SyncSubscriptions describe it, so that the simulated systems can
// be checked together: it takes change events and, in order, fetches the
// latest row, posts {number, name, version} to the ERP and patches the
// answer's customerId back, retrying each step until it succeeds.
type syncHub struct {
	t        *testing.T
	crm      *demo.CRM
	erp      *demo.ERP
	subjects chan string
	attempts int // deliveries to the ERP, retries included
}

func (h *syncHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev crossdock.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		h.t.Errorf("not an event: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.subjects <- ev.Subject
	w.WriteHeader(http.StatusAccepted)
}

// run delivers the events until the channel closes.
func (h *syncHub) run() {
	fast := &http.Client{Timeout: 100 * time.Millisecond} // the ERP's slow answers take 1s
	for id := range h.subjects {
		var row demo.Account
		h.retry("enrich", func() bool {
			status, _, err := call(h.t, http.DefaultClient, http.MethodGet, accountURL(h.crm, id), "", nil, &row)
			return err == nil && status == http.StatusOK
		})
		var answer struct {
			CustomerID string `json:"customerId"`
		}
		h.retry("deliver", func() bool {
			h.attempts++
			status, _, err := call(h.t, fast, http.MethodPost, h.erp.CustomersURL(), otherSecret,
				map[string]any{"number": row.AccountNumber, "name": row.Name, "version": row.Version}, &answer)
			return err == nil && status/100 == 2
		})
		h.retry("write back", func() bool {
			status, _, err := call(h.t, http.DefaultClient, http.MethodPatch, accountURL(h.crm, id), testSecret,
				map[string]string{"erp_customer_id": answer.CustomerID}, nil)
			return err == nil && status == http.StatusOK
		})
	}
}

func (h *syncHub) retry(step string, try func() bool) {
	for range 100 {
		if try() {
			return
		}
	}
	h.t.Errorf("%s failed 100 times", step)
}

func TestSnapshotSync_ConvergesWhileAccountsChange(t *testing.T) {
	crm := &demo.CRM{Secret: testSecret, Rand: rand.New(rand.NewPCG(5, 8)), FailureRate: 0.3}
	erp := &demo.ERP{Secret: otherSecret, Rand: rand.New(rand.NewPCG(5, 8)), FailureRate: 0.3, SlowDelay: time.Second}
	for _, open := range []func() error{crm.Open, erp.Open} {
		if err := open(); err != nil {
			t.Fatal(err)
		}
	}
	defer crm.Close(context.Background())
	defer erp.Close(context.Background())

	h := &syncHub{t: t, crm: crm, erp: erp, subjects: make(chan string, 1000)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	var worker sync.WaitGroup
	worker.Go(h.run)

	tr := &demo.SyncTraffic{HubURL: srv.URL, CRM: crm, Rate: 100, Accounts: 5, Rand: rand.New(rand.NewPCG(2, 3))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	waitFor(t, func() bool { return tr.Published() >= 30 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srv.Close() // waits for handlers still sending to subjects
	close(h.subjects)
	worker.Wait()

	got := demo.SyncReport(crm, erp)
	want := demo.SyncStatus{Accounts: 5, InSync: 5, WrittenBack: 5}
	if got != want {
		t.Errorf("SyncReport = %v, want %v", got, want)
	}
	if c := erp.Counts(); c.Abandoned == 0 || int(c.Created+c.Updated+c.Abandoned) != h.attempts {
		t.Errorf("ERP counts %+v for %d attempts: want some abandoned, and every attempt counted", c, h.attempts)
	}
	if c := crm.Counts(); c.Unavailable == 0 {
		t.Errorf("CRM counts %+v: want some 503s", c)
	}
}
