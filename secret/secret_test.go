package secret_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/secret"
)

// env returns an Env function over a fixed map.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// writeFile writes a secret file in dir.
func writeFile(tb testing.TB, dir, name, content string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// newStore returns a Store over a temporary directory holding files, with
// an environment of vars.
func newStore(tb testing.TB, vars, files map[string]string) *secret.Store {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		writeFile(tb, dir, name, content)
	}
	return &secret.Store{Dir: dir, Env: env(vars)}
}

func TestResolve(t *testing.T) {
	s := newStore(t,
		map[string]string{"CROSSDOCK_SECRET_CRM_TOKEN": "env-token-value", "CROSSDOCK_SECRET_NL": "line\n"},
		map[string]string{
			"crm-token": "file-token-value",
			"erp_key":   "erp-key-value\n",
			"crlf":      "windows-value\r\n",
			"two-nl":    "two-newlines\n\n",
			"empty":     "",
			"nested":    "${secret:erp_key}",
		})
	tests := []struct {
		text string
		want string
	}{
		{"no references", "no references"},
		{"Bearer ${secret:crm-token}", "Bearer env-token-value"}, // the environment wins over the file
		{"${secret:erp_key}", "erp-key-value"},
		{"${secret:crlf}", "windows-value"},
		{"${secret:two-nl}", "two-newlines\n"},
		{"[${secret:empty}]", "[]"},
		{"${secret:nl}", "line\n"}, // environment values are taken as they are
		{"${secret:erp_key}:${secret:erp_key}/${secret:crm-token}", "erp-key-value:erp-key-value/env-token-value"},
		{"${secret:nested}", "${secret:erp_key}"}, // values are not read for references
		{"$secret:erp_key} ${SECRET:erp_key} {secret:erp_key}", "$secret:erp_key} ${SECRET:erp_key} {secret:erp_key}"},
		{"$${secret:erp_key}}", "$erp-key-value}"},
	}
	for _, tt := range tests {
		got, err := s.Resolve(tt.text)
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tt.text, got, err, tt.want)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	const value = "present-secret-value"
	s := newStore(t, map[string]string{"CROSSDOCK_SECRET_PRESENT": value}, nil)
	if err := os.Mkdir(filepath.Join(s.Dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text string
		code string
		want string
	}{
		{"${secret:present} ${secret:missing}", crossdock.ENOTFOUND,
			`secret "missing" is not set: set the environment variable CROSSDOCK_SECRET_MISSING or the file ` + filepath.Join(s.Dir, "missing")},
		{"${secret:no-such-thing}", crossdock.ENOTFOUND,
			`secret "no-such-thing" is not set: set the environment variable CROSSDOCK_SECRET_NO_SUCH_THING or the file ` + filepath.Join(s.Dir, "no-such-thing")},
		{"${secret:present", crossdock.EINVALID,
			`malformed secret reference at column 1: write ${secret:NAME} with NAME of lower-case letters, digits, _ and - (at most 128)`},
		{"x ${secret:Present}", crossdock.EINVALID,
			`malformed secret reference at column 3: write ${secret:NAME} with NAME of lower-case letters, digits, _ and - (at most 128)`},
		{"${secret:}", crossdock.EINVALID,
			`malformed secret reference at column 1: write ${secret:NAME} with NAME of lower-case letters, digits, _ and - (at most 128)`},
		{"${secret:a b}", crossdock.EINVALID,
			`malformed secret reference at column 1: write ${secret:NAME} with NAME of lower-case letters, digits, _ and - (at most 128)`},
		{"${secret:" + strings.Repeat("a", 129) + "}", crossdock.EINVALID,
			`malformed secret reference at column 1: write ${secret:NAME} with NAME of lower-case letters, digits, _ and - (at most 128)`},
		{"${secret:adir}", crossdock.EINTERNAL, `read secret adir: ` + filepath.Join(s.Dir, "adir") + ` is a directory`},
	}
	for _, tt := range tests {
		got, err := s.Resolve(tt.text)
		if err == nil {
			t.Errorf("Resolve(%q) = %q, want an error", tt.text, got)
			continue
		}
		if got != "" {
			t.Errorf("Resolve(%q) returned %q with its error", tt.text, got)
		}
		if code := crossdock.ErrorCode(err); code != tt.code || err.Error() != tt.want {
			t.Errorf("Resolve(%q) error %s %q\nwant %s %q", tt.text, code, err, tt.code, tt.want)
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("Resolve(%q) error shows a value: %v", tt.text, err)
		}
	}

	noDir := &secret.Store{Env: env(nil)}
	if _, err := noDir.Resolve("${secret:x}"); err == nil || err.Error() != `secret "x" is not set: set the environment variable CROSSDOCK_SECRET_X` {
		t.Errorf("without a directory: %v", err)
	}
}

func TestDefaultEnvironment(t *testing.T) {
	t.Setenv("CROSSDOCK_SECRET_FROM_OS", "os-value")
	var s secret.Store
	if got, err := s.Resolve("${secret:from-os}"); err != nil || got != "os-value" {
		t.Errorf("Resolve = %q, %v", got, err)
	}
}

func TestReferences(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"", nil},
		{"plain", nil},
		{"${secret:a}", []string{"a"}},
		{"${secret:b} ${secret:a} ${secret:b}", []string{"b", "a"}},
		{"${secret:Bad} ${secret:good}", []string{"good"}},
		{"${secret:${secret:inner}}", []string{"inner"}},
		{"${secret:open", nil},
		{"${secret:x-1_y}", []string{"x-1_y"}},
	}
	for _, tt := range tests {
		if got := secret.References(tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("References(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestEnvName(t *testing.T) {
	for name, want := range map[string]string{"crm-token": "CROSSDOCK_SECRET_CRM_TOKEN", "a_b9": "CROSSDOCK_SECRET_A_B9"} {
		if got := secret.EnvName(name); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	var logs bytes.Buffer
	s := newStore(t, map[string]string{
		"CROSSDOCK_SECRET_TOKEN": "tok-123456",
		"CROSSDOCK_SECRET_LONG":  "tok-123456-and-more",
		"CROSSDOCK_SECRET_PIN":   "1234",
	}, map[string]string{"rotated": "first-value"})
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))

	if got := s.Redact("nothing resolved yet: tok-123456"); got != "nothing resolved yet: tok-123456" {
		t.Errorf("Redact before any Resolve = %q", got)
	}
	for _, ref := range []string{"${secret:token}", "${secret:long}", "${secret:pin}", "${secret:pin}", "${secret:rotated}"} {
		if _, err := s.Resolve(ref); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, s.Dir, "rotated", "second-value")
	if _, err := s.Resolve("${secret:rotated}"); err != nil {
		t.Fatal(err)
	}

	tests := []struct{ in, want string }{
		{"Authorization: Bearer tok-123456", "Authorization: Bearer [secret:token]"},
		{"tok-123456-and-more", "[secret:long]"},
		{"tok-123456tok-123456", "[secret:token][secret:token]"},
		{"pin 1234 is too short to redact", "pin 1234 is too short to redact"},
		{"old first-value and new second-value", "old [secret:rotated] and new [secret:rotated]"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := s.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if n := strings.Count(logs.String(), "secret is too short to be redacted"); n != 1 || !strings.Contains(logs.String(), "secret=pin") ||
		strings.Contains(logs.String(), "1234") {
		t.Errorf("want one warning naming pin and not its value; logs:\n%s", logs.String())
	}
}

type account struct {
	Name  string
	Token string
}

type logValuer struct{ v string }

func (l logValuer) LogValue() slog.Value { return slog.StringValue(l.v) }

// TestLogRedaction logs a secret every way slog can carry it, through the
// Handler wrapper and through ReplaceAttr, and finds it in no line.
func TestLogRedaction(t *testing.T) {
	const value = "sk_live_51Hx9"
	s := &secret.Store{Env: env(map[string]string{"CROSSDOCK_SECRET_STRIPE": value})}
	if _, err := s.Resolve("${secret:stripe}"); err != nil {
		t.Fatal(err)
	}
	logAll := func(l *slog.Logger) {
		l.Info("sending with key "+value, "key", value, "url", "https://api.example/?k="+value)
		l.Error("delivery failed", "error", fmt.Errorf("post: bad key %s", value))
		l.Info("struct", "account", account{Name: "acme", Token: value}, "bytes", []byte(value))
		l.Info("group", slog.Group("auth", "header", "Bearer "+value, slog.Group("inner", "v", value)))
		l.Info("valuer", "v", logValuer{value})
		l.With("bound", value).WithGroup("g").Info("bound", "x", value, "n", 3)
	}
	for _, tt := range []struct {
		name   string
		logger func(w *bytes.Buffer) *slog.Logger
	}{
		{"Handler JSON", func(w *bytes.Buffer) *slog.Logger { return slog.New(s.Handler(slog.NewJSONHandler(w, nil))) }},
		{"Handler text", func(w *bytes.Buffer) *slog.Logger { return slog.New(s.Handler(slog.NewTextHandler(w, nil))) }},
		{"ReplaceAttr JSON", func(w *bytes.Buffer) *slog.Logger {
			return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: s.ReplaceAttr}))
		}},
		{"ReplaceAttr text", func(w *bytes.Buffer) *slog.Logger {
			return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: s.ReplaceAttr}))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			logAll(tt.logger(&w))
			out := w.String()
			if strings.Contains(out, value) {
				t.Errorf("a secret reached the log:\n%s", out)
			}
			if n := strings.Count(out, "[secret:stripe]"); n < 10 {
				t.Errorf("want the secret redacted in every place, found %d:\n%s", n, out)
			}
			if !strings.Contains(out, "acme") || !strings.Contains(out, "delivery failed") {
				t.Errorf("redaction lost the rest of the log:\n%s", out)
			}
		})
	}
}

