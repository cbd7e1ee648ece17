package transform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/transform"
)

// FuzzCompileApply compiles any program and runs it on any data as JSON,
// text and bytes: nothing may panic, every failure that is the program's or
// the event's is EINVALID, and every success is one JSON value within the
// size limit.
func FuzzCompileApply(f *testing.F) {
	f.Add(`{number: .data.accountnumber, name: .data.name}`, []byte(`{"accountnumber": "A-1", "name": "Acme"}`))
	f.Add(`.data | to_entries | map({(.key): .value}) | add`, []byte(`{"a": 1, "b": [2, 3]}`))
	f.Add(`[.data[] | select(. > 1)]`, []byte(`[1, 2, 3.5e3, -0]`))
	f.Add(`.data.x // error("missing x")`, []byte(`{}`))
	f.Add(`.data | tostring | explode | implode`, []byte(`"\ud83d\ude00 caf\u00e9"`))
	f.Add(`.data | @base64d`, []byte("\xff\x00binary"))
	f.Add(`.region + (.priority | tostring)`, []byte(`null`))
	f.Add(`reduce range(10) as $i (.data; . * 2)`, []byte(`123456789012345678901234567890`))
	f.Add(`.data | getpath(["a", 0, "b"])`, []byte(`{"a": [{"b": 1}]}`))
	f.Add(`.data | tojson | fromjson`, []byte(`{"x": 1e400}`))
	f.Add(`.a, .b`, []byte(`{`))
	f.Add(`"x" * (.data | length)`, []byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, program string, data []byte) {
		p, err := transform.Compile(program)
		if err != nil {
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Fatalf("Compile(%q) error code %q: %v", program, code, err)
			}
			return
		}
		p.Timeout = 100 * time.Millisecond
		p.MaxOutput = 64 << 10
		for _, ct := range []string{"application/json", "text/plain", "application/octet-stream"} {
			ev := &crossdock.Event{
				ID: "1", Source: "s", SpecVersion: "1.0", Type: "t", Subject: "sub",
				DataContentType: ct, Data: data,
				Extensions: map[string]any{"region": "eu", "priority": int64(3), "score": json.Number("1.5")},
			}
			body, err := p.Apply(context.Background(), ev)
			if err != nil {
				if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
					t.Fatalf("Apply(%q, %q) error code %q: %v", program, data, code, err)
				}
				if strings.Contains(err.Error(), "invalid type") {
					t.Fatalf("Apply(%q, %q): %v", program, data, err)
				}
				continue
			}
			if len(body) > p.MaxOutput {
				t.Fatalf("Apply(%q, %q) returned %d bytes, over the limit", program, data, len(body))
			}
			if !json.Valid(body) {
				t.Fatalf("Apply(%q, %q) = %q, not JSON", program, data, body)
			}
		}
	})
}

// FuzzDecodeJSON checks the payload decoder against encoding/json with
// UseNumber: the same texts are valid, and valid texts decode to equal
// values.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"amount": 1500, "customer": {"country": "NL"}, "items": [1, "two", null, true, false, {"x": []}]}`,
		`{"a": 1, "a": 2, "a\u0062": "\ud83d\ude00", "\u00e9": -0.5e-3, "z": 1E+2}`,
		` [ ] `, `""`, `"\x"`, `01`, `1.`, `-`, `-0`, `1e400`, `{"a" 1}`, `[1,]`, `{"a":1,}`, `nul`, "\"\xff\"",
		`"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"\ud83d\ude00\ud83d"`, "\"\t\"", `"\/\b\f\n\r\t\\"`,
		`[[[[[]]]]]`, `{"a":{"b":{}}}`, "\"caf\xc3\xa9\xc3\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := transform.DecodeJSON(data)
		if valid := json.Valid(data); valid != (err == nil) {
			t.Fatalf("json.Valid(%q) = %v, but decode gave %v", data, valid, err)
		}
		if err != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decode(%q) = %#v, want %#v", data, got, want)
		}
	})
}
