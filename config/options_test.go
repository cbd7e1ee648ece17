package config_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/config"
)

// validSync is a snapshot-sync configuration without problems, on which
// the tests of enrich, transform, method, headers, reply and ingress make
// one change each. The line numbers in the messages count from 1 here.
const validSync = `topics:
  - name: crm.account.changed
  - name: crm.account.acks
subscriptions:
  - name: erp-accounts
    topic: crm.account.changed
    enrich:
      url: "http://crm.local/api/accounts/{{subject}}"
      headers: {Authorization: "Bearer ${secret:crm-token}"}
      on_not_found: dead_letter
      timeout: 5s
    transform: '{number: .data.accountnumber, name: .data.name}'
    destination:
      url: http://erp.local/customers
      method: POST
      headers: {X-Api-Key: "${secret:erp-key}"}
      secret: "${secret:erp-signing}"
    reply:
      topic: crm.account.acks
ingress:
  dataverse:
    - topic: crm.account.changed
      key: "${secret:dataverse-key}"
`

// parseSync parses validSync with old replaced by new.
func parseSync(t *testing.T, old, new string, o config.Options) (*config.Config, error) {
	t.Helper()
	if !strings.Contains(validSync, old) {
		t.Fatalf("validSync has no %q", old)
	}
	return config.Parse("hub.yaml", []byte(strings.Replace(validSync, old, new, 1)), o)
}

func TestValidSyncParses(t *testing.T) {
	cfg, err := config.Parse("hub.yaml", []byte(validSync), opts)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Subscriptions[0]
	want := crossdock.Enrichment{
		URL:        "http://crm.local/api/accounts/{{subject}}",
		Headers:    map[string]string{"Authorization": "Bearer ${secret:crm-token}"},
		OnNotFound: "dead_letter",
		Timeout:    5 * time.Second,
	}
	if s.Enrich == nil || s.Enrich.URL != want.URL || s.Enrich.Headers["Authorization"] != want.Headers["Authorization"] ||
		s.Enrich.OnNotFound != want.OnNotFound || s.Enrich.Timeout != want.Timeout {
		t.Errorf("Enrich = %+v, want %+v", s.Enrich, want)
	}
	if s.Destination.Secret != "${secret:erp-signing}" || s.Destination.Headers["X-Api-Key"] != "${secret:erp-key}" {
		t.Errorf("Destination = %+v, want the references as written", s.Destination)
	}
	if s.Reply == nil || s.Reply.Topic != "crm.account.acks" {
		t.Errorf("Reply = %+v", s.Reply)
	}
	if got := cfg.Ingress.Dataverse; len(got) != 1 || got[0] != (config.DataverseIngress{Topic: "crm.account.changed", Key: "${secret:dataverse-key}"}) {
		t.Errorf("Ingress.Dataverse = %+v", got)
	}
}

