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
)

// ERPCustomer is what the simulated ERP holds for one CRM account, and what
// it has received for it.
type ERPCustomer struct {
	CustomerID    string `json:"customerId"`
	AccountNumber string `json:"number"`
	Name          string `json:"name"`
	Version       int64  `json:"version"`     // the version of the last upsert
	Deliveries    int64  `json:"deliveries"`  // upserts applied
	Regressions   int64  `json:"regressions"` // upserts older than a version already received
	maxVersion    int64
}

// ERPCounts is what the simulated ERP's API has answered.
type ERPCounts struct {
	Created      int64 `json:"created"`      // 201: a new customer
	Updated      int64 `json:"updated"`      // 200: an existing customer
	Slow         int64 `json:"slow"`         // answers delayed by SlowDelay
	Abandoned    int64 `json:"abandoned"`    // slow requests the caller gave up on; not applied
	Unauthorized int64 `json:"unauthorized"` // 401: missing or bad signature
	Rejected     int64 `json:"rejected"`     // 400: a body it cannot apply
}

// ERP is a simulated ERP's customer API, served on 127.0.0.1: POST
// /customers, signed with Standard Webhooks, upserts {number, name, version}
// by account number and answers with the ERP's own customer id, stable per
// account. Now and then it answers only after SlowDelay, past the caller's
// timeout; a request the caller abandons is not applied.
type ERP struct {
	Secret      string        // whsec_...: the signing secret of the sync subscription
	Rand        *rand.Rand    // draws the slow schedule; guarded by ERP
	Logger      *slog.Logger  // logs each answer at debug level
	FailureRate float64       // chance of a slow answer per request: 0 means 0.1, negative means never
	SlowDelay   time.Duration // how long a slow answer takes: default 3s, past the demo's 2s timeout

	key []byte
	srv server

	mu        sync.Mutex // guards Rand, customers and counts
	customers map[string]*ERPCustomer
	counts    ERPCounts
}

// Open applies the defaults (a time-seeded Rand, a discarding Logger, a 10%
// slow rate, a 3s delay) and starts serving on a free port of 127.0.0.1. It
// returns EINVALID when the secret is not a whsec_ base64 key.
func (e *ERP) Open() error {
	key, err := signingKey("erp", e.Secret)
	if err != nil {
		return err
	}
	e.key = key
	if e.Rand == nil {
		e.Rand = newRand()
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
	}
	if e.FailureRate == 0 {
		e.FailureRate = 0.1
	}
	if e.SlowDelay == 0 {
		e.SlowDelay = slowDelay
	}
	e.customers = make(map[string]*ERPCustomer)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /customers", e.upsert)
	return e.srv.open("erp", mux)
}

// Close stops the server, ending requests in flight, and waits for it; a
// second Close does nothing.
func (e *ERP) Close(ctx context.Context) error { return e.srv.close(ctx, "erp") }

// URL returns the base URL of the ERP's API; Open must have been called.
func (e *ERP) URL() string { return e.srv.base }

// CustomersURL returns the endpoint the sync subscription posts to.
func (e *ERP) CustomersURL() string { return e.srv.base + "/customers" }

// Received returns a snapshot of the customers, by account number.
func (e *ERP) Received() map[string]ERPCustomer {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]ERPCustomer, len(e.customers))
	for number, c := range e.customers {
		out[number] = *c
	}
	return out
}

// Counts returns what the API has answered so far.
func (e *ERP) Counts() ERPCounts {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts
}

// customerBody is what the sync subscription's transform makes of a row.
type customerBody struct {
	Number  string `json:"number"`
	Name    string `json:"name"`
	Version int64  `json:"version"`
}

func (e *ERP) count(f func(*ERPCounts)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.counts)
}

func (e *ERP) answer(w http.ResponseWriter, status int, body any, count func(*ERPCounts)) {
	e.count(count)
	e.Logger.Debug("demo erp answered", "status", status)
	writeJSON(w, status, "", body)
}

// upsert answers POST /customers.
func (e *ERP) upsert(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		e.answer(w, http.StatusBadRequest, errorBody("read body: "+err.Error()), func(c *ERPCounts) { c.Rejected++ })
		return
	}
	if err := verify(e.key, r.Header, body, time.Now()); err != nil {
		e.answer(w, http.StatusUnauthorized, errorBody(err.Error()), func(c *ERPCounts) { c.Unauthorized++ })
		return
	}
	var in customerBody
	if err := json.Unmarshal(body, &in); err != nil || in.Number == "" || in.Version < 1 {
		e.answer(w, http.StatusBadRequest, errorBody("body must be {number, name, version} with a number and a version from 1"),
			func(c *ERPCounts) { c.Rejected++ })
		return
	}
	if e.slow() {
		e.count(func(c *ERPCounts) { c.Slow++ })
		select {
		case <-r.Context().Done():
			e.count(func(c *ERPCounts) { c.Abandoned++ })
			e.Logger.Debug("demo erp abandoned a slow request", "number", in.Number)
			return
		case <-time.After(e.SlowDelay):
		}
	}

	e.mu.Lock()
	cust, ok := e.customers[in.Number]
	if !ok {
		cust = &ERPCustomer{CustomerID: fmt.Sprintf("C-%06d", len(e.customers)+1), AccountNumber: in.Number}
		e.customers[in.Number] = cust
	}
	// A naive target takes what it is sent: a regression overwrites newer
	// data, which is what enrichment before every attempt prevents.
	if in.Version < cust.maxVersion {
		cust.Regressions++
	}
	cust.maxVersion = max(cust.maxVersion, in.Version)
	cust.Name, cust.Version = in.Name, in.Version
	cust.Deliveries++
	out := *cust
	e.mu.Unlock()

	status, count := http.StatusOK, func(c *ERPCounts) { c.Updated++ }
	if !ok {
		status, count = http.StatusCreated, func(c *ERPCounts) { c.Created++ }
	}
	e.answer(w, status, out, count)
}

// slow draws whether this request is answered late.
func (e *ERP) slow() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.Rand.Float64() < e.FailureRate
}
