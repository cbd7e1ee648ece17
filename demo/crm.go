package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/crossdock/crossdock"
)

// Account is a row of the simulated CRM's account table, as its REST API
// returns it.
type Account struct {
	ID            string    `json:"id"`
	AccountNumber string    `json:"accountnumber"`
	Name          string    `json:"name"`
	Version       int64     `json:"version"` // counts business changes, from 1
	ModifiedOn    time.Time `json:"modifiedon"`
	ERPCustomerID string    `json:"erp_customer_id"` // "" until the ERP's id is written back
}

// CRMCounts is what the simulated CRM's API has answered.
type CRMCounts struct {
	Reads        int64 `json:"reads"`        // GETs answered with a row
	Writes       int64 `json:"writes"`       // PATCHes applied
	NotFound     int64 `json:"not_found"`    // 404s
	Unavailable  int64 `json:"unavailable"`  // 503s
	Unauthorized int64 `json:"unauthorized"` // 401s: bad key or signature
	Rejected     int64 `json:"rejected"`     // 400s: a PATCH it cannot apply
}

// CRM is a simulated CRM holding accounts in memory, served on 127.0.0.1:
// GET /api/accounts/{id} returns a row, and PATCH /api/accounts/{id}, signed
// with Standard Webhooks, sets its erp_customer_id. Both answer 503 now and
// then. Change edits a row and returns the notification to publish.
type CRM struct {
	Secret      string       // whsec_...: the signing secret of the write-back subscription
	Key         string       // when set, GET requires Authorization: Bearer Key
	Rand        *rand.Rand   // draws names, ids and the failure schedule; guarded by CRM
	Logger      *slog.Logger // logs each answer at debug level
	FailureRate float64      // chance of a 503 per request: 0 means 0.1, negative means never

	key []byte
	srv server

	mu       sync.Mutex // guards Rand, accounts, order and counts
	accounts map[string]*crmRow
	order    []string // ids in creation order
	counts   CRMCounts
}

type crmRow struct {
	Account
	base string // the name before change suffixes
}

// Open applies the defaults (a time-seeded Rand, a discarding Logger, a 10%
// failure rate) and starts serving on a free port of 127.0.0.1. It returns
// EINVALID when the secret is not a whsec_ base64 key.
func (c *CRM) Open() error {
	key, err := signingKey("crm", c.Secret)
	if err != nil {
		return err
	}
	c.key = key
	if c.Rand == nil {
		c.Rand = newRand()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.FailureRate == 0 {
		c.FailureRate = 0.1
	}
	c.accounts = make(map[string]*crmRow)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/accounts/{id}", c.get)
	mux.HandleFunc("PATCH /api/accounts/{id}", c.patch)
	return c.srv.open("crm", mux)
}

// Close stops the server, ending requests in flight, and waits for it; a
// second Close does nothing.
func (c *CRM) Close(ctx context.Context) error { return c.srv.close(ctx, "crm") }

// URL returns the base URL of the CRM's API; Open must have been called.
func (c *CRM) URL() string { return c.srv.base }

// AccountURL returns the URL template of one account, for an enrichment or
// a write-back destination: URL()/api/accounts/{{subject}}.
func (c *CRM) AccountURL() string { return c.srv.base + "/api/accounts/{{subject}}" }

var (
	companies  = []string{"Novak", "Silva", "Jensen", "Moreau", "Okafor", "Rossi", "Tanaka", "Weber", "Yilmaz", "Kowalski"}
	industries = []string{"Logistics", "Freight", "Trading", "Foods", "Metals", "Pharma", "Textiles", "Packaging"}
	legalForms = []string{"GmbH", "Ltd", "BV", "SpA", "AG", "Inc", "SAS", "KK"}
)

// Create adds an account with a drawn name at version 1 and returns it with
// the event that announces it.
func (c *CRM) Create() (Account, crossdock.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b [16]byte
	for i := range b {
		b[i] = byte(c.Rand.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	row := &crmRow{
		Account: Account{
			ID:            fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]),
			AccountNumber: fmt.Sprintf("ACC-%05d", len(c.order)+1),
			Version:       1,
			ModifiedOn:    time.Now().UTC(),
		},
		base: companies[c.Rand.IntN(len(companies))] + " " + industries[c.Rand.IntN(len(industries))] + " " +
			legalForms[c.Rand.IntN(len(legalForms))],
	}
	row.Name = row.base
	c.accounts[row.ID] = row
	c.order = append(c.order, row.ID)
	return row.Account, accountChanged(row.ID)
}

// Change edits the account's name and increments its version, and returns
// the event that announces the change. It returns ENOTFOUND for an unknown id.
func (c *CRM) Change(id string) (crossdock.Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	row, ok := c.accounts[id]
	if !ok {
		return crossdock.Event{}, crossdock.Errorf(crossdock.ENOTFOUND, "demo crm: account %s not found", id)
	}
	row.Version++
	row.Name = fmt.Sprintf("%s (rev %d)", row.base, row.Version)
	row.ModifiedOn = time.Now().UTC()
	return accountChanged(id), nil
}

// Rows returns a snapshot of the accounts in creation order.
func (c *CRM) Rows() []Account {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Account, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.accounts[id].Account)
	}
	return out
}

