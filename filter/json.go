package filter

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// maxDepth bounds the nesting of JSON data, as encoding/json does, so that a
// deeply nested payload cannot exhaust the stack of a recursive comparison.
const maxDepth = 10_000

// decodeJSON returns the CEL value of a JSON text: an error value when the
// text is not valid JSON, else null, bool, double, string, a list, or a
// jsonObject that decodes its members only when they are asked for.
//
// The whole text is validated first, so that an invalid payload fails every
// filter that reads data the same way, whichever field it reads; for an
// object, validating is indexing its members, so that a field selection
// costs no second pass.
func decodeJSON(b []byte) ref.Val {
	start := skipSpace(b, 0)
	end := len(b)
	for end > start && isSpace(b[end-1]) {
		end--
	}
	b = b[start:end]
	if len(b) == 0 {
		return types.NewErr("data is not valid JSON: no value")
	}
	if b[0] == '{' {
		return newObject(b)
	}
	n, err := skipValue(b, 0)
	if err == nil && n != len(b) {
		err = syntaxError("text after the value")
	}
	if err != nil {
		return types.NewErr("data is not valid JSON: %v", err)
	}
	return jsonValue(b)
}

// jsonValue returns the CEL value of one valid JSON value that fills b.
func jsonValue(b []byte) ref.Val {
	switch b[0] {
	case '{':
		return &jsonObject{raw: b}
	case '[':
		return jsonArray(b)
	case '"':
		return types.String(jsonString(b))
	case 't':
		return types.True
	case 'f':
		return types.False
	case 'n':
		return types.NullValue
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !isRangeError(err) {
		return types.NewErr("data: number %s: %v", b, err)
	}
	return types.Double(f)
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// jsonString returns the text of a valid JSON string literal, quotes
// included in b.
func jsonString(b []byte) string {
	inner := b[1 : len(b)-1]
	plain := utf8.Valid(inner)
	for i := 0; plain && i < len(inner); i++ {
		plain = inner[i] != '\\'
	}
	if plain {
		return string(inner)
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		// Unreachable for validated input; keep the raw text rather than fail.
		return string(inner)
	}
	return s
}

// jsonArray decodes one level of a valid JSON array: its elements become
// values, objects among them still lazy.
func jsonArray(b []byte) ref.Val {
	var elems []ref.Val
	i := skipSpace(b, 1)
	for i < len(b) && b[i] != ']' {
		end, err := skipValue(b, i)
		if err != nil {
			return types.NewErr("data is not valid JSON: %v", err)
		}
		elems = append(elems, jsonValue(b[i:end]))
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return types.NewRefValList(types.DefaultTypeAdapter, elems)
}

// jsonObject is a JSON object decoded on demand. When first used it indexes
// where its members are, validating its text on the way; a field selection
// such as data.amount then decodes only the member it returns. Operations
// that need every member (iteration, equality, size, conversion) decode one
// level into an ordinary CEL map.
//
// Members found are remembered, because a comprehension selects the same
// field once per iteration. After maxLookups distinct names the object is
// decoded instead, so that selecting many distinct fields of a large object
// cannot cost a search each. A jsonObject belongs to one evaluation, so it
// needs no locking.
type jsonObject struct {
	raw     []byte
	spans   []span
	buf     [16]span // backs spans for objects of up to 16 members
	indexed bool
	seen    [maxLookups]member
	nseen   int
	full    traits.Mapper
}

// span locates one member in jsonObject.raw: its name's literal, quotes
// included, at [k0:k1] and its value at [v0:v1].
type span struct{ k0, k1, v0, v1 int32 }

// maxLookups is how many distinct fields of one object are searched for
// before the object is decoded whole.
const maxLookups = 4

// member is the outcome of looking up one field.
type member struct {
	key   string
	val   ref.Val
	found bool
}

var _ traits.Mapper = (*jsonObject)(nil)

// newObject returns the object whose text is b, indexed and so validated.
func newObject(b []byte) ref.Val {
	o := &jsonObject{raw: b}
	if err := o.index(); err != nil {
		return types.NewErr("data is not valid JSON: %v", err)
	}
	return o
}

// index records where each member is, checking the object's grammar.
func (o *jsonObject) index() error {
	if o.indexed {
		return nil
	}
	b := o.raw
	if len(b) > math.MaxInt32 {
		return syntaxError("object too large")
	}
	o.spans = o.buf[:0]
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return syntaxError("expected a member name")
			}
			k0 := i
			k1, err := skipString(b, i)
			if err != nil {
				return err
			}
			i = skipSpace(b, k1)
			if i >= len(b) || b[i] != ':' {
				return syntaxError("expected ':' after a member name")
			}
			v0 := skipSpace(b, i+1)
			v1, err := skipValue(b, v0)
			if err != nil {
				return err
			}
			o.spans = append(o.spans, span{int32(k0), int32(k1), int32(v0), int32(v1)})
			i = skipSpace(b, v1)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return syntaxError("expected ',' or '}' after a member")
		}
	}
	if i != len(b) {
		return syntaxError("text after the value")
	}
	o.indexed = true
	return nil
}

