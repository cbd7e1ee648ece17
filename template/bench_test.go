package template_test

import (
	"testing"

	"github.com/crossdock/crossdock/template"
)

func BenchmarkURL(b *testing.B) {
	tpl, err := template.ParseURL("https://erp.example.com/api/accounts/{{subject}}?correlation={{correlationid}}")
	if err != nil {
		b.Fatal(err)
	}
	ev := account()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tpl.URL(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkString(b *testing.B) {
	tpl, err := template.Parse("Bearer abc {{correlationid}}")
	if err != nil {
		b.Fatal(err)
	}
	ev := account()
	b.ReportAllocs()
	for b.Loop() {
		_ = tpl.String(ev)
	}
}
