package template_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/template"
)

// fuzzTemplates are the URL templates FuzzURL expands, with what each
// value must come back as: the path segments and query values they expect.
var fuzzTemplates = []struct {
	tmpl string
	// segments of the expanded path, with S, I, T, E standing for the
	// subject, id, type and the extension "ref".
	segments []string
	query    map[string]string
}{
	{"http://crm.local/api/accounts/{{subject}}", []string{"", "api", "accounts", "S"}, nil},
	{"https://erp.example.com:8443/v1/{{type}}/items/{{id}}?corr={{subject}}&r={{extensions.ref}}",
		[]string{"", "v1", "T", "items", "I"}, map[string]string{"corr": "S", "r": "E"}},
	{"http://[::1]:9000/a/pre-{{subject}}-post/b?x=1", []string{"", "a", "pre-S-post", "b"}, map[string]string{"x": "1"}},
	{"http://u:p@h.example/{{subject}}{{extensions.ref}}/{{id}}", []string{"", "SE", "I"}, nil},
}

// FuzzURL expands URL templates with any event values: the URL's scheme,
// user, host and port are always the template's, the path has the
// template's segments with each value confined to its own, and the query
// has the template's keys with each value intact.
func FuzzURL(f *testing.F) {
	f.Add("acc-42", "ev-1", "crm.account.updated", "r")
	f.Add("../admin", "..", ".", "")
	f.Add("a/b?c=d#e", "%2e%2e", "//evil.example", "x&y=z")
	f.Add("@evil.example", "\\..\\", "http://evil/", "\r\nX: y")
	f.Add("\xff\xfe", "é", " ", "+%20")
	for _, ft := range fuzzTemplates {
		if _, err := template.ParseURL(ft.tmpl); err != nil {
			f.Fatalf("ParseURL(%q): %v", ft.tmpl, err)
		}
	}
	f.Fuzz(func(t *testing.T, subject, id, typ, ref string) {
		ev := &crossdock.Event{ID: id, Source: "s", SpecVersion: "1.0", Type: typ, Subject: subject,
			Extensions: map[string]any{"ref": ref}}
		values := strings.NewReplacer("S", subject, "I", id, "T", typ, "E", ref)
		for _, ft := range fuzzTemplates {
			tpl, _ := template.ParseURL(ft.tmpl)
			got, err := tpl.URL(ev)
			if err != nil {
				if crossdock.ErrorCode(err) != crossdock.EINVALID {
					t.Fatalf("%s: error code %q: %v", ft.tmpl, crossdock.ErrorCode(err), err)
				}
				continue
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("%s expands to %q, which does not parse: %v", ft.tmpl, got, err)
			}
			want, _ := url.Parse(strings.NewReplacer("{{", "", "}}", "").Replace(ft.tmpl))
			if u.Scheme != want.Scheme || u.Host != want.Host || u.User.String() != want.User.String() || u.Fragment != "" {
				t.Fatalf("%s expands to %q: scheme, user or host changed", ft.tmpl, got)
			}
			segs := strings.Split(u.EscapedPath(), "/")
			if len(segs) != len(ft.segments) {
				t.Fatalf("%s expands to %q: path has %d segments, want %d", ft.tmpl, got, len(segs), len(ft.segments))
			}
			for i, seg := range segs {
				raw, err := url.PathUnescape(seg)
				if wantSeg := values.Replace(ft.segments[i]); err != nil || raw != wantSeg {
					t.Fatalf("%s expands to %q: segment %d is %q, want %q", ft.tmpl, got, i, raw, wantSeg)
				}
				if i > 0 && (raw == "" || raw == "." || raw == "..") {
					t.Fatalf("%s expands to %q: segment %d is %q", ft.tmpl, got, i, raw)
				}
			}
			q, err := url.ParseQuery(u.RawQuery)
			if err != nil || len(q) != len(ft.query) {
				t.Fatalf("%s expands to %q: query %v, %v; want keys of %v", ft.tmpl, got, q, err, ft.query)
			}
			for k, v := range ft.query {
				if vs := q[k]; len(vs) != 1 || vs[0] != values.Replace(v) {
					t.Fatalf("%s expands to %q: query %s = %q, want %q", ft.tmpl, got, k, vs, values.Replace(v))
				}
			}
		}
	})
}

// FuzzParse parses any text: no panic, every failure is EINVALID, and a
// parsed template expands to a header value with no control character.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"http://crm.local/api/accounts/{{subject}}", "{{", "}}{{", "{{ id }}{{type}}", "{{extensions.x}}",
		"a{{{{id}}}}b", "http://h/{{data.x}}", "Bearer ${secret:t}", "{{}}", "x\ny",
	} {
		f.Add(s, "v\r\nX: 1")
	}
	f.Fuzz(func(t *testing.T, s, subject string) {
		tpl, err := template.Parse(s)
		if err != nil {
			if crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Fatalf("Parse(%q) error code %q", s, crossdock.ErrorCode(err))
			}
			return
		}
		ev := &crossdock.Event{ID: "i", Source: "s", SpecVersion: "1.0", Type: "t", Subject: subject}
		for _, c := range []byte(tpl.String(ev)) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("String of %q has control character %q", s, c)
			}
		}
		if got, err := tpl.URL(ev); err == nil {
			if u, perr := url.Parse(got); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Fatalf("URL of %q = %q, not an absolute http(s) URL", s, got)
			}
		} else if crossdock.ErrorCode(err) != crossdock.EINVALID {
			t.Fatalf("URL of %q: error code %q", s, crossdock.ErrorCode(err))
		}
		if _, err := template.ParseURL(s); err != nil && crossdock.ErrorCode(err) != crossdock.EINVALID {
			t.Fatalf("ParseURL(%q) error code %q", s, crossdock.ErrorCode(err))
		}
	})
}
