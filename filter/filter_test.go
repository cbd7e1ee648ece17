package filter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/filter"
)

// order returns a JSON order event; edit adjusts it before use.
func order(data string, edit ...func(*crossdock.Event)) *crossdock.Event {
	ev := &crossdock.Event{
		ID:              "e-1",
		Source:          "crm/orders",
		SpecVersion:     "1.0",
		Type:            "sales.order.created",
		Subject:         "order-42",
		Time:            time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		DataContentType: "application/json",
		DataSchema:      "https://example.com/order.json",
		Data:            []byte(data),
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

func withType(ct string) func(*crossdock.Event) {
	return func(ev *crossdock.Event) { ev.DataContentType = ct }
}

const orderJSON = `{"amount": 1500, "currency": "EUR", "customer": {"id": "c-7", "country": "NL", "tags": ["vip"]},
	"items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}], "note": null, "paid": true, "caf\u00e9": "yes", "dup": 1, "dup": 2}`

func TestMatch(t *testing.T) {
	tests := []struct {
		name string
		expr string
		ev   *crossdock.Event
		want bool
	}{
		// Attributes.
		{"id", `id == "e-1"`, order(orderJSON), true},
		{"source prefix", `source.startsWith("crm/")`, order(orderJSON), true},
		{"type and subject", `type == "sales.order.created" && subject == "order-42"`, order(orderJSON), true},
		{"type mismatch", `type == "sales.order.cancelled"`, order(orderJSON), false},
		{"specversion", `specversion == "1.0"`, order(orderJSON), true},
		{"datacontenttype", `datacontenttype == "application/json"`, order(orderJSON), true},
		{"dataschema", `dataschema.endsWith("/order.json")`, order(orderJSON), true},
		{"in list", `type in ["sales.order.created", "sales.order.updated"]`, order(orderJSON), true},
		{"regex", `subject.matches("^order-[0-9]+$")`, order(orderJSON), true},
		{"strings extension", `source.upperAscii() == "CRM/ORDERS"`, order(orderJSON), true},

		// Time.
		{"time after", `time > timestamp("2025-01-01T00:00:00Z")`, order(orderJSON), true},
		{"time before", `time < timestamp("2025-01-01T00:00:00Z")`, order(orderJSON), false},
		{"time field", `time.getHours() == 12`, order(orderJSON), true},
		{"time absent is epoch", `time == timestamp("1970-01-01T00:00:00Z")`,
			order(orderJSON, func(ev *crossdock.Event) { ev.Time = time.Time{} }), true},

		// Extensions.
		{"extension select", `extensions.region == "eu"`, order(orderJSON), true},
		{"extension index", `extensions["region"] == "eu"`, order(orderJSON), true},
		{"extension int", `extensions.priority > 3`, order(orderJSON), true},
		{"extension number", `extensions.score > 2.0`, order(orderJSON), true},
		{"extension bool", `extensions.urgent == true`, order(orderJSON), true},
		{"extension has", `has(extensions.region)`, order(orderJSON), true},
		{"extension has absent", `has(extensions.tenant)`, order(orderJSON), false},
		{"extension in", `"tenant" in extensions`, order(orderJSON), false},
		{"extension optional", `extensions.?tenant.orValue("none") == "none"`, order(orderJSON), true},
		{"no extensions", `size(extensions) == 0`,
			order(orderJSON, func(ev *crossdock.Event) { ev.Extensions = nil }), true},

		// JSON data.
		{"amount over", `data.amount > 1000`, order(orderJSON), true},
		{"amount under", `data.amount > 1000`, order(`{"amount": 999.5}`), false},
		{"type and amount", `type == "sales.order.created" && data.amount > 1000`, order(orderJSON), true},
		{"amount double literal", `data.amount == 1500.0`, order(orderJSON), true},
		{"amount arithmetic", `data.amount * 1.21 > 1800.0`, order(orderJSON), true},
		{"nested", `data.customer.country == "NL"`, order(orderJSON), true},
		{"nested list", `"vip" in data.customer.tags`, order(orderJSON), true},
		{"index", `data["currency"] == "EUR"`, order(orderJSON), true},
		{"escaped key", `data["café"] == "yes"`, order(orderJSON), true},
		{"duplicate key last wins", `data.dup == 2`, order(orderJSON), true},
		{"null member", `data.note == null`, order(orderJSON), true},
		{"bool member", `data.paid`, order(orderJSON), false}, // replaced below: dyn refused
		{"exists", `data.items.exists(i, i.sku == "B" && i.qty == 1)`, order(orderJSON), true},
		{"all", `data.items.all(i, i.qty > 1)`, order(orderJSON), false},
		{"list index", `data.items[0].sku == "A"`, order(orderJSON), true},
		{"size list", `size(data.items) == 2`, order(orderJSON), true},
		{"size map", `size(data) == 8`, order(orderJSON), true},
		{"has present", `has(data.amount)`, order(orderJSON), true},
		{"has absent", `has(data.discount)`, order(orderJSON), false},
		{"guarded absent", `has(data.discount) && data.discount > 10`, order(orderJSON), false},
		{"optional absent", `data.?discount.orValue(0) == 0`, order(orderJSON), true},
		{"key in data", `"amount" in data`, order(orderJSON), true},
		{"map equality", `data.customer == {"id": "c-7", "country": "NL", "tags": ["vip"]}`, order(orderJSON), true},
		{"map iteration", `data.customer.exists(k, k == "country")`, order(orderJSON), true},
		{"top-level array", `data[1] == "b"`, order(`["a", "b"]`), true},
		{"top-level string", `data == "hi"`, order(`"hi"`), true},
		{"top-level number", `data == 3`, order(` 3 `), true},
		{"json null", `data == null`, order(`null`), true},
		{"no data", `data == null`, order(""), true},
		{"empty content type is JSON", `data.amount > 1000`, order(orderJSON, withType("")), true},
		{"+json content type", `data.amount > 1000`, order(orderJSON, withType("application/cloudevents+json; charset=utf-8")), true},
		{"invalid JSON not read", `type == "sales.order.created"`, order(`{"amount": `), true},

		// Text and binary data.
		{"text", `data.contains("hello")`, order("why hello there", withType("text/plain")), true},
		{"xml is text", `data.startsWith("<order")`, order(`<order/>`, withType("application/xml")), true},
		{"binary", `data == b"\x01\x02"`, order("\x01\x02", withType("application/octet-stream")), true},
		{"binary size", `size(data) == 2`, order("\x01\x02", withType("application/octet-stream")), true},
		{"text has field", `has(data.amount)`, order("amount", withType("text/plain")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := filter.Compile(tt.expr)
			if tt.name == "bool member" {
				// A bare dyn value is refused at compile time; the
				// comparison form is how users write it.
				if err == nil {
					t.Fatalf("Compile(%q) succeeded, want a type error", tt.expr)
				}
				f, err = filter.Compile(tt.expr + " == true")
				tt.want = true
			}
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.expr, err)
			}
			got, err := f.Match(tt.ev)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tt.want {
				t.Errorf("Match(%q) = %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestMatchError(t *testing.T) {
	tests := []struct {
		name string
		expr string
		ev   *crossdock.Event
		want string // in the error message
	}{
		{"missing key", `data.amount > 1000`, order(`{"total": 5}`), `no such key: amount`},
		{"missing nested key", `data.customer.city == "x"`, order(orderJSON), `no such key: city`},
		{"missing extension", `extensions.tenant == "x"`, order(orderJSON), `no such key: tenant`},
		{"invalid JSON", `data.amount > 1`, order(`{"amount": 5`), `data is not valid JSON`},
		{"trailing text", `data.amount > 1`, order(`{"amount": 5} x`), `text after the value`},
		{"select on null", `data.amount > 1`, order(""), `no such key`},
		{"string vs number", `data.currency > 1`, order(orderJSON), `no such overload`},
		{"index out of range", `data.items[5].sku == "A"`, order(orderJSON), `index out of bounds: 5`},
		{"division by zero", `data.amount / 0.0 > 1.0 && 1 / (size(data.items) - 2) == 1`, order(orderJSON), `division by zero`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := filter.Compile(tt.expr)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.expr, err)
			}
			got, err := f.Match(tt.ev)
			if err == nil {
				t.Fatalf("Match(%q) = %v, want an error", tt.expr, got)
			}
			if got {
				t.Errorf("Match returned true with an error")
			}
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Errorf("code = %q, want %q", code, crossdock.EINVALID)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, fmt.Sprintf("filter %q: ", tt.expr)) {
				t.Errorf("error = %q, want it to start with the filter and contain %q", msg, tt.want)
			}
		})
	}
}

func TestCompileError(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want string
	}{
		{"syntax", `data.amount >`, `1:14: Syntax error`},
		{"unbalanced", `(type == "a"`, `Syntax error`},
		{"undeclared", `tenant == "x"`, `undeclared reference to 'tenant'`},
		{"extension by bare name", `region == "eu"`, `undeclared reference to 'region'`},
		{"int result", `1 + 2`, `must be a boolean expression, but has type int`},
		{"string result", `id`, `must be a boolean expression, but has type string`},
		{"dyn result", `data.paid`, `has type dyn (the value's type is only known per event; compare it, e.g. data.flag == true)`},
		{"type error", `id > 3`, `found no matching overload for '_>_' applied to '(string, int)'`},
		{"many errors, first three shown", "@ # $ % ^", `1:1: Syntax error: token recognition error at: '@'; 1:3: Syntax error: token recognition error at: '#'; 1:5: Syntax error: token recognition error at: '$'; and 3 more`},
		{"too long", strings.Repeat("true && ", filter.MaxExpressionSize/8) + "true", `exceeds limit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := filter.Compile(tt.expr)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tt.expr, f)
			}
			if code := crossdock.ErrorCode(err); code != crossdock.EINVALID {
				t.Errorf("code = %q, want %q", code, crossdock.EINVALID)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
		})
	}
}

func TestCompileEmpty(t *testing.T) {
	for _, expr := range []string{"", "  \n\t"} {
		f, err := filter.Compile(expr)
		if err != nil {
			t.Fatalf("Compile(%q): %v", expr, err)
		}
		if f != crossdock.MatchAll {
			t.Errorf("Compile(%q) = %v, want crossdock.MatchAll", expr, f)
		}
	}
}

// items returns a JSON event whose data holds n numbers in a list.
func items(n int) *crossdock.Event {
	var b strings.Builder
	b.WriteString(`{"items": [`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, i)
	}
	b.WriteString(`]}`)
	return order(b.String())
}

func TestCostLimit(t *testing.T) {
	if raceDetector {
		t.Skip("single goroutine; too slow under the race detector")
	}
	f, err := filter.Compile(`data.items.all(x, data.items.all(y, data.items.all(z, x + y + z >= 0.0)))`)
	if err != nil {
		t.Fatal(err)
	}
	// Small enough to finish under the limit.
	if ok, err := f.Match(items(5)); err != nil || !ok {
		t.Fatalf("Match(5 items) = %v, %v; want true", ok, err)
	}
	// 300³ iterations far exceed it: the evaluation stops with an error.
	ok, err := f.Match(items(300))
	if err == nil || ok {
		t.Fatalf("Match(300 items) = %v, %v; want a cost limit error", ok, err)
	}
	if !strings.Contains(err.Error(), "cost limit exceeded") || crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("error = %v (%s), want EINVALID cost limit exceeded", err, crossdock.ErrorCode(err))
	}
}

func TestMatchContext(t *testing.T) {
	c, err := filter.Compile(`data.items.exists(x, x < 0.0)`)
	if err != nil {
		t.Fatal(err)
	}
	f := c.(*filter.Program)
	ev := items(2000)
	if ok, err := f.MatchContext(context.Background(), ev); err != nil || ok {
		t.Fatalf("MatchContext = %v, %v; want false, nil", ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok, err := f.MatchContext(ctx, ev)
	if err == nil || ok {
		t.Fatalf("MatchContext(cancelled) = %v, %v; want an interruption error", ok, err)
	}
	if !strings.Contains(err.Error(), "interrupted") || crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("error = %v, want EINVALID interrupted", err)
	}
	if f.String() != `data.items.exists(x, x < 0.0)` {
		t.Errorf("String() = %q", f.String())
	}
}

// TestConcurrentMatch shares one Program between goroutines; run with -race.
func TestConcurrentMatch(t *testing.T) {
	f, err := filter.Compile(`data.amount > 1000 && extensions.region == "eu" && data.items.exists(i, i.sku == "B")`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				amount := 900 + (g*200+i)%300
				ev := order(fmt.Sprintf(`{"amount": %d, "items": [{"sku": "B"}]}`, amount))
				got, err := f.Match(ev)
				if err != nil {
					errs <- err
					return
				}
				if want := amount > 1000; got != want {
					errs <- fmt.Errorf("amount %d: Match = %v, want %v", amount, got, want)
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
