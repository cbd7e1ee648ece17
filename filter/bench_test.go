package filter_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/filter"
)

// orderKiB returns an order event whose JSON data is about 1 KiB, with the
// amount near the end, where a scan finds it last.
func orderKiB(tb testing.TB) *crossdock.Event {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`{"orderId":"SO-2025-000123","customer":{"id":"c-7","name":"Acme Industrial Supplies B.V.",` +
		`"email":"purchasing@acme.example","country":"NL","vat":"NL123456789B01"},"items":[`)
	for i := range 8 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%04d","description":"Industrial part number %d","qty":%d,"price":%d.95}`, i, i, i+1, 10*i+5)
	}
	b.WriteString(`],"shipping":{"method":"express","address":"Keizersgracht 123, 1015 CJ Amsterdam"},` +
		`"notes":"Deliver between 08:00 and 16:00. Call ahead.","currency":"EUR","amount":1520.40}`)
	ev := order(b.String())
	if n := len(ev.Data); n < 900 || n > 1200 {
		tb.Fatalf("data is %d bytes, want about 1 KiB", n)
	}
	return ev
}

func benchmarkMatch(b *testing.B, expr string, want bool) {
	f, err := filter.Compile(expr)
	if err != nil {
		b.Fatal(err)
	}
	ev := orderKiB(b)
	b.SetBytes(int64(len(ev.Data)))
	b.ReportAllocs()
	for b.Loop() {
		ok, err := f.Match(ev)
		if err != nil || ok != want {
			b.Fatalf("Match = %v, %v", ok, err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	benchmarkMatch(b, `data.amount > 1000`, true)
}

func BenchmarkMatchAttributes(b *testing.B) {
	benchmarkMatch(b, `type == "sales.order.created" && extensions.region == "eu"`, true)
}

func BenchmarkMatchNested(b *testing.B) {
	benchmarkMatch(b, `data.customer.country == "NL" && data.items.exists(i, i.qty > 5)`, true)
}