// lookup returns the value of the member named key; when a name repeats, the
// last one wins, as in encoding/json.
func (o *jsonObject) lookup(key string) (ref.Val, bool) {
	if err := o.index(); err != nil {
		return types.NewErr("data is not valid JSON: %v", err), false
	}
	for i := len(o.spans) - 1; i >= 0; i-- {
		sp := o.spans[i]
		if keyIs(o.raw[sp.k0:sp.k1], key) {
			return jsonValue(o.raw[sp.v0:sp.v1]), true
		}
	}
	return nil, false
}

// keyIs reports whether a member name's literal text spells key.
func keyIs(lit []byte, key string) bool {
	inner := lit[1 : len(lit)-1]
	if string(inner) == key {
		return true
	}
	for _, c := range inner {
		if c == '\\' {
			return jsonString(lit) == key
		}
	}
	return false
}

// decoded returns the object decoded one level into a CEL map.
func (o *jsonObject) decoded() traits.Mapper {
	if o.full != nil {
		return o.full
	}
	m := make(map[ref.Val]ref.Val)
	// Every object reachable from data was validated with its parent, so
	// indexing cannot fail here; if it did, the map would stay empty.
	if o.index() == nil {
		for _, sp := range o.spans {
			m[types.String(jsonString(o.raw[sp.k0:sp.k1]))] = jsonValue(o.raw[sp.v0:sp.v1])
		}
	}
	o.full = types.NewRefValMap(types.DefaultTypeAdapter, m)
	return o.full
}

// Find returns the member named by a string key; other keys never match.
func (o *jsonObject) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok || o.full != nil || o.nseen == maxLookups {
		return o.decoded().Find(key)
	}
	for _, m := range o.seen[:o.nseen] {
		if m.key == string(k) {
			return m.val, m.found
		}
	}
	v, found := o.lookup(string(k))
	o.seen[o.nseen] = member{key: string(k), val: v, found: found}
	o.nseen++
	return v, found
}

