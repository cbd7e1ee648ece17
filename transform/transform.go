// Package transform reshapes events with jq programs (the gojq
// implementation) before a subscription sends them.
//
// A program sees one JSON object per event: the context attributes id,
// source, type, specversion, subject, time, datacontenttype, dataschema and
// correlationid, the payload as data, and every extension attribute at the
// top level. Its single output value, encoded as JSON, is the body sent to
// the destination.
//
// Programs are compiled once, when the configuration is loaded, and a
// program that does not compile is refused then. At delivery time a program
// that fails, produces no value or several, runs past its time limit or
// produces a body larger than its size limit returns EINVALID, which the
// dispatcher turns into a TransformError dead letter.
//
// A program cannot reach outside the event: $ENV and env are empty objects,
// input and inputs do not compile, and there is no module loader, so the
// hub's environment, where secrets live, and its files stay out of reach.
package transform

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/itchyny/gojq"

	"github.com/crossdock/crossdock"
)

// Limits applied to every program unless its fields say otherwise.
const (
	// DefaultTimeout bounds one run of a program. It is checked between
	// jq instructions, so a single built-in operation on a huge value
	// (repeating a string a billion times, multiplying enormous integers)
	// finishes before the run stops.
	DefaultTimeout = time.Second

	// DefaultMaxOutput is the largest body a program may produce, in bytes
	// of JSON: four times the default largest event.
	DefaultMaxOutput = 4 << 20

	// MaxProgramSize is the longest program Compile accepts, in bytes.
	MaxProgramSize = 64 << 10

	// maxMessage is the longest jq error message quoted in an error; the
	// rest is cut, since an error(.data) would otherwise quote the payload.
	maxMessage = 512
)

// Program is a compiled jq program. It is safe for concurrent use: one
// Program serves every goroutine delivering for its subscription.
type Program struct {
	// Timeout bounds one Apply, on top of the caller's context. Set by
	// Compile to DefaultTimeout; change it, if at all, before first use.
	Timeout time.Duration

	// MaxOutput is the largest body Apply returns, in bytes. Set by
	// Compile to DefaultMaxOutput; change it, if at all, before first use.
	MaxOutput int

	src  string
	code *gojq.Code
}

// Compile parses and compiles a jq program. EINVALID when it is empty,
// longer than MaxProgramSize, does not parse (the message gives the line and
// column), or uses a function or variable that does not exist, including
// input and inputs.
func Compile(program string) (*Program, error) {
	if strings.TrimSpace(program) == "" {
		return nil, crossdock.Errorf(crossdock.EINVALID, "transform %q: empty program", program)
	}
	if len(program) > MaxProgramSize {
		return nil, crossdock.Errorf(crossdock.EINVALID, "transform: program is %d bytes, more than the %d allowed", len(program), MaxProgramSize)
	}
	q, err := gojq.Parse(program)
	if err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "transform %q: %s", program, parseErrorText(program, err))
	}
	code, err := gojq.Compile(q, gojq.WithEnvironLoader(noEnviron))
	if err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "transform %q: %s", program, err)
	}
	return &Program{Timeout: DefaultTimeout, MaxOutput: DefaultMaxOutput, src: program, code: code}, nil
}

// noEnviron is what $ENV and env see: nothing. gojq's default is the same;
// saying it here keeps it so if that default ever changes.
func noEnviron() []string { return nil }

// parseErrorText renders a gojq parse error with the line and column
// (1-based, columns in characters) of the token it stopped at.
func parseErrorText(src string, err error) string {
	var pe *gojq.ParseError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	off := min(max(pe.Offset-len(pe.Token), 0), len(src))
	line := 1 + strings.Count(src[:off], "\n")
	col := 1 + utf8.RuneCountInString(src[strings.LastIndexByte(src[:off], '\n')+1:off])
	return fmt.Sprintf("%d:%d: %s", line, col, pe.Error())
}

// String returns the program's source.
func (p *Program) String() string {
	return p.src
}

// errTimeout is the cause of a run stopped by Program.Timeout, told apart
// from the caller's context ending.
var errTimeout = errors.New("transform timeout")

// Apply runs the program on the event and returns its output encoded as
// JSON. EINVALID when the event's JSON data does not parse, when the program
// fails (an error("...") included), produces no value or more than one, runs
// longer than Timeout, or produces more than MaxOutput bytes; the message
// carries jq's own words. When ctx ends first, the error wraps ctx's error
// and is not EINVALID: the event is not at fault.
func (p *Program) Apply(ctx context.Context, ev *crossdock.Event) ([]byte, error) {
	in, err := Input(ev)
	if err != nil {
		return nil, err
	}
	run := ctx
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		run, cancel = context.WithTimeoutCause(ctx, p.Timeout, errTimeout)
		defer cancel()
	}
	iter := p.code.RunWithContext(run, in)
	out, ok := iter.Next()
	if !ok {
		return nil, crossdock.Errorf(crossdock.EINVALID, "transform: the program produced no value; it must produce exactly one")
	}
	if err, isErr := out.(error); isErr {
		return nil, p.runError(ctx, run, err)
	}
	if second, ok := iter.Next(); ok {
		if err, isErr := second.(error); isErr {
			return nil, p.runError(ctx, run, err)
		}
		return nil, crossdock.Errorf(crossdock.EINVALID, "transform: the program produced more than one value; it must produce exactly one (wrap a stream in [...] to send an array)")
	}
	if !within(out, p.MaxOutput) {
		return nil, p.tooLarge()
	}
	body, err := gojq.Marshal(out)
	if err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "transform: encode the output: %v", err)
	}
	if p.MaxOutput > 0 && len(body) > p.MaxOutput {
		return nil, p.tooLarge()
	}
	return body, nil
}

