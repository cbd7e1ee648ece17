package http_test

import (
	"testing"

	"github.com/crossdock/crossdock"
	cdhttp "github.com/crossdock/crossdock/http"
)

// FuzzSubscriptionInput feeds PUT /v1/subscriptions bodies to the decoder:
// it never panics, and what it accepts is a subscription named by the path
// that either validates or is refused with EINVALID.
func FuzzSubscriptionInput(f *testing.F) {
	f.Add([]byte(`{"topic":"crm.account.changed","destination":{"url":"http://erp/x/{{subject}}","method":"PUT","timeout":"5s","headers":{"X-Key":"${secret:k}"}},"retry":{"max_attempts":3,"initial_interval":"1s"},"enrich":{"url":"http://crm/a/{{subject}}","timeout":"2s"},"transform":"{a:.data.a}","reply":{"topic":"crm.account.acks"}}`))
	f.Add([]byte(`{"topic":"a.b","destination":{"url":"http://x"},"retry":{"max_interval":"-1h"}}`))
	f.Add([]byte(`{"name":"other","topic":"a.b"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sub, err := cdhttp.SubscriptionFromJSON(body, "erp")
		if err != nil {
			return
		}
		if sub.Name != "erp" {
			t.Fatalf("name %q, want the path's", sub.Name)
		}
		if err := sub.WithDefaults().Validate(); err != nil && crossdock.ErrorCode(err) != crossdock.EINVALID {
			t.Fatalf("validation error without a code: %v", err)
		}
	})
}
