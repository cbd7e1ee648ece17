// Package filter compiles subscription filters written in CEL, the Common
// Expression Language, into crossdock.Filter values.
//
// A filter sees the event's attributes as variables: id, source, type,
// subject, specversion, datacontenttype and dataschema (strings), time (a
// timestamp), data (the payload) and extensions (a map of the remaining
// attributes). The expression must have type bool; it is type-checked once,
// at Compile, and the compiled Program is then evaluated for every event.
//
// The payload is decoded only when the expression reads it, and then only as
// far as it reads: a JSON object is searched for the fields the expression
// selects rather than decoded whole. JSON numbers are doubles, as in CEL's
// own JSON model; comparisons with integer literals work across the types.
package filter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/crossdock/crossdock"
)

// Limits that keep one filter from costing the dispatch loop more than a
// moment, whatever its author wrote.
const (
	// CostLimit bounds the work of one evaluation, in CEL cost units
	// (roughly one per operation, more for string and list operations in
	// proportion to their size). Typical filters cost well under 100.
	CostLimit = 1_000_000

	// MaxExpressionSize is the longest expression Compile accepts, in
	// characters.
	MaxExpressionSize = 10_000

	// interruptCheckFrequency is how many comprehension iterations pass
	// between two looks at the context given to MatchContext.
	interruptCheckFrequency = 100
)

// env is the CEL environment every filter compiles in. An Env is safe for
// concurrent use and costs a few milliseconds to build, so it is built once.
var env = mustEnv()

func mustEnv() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable("id", cel.StringType),
		cel.Variable("source", cel.StringType),
		cel.Variable("specversion", cel.StringType),
		cel.Variable("type", cel.StringType),
		cel.Variable("subject", cel.StringType),
		cel.Variable("time", cel.TimestampType),
		cel.Variable("datacontenttype", cel.StringType),
		cel.Variable("dataschema", cel.StringType),
		cel.Variable("data", cel.DynType),
		cel.Variable("extensions", cel.MapType(cel.StringType, cel.DynType)),
		cel.OptionalTypes(),
		ext.Strings(),
		cel.ParserExpressionSizeLimit(MaxExpressionSize),
	)
	if err != nil {
		// The declarations above are constant: an error here is a bug in
		// this file, found by any test run.
		panic(fmt.Sprintf("filter: build CEL environment: %v", err))
	}
	return e
}

// Program is a compiled filter. It is safe for concurrent use: one Program
// serves every goroutine delivering for its subscription.
type Program struct {
	expr string
	prg  cel.Program
}

var _ crossdock.Filter = (*Program)(nil)

// Compile type-checks a CEL filter expression and returns the filter that
// evaluates it: crossdock.MatchAll for "", else a *Program. EINVALID when the
// expression does not parse, does not type-check, or is not of type bool.
func Compile(expr string) (crossdock.Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return crossdock.MatchAll, nil
	}
	ast, iss := env.Compile(expr)
	if err := iss.Err(); err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "filter %q: %s", expr, issuesText(iss))
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		hint := ""
		if t.IsExactType(cel.DynType) {
			hint = ` (the value's type is only known per event; compare it, e.g. data.flag == true)`
		}
		return nil, crossdock.Errorf(crossdock.EINVALID, "filter %q: must be a boolean expression, but has type %s%s", expr, t, hint)
	}
	prg, err := env.Program(ast,
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(interruptCheckFrequency),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "filter %q: %v", expr, err)
	}
	return &Program{expr: expr, prg: prg}, nil
}

// issuesText renders the first compile issues on one line, "line:column:
// message" each, so that they fit in one line of a configuration report.
func issuesText(iss *cel.Issues) string {
	const shown = 3
	errs := iss.Errors()
	parts := make([]string, 0, shown+1)
	for i, e := range errs {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more", len(errs)-shown))
			break
		}
		msg := strings.ReplaceAll(e.Message, "\n", " ")
		parts = append(parts, fmt.Sprintf("%d:%d: %s", e.Location.Line(), e.Location.Column()+1, msg))
	}
	return strings.Join(parts, "; ")
}

