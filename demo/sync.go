package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crossdock/crossdock"
)

// Topics, attributes and jq programs of the snapshot-sync scenario: the CRM
// announces account changes on AccountTopic; subscription SyncSubscription
// fetches the latest row, transforms it with AccountTransform and posts it
// to the ERP, whose answer is published to AckTopic; subscription
// WritebackSubscription transforms that with WritebackTransform and
// patches the CRM row.
const (
	AccountTopic          = "crm.account.changed"
	AccountType           = "crm.account.changed"
	AccountSource         = "/crm/accounts"
	AckTopic              = "crm.account.acks"
	SyncSubscription      = "erp-accounts"
	WritebackSubscription = "crm-writeback"
	AccountTransform      = "{number: .data.accountnumber, name: .data.name, version: .data.version}"
	WritebackTransform    = "{erp_customer_id: .data.response.customerId}"
)

// SyncSubscriptions returns the two subscriptions of the snapshot-sync
// scenario between crm and erp, both open, signed with the secrets each
// system verifies and timing out after timeout (the ERP's slow answers
// exceed 2s). The caller adds retry policies and creates the topics.
func SyncSubscriptions(crm *CRM, erp *ERP, timeout time.Duration) []crossdock.Subscription {
	return []crossdock.Subscription{
		{
			Name:        SyncSubscription,
			Topic:       AccountTopic,
			Enrich:      &crossdock.Enrichment{URL: crm.AccountURL(), Headers: bearer(crm.Key)},
			Transform:   AccountTransform,
			Destination: crossdock.Destination{URL: erp.CustomersURL(), Method: http.MethodPost, Secret: erp.Secret, Timeout: timeout},
			Reply:       &crossdock.Reply{Topic: AckTopic},
		},
		{
			Name:        WritebackSubscription,
			Topic:       AckTopic,
			Transform:   WritebackTransform,
			Destination: crossdock.Destination{URL: crm.AccountURL(), Method: http.MethodPatch, Secret: crm.Secret, Timeout: timeout},
		},
	}
}

func bearer(key string) map[string]string {
	if key == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + key}
}

// SyncTraffic is the CRM's side of the snapshot sync: it creates accounts
// and then changes them at a steady rate, publishing each change to
// AccountTopic in structured mode, so that accounts change while earlier
// deliveries are still being retried.
type SyncTraffic struct {
	HubURL   string       // e.g. http://127.0.0.1:8080
	CRM      *CRM         // the open CRM whose accounts change
	Key      string       // sent as Authorization: Bearer when set
	Rate     float64      // changes per second; default 2
	Accounts int          // accounts created up front; default 20
	Rand     *rand.Rand   // picks the account to change; used by Run only
	Client   *http.Client // default: a client with a 10s timeout
	Logger   *slog.Logger // logs events the hub did not take

	published atomic.Int64
	failed    atomic.Int64
}

// Run creates the accounts, publishing one event each, then changes a
// random account per tick until ctx is done. It returns nil when ctx ends
// and EINVALID without a CRM; an event the hub does not take is counted as
// failed and logged.
func (t *SyncTraffic) Run(ctx context.Context) error {
	if t.CRM == nil {
		return crossdock.Errorf(crossdock.EINVALID, "demo sync traffic: CRM is required")
	}
	rate, n := t.Rate, t.Accounts
	if rate <= 0 {
		rate = 2
	}
	if n <= 0 {
		n = 20
	}
	r, client, logger := t.Rand, t.Client, t.Logger
	if r == nil {
		r = newRand()
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	endpoint := strings.TrimRight(t.HubURL, "/") + "/v1/topics/" + url.PathEscape(AccountTopic) + "/events"
	send := func(ev crossdock.Event) {
		if err := publish(ctx, client, endpoint, t.Key, &ev); err != nil {
			if ctx.Err() != nil {
				return
			}
			t.failed.Add(1)
			logger.Warn("demo sync traffic: event not published", "topic", AccountTopic, "event", ev.ID,
				"account", ev.Subject, "error", err)
			return
		}
		t.published.Add(1)
	}

	ids := make([]string, 0, n)
	for range n {
		if ctx.Err() != nil {
			return nil
		}
		acc, ev := t.CRM.Create()
		ids = append(ids, acc.ID)
		send(ev)
	}
	ticker := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		ev, err := t.CRM.Change(ids[r.IntN(len(ids))])
		if err != nil {
			return fmt.Errorf("change account: %w", err)
		}
		send(ev)
	}
}

// Published returns how many events the hub has accepted.
func (t *SyncTraffic) Published() int64 { return t.published.Load() }

// Failed returns how many events Run gave up on.
func (t *SyncTraffic) Failed() int64 { return t.failed.Load() }

// SyncStatus compares the CRM's accounts with what the ERP received.
type SyncStatus struct {
	Accounts    int   `json:"accounts"`
	InSync      int   `json:"in_sync"`      // the ERP's last version is the CRM's current one
	Stale       int   `json:"stale"`        // the ERP holds an older version
	Missing     int   `json:"missing"`      // the ERP has received nothing for the account
	WrittenBack int   `json:"written_back"` // the CRM row holds the ERP's customer id
	Mismatched  int   `json:"mismatched"`   // the CRM row holds an id the ERP did not give it
	Regressions int64 `json:"regressions"`  // upserts older than a version the ERP already had
}

// SyncReport compares the CRM's rows with the ERP's customers.
func SyncReport(crm *CRM, erp *ERP) SyncStatus {
	received := erp.Received()
	var s SyncStatus
	for _, c := range received {
		s.Regressions += c.Regressions
	}
	for _, row := range crm.Rows() {
		s.Accounts++
		c, ok := received[row.AccountNumber]
		switch {
		case !ok:
			s.Missing++
		case c.Version == row.Version:
			s.InSync++
		default:
			s.Stale++
		}
		switch {
		case row.ERPCustomerID == "":
		case ok && row.ERPCustomerID == c.CustomerID:
			s.WrittenBack++
		default:
			s.Mismatched++
		}
	}
	return s
}

// String returns a one-line summary of the status.
func (s SyncStatus) String() string {
	return fmt.Sprintf("%d accounts: %d in sync, %d stale, %d not yet sent; %d with the ERP id written back, %d mismatched; %d regressions",
		s.Accounts, s.InSync, s.Stale, s.Missing, s.WrittenBack, s.Mismatched, s.Regressions)
}
