package transform_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
)

// accountKiB returns an account event whose JSON data is about 1 KiB.
func accountKiB(tb testing.TB) *crossdock.Event {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`{"accountid":"7f3c2a10-1b2c-4d5e-8f90-123456789abc","accountnumber":"A-100234","name":"Acme Industrial Supplies B.V.",` +
		`"email":"finance@acme.example","telephone1":"+31 20 123 4567","address1_line1":"Keizersgracht 123",` +
		`"address1_city":"Amsterdam","address1_postalcode":"1015 CJ","address1_country":"NL","creditlimit":250000,` +
		`"contacts":[`)
	for i := range 5 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"contactid":"c-%04d","fullname":"Contact number %d","emailaddress1":"contact%d@acme.example","jobtitle":"Buyer"}`, i, i, i)
	}
	b.WriteString(`],"statecode":0,"modifiedon":"2025-03-01T12:00:00Z"}`)
	ev := account(func(ev *crossdock.Event) { ev.Data = []byte(b.String()) })
	if n := len(ev.Data); n < 900 || n > 1200 {
		tb.Fatalf("data is %d bytes, want about 1 KiB", n)
	}
	return ev
}

func benchmarkApply(b *testing.B, program string) {
	p := mustCompile(b, program)
	ev := accountKiB(b)
	b.SetBytes(int64(len(ev.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Apply(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	benchmarkApply(b, `{number: .data.accountnumber, name: .data.name, city: .data.address1_city, correlation: .correlationid}`)
}

func BenchmarkApplyIdentity(b *testing.B) {
	benchmarkApply(b, `.data`)
}

func BenchmarkApplyContacts(b *testing.B) {
	benchmarkApply(b, `{account: .data.accountnumber, contacts: [.data.contacts[] | {id: .contactid, email: .emailaddress1}]}`)
}
