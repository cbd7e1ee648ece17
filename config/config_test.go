package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/config"
	"github.com/crossdock/crossdock/filter"
	"github.com/crossdock/crossdock/secret"
	"github.com/crossdock/crossdock/template"
	"github.com/crossdock/crossdock/transform"
)

// env is the environment the tests' secrets come from.
var env = map[string]string{
	"CROSSDOCK_SECRET_CRM_TOKEN":     "crm-token-value-8c1f0a",
	"CROSSDOCK_SECRET_ERP_KEY":       "erp-key-value-77d2b9",
	"CROSSDOCK_SECRET_ERP_SIGNING":   "whsec_LkZxP3b1Yt0n9hX6dQmS2uVcR8aWjE4fGi7oNpK5TzA=",
	"CROSSDOCK_SECRET_DATAVERSE_KEY": "dataverse-key-value-3e9a41",
}

// opts checks filters, transforms, templates and secrets with the real
// packages, as cmd/crossdock does.
var opts = config.Options{
	CheckFilter: func(expr string) error {
		_, err := filter.Compile(expr)
		return err
	},
	CheckTransform: func(program string) error {
		_, err := transform.Compile(program)
		return err
	},
	CheckURLTemplate: func(s string) error {
		_, err := template.ParseURL(s)
		return err
	},
	CheckHeaderTemplate: func(s string) error {
		_, err := template.Parse(s)
		return err
	},
	CheckSecret: func(name string) error {
		store := &secret.Store{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
		_, err := store.Value(name)
		return err
	},
}

const (
	secret1 = "whsec_emV1T3kXr9OxLQIT9H9fAmjUujTvFkafoxEsgAHsoeU="
	secret2 = "whsec_K8g5wn7eGwkjsJGHP4k05EI8zXYAWjZExpDbavY3H0s="
	secret3 = "whsec_IhQHWHhkC9Ii4S8A4ZSMsqiEoSHaUCbC1EYOb2RFArQ="
)

func TestLoadExample(t *testing.T) {
	cfg, err := config.Load(filepath.Join("testdata", "example.yaml"), opts)
	if err != nil {
		t.Fatal(err)
	}
	var want config.Config
	want.Publish.MaxEventSize = 1 << 20
	want.Publish.DedupWindow = 10 * time.Minute
	want.JetStream.SyncAlways = false
	want.Topics = []crossdock.Topic{
		{Name: "sales.order.created", DedupWindow: 10 * time.Minute, Retention: 7 * 24 * time.Hour},
		{Name: "crm.account.changed", DedupWindow: 30 * time.Minute, Retention: 72 * time.Hour},
		{Name: "crm.account.acks", DedupWindow: 10 * time.Minute, Retention: 7 * 24 * time.Hour},
	}
	want.Subscriptions = []crossdock.Subscription{
		{
			Name:   "fulfilment",
			Topic:  "sales.order.created",
			Filter: `type == "sales.order.created" && data.amount > 1000`,
			Destination: crossdock.Destination{Method: "POST",
				URL: "http://127.0.0.1:9001/orders", Secret: secret1, Timeout: 10 * time.Second,
			},
			Retry:       crossdock.RetryPolicy{MaxAttempts: 10, InitialInterval: time.Second, Multiplier: 2, MaxInterval: 5 * time.Minute},
			MaxInFlight: 16,
		},
		{
			Name:   "sms-customer",
			Topic:  "sales.order.created",
			Filter: `extensions.region == "eu" && has(data.customer.phone)`,
			Destination: crossdock.Destination{Method: "POST",
				URL: "https://sms.example.com/v1/messages", Secret: secret2, Timeout: 5 * time.Second,
			},
			Retry:       crossdock.RetryPolicy{MaxAttempts: 5, InitialInterval: 2 * time.Second, Multiplier: 3, MaxInterval: time.Minute},
			MaxInFlight: 16,
		},
		{
			Name:        "inventory",
			Topic:       "sales.order.created",
			Destination: crossdock.Destination{Method: "POST", URL: "http://127.0.0.1:9003/stock", Timeout: 10 * time.Second},
			Retry:       crossdock.RetryPolicy{MaxAttempts: 10, InitialInterval: time.Second, Multiplier: 2, MaxInterval: 5 * time.Minute},
			MaxInFlight: 16,
		},
		{
			Name:  "account-sync",
			Topic: "crm.account.changed",
			Destination: crossdock.Destination{Method: "POST",
				URL: "https://erp.example.com/api/accounts", Secret: secret3, Timeout: 10 * time.Second,
			},
			Retry:       crossdock.RetryPolicy{MaxAttempts: 20, InitialInterval: time.Second, Multiplier: 2, MaxInterval: 15 * time.Minute},
			MaxInFlight: 1,
		},
		{
			Name:  "erp-accounts",
			Topic: "crm.account.changed",
			Enrich: &crossdock.Enrichment{
				URL:        "http://crm.local/api/accounts/{{subject}}",
				Headers:    map[string]string{"Authorization": "Bearer ${secret:crm-token}"},
				OnNotFound: crossdock.OnNotFoundSkip,
				Timeout:    5 * time.Second,
			},
			Transform: "{number: .data.accountnumber, name: .data.name}",
			Destination: crossdock.Destination{Method: "POST",
				URL:     "http://erp.local/customers",
				Headers: map[string]string{"X-Api-Key": "${secret:erp-key}"},
				Secret:  "${secret:erp-signing}", Timeout: 10 * time.Second,
			},
			Retry:       crossdock.RetryPolicy{}.WithDefaults(),
			Reply:       &crossdock.Reply{Topic: "crm.account.acks"},
			MaxInFlight: 1,
		},
		{
			Name:      "crm-writeback",
			Topic:     "crm.account.acks",
			Transform: "{erp_customer_id: .data.response.id}",
			Destination: crossdock.Destination{Method: "PATCH",
				URL:     "http://crm.local/api/accounts/{{subject}}",
				Headers: map[string]string{"Authorization": "Bearer ${secret:crm-token}", "If-Match": "*"},
				Timeout: 10 * time.Second,
			},
			Retry:       crossdock.RetryPolicy{}.WithDefaults(),
			MaxInFlight: 16,
		},
	}
	want.Ingress.Dataverse = []config.DataverseIngress{{Topic: "crm.account.changed", Key: "${secret:dataverse-key}"}}
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("Load(example.yaml) =\n%+v\nwant\n%+v", *cfg, want)
	}
	// What Load returns is what the services accept.
	for _, tp := range cfg.Topics {
		if err := tp.Validate(); err != nil {
			t.Errorf("topic %s: %v", tp.Name, err)
		}
	}
	for _, s := range cfg.Subscriptions {
		if err := s.Validate(); err != nil {
			t.Errorf("subscription %s: %v", s.Name, err)
		}
	}
	// Secrets stay references: nothing built from the Config can show one.
	shown := fmt.Sprintf("%+v %+v", *cfg, cfg.Subscriptions)
	for _, s := range cfg.Subscriptions {
		shown += fmt.Sprintf(" %+v %+v", s.Enrich, s.Reply)
	}
	for _, v := range env {
		if strings.Contains(shown, v) {
			t.Errorf("the configuration holds the resolved secret %q", v)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "none.yaml"), opts)
	if err == nil || crossdock.ErrorCode(err) != crossdock.EINVALID || !strings.Contains(err.Error(), "none.yaml") {
		t.Fatalf("Load(missing) = %v, want EINVALID naming the file", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, src := range []string{"", "\n\n", "# nothing yet\n", "---\n", "~\n", "topics:\nsubscriptions: []\n", "publish: {}\n"} {
		cfg, err := config.Parse("hub.yaml", []byte(src), opts)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if len(cfg.Topics) != 0 || len(cfg.Subscriptions) != 0 || cfg.JetStream.SyncAlways ||
			cfg.Publish.MaxEventSize != config.DefaultMaxEventSize || cfg.Publish.DedupWindow != crossdock.DefaultDedupWindow {
			t.Errorf("Parse(%q) = %+v, want the defaults", src, *cfg)
		}
	}
}

func TestParseValues(t *testing.T) {
	const base = "topics:\n  - name: a.b\n    retention: 30d\n"
	tests := []struct {
		name  string
		src   string
		check func(*config.Config) bool
	}{
		{"size in bytes", "publish:\n  max_event_size: 2048\n",
			func(c *config.Config) bool { return c.Publish.MaxEventSize == 2048 }},
		{"size in KB", "publish:\n  max_event_size: 512KB\n",
			func(c *config.Config) bool { return c.Publish.MaxEventSize == 512_000 }},
		{"size in MiB with space", "publish:\n  max_event_size: 2 MiB\n",
			func(c *config.Config) bool { return c.Publish.MaxEventSize == 2<<20 }},
		{"size in MB lower case", "publish:\n  max_event_size: 1mb\n",
			func(c *config.Config) bool { return c.Publish.MaxEventSize == 1_000_000 }},
		{"size zero is the default", "publish:\n  max_event_size: 0\n",
			func(c *config.Config) bool { return c.Publish.MaxEventSize == 1<<20 }},
		{"sync always", "jetstream:\n  sync_always: true\n",
			func(c *config.Config) bool { return c.JetStream.SyncAlways }},
		{"publish dedup window is the topics' default", "publish:\n  dedup_window: 2m\n" + base,
			func(c *config.Config) bool { return c.Topics[0].DedupWindow == 2*time.Minute }},
		{"days", base,
			func(c *config.Config) bool { return c.Topics[0].Retention == 30*24*time.Hour }},
		{"days and hours", "topics:\n  - name: a.b\n    retention: 1d12h\n",
			func(c *config.Config) bool { return c.Topics[0].Retention == 36*time.Hour }},
		{"zero duration is the default", "topics:\n  - name: a.b\n    retention: 0\n",
			func(c *config.Config) bool { return c.Topics[0].Retention == crossdock.DefaultRetention }},
		{"subscription defaults", base + "subscriptions:\n  - name: s\n    topic: a.b\n    destination: {url: 'https://x.example'}\n",
			func(c *config.Config) bool {
				s := c.Subscriptions[0]
				return s.MaxInFlight == crossdock.DefaultMaxInFlight && s.Destination.Timeout == crossdock.DefaultTimeout &&
					s.Retry == crossdock.RetryPolicy{}.WithDefaults() && s.Filter == "" && s.Destination.Secret == ""
			}},
		{"float multiplier", base + "subscriptions:\n  - {name: s, topic: a.b, destination: {url: 'http://x'}, retry: {multiplier: 1.5}}\n",
			func(c *config.Config) bool { return c.Subscriptions[0].Retry.Multiplier == 1.5 }},
		{"numeric name", "topics:\n  - name: 2024.q1\n",
			func(c *config.Config) bool { return c.Topics[0].Name == "2024.q1" }},
		{"merge keys", base + `defaults: &retry
subscriptions:
  - name: s1
    topic: a.b
    destination: &dest {url: 'http://x', timeout: 3s}
    retry: &r {max_attempts: 3, initial_interval: 2s}
  - name: s2
    topic: a.b
    destination:
      <<: *dest
      timeout: 4s
    retry:
      <<: *r
`,
			nil}, // "defaults" is an unknown key: see TestParseErrors; here without it
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if tt.check == nil {
				src = strings.Replace(src, "defaults: &retry\n", "", 1)
				tt.check = func(c *config.Config) bool {
					s1, s2 := c.Subscriptions[0], c.Subscriptions[1]
					return s2.Destination.URL == "http://x" && s2.Destination.Timeout == 4*time.Second &&
						s1.Destination.Timeout == 3*time.Second && s2.Retry == s1.Retry && s2.Retry.MaxAttempts == 3
				}
			}
			cfg, err := config.Parse("hub.yaml", []byte(src), opts)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tt.check(cfg) {
				t.Errorf("Parse(%q) = %+v", src, *cfg)
			}
		})
	}
}

