package template_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/template"
)

// account returns an account-changed event; edit adjusts it before use.
func account(edit ...func(*crossdock.Event)) *crossdock.Event {
	ev := &crossdock.Event{
		ID:          "ev-1",
		Source:      "/crm/accounts",
		SpecVersion: "1.0",
		Type:        "crm.account.updated",
		Subject:     "acc-42",
		Time:        time.Date(2025, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600)),
		Extensions:  map[string]any{"region": "eu", "tenant": "north wind", "priority": int64(5)},
	}
	for _, f := range edit {
		f(ev)
	}
	return ev
}

func subject(s string) func(*crossdock.Event) {
	return func(ev *crossdock.Event) { ev.Subject = s }
}

func TestURL(t *testing.T) {
	tests := []struct {
		name string
		tmpl string
		ev   *crossdock.Event
		want string
	}{
		{"subject", "http://crm.local/api/accounts/{{subject}}", account(), "http://crm.local/api/accounts/acc-42"},
		{"no placeholders", "https://erp.example.com/api/accounts", account(), "https://erp.example.com/api/accounts"},
		{"spaces in braces", "http://crm.local/api/accounts/{{ subject }}", account(), "http://crm.local/api/accounts/acc-42"},
		{"several", "https://h.example:8443/{{type}}/{{id}}?c={{correlationid}}&r={{extensions.region}}", account(),
			"https://h.example:8443/crm.account.updated/ev-1?c=ev-1&r=eu"},
		{"time in UTC", "http://h/at/{{time}}", account(), "http://h/at/2025-03-01T12:00:00Z"},
		{"source escaped in path", "http://h/from/{{source}}", account(), "http://h/from/%2Fcrm%2Faccounts"},
		{"source escaped in query", "http://h/?from={{source}}", account(), "http://h/?from=%2Fcrm%2Faccounts"},
		{"extension with space", "http://h/t/{{extensions.tenant}}?t={{extensions.tenant}}", account(),
			"http://h/t/north%20wind?t=north+wind"},
		{"extension int", "http://h/p/{{extensions.priority}}", account(), "http://h/p/5"},
		{"missing extension in query is empty", "http://h/x?q={{extensions.nope}}", account(), "http://h/x?q="},
		{"slash stays in its segment", "http://h/api/accounts/{{subject}}", account(subject("a/b")), "http://h/api/accounts/a%2Fb"},
		{"dot-dot inside a segment", "http://h/api/accounts/{{subject}}", account(subject("../admin")), "http://h/api/accounts/..%2Fadmin"},
		{"dots with a literal", "http://h/api/v-{{subject}}/x", account(subject("..")), "http://h/api/v-../x"},
		{"query in subject", "http://h/a/{{subject}}", account(subject("x?admin=1#f")), "http://h/a/x%3Fadmin=1%23f"},
		{"ampersand in query value", "http://h/a?s={{subject}}&k=1", account(subject("x&k=2")), "http://h/a?s=x%26k%3D2&k=1"},
		{"percent", "http://h/a/{{subject}}", account(subject("%2e%2e")), "http://h/a/%252e%252e"},
		{"backslash", "http://h/a/{{subject}}", account(subject(`..\admin`)), "http://h/a/..%5Cadmin"},
		{"unicode", "http://h/a/{{subject}}", account(subject("café")), "http://h/a/caf%C3%A9"},
		{"neighbours fill a segment", "http://h/a/{{subject}}{{extensions.nope}}/b", account(subject("x")), "http://h/a/x/b"},
		{"ipv6 host", "http://[::1]:9000/a/{{id}}", account(), "http://[::1]:9000/a/ev-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := template.ParseURL(tt.tmpl)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			got, err := tpl.URL(tt.ev)
			if err != nil {
				t.Fatalf("URL: %v", err)
			}
			if got != tt.want {
				t.Errorf("URL = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestURLPathTraversal: whatever the subject, the request goes to one
// account under /api/accounts/ and nowhere else.
func TestURLPathTraversal(t *testing.T) {
	tpl, err := template.ParseURL("http://crm.local/api/accounts/{{subject}}")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"../admin", "..", ".", "", "a/b", "/", "//evil.example/x", "?x", "#x", "..%2f", "%2e%2e", `..\`, "a/../../b"} {
		got, err := tpl.URL(account(subject(s)))
		if err != nil {
			if crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Errorf("subject %q: error code %q", s, crossdock.ErrorCode(err))
			}
			continue
		}
		rest, ok := strings.CutPrefix(got, "http://crm.local/api/accounts/")
		if !ok || rest == "" || rest == "." || rest == ".." || strings.ContainsAny(rest, "/?#\\") {
			t.Errorf("subject %q expands to %s", s, got)
		}
	}
}

func TestURLErrors(t *testing.T) {
	tests := []struct {
		name string
		tmpl string
		ev   *crossdock.Event
		want string
	}{
		{"empty segment", "http://h/api/accounts/{{subject}}", account(subject("")),
			`template "http://h/api/accounts/{{subject}}": the event's values make the path segment "", which would change the path`},
		{"dot segment", "http://h/api/accounts/{{subject}}/x", account(subject(".")),
			`template "http://h/api/accounts/{{subject}}/x": the event's values make the path segment ".", which would change the path`},
		{"dot-dot segment", "http://h/api/{{subject}}?x=1", account(subject("..")),
			`template "http://h/api/{{subject}}?x=1": the event's values make the path segment "..", which would change the path`},
		{"dot-dot from two values", "http://h/api/{{subject}}{{extensions.dot}}", account(subject("."), func(ev *crossdock.Event) { ev.SetExtension("dot", ".") }),
			`template "http://h/api/{{subject}}{{extensions.dot}}": the event's values make the path segment "..", which would change the path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := template.ParseURL(tt.tmpl)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			got, err := tpl.URL(tt.ev)
			if err == nil {
				t.Fatalf("URL = %s, want an error", got)
			}
			if crossdock.ErrorCode(err) != crossdock.EINVALID || err.Error() != tt.want {
				t.Errorf("error %q (%s)\nwant %q", err, crossdock.ErrorCode(err), tt.want)
			}
		})
	}
}

// TestURLFromParse: a template from Parse is checked when it expands.
func TestURLFromParse(t *testing.T) {
	tests := []struct {
		tmpl string
		want string
	}{
		{"{{source}}", `template "{{source}}": {{source}} is in the scheme; placeholders may only be in the path or the query`},
		{"http://{{subject}}.example.com/", `template "http://{{subject}}.example.com/": {{subject}} is in the host; placeholders may only be in the path or the query`},
		{"ftp://h/{{id}}", `template "ftp://h/{{id}}": does not expand to an absolute http or https URL`},
		{"http://h/a#{{id}}", `template "http://h/a#{{id}}": {{id}} is in the fragment; placeholders may only be in the path or the query`},
	}
	for _, tt := range tests {
		tpl, err := template.Parse(tt.tmpl)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.tmpl, err)
		}
		got, err := tpl.URL(account())
		if crossdock.ErrorCode(err) != crossdock.EINVALID || err.Error() != tt.want {
			t.Errorf("URL(%q) = %q, %v\nwant error %s", tt.tmpl, got, err, tt.want)
		}
	}
	tpl, err := template.Parse("http://h/a/{{id}}")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tpl.URL(account()); err != nil || got != "http://h/a/ev-1" {
		t.Errorf("URL = %q, %v", got, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		tmpl string
		want string
	}{
		{"unclosed", "http://h/a/{{subject", `template "http://h/a/{{subject": the {{ at column 12 is not closed with }}`},
		{"unclosed second", "{{id}}/{{subject}", `template "{{id}}/{{subject}": the {{ at column 8 is not closed with }}`},
		{"unknown", "http://h/{{data.name}}", `template "http://h/{{data.name}}": unknown name "data.name" at column 10; use id, source, type, subject, correlationid, time or extensions.NAME`},
		{"empty name", "a{{ }}b", `template "a{{ }}b": unknown name "" at column 2; use id, source, type, subject, correlationid, time or extensions.NAME`},
		{"bad extension name", "{{extensions.Bad}}", `template "{{extensions.Bad}}": unknown name "extensions.Bad" at column 1; use id, source, type, subject, correlationid, time or extensions.NAME`},
		{"newline", "Bearer x\r\nX-Evil: 1", `template "Bearer x\r\nX-Evil: 1": control character at column 9`},
		{"too long", strings.Repeat("a", template.MaxSize+1), `template: 8193 bytes, more than the 8192 allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := template.Parse(tt.tmpl)
			if crossdock.ErrorCode(err) != crossdock.EINVALID || err.Error() != tt.want {
				t.Errorf("Parse error %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		tmpl string
		want string
	}{
		{"crm.local/api/{{subject}}", `template "crm.local/api/{{subject}}": {{subject}} is in the scheme; placeholders may only be in the path or the query`},
		{"http://{{subject}}/api", `template "http://{{subject}}/api": {{subject}} is in the host; placeholders may only be in the path or the query`},
		{"http://crm.local:{{id}}/api", `template "http://crm.local:{{id}}/api": {{id}} is in the host; placeholders may only be in the path or the query`},
		{"http://u:{{id}}@crm.local/api", `template "http://u:{{id}}@crm.local/api": {{id}} is in the host; placeholders may only be in the path or the query`},
		{"http://h/a#{{id}}", `template "http://h/a#{{id}}": {{id}} is in the fragment; placeholders may only be in the path or the query`},
		{"ftp://h/{{id}}", `template "ftp://h/{{id}}": not an absolute http or https URL`},
		{"http:///a/{{id}}", `template "http:///a/{{id}}": not an absolute http or https URL`},
		{"/api/accounts/{{id}}", `template "/api/accounts/{{id}}": {{id}} is in the scheme; placeholders may only be in the path or the query`},
		{"/api/accounts", `template "/api/accounts": not an absolute http or https URL`},
		{"http://h/%zz/{{id}}", `template "http://h/%zz/{{id}}": not an absolute http or https URL`},
	}
	for _, tt := range tests {
		_, err := template.ParseURL(tt.tmpl)
		if crossdock.ErrorCode(err) != crossdock.EINVALID || err.Error() != tt.want {
			t.Errorf("ParseURL(%q) error %v\nwant %s", tt.tmpl, err, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name string
		tmpl string
		ev   *crossdock.Event
		want string
	}{
		{"static", "Bearer abc", account(), "Bearer abc"},
		{"values as they are", "{{source}} {{correlationid}} {{extensions.tenant}}", account(), "/crm/accounts ev-1 north wind"},
		{"CR LF become spaces", "X {{subject}}", account(subject("a\r\nX-Evil: 1")), "X a  X-Evil: 1"},
		{"every control", "{{subject}}", account(subject("a\x00b\tc\x7fd\ne")), "a b c d e"},
		{"unicode kept", "{{subject}}", account(subject("café")), "café"},
		{"time absent", "[{{time}}]", account(func(ev *crossdock.Event) { ev.Time = time.Time{} }), "[]"},
		{"correlation id", "{{correlationid}}", account(func(ev *crossdock.Event) { ev.SetExtension("correlationid", "c-9") }), "c-9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := template.Parse(tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			if got := tpl.String(tt.ev); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestResolve: literals pass through the resolver, placeholders never do,
// and a resolved value is never read as a placeholder.
func TestResolve(t *testing.T) {
	const secret = "s3cr3t-{{subject}}"
	resolve := func(s string) (string, error) {
		return strings.ReplaceAll(s, "${secret:token}", secret), nil
	}
	tpl, err := template.Parse("Bearer ${secret:token} for {{subject}}")
	if err != nil {
		t.Fatal(err)
	}
	r, err := tpl.Resolve(resolve)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.String(account(subject("${secret:token}"))); got != "Bearer s3cr3t-{{subject}} for ${secret:token}" {
		t.Errorf("String = %q", got)
	}
	if r.Source() != tpl.Source() {
		t.Errorf("Source = %q, want the text as parsed", r.Source())
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, r); strings.Contains(s, "s3cr3t") {
			t.Errorf("%s prints the resolved secret: %s", verb, s)
		}
	}

	boom := errors.New("secret missing")
	if _, err := tpl.Resolve(func(string) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Errorf("Resolve error %v, want the resolver's", err)
	}
	if _, err := tpl.Resolve(func(s string) (string, error) { return s + "\r\nX: y", nil }); crossdock.ErrorCode(err) != crossdock.EINVALID ||
		strings.Contains(err.Error(), "X: y") {
		t.Errorf("Resolve with a newline: %v", err)
	}

	u, err := template.ParseURL("https://api.example.com/v1/{{subject}}?key=${secret:key}")
	if err != nil {
		t.Fatal(err)
	}
	ru, err := u.Resolve(func(s string) (string, error) { return strings.ReplaceAll(s, "${secret:key}", "k-123"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ru.URL(account()); err != nil || got != "https://api.example.com/v1/acc-42?key=k-123" {
		t.Errorf("URL = %q, %v", got, err)
	}
	// A secret that moves a placeholder out of the path is refused.
	bad, err := template.ParseURL("https://${secret:host}/v1/{{subject}}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Resolve(func(s string) (string, error) { return strings.ReplaceAll(s, "${secret:host}", "h.example?x="), nil }); err != nil {
		t.Errorf("a query-shaped host is still a URL with the placeholder in the query: %v", err)
	}
	if _, err := bad.Resolve(func(s string) (string, error) { return strings.ReplaceAll(s, "${secret:host}", "h#"), nil }); crossdock.ErrorCode(err) != crossdock.EINVALID ||
		strings.Contains(err.Error(), "h#") {
		t.Errorf("Resolve into a fragment: %v", err)
	}
}

func TestCompile(t *testing.T) {
	ev := &crossdock.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t", Subject: "a/b"}
	resolve := func(s string) (string, error) { return strings.ReplaceAll(s, "${secret:k}", "v"), nil }
	u, err := template.Compile("http://x/items/{{subject}}?k=${secret:k}", true, resolve)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := u.Expand(ev); err != nil || got != "http://x/items/a%2Fb?k=v" {
		t.Fatalf("URL = %q, %v", got, err)
	}
	h, err := template.Compile("Bearer ${secret:k} {{subject}}", false, resolve)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := h.Expand(ev); err != nil || got != "Bearer v a/b" {
		t.Fatalf("header = %q, %v", got, err)
	}
	if _, err := template.Compile("http://{{subject}}/x", true, nil); err == nil {
		t.Fatal("a placeholder in the host was accepted")
	}
}
