package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/config"
)

// FuzzParse feeds any bytes to Parse: it must return a configuration or an
// EINVALID error, never both, never panic, and never show the secret.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(valid))
	f.Add([]byte(validSync))
	f.Add([]byte("topics: [{name: a.b}]\nsubscriptions:\n  - name: s\n    topic: a.b\n    destination:\n      url: 'http://x/{{subject}}?k=${secret:k}'\n      headers: {<<: {A: '${secret:x'}, B: '{{id}}'}\n"))
	f.Add([]byte(""))
	f.Add([]byte("topics:\n  - name: a.b\n    retention: 1d2h\nsubscriptions:\n  - {name: s, topic: a.b, destination: {url: 'http://x', secret: 'whsec_abc'}}\n"))
	f.Add([]byte("a: &x {q: 1}\nb: *x\nc:\n  <<: [*x, {r: 2}]\n"))
	f.Add([]byte("topics: [\n"))
	f.Add([]byte("publish:\n  max_event_size: 9223372036854775807MiB\n  dedup_window: 106751d\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yaml", data, opts)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse(%q) = %v, %v: want exactly one", data, cfg, err)
		}
		if err == nil {
			for _, s := range cfg.Subscriptions {
				if err := s.Validate(); err != nil {
					t.Fatalf("Parse(%q) returned an invalid subscription: %v", data, err)
				}
			}
			for _, in := range cfg.Ingress.Dataverse {
				if in.Topic == "" || in.Key == "" {
					t.Fatalf("Parse(%q) returned an incomplete ingress %+v", data, in)
				}
			}
			for _, tp := range cfg.Topics {
				if err := tp.Validate(); err != nil {
					t.Fatalf("Parse(%q) returned an invalid topic: %v", data, err)
				}
			}
			return
		}
		if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
			t.Fatalf("Parse(%q) error code %q: %v", data, code, err)
		}
		if strings.Contains(err.Error(), secret1) {
			t.Fatalf("Parse(%q) shows the secret: %v", data, err)
		}
		for _, v := range env {
			if strings.Contains(err.Error(), v) && !bytes.Contains(data, []byte(v)) {
				t.Fatalf("Parse(%q) shows a resolved secret: %v", data, err)
			}
		}
	})
}