// Get returns the member named key, or a "no such key" error.
func (o *jsonObject) Get(key ref.Val) ref.Val {
	v, found := o.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

// Contains reports whether the object has a member named key.
func (o *jsonObject) Contains(key ref.Val) ref.Val {
	v, found := o.Find(key)
	if !found && v != nil {
		return v
	}
	return types.Bool(found)
}

// Iterator returns an iterator over the member names.
func (o *jsonObject) Iterator() traits.Iterator { return o.decoded().Iterator() }

// Size returns the number of distinct member names.
func (o *jsonObject) Size() ref.Val { return o.decoded().Size() }

// ConvertToNative converts the decoded map to a Go value of type t.
func (o *jsonObject) ConvertToNative(t reflect.Type) (any, error) {
	return o.decoded().ConvertToNative(t)
}

// ConvertToType converts the decoded map to the CEL type t.
func (o *jsonObject) ConvertToType(t ref.Type) ref.Val { return o.decoded().ConvertToType(t) }

// Equal compares the decoded map with other.
func (o *jsonObject) Equal(other ref.Val) ref.Val { return o.decoded().Equal(other) }

// Type returns the CEL map type.
func (o *jsonObject) Type() ref.Type { return types.MapType }

// Value returns the decoded map's Go value.
func (o *jsonObject) Value() any { return o.decoded().Value() }

// extensionAdapter turns extension values into CEL values: the JSON numbers
// that crossdock.Event keeps as json.Number become doubles.
type extensionAdapter struct{}

// NativeToValue returns the CEL value of one extension value.
func (extensionAdapter) NativeToValue(v any) ref.Val {
	if n, ok := v.(json.Number); ok {
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil && !isRangeError(err) {
			return types.NewErr("extension value %s is not a number", n)
		}
		if math.IsNaN(f) {
			return types.NewErr("extension value %s is not a number", n)
		}
		return types.Double(f)
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

var noExtensions = types.NewStringInterfaceMap(extensionAdapter{}, map[string]any{})

// extensionsValue returns the event's extensions as a CEL map(string, dyn).
func extensionsValue(m map[string]any) ref.Val {
	if len(m) == 0 {
		return noExtensions
	}
	return types.NewStringInterfaceMap(extensionAdapter{}, m)
}

// A syntaxError says why a JSON text is not valid.
type syntaxError string

func (e syntaxError) Error() string { return string(e) }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value starting at b[i],
// checking its grammar and depth without decoding it.
func skipValue(b []byte, i int) (int, error) {
	var buf [32]byte
	stack := buf[:0] // the open containers, '{' or '['
	for {
		// A value starts at i.
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, syntaxError("unexpected end, expected a value")
		}
		var err error
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(stack) == maxDepth {
				return 0, syntaxError("nested too deeply")
			}
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closer {
				i++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if i, err = skipMemberName(b, i); err != nil {
					return 0, err
				}
			}
			continue
		case c == '"':
			i, err = skipString(b, i)
		case c == 't':
			i, err = skipLiteral(b, i, "true")
		case c == 'f':
			i, err = skipLiteral(b, i, "false")
		case c == 'n':
			i, err = skipLiteral(b, i, "null")
		case c == '-' || c >= '0' && c <= '9':
			i, err = skipNumber(b, i)
		default:
			return 0, syntaxError("invalid character " + strconv.QuoteRune(rune(c)) + ", expected a value")
		}
		if err != nil {
			return 0, err
		}
		// A value ended at i: close containers until one expects another value.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, syntaxError("unexpected end, expected ',' or a closing bracket")
			}
			top := stack[len(stack)-1]
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				if top == '{' {
					if i, err = skipMemberName(b, i); err != nil {
						return 0, err
					}
				}
				break
			}
			if top == '{' && b[i] == '}' || top == '[' && b[i] == ']' {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			return 0, syntaxError("invalid character " + strconv.QuoteRune(rune(b[i])) + ", expected ',' or a closing bracket")
		}
	}
}

// skipMemberName returns the position after `"name":` starting at b[i].
func skipMemberName(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, syntaxError("expected a member name")
	}
	i, err := skipString(b, i)
	if err != nil {
		return 0, err
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, syntaxError("expected ':' after a member name")
	}
	return i + 1, nil
}

// stringStop marks the bytes that end a run of plain string content: the
// closing quote, an escape, and control characters, which JSON forbids.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// skipString returns the end of the string literal starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		for i < len(b) && !stringStop[b[i]] {
			i++
		}
		if i == len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c < 0x20:
			return 0, syntaxError("control character in a string")
		case c == '\\':
			i++
			if i >= len(b) {
				return 0, syntaxError("unexpected end in a string")
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return 0, syntaxError("unexpected end in a string")
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, syntaxError("invalid \\u escape in a string")
					}
				}
				i += 4
			default:
				return 0, syntaxError("invalid escape in a string")
			}
		}
	}
	return 0, syntaxError("unexpected end in a string")
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, syntaxError("invalid literal, expected " + lit)
	}
	return i + len(lit), nil
}

// skipNumber returns the end of the number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, error) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i, _ = digits(i)
	default:
		return 0, syntaxError("invalid number")
	}
	var ok bool
	if i < len(b) && b[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return 0, syntaxError("invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return 0, syntaxError("invalid number")
		}
	}
	return i, nil
}