// valid is a configuration without problems, on which the error tests
// make one change each.
const valid = `publish:
  max_event_size: 1MiB
  dedup_window: 10m
topics:
  - name: sales.order.created
    dedup_window: 10m
subscriptions:
  - name: fulfilment
    topic: sales.order.created
    filter: "data.amount > 1000"
    destination:
      url: http://127.0.0.1:9001/orders
      secret: ` + secret1 + `
      timeout: 10s
    retry:
      max_attempts: 10
      initial_interval: 1s
      multiplier: 2
      max_interval: 5m
    max_in_flight: 16
`

func TestValidParses(t *testing.T) {
	if _, err := config.Parse("hub.yaml", []byte(valid), opts); err != nil {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		old     string // replaced in valid by new; "" means src is new alone
		new     string
		want    string
		nocheck bool // parse without a filter check
	}{
		{"unknown key with suggestion", `    filter:`, `    filtr:`,
			`hub.yaml:10: subscriptions[0].filtr: unknown key (did you mean "filter"?)`, false},
		{"unknown key without suggestion", `    max_in_flight: 16`, "    max_in_flight: 16\n    colour: blue",
			`hub.yaml:21: subscriptions[0].colour: unknown key (expected one of: name, topic, filter, enrich, transform, destination, retry, reply, max_in_flight)`, false},
		{"unknown top-level key", "", "topic:\n  - name: a\n",
			`hub.yaml:1: topic: unknown key (did you mean "topics"?)`, false},
		{"duplicate key", `    max_in_flight: 16`, "    max_in_flight: 16\n    max_in_flight: 8",
			`hub.yaml:21: subscriptions[0].max_in_flight: duplicate key (first set on line 20)`, false},
		{"syntax error with line", `    retry:`, `    retry: [`,
			`hub.yaml:16: invalid YAML: did not find expected ',' or ']'`, false},
		{"syntax error found by prefix", `      multiplier: 2`, `      multiplier: 2: 3`,
			`hub.yaml:18: invalid YAML: mapping values are not allowed in this context`, false},
		{"tab indentation", "", "topics:\n\t- name: a.b\n",
			`hub.yaml:2: invalid YAML: found character that cannot start any token`, false},
		{"two documents", "", "topics: []\n---\nsubscriptions: []\n",
			`hub.yaml:2: a second YAML document: the configuration is one document, remove the '---' line`, false},
		{"root is a list", "", "- name: a\n",
			`hub.yaml:1: must be a mapping of publish, jetstream, topics, subscriptions, ingress, not a list`, false},
		{"section is a string", "", "topics: sales.order.created\n",
			`hub.yaml:1: topics: must be a list, not the string "sales.order.created"`, false},
		{"item is a string", "", "topics:\n  - sales.order.created\n",
			`hub.yaml:2: topics[0]: must be a mapping of name, dedup_window, retention, not the string "sales.order.created"`, false},
		{"wrong type string", `      url: http://127.0.0.1:9001/orders`, `      url: [a, b]`,
			`hub.yaml:12: subscriptions[0].destination.url: must be a string, not a list`, false},
		{"wrong type integer", `    max_in_flight: 16`, `    max_in_flight: lots`,
			`hub.yaml:20: subscriptions[0].max_in_flight: must be an integer, not the string "lots"`, false},
		{"float for integer", `      max_attempts: 10`, `      max_attempts: 2.5`,
			`hub.yaml:16: subscriptions[0].retry.max_attempts: must be an integer, not the number "2.5"`, false},
		{"wrong type bool", "", "jetstream:\n  sync_always: sometimes\n",
			`hub.yaml:2: jetstream.sync_always: must be true or false, not the string "sometimes"`, false},
		{"wrong type number", `      multiplier: 2`, `      multiplier: double`,
			`hub.yaml:18: subscriptions[0].retry.multiplier: must be a number, not the string "double"`, false},
		{"infinite multiplier", `      multiplier: 2`, `      multiplier: .inf`,
			`hub.yaml:18: subscriptions[0].retry.multiplier: must be a finite number`, false},
		{"bad duration", `      timeout: 10s`, `      timeout: 10`,
			`hub.yaml:14: subscriptions[0].destination.timeout: invalid duration "10": use a number with a unit (ms, s, m, h or d), such as 30s, 5m, 1h30m or 7d`, false},
		{"negative duration", `      initial_interval: 1s`, `      initial_interval: -1s`,
			`hub.yaml:17: subscriptions[0].retry.initial_interval: must not be negative`, false},
		{"negative days", `  dedup_window: 10m`, `  dedup_window: -2d`,
			`hub.yaml:3: publish.dedup_window: must not be negative`, false},
		{"bad size", `  max_event_size: 1MiB`, `  max_event_size: 1GB`,
			`hub.yaml:2: publish.max_event_size: invalid size "1GB": use a number of bytes, optionally with a unit (B, KB, MB, KiB or MiB), such as 1MiB`, false},
		{"negative size", `  max_event_size: 1MiB`, `  max_event_size: -5`,
			`hub.yaml:2: publish.max_event_size: must not be negative`, false},
		{"size too large", `  max_event_size: 1MiB`, `  max_event_size: 65MiB`,
			`hub.yaml:2: publish.max_event_size: must be at most 64MiB`, false},
		{"negative max_in_flight", `    max_in_flight: 16`, `    max_in_flight: -1`,
			`hub.yaml:20: subscriptions[0].max_in_flight: must be between 1 and 10000`, false},
		{"negative max_attempts", `      max_attempts: 10`, `      max_attempts: -3`,
			`hub.yaml:16: subscriptions[0].retry.max_attempts: must be between 1 and 1000000`, false},
		{"small multiplier", `      multiplier: 2`, `      multiplier: 0.5`,
			`hub.yaml:18: subscriptions[0].retry.multiplier: must be between 1 and 100`, false},
		{"initial over max", `      initial_interval: 1s`, `      initial_interval: 10m`,
			`hub.yaml:17: subscriptions[0].retry.initial_interval: must not exceed retry.max_interval (5m0s)`, false},
		{"bad topic name", `  - name: sales.order.created`, `  - name: Sales.Order`,
			`hub.yaml:5: topics[0].name: "Sales.Order" is not a valid topic name: use lower-case dot-separated segments of letters, digits and '-', such as sales.order.created` + "\n" +
				`hub.yaml:9: subscriptions[0].topic: unknown topic "sales.order.created": declare it under topics`, false},
		{"missing topic name", `  - name: sales.order.created`, `  - retention: 1h`,
			`hub.yaml:5: topics[0].name: required` + "\n" +
				`hub.yaml:9: subscriptions[0].topic: unknown topic "sales.order.created": declare it under topics`, false},
		{"dedup window over retention", `    dedup_window: 10m`, "    dedup_window: 2h\n    retention: 1h",
			`hub.yaml:6: topics[0].dedup_window: must not exceed the retention (1h0m0s)`, false},
		{"default dedup window over retention", `    dedup_window: 10m`, "    retention: 5m",
			`hub.yaml:6: topics[0].retention: must be at least the dedup window (10m0s)`, false},
		{"duplicate topic", `subscriptions:`, "  - name: sales.order.created\nsubscriptions:",
			`hub.yaml:7: topics[1].name: duplicate topic "sales.order.created" (first defined on line 5)`, false},
		{"bad subscription name", `  - name: fulfilment`, `  - name: Fulfilment!`,
			`hub.yaml:8: subscriptions[0].name: "Fulfilment!" is not a valid subscription name: use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit`, false},
		{"missing subscription name", "  - name: fulfilment\n    topic:", `  - topic:`,
			`hub.yaml:8: subscriptions[0].name: required`, false},
		{"duplicate subscription", "", strings.Replace(valid, "subscriptions:\n", "subscriptions:\n  - name: fulfilment\n    topic: sales.order.created\n    destination: {url: 'http://x'}\n", 1),
			`hub.yaml:11: subscriptions[1].name: duplicate subscription "fulfilment" (first defined on line 8)`, false},
		{"unknown topic with suggestion", `    topic: sales.order.created`, `    topic: sales.order.creatd`,
			`hub.yaml:9: subscriptions[0].topic: unknown topic "sales.order.creatd" (did you mean "sales.order.created"?)`, false},
		{"missing topic", `    topic: sales.order.created`, ``,
			`hub.yaml:8: subscriptions[0].topic: required`, false},
		{"bad filter", `"data.amount > 1000"`, `"data.amount >"`,
			`hub.yaml:10: subscriptions[0].filter: invalid filter: 1:14: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`, false},
		{"non-bool filter", `"data.amount > 1000"`, `"data.amount + 1"`,
			`hub.yaml:10: subscriptions[0].filter: invalid filter: must be a boolean expression, but has type int`, false},
		{"dyn filter", `"data.amount > 1000"`, `"data.paid"`,
			`hub.yaml:10: subscriptions[0].filter: invalid filter: must be a boolean expression, but has type dyn (the value's type is only known per event; compare it, e.g. data.flag == true)`, false},
		{"filter not checked without CheckFilter", `"data.amount > 1000"`, `"data.amount >"`, ``, true},
		{"missing destination", "    destination:\n      url: http://127.0.0.1:9001/orders\n      secret: " + secret1 + "\n      timeout: 10s\n", "",
			`hub.yaml:8: subscriptions[0].destination: required: a mapping with url and optionally method, headers, secret and timeout`, false},
		{"missing url", `      url: http://127.0.0.1:9001/orders`, ``,
			`hub.yaml:11: subscriptions[0].destination.url: required`, false},
		{"relative url", `      url: http://127.0.0.1:9001/orders`, `      url: /orders`,
			`hub.yaml:12: subscriptions[0].destination.url: must be an absolute http or https URL, such as https://erp.example.com/orders`, false},
		{"bad secret", secret1, `whsec_tooshort`,
			`hub.yaml:13: subscriptions[0].destination.secret: must be "whsec_" followed by the base64 of 24 to 64 random bytes, or a reference ${secret:NAME}; make one with: echo "whsec_$(openssl rand -base64 32)"`, false},
		{"secret without prefix", secret1, `emV1T3kXr9OxLQIT9H9fAmjUujTvFkafoxEsgAHsoeU=`,
			`hub.yaml:13: subscriptions[0].destination.secret: must be "whsec_" followed by the base64 of 24 to 64 random bytes, or a reference ${secret:NAME}; make one with: echo "whsec_$(openssl rand -base64 32)"`, false},
		{"several problems in file order", "", "subscriptions:\n  - name: x\n    topic: nope\n    destination: {url: 'ftp://x'}\ntopics:\n  - name: ok\n    retention: soon\n",
			`hub.yaml:3: subscriptions[0].topic: unknown topic "nope": declare it under topics` + "\n" +
				`hub.yaml:4: subscriptions[0].destination.url: must be an absolute http or https URL, such as https://erp.example.com/orders` + "\n" +
				`hub.yaml:7: topics[0].retention: invalid duration "soon": use a number with a unit (ms, s, m, h or d), such as 30s, 5m, 1h30m or 7d`, false},
		{"merge of a non-mapping", "", "topics:\n  - <<: [1]\n    name: a.b\n",
			`hub.yaml:2: topics[0].<<: must be a mapping or a list of mappings, not the number "1"`, false},
		{"unknown key in merged mapping", "", "topics:\n  - &t {name: a.b, retension: 1h}\n  - <<: *t\n    name: c.d\n",
			`hub.yaml:2: topics[0].retension: unknown key (did you mean "retention"?)` + "\n" +
				`hub.yaml:2: topics[1].retension: unknown key (did you mean "retention"?)`, false},
		{"unknown key at top level", "", "x: &x {nam: a.b}\n",
			`hub.yaml:1: x: unknown key (expected one of: publish, jetstream, topics, subscriptions, ingress)`, false},
		{"unknown anchor", "", "topics:\n  - name: a.b\n  - *nope\n",
			`hub.yaml:3: invalid YAML: unknown anchor 'nope' referenced`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.new
			if tt.old != "" || tt.new == "" {
				if !strings.Contains(valid, tt.old) {
					t.Fatalf("valid has no %q", tt.old)
				}
				src = strings.Replace(valid, tt.old, tt.new, 1)
			}
			o := opts
			if tt.nocheck {
				o = config.Options{}
			}
			cfg, err := config.Parse("hub.yaml", []byte(src), o)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(\n%s) = %+v, want an error", src, cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with an error")
			}
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Errorf("code = %q, want %q", code, crossdock.EINVALID)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse(\n%s)\nerror:\n%s\nwant:\n%s", src, got, tt.want)
			}
		})
	}
}