// String returns the expression the program was compiled from.
func (p *Program) String() string {
	return p.expr
}

// Match reports whether the event passes the filter. EINVALID when the
// expression cannot be evaluated on this event, such as selecting a field the
// data does not have, or when the evaluation exceeds CostLimit.
func (p *Program) Match(ev *crossdock.Event) (bool, error) {
	out, _, err := p.prg.Eval(&activation{ev: ev})
	return p.result(out, err)
}

// MatchContext is Match that also stops, with EINVALID, when ctx is done
// while the expression iterates over a list or map.
func (p *Program) MatchContext(ctx context.Context, ev *crossdock.Event) (bool, error) {
	out, _, err := p.prg.ContextEval(ctx, &activation{ev: ev})
	return p.result(out, err)
}

func (p *Program) result(out ref.Val, err error) (bool, error) {
	if err != nil {
		return false, crossdock.Errorf(crossdock.EINVALID, "filter %q: %s", p.expr, evalErrorText(err))
	}
	b, ok := out.(types.Bool)
	if !ok {
		// The checker proved the type bool; only an unknown can get here.
		return false, crossdock.Errorf(crossdock.EINVALID, "filter %q: result is %s, not a bool", p.expr, out.Type().TypeName())
	}
	return bool(b), nil
}

func evalErrorText(err error) string {
	var ie interpreter.InterruptError
	if errors.As(err, &ie) {
		return "evaluation interrupted: " + err.Error()
	}
	return err.Error()
}

// activation presents an event to the interpreter. The interpreter asks
// only for the variables the expression uses, so an expression that does not
// mention data never has the data decoded. It asks again each time the
// expression reads a variable, inside comprehensions once per iteration, so
// the decoded data and extensions are kept for the rest of the evaluation:
// the cost limit counts a variable read as one unit and it must stay that
// cheap.
type activation struct {
	ev         *crossdock.Event
	data       ref.Val
	extensions ref.Val
}

// epoch is the time of an event without one: the zero
// google.protobuf.Timestamp.
var epoch = types.Timestamp{Time: time.Unix(0, 0).UTC()}

// ResolveName returns the value of one variable.
func (a *activation) ResolveName(name string) (any, bool) {
	ev := a.ev
	switch name {
	case "id":
		return types.String(ev.ID), true
	case "source":
		return types.String(ev.Source), true
	case "specversion":
		return types.String(ev.SpecVersion), true
	case "type":
		return types.String(ev.Type), true
	case "subject":
		return types.String(ev.Subject), true
	case "time":
		if ev.Time.IsZero() {
			return epoch, true
		}
		return types.Timestamp{Time: ev.Time}, true
	case "datacontenttype":
		return types.String(ev.DataContentType), true
	case "dataschema":
		return types.String(ev.DataSchema), true
	case "data":
		if a.data == nil {
			a.data = dataValue(ev)
		}
		return a.data, true
	case "extensions":
		if a.extensions == nil {
			a.extensions = extensionsValue(ev.Extensions)
		}
		return a.extensions, true
	}
	return nil, false
}

// Parent returns nil: an event is the only scope.
func (a *activation) Parent() interpreter.Activation {
	return nil
}

// dataValue returns the event's data as CEL sees it: JSON decoded on demand
// for JSON types, a string for text types, bytes otherwise, null when there
// is no data.
func dataValue(ev *crossdock.Event) ref.Val {
	if len(ev.Data) == 0 {
		return types.NullValue
	}
	switch {
	case crossdock.IsJSONContentType(ev.DataContentType):
		return decodeJSON(ev.Data)
	case isText(ev.DataContentType):
		return types.String(ev.Data)
	default:
		return types.Bytes(ev.Data)
	}
}

// isText reports whether a content type is text, as crossdock.Event treats
// it when encoding structured events: text/* and XML.
func isText(ct string) bool {
	ct = strings.TrimSpace(ct)
	return hasPrefixFold(ct, "text/") || hasPrefixFold(ct, "application/xml")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