func (p *Program) tooLarge() error {
	return crossdock.Errorf(crossdock.EINVALID, "transform: the output is larger than %d bytes", p.MaxOutput)
}

// runError turns what stopped a run into EINVALID with jq's message, or
// into the caller's context error when that context ended.
func (p *Program) runError(ctx, run context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		if ctx.Err() == nil && context.Cause(run) == errTimeout {
			return crossdock.Errorf(crossdock.EINVALID, "transform: the program ran longer than %s", p.Timeout)
		}
		return fmt.Errorf("transform: run the program: %w", err)
	}
	var halt *gojq.HaltError
	if errors.As(err, &halt) && halt.Value() == nil {
		return crossdock.Errorf(crossdock.EINVALID, "transform: the program called halt")
	}
	msg := err.Error()
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return crossdock.Errorf(crossdock.EINVALID, "transform: %s", msg)
}

// within reports whether v's JSON encoding may fit in limit bytes. It counts
// a lower bound and stops as soon as the bound passes the limit, so an
// enormous output is refused without encoding it. A limit of 0 or less
// means no limit.
func within(v any, limit int) bool {
	if limit <= 0 {
		return true
	}
	budget := limit
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case string:
			budget -= len(v) + 2
		case []any:
			budget -= len(v) + 1
			for _, e := range v {
				if budget < 0 || !walk(e) {
					return false
				}
			}
		case map[string]any:
			budget -= 2*len(v) + 1
			for k, e := range v {
				budget -= len(k) + 2
				if budget < 0 || !walk(e) {
					return false
				}
			}
		case *big.Int:
			budget -= v.BitLen() / 4 // at least a digit per 3.33 bits
		default:
			budget--
		}
		return budget >= 0
	}
	return walk(v)
}

// coreKeys are the input object's own members; an extension of the same
// name does not replace them.
var coreKeys = map[string]bool{
	"id": true, "source": true, "type": true, "specversion": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, "correlationid": true, "data": true,
}

// Input returns the object a program sees for the event: the context
// attributes (null when an optional one is absent), time as an RFC 3339
// string in UTC, correlationid (the event id when the event has none), data
// decoded from JSON (a string for text, standard base64 for other bytes, null
// when absent), and every extension at the top level unless it would shadow
// one of those. EINVALID when JSON data does not parse.
func Input(ev *crossdock.Event) (map[string]any, error) {
	in := make(map[string]any, len(coreKeys)+len(ev.Extensions))
	for name, v := range ev.Extensions {
		if !coreKeys[name] {
			in[name] = extensionValue(v)
		}
	}
	in["id"] = ev.ID
	in["source"] = ev.Source
	in["type"] = ev.Type
	in["specversion"] = ev.SpecVersion
	in["subject"] = optional(ev.Subject)
	in["time"] = nil
	if !ev.Time.IsZero() {
		in["time"] = ev.Time.UTC().Format(time.RFC3339Nano)
	}
	in["datacontenttype"] = optional(ev.DataContentType)
	in["dataschema"] = optional(ev.DataSchema)
	in["correlationid"] = ev.CorrelationID()
	data, err := decodeData(ev)
	if err != nil {
		return nil, err
	}
	in["data"] = data
	return in, nil
}

func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// extensionValue converts an extension to one of the types gojq computes
// with (it has no int64).
func extensionValue(v any) any {
	switch v := v.(type) {
	case nil, string, bool, float64, json.Number:
		return v
	case int:
		return v
	case int64:
		if v >= math.MinInt && v <= math.MaxInt {
			return int(v)
		}
		return big.NewInt(v)
	default:
		return fmt.Sprint(v)
	}
}

func decodeData(ev *crossdock.Event) (any, error) {
	if len(ev.Data) == 0 {
		return nil, nil
	}
	switch {
	case crossdock.IsJSONContentType(ev.DataContentType):
		v, err := decodeJSON(ev.Data)
		if err != nil {
			return nil, crossdock.Errorf(crossdock.EINVALID, "transform: data is not valid JSON: %v", err)
		}
		return v, nil
	case isText(ev.DataContentType):
		return string(ev.Data), nil
	default:
		return base64.StdEncoding.EncodeToString(ev.Data), nil
	}
}

// isText reports whether data of this content type is text, as the root
// package's structured encoding decides it.
func isText(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(ct))
	return strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "application/xml")
}