func TestParseSyncValues(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		check    func(*config.Config) bool
	}{
		{"method is upper-cased", "method: POST", "method: patch",
			func(c *config.Config) bool { return c.Subscriptions[0].Destination.Method == "PATCH" }},
		{"method defaults to POST", "      method: POST\n", "",
			func(c *config.Config) bool { return c.Subscriptions[0].Destination.Method == "POST" }},
		{"on_not_found is case-insensitive", "on_not_found: dead_letter", "on_not_found: Skip",
			func(c *config.Config) bool { return c.Subscriptions[0].Enrich.OnNotFound == crossdock.OnNotFoundSkip }},
		{"on_not_found defaults to dead_letter", "      on_not_found: dead_letter\n", "",
			func(c *config.Config) bool {
				return c.Subscriptions[0].Enrich.OnNotFound == crossdock.OnNotFoundDeadLetter
			}},
		{"enrich timeout defaults to the destination's", "      timeout: 5s\n", "",
			func(c *config.Config) bool { return c.Subscriptions[0].Enrich.Timeout == crossdock.DefaultTimeout }},
		{"empty enrich is none", "    enrich:\n      url: \"http://crm.local/api/accounts/{{subject}}\"\n      headers: {Authorization: \"Bearer ${secret:crm-token}\"}\n      on_not_found: dead_letter\n      timeout: 5s\n", "    enrich:\n",
			func(c *config.Config) bool { return c.Subscriptions[0].Enrich == nil }},
		{"empty reply is none", "    reply:\n      topic: crm.account.acks\n", "    reply:\n",
			func(c *config.Config) bool { return c.Subscriptions[0].Reply == nil }},
		{"no transform", "    transform: '{number: .data.accountnumber, name: .data.name}'\n", "",
			func(c *config.Config) bool { return c.Subscriptions[0].Transform == "" }},
		{"placeholders in the destination url", "url: http://erp.local/customers", "url: 'https://erp.local/customers/{{subject}}?event={{id}}'",
			func(c *config.Config) bool {
				return c.Subscriptions[0].Destination.URL == "https://erp.local/customers/{{subject}}?event={{id}}"
			}},
		{"reference in the query", "url: http://erp.local/customers", "url: 'http://erp.local/customers?key=${secret:erp-key}'",
			func(c *config.Config) bool {
				return c.Subscriptions[0].Destination.URL == "http://erp.local/customers?key=${secret:erp-key}"
			}},
		{"signing secret written out", `secret: "${secret:erp-signing}"`, "secret: " + secret1,
			func(c *config.Config) bool { return c.Subscriptions[0].Destination.Secret == secret1 }},
		{"header names keep their case", `{X-Api-Key: "${secret:erp-key}"}`, `{x-api-KEY: "k ${secret:erp-key}", Accept: application/json, X-Count: 3}`,
			func(c *config.Config) bool {
				h := c.Subscriptions[0].Destination.Headers
				return len(h) == 3 && h["x-api-KEY"] == "k ${secret:erp-key}" && h["Accept"] == "application/json" && h["X-Count"] == "3"
			}},
		{"headers merged from an anchor", `      headers: {X-Api-Key: "${secret:erp-key}"}`,
			"      headers:\n        <<: *auth\n        X-Api-Key: \"${secret:erp-key}\"",
			nil},
		{"reply to the own topic with a filter", "      topic: crm.account.acks", "      topic: crm.account.changed\n    filter: 'type == \"crm.account.changed\"'",
			func(c *config.Config) bool { return c.Subscriptions[0].Reply.Topic == "crm.account.changed" }},
		{"ingress key written out", `key: "${secret:dataverse-key}"`, "key: hunter2hunter2",
			func(c *config.Config) bool { return c.Ingress.Dataverse[0].Key == "hunter2hunter2" }},
		{"several ingresses", "      key: \"${secret:dataverse-key}\"\n", "      key: \"${secret:dataverse-key}\"\n    - {topic: crm.account.acks, key: \"${secret:crm-token}\"}\n",
			func(c *config.Config) bool {
				return len(c.Ingress.Dataverse) == 2 && c.Ingress.Dataverse[1].Topic == "crm.account.acks"
			}},
		{"a topic twice while its key is rotated", "      key: \"${secret:dataverse-key}\"\n", "      key: \"${secret:dataverse-key}\"\n    - {topic: crm.account.changed, key: \"${secret:crm-token}\"}\n",
			func(c *config.Config) bool {
				return len(c.Ingress.Dataverse) == 2 && c.Ingress.Dataverse[1].Key == "${secret:crm-token}"
			}},
		{"no ingress", "ingress:\n  dataverse:\n    - topic: crm.account.changed\n      key: \"${secret:dataverse-key}\"\n", "ingress:\n",
			func(c *config.Config) bool { return len(c.Ingress.Dataverse) == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, new := tt.old, tt.new
			if tt.check == nil {
				// The anchor is set on the enrichment's headers; the
				// destination's own X-Api-Key wins over the merged one.
				src := strings.Replace(validSync, `      headers: {Authorization: "Bearer ${secret:crm-token}"}`,
					`      headers: &auth {Authorization: "Bearer ${secret:crm-token}", X-Api-Key: other}`, 1)
				src = strings.Replace(src, old, new, 1)
				cfg, err := config.Parse("hub.yaml", []byte(src), opts)
				if err != nil {
					t.Fatal(err)
				}
				h := cfg.Subscriptions[0].Destination.Headers
				if len(h) != 2 || h["Authorization"] != "Bearer ${secret:crm-token}" || h["X-Api-Key"] != "${secret:erp-key}" {
					t.Errorf("merged headers = %v", h)
				}
				return
			}
			cfg, err := parseSync(t, old, new, opts)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tt.check(cfg) {
				t.Errorf("Parse(%q → %q) = %+v", old, new, *cfg)
			}
		})
	}
}

