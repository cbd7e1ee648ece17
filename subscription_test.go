package crossdock_test

import (
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
)

func TestSubscriptionValidate(t *testing.T) {
	valid := crossdock.Subscription{
		Name: "erp-accounts", Topic: "crm.account.changed",
		Destination: crossdock.Destination{URL: "http://erp.local/customers/{{subject}}?src={{source}}"},
	}
	tests := []struct {
		name   string
		mutate func(*crossdock.Subscription)
		want   string
	}{
		{"valid", func(*crossdock.Subscription) {}, ""},
		{"put", func(s *crossdock.Subscription) { s.Destination.Method = "PUT" }, ""},
		{"delete is not a delivery", func(s *crossdock.Subscription) { s.Destination.Method = "DELETE" }, "not one of POST, PUT, PATCH"},
		{"template in host", func(s *crossdock.Subscription) { s.Destination.URL = "http://{{subject}}.local/x" }, "absolute http or https URL"},
		{"relative", func(s *crossdock.Subscription) { s.Destination.URL = "/x" }, "absolute http or https URL"},
		{"enrich", func(s *crossdock.Subscription) {
			s.Enrich = &crossdock.Enrichment{URL: "http://crm.local/api/accounts/{{subject}}", OnNotFound: "skip"}
		}, ""},
		{"enrich not found", func(s *crossdock.Subscription) {
			s.Enrich = &crossdock.Enrichment{URL: "http://crm.local/a", OnNotFound: "ignore"}
		}, "on_not_found"},
		{"enrich url", func(s *crossdock.Subscription) { s.Enrich = &crossdock.Enrichment{URL: "ftp://x/y"} }, "enrich url"},
		{"reply topic", func(s *crossdock.Subscription) { s.Reply = &crossdock.Reply{Topic: "Bad Topic"} }, "reply topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid
			tt.mutate(&s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSubscriptionDefaults(t *testing.T) {
	s := crossdock.Subscription{Enrich: &crossdock.Enrichment{URL: "http://x/y"}}.WithDefaults()
	if s.Destination.Method != "POST" || s.Enrich.OnNotFound != crossdock.OnNotFoundDeadLetter || s.Enrich.Timeout != crossdock.DefaultTimeout {
		t.Fatalf("defaults: %+v %+v", s.Destination, *s.Enrich)
	}
}
