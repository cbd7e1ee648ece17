package secret_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/secret"
)

var referenceRE = regexp.MustCompile(`\$\{secret:([a-z0-9_-]{1,128})\}`)

// FuzzResolve resolves any text with any secret value: nothing panics; a
// failure returns "" (never part of a value) with a message that does not
// depend on the values; a success is every reference replaced, as a regular
// expression would, once.
func FuzzResolve(f *testing.F) {
	f.Add("Bearer ${secret:a}", "s3cr3t")
	f.Add("${secret:a}${secret:b-c}${secret:missing}", "v")
	f.Add("${secret:a", "${secret:b-c}")
	f.Add("${secret:${secret:a}}", "x}")
	f.Add("$${secret:a}}{secret:b-c}", "")
	f.Add("${secret:A}", "\n")
	f.Fuzz(func(t *testing.T, text, value string) {
		values := map[string]string{"a": value, "b-c": "bc-value"}
		store := func(values map[string]string) *secret.Store {
			vars := make(map[string]string)
			for name, v := range values {
				vars[secret.EnvName(name)] = v
			}
			return &secret.Store{Env: env(vars)}
		}
		got, err := store(values).Resolve(text)
		_, err2 := store(map[string]string{"a": "other-a", "b-c": "other-bc"}).Resolve(text)
		if err != nil {
			if got != "" {
				t.Fatalf("Resolve(%q) = %q with error %v", text, got, err)
			}
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID && code != crossdock.ENOTFOUND {
				t.Fatalf("Resolve(%q) error code %q", text, code)
			}
			if err2 == nil || err.Error() != err2.Error() {
				t.Fatalf("Resolve(%q) error %q depends on the values (other values: %v)", text, err, err2)
			}
			return
		}
		if err2 != nil {
			t.Fatalf("Resolve(%q) failed only with other values: %v", text, err2)
		}
		if strings.Count(text, "${secret:") != len(referenceRE.FindAllStringIndex(text, -1)) {
			t.Fatalf("Resolve(%q) = %q, but the text has a malformed reference", text, got)
		}
		want := referenceRE.ReplaceAllStringFunc(text, func(ref string) string {
			return values[referenceRE.FindStringSubmatch(ref)[1]]
		})
		if got != want {
			t.Fatalf("Resolve(%q) = %q, want %q", text, got, want)
		}
	})
}
