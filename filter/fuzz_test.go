package filter_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/cel-go/common/types"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/filter"
)

// FuzzCompileAndMatch compiles any expression and evaluates it on any data
// as JSON, text and bytes: neither may panic, and every failure is EINVALID.
func FuzzCompileAndMatch(f *testing.F) {
	f.Add(`data.amount > 1000`, []byte(`{"amount": 1500}`))
	f.Add(`type == "sales.order.created" && data.amount > 1000`, []byte(`{"amount": 10}`))
	f.Add(`has(data.customer) && data.customer.country == "NL"`, []byte(`{"customer": {"country": "NL"}}`))
	f.Add(`data.items.exists(i, i.sku == "B")`, []byte(`{"items": [{"sku": "A"}, {"sku": "B"}]}`))
	f.Add(`data["a\"b"] == [1, 2.5, true, null]`, []byte(`{"a\"b": [1, 2.5e3, true, null], "a\u0022b": {}}`))
	f.Add(`extensions.region == "eu" || size(data) > 2`, []byte(`[1, 2, 3]`))
	f.Add(`data == "x" || data == b"x"`, []byte(`"x"`))
	f.Add(`data.?a.?b.orValue(0) == 0`, []byte(`{"a": {"b": -0.0e-0}}`))
	f.Add(`data.all(k, data[k] != null)`, []byte(`{"x": 1, "x": {"y": [[]]}}`))
	f.Add(`time > timestamp("2020-01-01T00:00:00Z")`, []byte(`{`))
	f.Fuzz(func(t *testing.T, expr string, data []byte) {
		flt, err := filter.Compile(expr)
		if err != nil {
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Fatalf("Compile(%q) error code %q: %v", expr, code, err)
			}
			return
		}
		for _, ct := range []string{"application/json", "text/plain", "application/octet-stream"} {
			ev := &crossdock.Event{
				ID: "1", Source: "s", SpecVersion: "1.0", Type: "t",
				DataContentType: ct, Data: data,
				Extensions: map[string]any{"region": "eu", "n": int64(3)},
			}
			_, err := flt.Match(ev)
			if err == nil {
				continue
			}
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Fatalf("Match(%q, %q) error code %q: %v", expr, data, code, err)
			}
			// CEL turns a panic during evaluation into an "internal error".
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Match(%q, %q) panicked: %v", expr, data, err)
			}
		}
	})
}

// FuzzDecodeJSON checks the lazy JSON decoder against encoding/json: the
// same texts are valid, and valid texts decode to equal values.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"amount": 1500, "customer": {"country": "NL"}, "items": [1, "two", null, true, {"x": []}]}`,
		`{"a": 1, "a": 2, "a\u0062": "\ud83d\ude00", "\u00e9": -0.5e-3}`,
		` [ ] `, `""`, `"\x"`, `01`, `1.`, `-`, `1e400`, `{"a" 1}`, `[1,]`, `{"a":1,}`, `nul`, "\"\xff\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := filter.DecodeJSON(data)
		if valid := json.Valid(data); valid == types.IsError(got) {
			t.Fatalf("json.Valid(%q) = %v, but decode gave %v", data, valid, got)
		}
		var x any
		if types.IsError(got) || json.Unmarshal(data, &x) != nil {
			return
		}
		want := types.DefaultTypeAdapter.NativeToValue(x)
		if got.Equal(want) != types.True || want.Equal(got) != types.True {
			t.Fatalf("decode(%q) = %v, want %v", data, got, want)
		}
	})
}
