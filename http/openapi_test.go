package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	cdhttp "github.com/crossdock/crossdock/http"
)

const docURL = "https://crossdock.dev/openapi.json"

// apiDoc is the OpenAPI document the server serves, ready to check
// responses against.
type apiDoc struct {
	raw      map[string]any
	compiler *jsonschema.Compiler

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema
}

var (
	docOnce sync.Once
	doc     *apiDoc
	docErr  error
)

// openAPI fetches /openapi.json from a server and compiles it once.
func openAPI(t testing.TB) *apiDoc {
	t.Helper()
	docOnce.Do(func() {
		rec := httptest.NewRecorder()
		cdhttp.NewServer().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
			docErr = fmt.Errorf("GET /openapi.json = %d %s", rec.Code, rec.Header().Get("Content-Type"))
			return
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(rec.Body.Bytes()))
		if err != nil {
			docErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		if err := c.AddResource(docURL, v); err != nil {
			docErr = err
			return
		}
		doc = &apiDoc{raw: v.(map[string]any), compiler: c, schemas: map[string]*jsonschema.Schema{}}
	})
	if docErr != nil {
		t.Fatalf("load OpenAPI document: %v", docErr)
	}
	return doc
}

// pointerEscape escapes one JSON pointer token.
func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func (d *apiDoc) get(ptr ...string) (map[string]any, bool) {
	var cur any = d.raw
	for _, p := range ptr {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	m, ok := cur.(map[string]any)
	return m, ok
}

// schema compiles the schema at a JSON pointer of the document.
func (d *apiDoc) schema(t testing.TB, ptr []string) *jsonschema.Schema {
	t.Helper()
	var esc []string
	for _, p := range ptr {
		esc = append(esc, url.PathEscape(pointerEscape(p)))
	}
	loc := docURL + "#/" + strings.Join(esc, "/")
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.schemas[loc]; ok {
		return s
	}
	s, err := d.compiler.Compile(loc)
	if err != nil {
		t.Fatalf("compile %s: %v", loc, err)
	}
	d.schemas[loc] = s
	return s
}

// checkResponse fails the test unless the document lists the status for
// the route and the body validates against the schema it gives.
func (d *apiDoc) checkResponse(t testing.TB, method, pattern string, status int, contentType string, body []byte) {
	t.Helper()
	base := []string{"paths", pattern, strings.ToLower(method), "responses", strconv.Itoa(status)}
	resp, ok := d.get(base...)
	if !ok {
		t.Errorf("OpenAPI document has no %d response for %s %s", status, method, pattern)
		return
	}
	if ref, ok := resp["$ref"].(string); ok {
		base = strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		if resp, ok = d.get(base...); !ok {
			t.Fatalf("OpenAPI document: dangling %s", ref)
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(body) == 0 && content == nil {
		return
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Errorf("%s %s answered %d with Content-Type %q: %v", method, pattern, status, contentType, err)
		return
	}
	if _, ok := content[mt]; !ok {
		t.Errorf("OpenAPI document has no %s content for %d of %s %s", mt, status, method, pattern)
		return
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s %s answered %d with a body that is not JSON: %v: %q", method, pattern, status, err, body)
		return
	}
	sch := d.schema(t, append(base, "content", mt, "schema"))
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s %s answered %d with a body the document does not allow: %#v\nbody: %s", method, pattern, status, err, body)
	}
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	d := openAPI(t)
	routed := map[string]bool{}
	for _, r := range cdhttp.Routes(cdhttp.NewServer()) {
		routed[r] = true
		method, path, _ := strings.Cut(r, " ")
		if _, ok := d.get("paths", path, strings.ToLower(method)); !ok {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	paths, _ := d.get("paths")
	if len(paths) == 0 {
		t.Fatal("the document has no paths")
	}
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}
	for path, item := range paths {
		for key, op := range item.(map[string]any) {
			if !slices.Contains(methods, key) {
				continue
			}
			r := strings.ToUpper(key) + " " + path
			if !routed[r] {
				t.Errorf("the OpenAPI document has %s, which is not routed", r)
			}
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s documents no responses", r)
			}
		}
	}
}

// TestOpenAPISchemasCompile compiles every schema the document references,
// so a typo in one fails here rather than in the test that first meets it.
func TestOpenAPISchemasCompile(t *testing.T) {
	d := openAPI(t)
	schemas, _ := d.get("components", "schemas")
	for name := range schemas {
		d.schema(t, []string{"components", "schemas", name})
	}
	var raw bytes.Buffer
	if err := json.NewEncoder(&raw).Encode(d.raw); err != nil {
		t.Fatal(err)
	}
	if d.raw["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", d.raw["openapi"])
	}
}

// TestProblemsForUnroutedRequests checks that the mux's own 404 and 405
// come as problems too.
func TestProblemsForUnroutedRequests(t *testing.T) {
	h := cdhttp.NewServer().Handler()
	tests := []struct {
		method, path string
		status       int
		typ, allow   string
	}{
		{"GET", "/nope", 404, "not_found", ""},
		{"DELETE", "/v1/topics", 405, "method_not_allowed", "GET, HEAD"},
		{"PUT", "/v1/subscriptions/s1/dead-letters:resubmit", 405, "method_not_allowed", "POST"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		var p cdhttp.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s %s: body %q: %v", tt.method, tt.path, rec.Body, err)
		}
		if rec.Code != tt.status || p.Status != tt.status || p.Type != cdhttp.ProblemTypeBase+tt.typ ||
			p.Instance != tt.path || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s = %d %+v", tt.method, tt.path, rec.Code, p)
		}
		if got := rec.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
}