// TestHandlerWithoutSecrets: nothing resolved, nothing changed.
func TestHandlerWithoutSecrets(t *testing.T) {
	var s secret.Store
	var w bytes.Buffer
	slog.New(s.Handler(slog.NewTextHandler(&w, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))).Info("hello", "n", 1, "s", "x")
	if got := w.String(); got != "level=INFO msg=hello n=1 s=x\n" {
		t.Errorf("log = %q", got)
	}
}

// watch runs Watch in a goroutine and returns the channel of changed names
// and a stop function that waits for Watch to return nil.
func watch(t *testing.T, s *secret.Store) (<-chan string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	names := make(chan string, 16)
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, func(name string) { names <- name }) }()
	var once sync.Once
	stop := func() { once.Do(func() { stopWatch(t, cancel, done) }) }
	t.Cleanup(stop)
	return names, stop
}

func stopWatch(t *testing.T, cancel func(), done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Watch did not return after its context was cancelled")
	}
}

// expect waits for the next name from Watch.
func expect(t *testing.T, names <-chan string, want string) {
	t.Helper()
	select {
	case got := <-names:
		if got != want {
			t.Fatalf("onChange(%q), want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no onChange(%q) within 10s", want)
	}
}

// resolve resolves each named secret, and checks that it resolves or is
// missing as expected, so that the Store knows what the files held.
func resolve(t *testing.T, s *secret.Store, present bool, names ...string) {
	t.Helper()
	for _, name := range names {
		_, err := s.Resolve("${secret:" + name + "}")
		if (err == nil) != present {
			t.Fatalf("Resolve(%s): %v", name, err)
		}
	}
}

func TestWatch(t *testing.T) {
	s := newStore(t, nil, map[string]string{"token": "v1-aaaa", ".hidden": "x"})
	s.Interval = 10 * time.Millisecond
	resolve(t, s, true, "token")
	resolve(t, s, false, "other")
	names, _ := watch(t, s)

	writeFile(t, s.Dir, "token", "v2-bbbb") // same size, maybe the same mtime
	expect(t, names, "token")
	writeFile(t, s.Dir, "other", "new")
	expect(t, names, "other")
	if err := os.Remove(filepath.Join(s.Dir, "token")); err != nil {
		t.Fatal(err)
	}
	expect(t, names, "token")
	writeFile(t, s.Dir, "Not-A-Name", "ignored")
	writeFile(t, s.Dir, ".hidden", "ignored too")
	writeFile(t, s.Dir, "other", "newer") // a later change comes after the ignored ones
	expect(t, names, "other")
}

// TestWatchSymlinkSwap updates secrets the way Kubernetes does: each name is
// a link into ..data, itself a link that is swapped to a new directory.
func TestWatchSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(n int, value string) {
		v := filepath.Join(dir, fmt.Sprintf("..v%d", n))
		if err := os.Mkdir(v, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, v, "db-password", value)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(v), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version(1, "first-password")
	if err := os.Symlink(filepath.Join("..data", "db-password"), filepath.Join(dir, "db-password")); err != nil {
		t.Fatal(err)
	}
	s := &secret.Store{Dir: dir, Env: env(nil), Interval: 10 * time.Millisecond}
	if got, err := s.Resolve("${secret:db-password}"); err != nil || got != "first-password" {
		t.Fatalf("Resolve = %q, %v", got, err)
	}
	names, _ := watch(t, s)
	version(2, "second-password")
	expect(t, names, "db-password")
	if got, err := s.Resolve("${secret:db-password}"); err != nil || got != "second-password" {
		t.Fatalf("Resolve after the swap = %q, %v", got, err)
	}
}

// TestWatchFirstLook: a secret rotated after it was resolved but before
// Watch started is reported on Watch's first look; a file nobody resolved
// is not, until it changes.
func TestWatchFirstLook(t *testing.T) {
	s := newStore(t, nil, map[string]string{"token": "before", "unused": "u1"})
	s.Interval = 10 * time.Millisecond
	resolve(t, s, true, "token")
	writeFile(t, s.Dir, "token", "after")
	names, _ := watch(t, s)
	expect(t, names, "token")
	writeFile(t, s.Dir, "unused", "u2")
	expect(t, names, "unused")
}

func TestWatchStops(t *testing.T) {
	s := newStore(t, nil, nil)
	_, stop := watch(t, s)
	stop() // fails the test unless Watch returns nil promptly

	if err := (&secret.Store{}).Watch(context.Background(), func(string) {}); err != nil {
		t.Errorf("Watch without a directory = %v, want nil at once", err)
	}
	missing := &secret.Store{Dir: filepath.Join(t.TempDir(), "missing")}
	if err := missing.Watch(context.Background(), func(string) {}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Watch of a missing directory = %v", err)
	}
}

// TestConcurrent resolves and redacts from many goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	s := newStore(t, nil, nil)
	for i := range 8 {
		writeFile(t, s.Dir, fmt.Sprintf("s%d", i), fmt.Sprintf("value-number-%d", i))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				name := fmt.Sprintf("s%d", (g+i)%8)
				v, err := s.Resolve("${secret:" + name + "}")
				if err != nil {
					t.Error(err)
					return
				}
				if got := s.Redact("x " + v); got != "x [secret:"+name+"]" {
					t.Errorf("Redact = %q", got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRedact(b *testing.B) {
	s := &secret.Store{Env: env(map[string]string{
		"CROSSDOCK_SECRET_A": "first-secret-value", "CROSSDOCK_SECRET_B": "second-secret-value", "CROSSDOCK_SECRET_C": "whsec_third",
	})}
	if _, err := s.Resolve("${secret:a}${secret:b}${secret:c}"); err != nil {
		b.Fatal(err)
	}
	line := "delivery failed: POST https://erp.example.com/api/accounts/acc-42: 503 Service Unavailable (attempt 3 of 10)"
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Redact(line)
	}
}
