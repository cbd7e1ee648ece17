package transform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/transform"
)

// account returns an account-changed event; edit adjusts it before use.
func account(edit ...func(*crossdock.Event)) *crossdock.Event {
	ev := &crossdock.Event{
		ID:              "ev-1",
		Source:          "/crm/accounts",
		SpecVersion:     "1.0",
		Type:            "crm.account.updated",
		Subject:         "acc-42",
		Time:            time.Date(2025, 3, 1, 12, 0, 0, 500, time.FixedZone("CET", 3600)),
		DataContentType: "application/json",
		Data:            []byte(`{"accountnumber": "A-1001", "name": "Acme B.V.", "big": 12345678901234567890123, "credit": 1.50, "tags": ["vip"]}`),
		Extensions: map[string]any{
			"region":   "eu",
			"priority": int64(5),
			"score":    json.Number("2.5"),
			"urgent":   true,
		},
	}
	for _, f := range edit {
		f(ev)
	}
	return ev
}

func mustCompile(tb testing.TB, program string) *transform.Program {
	tb.Helper()
	p, err := transform.Compile(program)
	if err != nil {
		tb.Fatalf("Compile(%q): %v", program, err)
	}
	return p
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		program string
		ev      *crossdock.Event
		want    string
	}{
		{"reshape", `{number: .data.accountnumber, name: .data.name}`, account(),
			`{"name":"Acme B.V.","number":"A-1001"}`},
		{"identity data", `.data.tags`, account(), `["vip"]`},
		{"big integer kept exact", `.data.big`, account(), `12345678901234567890123`},
		{"number text kept", `.data.credit`, account(), `1.50`},
		{"arithmetic", `.data.credit * 2`, account(), `3`},
		{"attributes", `[.id, .source, .type, .specversion, .subject]`, account(),
			`["ev-1","/crm/accounts","crm.account.updated","1.0","acc-42"]`},
		{"time is RFC 3339 in UTC", `.time`, account(), `"2025-03-01T11:00:00.0000005Z"`},
		{"time absent is null", `.time`, account(func(ev *crossdock.Event) { ev.Time = time.Time{} }), `null`},
		{"subject absent is null", `.subject // "none"`, account(func(ev *crossdock.Event) { ev.Subject = "" }), `"none"`},
		{"datacontenttype", `.datacontenttype`, account(), `"application/json"`},
		{"dataschema absent", `.dataschema`, account(), `null`},
		{"correlationid defaults to id", `.correlationid`, account(), `"ev-1"`},
		{"correlationid", `.correlationid`, account(func(ev *crossdock.Event) { ev.SetExtension("correlationid", "corr-9") }), `"corr-9"`},
		{"extensions at top level", `[.region, .priority, .score, .urgent]`, account(), `["eu",5,2.5,true]`},
		{"extension int computes", `.priority + 1`, account(), `6`},
		{"extension does not shadow core", `[.id, .data.name]`,
			account(func(ev *crossdock.Event) { ev.SetExtension("id", "evil"); ev.SetExtension("data", "evil") }), `["ev-1","Acme B.V."]`},
		{"text data is a string", `.data | ascii_upcase`,
			account(func(ev *crossdock.Event) { ev.DataContentType = "text/plain"; ev.Data = []byte("hello") }), `"HELLO"`},
		{"binary data is base64", `.data | @base64d`,
			account(func(ev *crossdock.Event) { ev.DataContentType = "application/octet-stream"; ev.Data = []byte("hi!") }), `"hi!"`},
		{"no data is null", `.data`, account(func(ev *crossdock.Event) { ev.Data = nil }), `null`},
		{"empty JSON data is null", `.data`, account(func(ev *crossdock.Event) { ev.Data = []byte{} }), `null`},
		{"json suffix type", `.data.a`,
			account(func(ev *crossdock.Event) { ev.DataContentType = "application/vnd.x+json"; ev.Data = []byte(`{"a":1}`) }), `1`},
		{"env is empty", `[$ENV, env] | map(length)`, account(), `[0,0]`},
		{"null output", `.nothing`, account(), `null`},
		{"string output", `"x"`, account(), `"x"`},
		{"NaN encodes as null", `nan`, account(), `null`},
		{"try catch", `try error("x") catch "caught"`, account(), `"caught"`},
		{"reduce", `reduce .data.tags[] as $t (""; . + $t)`, account(), `"vip"`},
		{"html not escaped", `"<a&b>"`, account(), `"<a&b>"`},
	}
	t.Setenv("CROSSDOCK_SECRET_TOKEN", "s3cr3t-value")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.program)
			got, err := p.Apply(context.Background(), tt.ev)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Apply = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		program string
		want    string
	}{
		{"empty", "  ", `transform "  ": empty program`},
		{"syntax with position", "{a:\n 1,,}", `transform "{a:\n 1,,}": 2:4: unexpected token ","`},
		{"unterminated", `.a | "abc`, `transform ".a | \"abc": 1:10: unterminated string literal`},
		{"eof", `.a |`, `transform ".a |": 1:5: unexpected EOF`},
		{"unknown function", `.a | frobnicate`, `transform ".a | frobnicate": function not defined: frobnicate/0`},
		{"unknown variable", `$nope`, `transform "$nope": variable not defined: $nope`},
		{"input", `input`, `transform "input": input(s)/0 is not allowed`},
		{"inputs", `[inputs]`, `transform "[inputs]": input(s)/0 is not allowed`},
		{"modules", `import "a" as a; .`, `transform "import \"a\" as a; .": cannot load module: "a"`},
		{"debug", `debug`, `transform "debug": function not defined: debug/0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := transform.Compile(tt.program)
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Errorf("code %q, want %q", code, crossdock.EINVALID)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
	if _, err := transform.Compile("." + strings.Repeat(" ", transform.MaxProgramSize)); crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("oversized program: %v", err)
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name    string
		program string
		ev      *crossdock.Event
		want    string
	}{
		{"error string", `error("account has no number")`, account(), `transform: error: account has no number`},
		{"error object", `error({code: 7})`, account(), `transform: error: {"code":7}`},
		{"type error", `.data.name + 1`, account(), `transform: cannot add: string ("Acme B.V.") and number (1)`},
		{"no output", `empty`, account(), `transform: the program produced no value; it must produce exactly one`},
		{"no output from select", `select(.type == "other")`, account(), `transform: the program produced no value; it must produce exactly one`},
		{"two outputs", `.id, .source`, account(),
			`transform: the program produced more than one value; it must produce exactly one (wrap a stream in [...] to send an array)`},
		{"error after a value", `.id, error("late")`, account(), `transform: error: late`},
		{"halt", `halt`, account(), `transform: the program called halt`},
		{"halt_error", `"bye" | halt_error`, account(), `transform: halt error: bye`},
		{"bad JSON data", `.`, account(func(ev *crossdock.Event) { ev.Data = []byte(`{"a":`) }),
			`transform: data is not valid JSON: unexpected end of input`},
		{"trailing JSON data", `.`, account(func(ev *crossdock.Event) { ev.Data = []byte(`{"a":1} ]`) }),
			`transform: data is not valid JSON: invalid character ']' after the value at byte 8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.program)
			body, err := p.Apply(context.Background(), tt.ev)
			if err == nil {
				t.Fatalf("Apply = %s, want an error", body)
			}
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Errorf("code %q, want %q", code, crossdock.EINVALID)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestApplyLongErrorIsCut(t *testing.T) {
	p := mustCompile(t, `error("é" * 2000)`)
	_, err := p.Apply(context.Background(), account())
	if err == nil || len(err.Error()) > 600 || !strings.HasSuffix(err.Error(), "é…") {
		t.Fatalf("error of %d bytes: %.80v", len(err.Error()), err)
	}
}

func TestApplyTimeout(t *testing.T) {
	for _, program := range []string{`def f: f; f`, `[range(1e12)] | length`, `last(repeat(1))`} {
		t.Run(program, func(t *testing.T) {
			p := mustCompile(t, program)
			p.Timeout = 50 * time.Millisecond
			_, err := p.Apply(context.Background(), account())
			if crossdock.ErrorCode(err) != crossdock.EINVALID || err.Error() != "transform: the program ran longer than 50ms" {
				t.Fatalf("Apply error %v, want a timeout", err)
			}
		})
	}
}

// TestApplyCallerContext: a caller that gives up (a shutdown) is not the
// event's fault, so the error is not EINVALID and does not dead-letter.
func TestApplyCallerContext(t *testing.T) {
	p := mustCompile(t, `last(repeat(1))`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Apply(ctx, account())
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || crossdock.ErrorCode(err) == crossdock.EINVALID {
			t.Fatalf("Apply error %v, want context.Canceled, not EINVALID", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Apply did not stop when its context was cancelled")
	}
}

func TestApplyMaxOutput(t *testing.T) {
	tests := []struct {
		program string
		ok      bool
	}{
		{`"x" * 90`, true},
		{`"x" * 99`, false}, // 101 bytes with the quotes
		{`[range(60)]`, false},
		{`[range(20)]`, true},
		{`{("k" * 200): 1}`, false},
		{`"1" * 400 | tonumber`, false},
		{`pow(2; 1000)`, true},
	}
	for _, tt := range tests {
		t.Run(tt.program, func(t *testing.T) {
			p := mustCompile(t, tt.program)
			p.MaxOutput = 100
			body, err := p.Apply(context.Background(), account())
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Apply: %v", err)
			case tt.ok && len(body) > 100:
				t.Fatalf("Apply returned %d bytes", len(body))
			case !tt.ok && (err == nil || err.Error() != "transform: the output is larger than 100 bytes"):
				t.Fatalf("Apply = %d bytes, %v; want the size error", len(body), err)
			}
		})
	}
}

// TestEnvironmentUnreachable: no jq construct reads the hub's environment,
// where secrets live.
func TestEnvironmentUnreachable(t *testing.T) {
	const secret = "hunter2-very-secret"
	t.Setenv("CROSSDOCK_SECRET_DB", secret)
	for _, program := range []string{`$ENV`, `env`, `$ENV.CROSSDOCK_SECRET_DB`, `env | tostring`, `[paths]`, `$__prog_args`, `input_filename`, `get_search_list`} {
		p, err := transform.Compile(program)
		if err != nil {
			continue // refused is fine
		}
		body, err := p.Apply(context.Background(), account())
		if strings.Contains(string(body), secret) || (err != nil && strings.Contains(err.Error(), secret)) {
			t.Errorf("%s revealed the environment: %s %v", program, body, err)
		}
	}
}

func TestInput(t *testing.T) {
	in, err := transform.Input(account(func(ev *crossdock.Event) { ev.SetExtension("type", "evil") }))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"correlationid", "data", "datacontenttype", "dataschema", "id", "priority", "region",
		"score", "source", "specversion", "subject", "time", "type", "urgent"}
	var got []string
	for k := range in {
		got = append(got, k)
	}
	if fmt.Sprint(sortStrings(got)) != fmt.Sprint(want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	if in["type"] != "crm.account.updated" {
		t.Errorf("type = %v; an extension shadowed it", in["type"])
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// TestConcurrentApply runs one program from many goroutines; run with -race.
func TestConcurrentApply(t *testing.T) {
	p := mustCompile(t, `{number: .data.accountnumber, n: (.priority + 1), id: .id}`)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprintf("ev-%d-%d", g, i)
				body, err := p.Apply(context.Background(), account(func(ev *crossdock.Event) { ev.ID = id }))
				if want := `{"id":"` + id + `","n":6,"number":"A-1001"}`; err != nil || string(body) != want {
					errs <- fmt.Errorf("Apply = %s, %v; want %s", body, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestString(t *testing.T) {
	if got := mustCompile(t, ".data").String(); got != ".data" {
		t.Errorf("String = %q", got)
	}
}