// Counts returns what the API has answered so far.
func (c *CRM) Counts() CRMCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts
}

// accountChanged is the notification of a change: it carries only the row
// id, so that the hub fetches the latest state before every attempt.
func accountChanged(id string) crossdock.Event {
	data, _ := json.Marshal(map[string]string{"id": id}) // a string map always encodes
	ev := crossdock.Event{
		ID:              newID(),
		Source:          AccountSource,
		SpecVersion:     crossdock.SpecVersion,
		Type:            AccountType,
		Subject:         id,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            data,
	}
	ev.SetExtension(crossdock.ExtPartitionKey, id)
	return ev
}

// unavailable draws whether this request fails with a 503.
func (c *CRM) unavailable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Rand.Float64() < c.FailureRate
}

func (c *CRM) answer(w http.ResponseWriter, r *http.Request, status int, body any, count *int64) {
	c.mu.Lock()
	*count++
	c.mu.Unlock()
	retryAfter := ""
	if status == http.StatusServiceUnavailable {
		retryAfter = "1"
	}
	c.Logger.Debug("demo crm answered", "method", r.Method, "path", r.URL.Path, "status", status)
	writeJSON(w, status, retryAfter, body)
}

// get answers GET /api/accounts/{id} with the row.
func (c *CRM) get(w http.ResponseWriter, r *http.Request) {
	if c.Key != "" && r.Header.Get("Authorization") != "Bearer "+c.Key {
		c.answer(w, r, http.StatusUnauthorized, errorBody("a valid bearer key is required"), &c.counts.Unauthorized)
		return
	}
	if c.unavailable() {
		c.answer(w, r, http.StatusServiceUnavailable, errorBody("CRM is busy, try again"), &c.counts.Unavailable)
		return
	}
	c.mu.Lock()
	row, ok := c.accounts[r.PathValue("id")]
	var acc Account
	if ok {
		acc = row.Account
	}
	c.mu.Unlock()
	if !ok {
		c.answer(w, r, http.StatusNotFound, errorBody("account not found"), &c.counts.NotFound)
		return
	}
	c.answer(w, r, http.StatusOK, acc, &c.counts.Reads)
}

// patch answers PATCH /api/accounts/{id}: a signed JSON object whose only
// settable field is erp_customer_id. Writing an integration key back is not
// a business change, so the version stays.
func (c *CRM) patch(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		c.answer(w, r, http.StatusBadRequest, errorBody("read body: "+err.Error()), &c.counts.Rejected)
		return
	}
	if err := verify(c.key, r.Header, body, time.Now()); err != nil {
		c.answer(w, r, http.StatusUnauthorized, errorBody(err.Error()), &c.counts.Unauthorized)
		return
	}
	if c.unavailable() {
		c.answer(w, r, http.StatusServiceUnavailable, errorBody("CRM is busy, try again"), &c.counts.Unavailable)
		return
	}
	erpID, problem := parsePatch(body)
	if problem != "" {
		c.answer(w, r, http.StatusBadRequest, errorBody(problem), &c.counts.Rejected)
		return
	}
	c.mu.Lock()
	row, ok := c.accounts[r.PathValue("id")]
	var acc Account
	if ok {
		row.ERPCustomerID = erpID
		row.ModifiedOn = time.Now().UTC()
		acc = row.Account
	}
	c.mu.Unlock()
	if !ok {
		c.answer(w, r, http.StatusNotFound, errorBody("account not found"), &c.counts.NotFound)
		return
	}
	c.answer(w, r, http.StatusOK, acc, &c.counts.Writes)
}

// parsePatch returns the erp_customer_id a PATCH body sets, or why the body
// cannot be applied.
func parsePatch(body []byte) (erpID, problem string) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return "", "body must be a JSON object of fields to set"
	}
	for name := range fields {
		if name != "erp_customer_id" {
			return "", fmt.Sprintf("field %q cannot be set: only erp_customer_id can", name)
		}
	}
	raw, ok := fields["erp_customer_id"]
	if !ok {
		return "", "erp_customer_id is required"
	}
	if err := json.Unmarshal(raw, &erpID); err != nil || erpID == "" {
		return "", "erp_customer_id must be a non-empty string"
	}
	return erpID, ""
}
