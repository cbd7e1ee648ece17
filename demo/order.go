// Package demo provides the simulated world of `crossdock demo`.
//
// The order fan-out scenario: a CRM that publishes OrderCreated events to
// the hub at a steady rate (Traffic), and the four downstream systems
// (Targets) — an ERP fulfilment API, a Twilio-style SMS provider, a
// warehouse inventory API and a date-partitioned data-lake archive — each
// failing on its own schedule.
//
// The snapshot-sync scenario: a CRM with an accounts REST API (CRM) whose
// rows change while deliveries retry (SyncTraffic), an ERP customer API that
// answers with its own id and sometimes too late (ERP), and SyncReport,
// which checks that the ERP holds every account's latest version, never
// went back to an older one, and that the CRM rows carry their ERP ids.
//
// It talks to the hub only over HTTP, as real sources and targets do: the
// traffic publishes CloudEvents in structured mode, and the simulated
// systems verify the Standard Webhooks signatures of the deliveries.
package demo

import (
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/crossdock/crossdock"
)

// Attributes of the events Order makes.
const (
	OrderType   = "sales.order.created"
	OrderSource = "/crm/orders"
)

// BadOrderRate is the share of orders Order makes invalid (no lines or a
// negative amount), so that the fulfilment API rejects them.
const BadOrderRate = 0.03

// OrderData is the payload of an OrderCreated event.
type OrderData struct {
	OrderNumber string      `json:"orderNumber"`
	Customer    Customer    `json:"customer"`
	Lines       []OrderLine `json:"lines"`
	Amount      float64     `json:"amount"`
	Currency    string      `json:"currency"`
	Region      string      `json:"region"`
}

// Customer is the buyer of an order.
type Customer struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Phone string `json:"phone"`
}

// OrderLine is one product line of an order.
type OrderLine struct {
	SKU   string  `json:"sku"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
}

var (
	firstNames = []string{"Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Gustav", "Hana", "Ivo", "Jonas", "Keiko", "Lena"}
	lastNames  = []string{"Novak", "Silva", "Jensen", "Moreau", "Okafor", "Rossi", "Tanaka", "Weber", "Yilmaz", "Kowalski"}
	skus       = []string{"PAL-EU-1200", "BOX-S-040", "BOX-M-060", "BOX-L-080", "TAPE-48", "WRAP-500", "LBL-A6", "SCAN-HH2"}
	regions    = []struct{ name, currency string }{{"emea", "EUR"}, {"na", "USD"}, {"uk", "GBP"}, {"apac", "JPY"}}
)

// Order returns the n-th OrderCreated event of a demo run with content drawn
// from r: valid except for about BadOrderRate of them. Its id and correlation
// id are fresh random ids, so that a rerun is not taken for a duplicate.
func Order(r *rand.Rand, n int) crossdock.Event {
	now := time.Now().UTC()
	region := regions[r.IntN(len(regions))]
	d := OrderData{
		OrderNumber: fmt.Sprintf("SO-%s-%05d", now.Format("20060102"), n),
		Customer: Customer{
			ID:    fmt.Sprintf("CUST-%05d", r.IntN(100000)),
			Name:  firstNames[r.IntN(len(firstNames))] + " " + lastNames[r.IntN(len(lastNames))],
			Phone: fmt.Sprintf("+1555%07d", r.IntN(10000000)),
		},
		Currency: region.currency,
		Region:   region.name,
	}
	var cents int
	for range 1 + r.IntN(4) {
		l := OrderLine{SKU: skus[r.IntN(len(skus))], Qty: 1 + r.IntN(20), Price: float64(99+r.IntN(20000)) / 100}
		cents += l.Qty * int(math.Round(l.Price*100))
		d.Lines = append(d.Lines, l)
	}
	d.Amount = float64(cents) / 100
	if r.Float64() < BadOrderRate {
		if r.IntN(2) == 0 {
			d.Lines, d.Amount = []OrderLine{}, 0
		} else {
			d.Amount = -d.Amount
		}
	}
	data, _ := json.Marshal(d) // plain structs always encode
	ev := crossdock.Event{
		ID:              newID(),
		Source:          OrderSource,
		SpecVersion:     crossdock.SpecVersion,
		Type:            OrderType,
		Subject:         d.OrderNumber,
		Time:            now,
		DataContentType: "application/json",
		Data:            data,
	}
	ev.SetExtension(crossdock.ExtCorrelationID, newID())
	return ev
}

// Problem returns why an order is unacceptable to the fulfilment API, or ""
// when it is fine.
func (d *OrderData) Problem() string {
	switch {
	case d.OrderNumber == "":
		return "orderNumber is missing"
	case len(d.Lines) == 0:
		return "order has no lines"
	case d.Amount < 0:
		return fmt.Sprintf("amount %.2f is negative", d.Amount)
	}
	for i, l := range d.Lines {
		if l.SKU == "" || l.Qty <= 0 || l.Price < 0 {
			return fmt.Sprintf("line %d needs a sku, a positive qty and a price", i+1)
		}
	}
	return ""
}

// CurlExample returns a shell command that publishes one order to the hub in
// structured mode.
func CurlExample(hubURL, topic string) string {
	ev := Order(rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)), 1)
	body, _ := ev.MarshalJSON() // Order's data is valid JSON
	quoted := "'" + strings.ReplaceAll(string(body), "'", `'\''`) + "'"
	return fmt.Sprintf("curl -sS -X POST %s/v1/topics/%s/events -H 'Content-Type: application/cloudevents+json' -d %s",
		strings.TrimRight(hubURL, "/"), topic, quoted)
}

// newID returns a random version 4 UUID.
func newID() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