func TestParseSyncErrors(t *testing.T) {
	const refHelp = "write ${secret:NAME} with NAME of lower-case letters, digits, _ and - (at most 128)"
	const namesHelp = "use id, source, type, subject, correlationid, time or extensions.NAME"
	tests := []struct {
		name     string
		old, new string
		want     string
	}{
		// enrich
		{"enrich unknown key", "      timeout: 5s", "      timout: 5s",
			`hub.yaml:11: subscriptions[0].enrich.timout: unknown key (did you mean "timeout"?)`},
		{"enrich not a mapping", "    enrich:\n      url: \"http://crm.local/api/accounts/{{subject}}\"\n      headers: {Authorization: \"Bearer ${secret:crm-token}\"}\n      on_not_found: dead_letter\n      timeout: 5s\n", "    enrich: yes\n",
			`hub.yaml:7: subscriptions[0].enrich: must be a mapping of url, headers, on_not_found, timeout, not the string "yes"`},
		{"enrich url missing", "      url: \"http://crm.local/api/accounts/{{subject}}\"\n", "",
			`hub.yaml:7: subscriptions[0].enrich.url: required: the URL to fetch the record's latest state from, such as http://crm.local/api/accounts/{{subject}}`},
		{"enrich url relative", `"http://crm.local/api/accounts/{{subject}}"`, `"/api/accounts/{{subject}}"`,
			`hub.yaml:8: subscriptions[0].enrich.url: must be an absolute http or https URL, such as https://erp.example.com/orders`},
		{"enrich url placeholder in host", `"http://crm.local/api/accounts/{{subject}}"`, `"http://{{subject}}.crm.local/api"`,
			`hub.yaml:8: subscriptions[0].enrich.url: invalid URL template: {{subject}} is in the host; placeholders may only be in the path or the query`},
		{"enrich url unknown placeholder", `"http://crm.local/api/accounts/{{subject}}"`, `"http://crm.local/api/accounts/{{subjct}}"`,
			`hub.yaml:8: subscriptions[0].enrich.url: invalid URL template: unknown name "subjct" at column 31; ` + namesHelp},
		{"enrich url unclosed placeholder", `"http://crm.local/api/accounts/{{subject}}"`, `"http://crm.local/api/accounts/{{subject"`,
			`hub.yaml:8: subscriptions[0].enrich.url: invalid URL template: the {{ at column 31 is not closed with }}`},
		{"enrich url reference in the host", `"http://crm.local/api/accounts/{{subject}}"`, `"http://${secret:crm-token}.crm.local/api"`,
			`hub.yaml:8: subscriptions[0].enrich.url: secret references may stand in the path or the query only, such as https://erp.example.com/orders?key=${secret:erp-key}`},
		{"enrich url missing secret", `"http://crm.local/api/accounts/{{subject}}"`, `"http://crm.local/api/accounts/{{subject}}?key=${secret:crm-key}"`,
			`hub.yaml:8: subscriptions[0].enrich.url: secret "crm-key" is not set: set the environment variable CROSSDOCK_SECRET_CRM_KEY`},
		{"on_not_found unknown", "on_not_found: dead_letter", "on_not_found: ignore",
			`hub.yaml:10: subscriptions[0].enrich.on_not_found: "ignore" is not one of dead_letter, skip`},
		{"enrich timeout", "timeout: 5s", "timeout: 5",
			`hub.yaml:11: subscriptions[0].enrich.timeout: invalid duration "5": use a number with a unit (ms, s, m, h or d), such as 30s, 5m, 1h30m or 7d`},

		// headers
		{"headers not a mapping", `{Authorization: "Bearer ${secret:crm-token}"}`, `[Authorization]`,
			`hub.yaml:9: subscriptions[0].enrich.headers: must be a mapping of header names to values, not a list`},
		{"header name not a token", `{X-Api-Key: "${secret:erp-key}"}`, `{X Api Key: "${secret:erp-key}"}`,
			"hub.yaml:16: subscriptions[0].destination.headers: \"X Api Key\" is not a valid header name: use letters, digits and !#$%&'*+-.^_`|~"},
		{"header name with a colon", `{X-Api-Key: "${secret:erp-key}"}`, `{"X-Api-Key:": "${secret:erp-key}"}`,
			"hub.yaml:16: subscriptions[0].destination.headers: \"X-Api-Key:\" is not a valid header name: use letters, digits and !#$%&'*+-.^_`|~"},
		{"header set twice in other case", `{X-Api-Key: "${secret:erp-key}"}`, "\n        X-Api-Key: \"${secret:erp-key}\"\n        x-api-key: other",
			`hub.yaml:18: subscriptions[0].destination.headers.x-api-key: duplicate header (first set as "X-Api-Key" on line 17)`},
		{"reserved header", `{X-Api-Key: "${secret:erp-key}"}`, `{Content-Length: "12"}`,
			`hub.yaml:16: subscriptions[0].destination.headers.Content-Length: is set by the hub and cannot be configured`},
		{"signature header", `{X-Api-Key: "${secret:erp-key}"}`, `{Webhook-Signature: "v1,abc"}`,
			`hub.yaml:16: subscriptions[0].destination.headers.Webhook-Signature: is set by the hub and cannot be configured`},
		{"header value a list", `{X-Api-Key: "${secret:erp-key}"}`, `{X-Api-Key: [a, b]}`,
			`hub.yaml:16: subscriptions[0].destination.headers.X-Api-Key: must be a string, not a list`},
		{"header value unknown placeholder", `{X-Api-Key: "${secret:erp-key}"}`, `{X-Request: "{{nope}}"}`,
			`hub.yaml:16: subscriptions[0].destination.headers.X-Request: invalid template: unknown name "nope" at column 1; ` + namesHelp},
		{"header value with a newline", `{X-Api-Key: "${secret:erp-key}"}`, `{X-Api-Key: "a\nb"}`,
			`hub.yaml:16: subscriptions[0].destination.headers.X-Api-Key: invalid template: control character at column 2`},
		{"malformed reference", `"Bearer ${secret:crm-token}"`, `"Bearer ${secret:CRM}"`,
			`hub.yaml:9: subscriptions[0].enrich.headers.Authorization: malformed secret reference at column 8: ` + refHelp},
		{"unclosed reference", `"Bearer ${secret:crm-token}"`, `"Bearer ${secret:crm-token"`,
			`hub.yaml:9: subscriptions[0].enrich.headers.Authorization: malformed secret reference at column 8: ` + refHelp},
		{"missing secret", `"Bearer ${secret:crm-token}"`, `"Bearer ${secret:crm-tokn}"`,
			`hub.yaml:9: subscriptions[0].enrich.headers.Authorization: secret "crm-tokn" is not set: set the environment variable CROSSDOCK_SECRET_CRM_TOKN`},
		{"two missing secrets in one value", `"Bearer ${secret:crm-token}"`, `"${secret:a} ${secret:b} ${secret:a}"`,
			`hub.yaml:9: subscriptions[0].enrich.headers.Authorization: secret "a" is not set: set the environment variable CROSSDOCK_SECRET_A` + "\n" +
				`hub.yaml:9: subscriptions[0].enrich.headers.Authorization: secret "b" is not set: set the environment variable CROSSDOCK_SECRET_B`},

		// transform
		{"transform does not parse", "'{number: .data.accountnumber, name: .data.name}'", "'{number: .data.accountnumber'",
			`hub.yaml:12: subscriptions[0].transform: invalid transform: 1:29: unexpected EOF`},
		{"transform unknown function", "'{number: .data.accountnumber, name: .data.name}'", "'frob(.data)'",
			`hub.yaml:12: subscriptions[0].transform: invalid transform: function not defined: frob/1`},
		{"transform reads input", "'{number: .data.accountnumber, name: .data.name}'", "'input'",
			`hub.yaml:12: subscriptions[0].transform: invalid transform: input(s)/0 is not allowed`},
		{"transform blank", "'{number: .data.accountnumber, name: .data.name}'", "'  '",
			`hub.yaml:12: subscriptions[0].transform: invalid transform: empty program`},
		{"transform a mapping", "'{number: .data.accountnumber, name: .data.name}'", "{number: 1}",
			`hub.yaml:12: subscriptions[0].transform: must be a string, not a mapping`},

		// destination
		{"method GET", "method: POST", "method: GET",
			`hub.yaml:15: subscriptions[0].destination.method: "GET" is not one of POST, PUT, PATCH`},
		{"method a list", "method: POST", "method: [POST]",
			`hub.yaml:15: subscriptions[0].destination.method: must be a string, not a list`},
		{"destination url placeholder in host", "url: http://erp.local/customers", "url: 'http://erp-{{subject}}.local/customers'",
			`hub.yaml:14: subscriptions[0].destination.url: invalid URL template: {{subject}} is in the host; placeholders may only be in the path or the query`},
		{"destination url unknown placeholder", "url: http://erp.local/customers", "url: 'http://erp.local/customers/{{data.id}}'",
			`hub.yaml:14: subscriptions[0].destination.url: invalid URL template: unknown name "data.id" at column 28; ` + namesHelp},
		{"signing secret not set", `"${secret:erp-signing}"`, `"${secret:erp-signin}"`,
			`hub.yaml:17: subscriptions[0].destination.secret: secret "erp-signin" is not set: set the environment variable CROSSDOCK_SECRET_ERP_SIGNIN`},
		{"signing secret with text around the reference", `"${secret:erp-signing}"`, `"whsec_${secret:erp-signing}"`,
			`hub.yaml:17: subscriptions[0].destination.secret: must be one reference ${secret:NAME} with nothing around it, or a secret written out as "whsec_..."`},
		{"signing secret of two references", `"${secret:erp-signing}"`, `"${secret:erp-signing}${secret:erp-key}"`,
			`hub.yaml:17: subscriptions[0].destination.secret: must be one reference ${secret:NAME} with nothing around it, or a secret written out as "whsec_..."`},
		{"signing secret malformed reference", `"${secret:erp-signing}"`, `"${secret:ERP}"`,
			`hub.yaml:17: subscriptions[0].destination.secret: malformed secret reference at column 1: ` + refHelp},

		// reply
		{"reply unknown topic", "      topic: crm.account.acks", "      topic: crm.account.ack",
			`hub.yaml:19: subscriptions[0].reply.topic: unknown topic "crm.account.ack" (did you mean "crm.account.acks"?)`},
		{"reply topic missing", "    reply:\n      topic: crm.account.acks", "    reply: {}",
			`hub.yaml:18: subscriptions[0].reply.topic: required`},
		{"reply topic invalid", "      topic: crm.account.acks", "      topic: CRM acks",
			`hub.yaml:19: subscriptions[0].reply.topic: "CRM acks" is not a valid topic name: use lower-case dot-separated segments of letters, digits and '-', such as sales.order.created`},
		{"reply unknown key", "      topic: crm.account.acks", "      topics: crm.account.acks",
			`hub.yaml:18: subscriptions[0].reply.topic: required` + "\n" +
				`hub.yaml:19: subscriptions[0].reply.topics: unknown key (did you mean "topic"?)`},
		{"reply to the own topic", "      topic: crm.account.acks", "      topic: crm.account.changed",
			`hub.yaml:19: subscriptions[0].reply.topic: is the subscription's own topic: without a filter every answer would be delivered again, forever; reply to another topic`},
		{"reply a string", "    reply:\n      topic: crm.account.acks", "    reply: crm.account.acks",
			`hub.yaml:18: subscriptions[0].reply: must be a mapping of topic, not the string "crm.account.acks"`},

		// ingress
		{"ingress unknown key", "  dataverse:", "  dataverce:",
			`hub.yaml:21: ingress.dataverce: unknown key (did you mean "dataverse"?)`},
		{"ingress dataverse not a list", "  dataverse:\n    - topic: crm.account.changed\n      key: \"${secret:dataverse-key}\"", "  dataverse: crm.account.changed",
			`hub.yaml:21: ingress.dataverse: must be a list, not the string "crm.account.changed"`},
		{"ingress unknown topic", "    - topic: crm.account.changed", "    - topic: crm.acount.changed",
			`hub.yaml:22: ingress.dataverse[0].topic: unknown topic "crm.acount.changed" (did you mean "crm.account.changed"?)`},
		{"ingress topic missing", "    - topic: crm.account.changed\n      key:", "    - key:",
			`hub.yaml:22: ingress.dataverse[0].topic: required`},
		{"ingress key missing", "      key: \"${secret:dataverse-key}\"\n", "",
			`hub.yaml:22: ingress.dataverse[0].key: required: the key Dataverse sends as ?code= or x-api-key, best as a reference ${secret:NAME}`},
		{"ingress key not set", "${secret:dataverse-key}", "${secret:dataverse-ky}",
			`hub.yaml:23: ingress.dataverse[0].key: secret "dataverse-ky" is not set: set the environment variable CROSSDOCK_SECRET_DATAVERSE_KY`},
		{"ingress key malformed reference", "${secret:dataverse-key}", "${secret:Dataverse}",
			`hub.yaml:23: ingress.dataverse[0].key: malformed secret reference at column 1: ` + refHelp},
		{"ingress twice with the same key", "      key: \"${secret:dataverse-key}\"\n", "      key: \"${secret:dataverse-key}\"\n    - topic: crm.account.changed\n      key: \"${secret:dataverse-key}\"\n",
			`hub.yaml:24: ingress.dataverse[1]: the same topic and key as the entry on line 22`},
		{"ingress item unknown key", "      key: \"${secret:dataverse-key}\"\n", "      key: \"${secret:dataverse-key}\"\n      secret: x\n",
			`hub.yaml:24: ingress.dataverse[0].secret: unknown key (expected one of: topic, key)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseSync(t, tt.old, tt.new, opts)
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with an error")
			}
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Errorf("code = %q, want %q", code, crossdock.EINVALID)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse(%q → %q)\nerror:\n%s\nwant:\n%s", tt.old, tt.new, got, tt.want)
			}
		})
	}
}

// TestSyncChecksSkippedWithoutHooks: with no hooks set, transforms,
// templates and secrets are not checked, but their syntax around them is.
func TestSyncChecksSkippedWithoutHooks(t *testing.T) {
	for _, c := range []struct{ old, new string }{
		{"'{number: .data.accountnumber, name: .data.name}'", "'{number:'"},
		{`"Bearer ${secret:crm-token}"`, `"Bearer ${secret:unset}"`},
		{`"http://crm.local/api/accounts/{{subject}}"`, `"http://crm.local/api/accounts/{{nope}}"`},
		{`{X-Api-Key: "${secret:erp-key}"}`, `{X-Api-Key: "{{nope}}"}`},
	} {
		if _, err := parseSync(t, c.old, c.new, config.Options{}); err != nil {
			t.Errorf("Parse(%q → %q) without hooks: %v", c.old, c.new, err)
		}
	}
	_, err := parseSync(t, `"Bearer ${secret:crm-token}"`, `"Bearer ${secret:CRM}"`, config.Options{})
	if err == nil || !strings.Contains(err.Error(), "malformed secret reference") {
		t.Errorf("malformed reference without hooks: %v, want refused", err)
	}
}

// TestSyncSecretsNeverShown puts secrets written out where they cause
// problems, and checks that no message shows them.
func TestSyncSecretsNeverShown(t *testing.T) {
	const (
		key   = "DV-literal-Key-5b7e1c9d"
		token = "literal-bearer-token-0a9f"
		pass  = "url-password-f00dcafe"
	)
	srcs := []string{
		// A literal ingress key with a problem beside it, and pasted elsewhere.
		strings.Replace(strings.Replace(validSync, "${secret:dataverse-key}", key, 1), "    - topic: crm.account.changed", "    - topic: crm.nope", 1),
		strings.Replace(strings.Replace(validSync, "${secret:dataverse-key}", key, 1), "name: erp-accounts", "name: "+key, 1),
		strings.Replace(strings.Replace(validSync, "${secret:dataverse-key}", key, 1), "method: POST", "method: "+key, 1),
		strings.Replace(validSync, `"${secret:dataverse-key}"`, "["+key+"]", 1),
		// A credential header with a bad template, and pasted elsewhere.
		strings.Replace(validSync, "Bearer ${secret:crm-token}", "Bearer "+token+" {{nope}}", 1),
		strings.Replace(validSync, "Bearer ${secret:crm-token}", token+"\\u0001", 1),
		strings.Replace(strings.Replace(validSync, "Bearer ${secret:crm-token}", token, 1), "on_not_found: dead_letter", "on_not_found: "+token, 1),
		// A password in a URL with a bad placeholder.
		strings.Replace(validSync, "http://erp.local/customers", "'http://erp:"+pass+"@erp.local/{{nope}}'", 1),
		strings.Replace(validSync, "http://erp.local/customers", "'http://erp:"+pass+"@erp.local/{{nope'", 1),
		strings.Replace(strings.Replace(validSync, "http://erp.local/customers", "'http://erp:"+pass+"@erp.local/'", 1), "method: POST", "method: "+pass, 1),
		// A signing secret around a reference.
		strings.Replace(validSync, `"${secret:erp-signing}"`, `"`+secret2+`${secret:erp-signing}"`, 1),
		// A transform that quotes a secret.
		strings.Replace(validSync, "'{number: .data.accountnumber, name: .data.name}'", "'{k: \""+secret2+"\", n: .data.x'", 1),
	}
	for i, src := range srcs {
		_, err := config.Parse("hub.yaml", []byte(src), opts)
		if err == nil {
			t.Errorf("case %d: Parse succeeded, want an error", i)
			continue
		}
		msg := err.Error()
		for _, s := range []string{key, token, pass, secret2, "K8g5wn7eGwkjsJGHP4k0"} {
			if strings.Contains(msg, s) {
				t.Errorf("case %d: the message shows a secret:\n%s", i, msg)
			}
		}
		for _, v := range env {
			if strings.Contains(msg, v) {
				t.Errorf("case %d: the message shows a resolved secret:\n%s", i, msg)
			}
		}
	}
}

// TestMergeBomb: aliases merged into aliases could make a few lines merge
// a hundred million mappings; the parser stops at a budget instead.
func TestMergeBomb(t *testing.T) {
	refs := func(i int) string { return strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*m%d,", i), 10), ",") }
	var topics, headers strings.Builder
	topics.WriteString("topics:\n  - &m0 {name: a.b}\n")
	headers.WriteString("topics: [{name: a.b}]\nsubscriptions:\n  - {name: s0, topic: a.b, destination: {url: 'http://x', headers: &m0 {A: b}}}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&topics, "  - &m%d {<<: [%s], name: x.y%d}\n", i, refs(i-1), i)
		fmt.Fprintf(&headers, "  - {name: s%d, topic: a.b, destination: {url: 'http://x', headers: &m%d {<<: [%s]}}}\n", i, i, refs(i-1))
	}
	for _, src := range []string{topics.String(), headers.String()} {
		_, err := config.Parse("hub.yaml", []byte(src), opts)
		if err == nil || !strings.Contains(err.Error(), ": more than 10000 merged mappings in the file: merge fewer aliases") {
			t.Errorf("Parse(merge bomb) = %v, want the merge budget exceeded", err)
		}
	}
}