// TestSecretsNeverShown puts secrets where they cause problems and checks
// that no message quotes them.
func TestSecretsNeverShown(t *testing.T) {
	bad := "whsec_notbase64!!-but-long-enough-to-be-scrubbed"
	notPrefixed := "c2VjcmV0LXZhbHVlLXRoYXQtaXMtbG9uZy1lbm91Z2g="
	srcs := []string{
		strings.Replace(valid, secret1, bad, 1),
		strings.Replace(valid, secret1, notPrefixed, 1),
		strings.Replace(valid, "timeout: 10s", "timeout: "+secret2, 1),
		strings.Replace(valid, "url: http://127.0.0.1:9001/orders", "url: "+secret2, 1),
		strings.Replace(valid, "url: http://127.0.0.1:9001/orders", "url: "+notPrefixed, 1),
		strings.Replace(valid, "    max_in_flight: 16", "    max_in_flight: "+secret2, 1),
		strings.Replace(valid, "    max_in_flight: 16", "    "+secret2+": 1", 1),
		strings.Replace(valid, "      timeout: 10s", "      "+secret2+": x", 1),
		strings.Replace(valid, `"data.amount > 1000"`, `"data.secret == '`+secret2+`' && data.x +"`, 1),
		strings.Replace(valid, "name: fulfilment", "name: "+secret2, 1),
		strings.Replace(valid, "secret: "+secret1, "secret: ["+secret1+"]", 1),
		strings.Replace(valid, "secret: "+secret1, "secret:\n        "+secret1+": 1", 1),
		strings.Replace(valid, "secret: "+secret1, "secret: '"+secret1+"\n", 1),
	}
	for i, src := range srcs {
		_, err := config.Parse("hub.yaml", []byte(src), opts)
		if err == nil {
			t.Errorf("case %d: Parse succeeded, want an error", i)
			continue
		}
		msg := err.Error()
		for _, s := range []string{bad, notPrefixed, secret1, secret2, "emV1T3kXr9OxLQIT9H9f", "K8g5wn7eGwkjsJGHP4k0"} {
			if strings.Contains(msg, s) {
				t.Errorf("case %d: the message shows a secret:\n%s", i, msg)
			}
		}
	}
}

func TestErrorIsDomainError(t *testing.T) {
	_, err := config.Parse("hub.yaml", []byte("topics: 1\n"), opts)
	var de *crossdock.Error
	if !errors.As(err, &de) || de.Code != crossdock.EINVALID {
		t.Fatalf("Parse error = %#v, want a *crossdock.Error with EINVALID", err)
	}
}

func TestLoadReadsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.yaml")
	if err := os.WriteFile(path, []byte("topics:\n  - name: bad name\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path, opts)
	want := path + `:2: topics[0].name: "bad name" is not a valid topic name: use lower-case dot-separated segments of letters, digits and '-', such as sales.order.created`
	if err == nil || err.Error() != want {
		t.Fatalf("Load error = %v, want %s", err, want)
	}
}
