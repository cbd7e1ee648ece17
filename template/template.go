// Package template expands the URL and header templates of destinations and
// enrichments with an event's attributes, such as
// "http://crm.local/api/accounts/{{subject}}".
//
// A placeholder names one attribute: id, source, type, subject,
// correlationid or time, or an extension as extensions.NAME. Templates see
// attributes only, not the payload: a URL chosen by the data would let
// whoever publishes an event choose where the hub sends requests, and the
// transform step is where the payload is reshaped.
//
// Expanded into a URL, each value is escaped for its place: a value in the
// path is one path segment (a "/" in it is sent as %2F), a value in the query
// is one query value. Placeholders may not appear in the scheme, the host or
// the port, so that the template, not the event, decides where the request
// goes. Expanded into a header, control characters in a value become spaces,
// so that a value can never start a new header line.
package template

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/crossdock/crossdock"
)

// MaxSize is the longest template Parse accepts, in bytes.
const MaxSize = 8 << 10

// place is where in a URL a placeholder sits, judged from the literal text
// before it.
type place int

const (
	inScheme    place = iota // before "://"
	inAuthority              // user, host and port
	inPath
	inQuery
	inFragment
)

var placeNames = [...]string{"scheme", "host", "path", "query", "fragment"}

// part is a piece of a template: literal text, or a placeholder when name
// is set.
type part struct {
	lit   string
	name  string // "subject", "extensions.region"
	ext   string // the extension's name, for extensions.NAME
	place place
}

// Template is a parsed template. It is immutable and safe for concurrent
// use.
type Template struct {
	src   string
	parts []part
	url   bool // parsed with ParseURL
}

// attributes are the placeholders besides extensions.NAME.
var attributes = map[string]bool{
	"id": true, "source": true, "type": true, "subject": true, "correlationid": true, "time": true,
}

const namesHelp = "use id, source, type, subject, correlationid, time or extensions.NAME"

// Parse parses a template: literal text with placeholders {{name}} (spaces
// inside the braces are allowed). EINVALID, naming the column (1-based, in
// bytes), for an unclosed "{{", an unknown name, or a control character.
func Parse(s string) (*Template, error) {
	if len(s) > MaxSize {
		return nil, crossdock.Errorf(crossdock.EINVALID, "template: %d bytes, more than the %d allowed", len(s), MaxSize)
	}
	if i := controlIndex(s); i >= 0 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "template %q: control character at column %d", s, i+1)
	}
	t := &Template{src: s}
	rest, off := s, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, crossdock.Errorf(crossdock.EINVALID, "template %q: the {{ at column %d is not closed with }}", s, off+i+1)
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		name := strings.TrimSpace(rest[i+2 : i+2+j])
		p := part{name: name}
		if ext, ok := strings.CutPrefix(name, "extensions."); ok && crossdock.ValidAttributeName(ext) {
			p.ext = ext
		} else if !attributes[name] {
			return nil, crossdock.Errorf(crossdock.EINVALID, "template %q: unknown name %q at column %d; %s", s, name, off+i+1, namesHelp)
		}
		t.parts = append(t.parts, p)
		n := i + 2 + j + 2
		rest, off = rest[n:], off+n
	}
	if rest != "" {
		t.parts = append(t.parts, part{lit: rest})
	}
	t.locate()
	return t, nil
}

// ParseURL parses a URL template: Parse, and the template must be an
// absolute http or https URL whose placeholders are in the path or the
// query only. EINVALID otherwise.
func ParseURL(s string) (*Template, error) {
	t, err := Parse(s)
	if err != nil {
		return nil, err
	}
	if err := t.checkURL(false); err != nil {
		return nil, err
	}
	t.url = true
	return t, nil
}

// locate sets the URL place of every placeholder from the literal text
// before it.
func (t *Template) locate() {
	var prefix strings.Builder
	for i := range t.parts {
		p := &t.parts[i]
		if p.name == "" {
			prefix.WriteString(p.lit)
			continue
		}
		p.place = placeAfter(prefix.String())
		prefix.WriteByte('x') // a value never holds a delimiter once escaped
	}
}

func placeAfter(prefix string) place {
	i := strings.Index(prefix, "://")
	if i < 0 {
		return inScheme
	}
	rest := prefix[i+3:]
	j := strings.IndexAny(rest, "/?#")
	switch {
	case j < 0:
		return inAuthority
	case strings.IndexByte(rest[j:], '#') >= 0:
		return inFragment
	case strings.IndexByte(rest[j:], '?') >= 0:
		return inQuery
	default:
		return inPath
	}
}

// checkURL reports, as EINVALID, why the template cannot be a URL template.
// Until the template is resolved, a reference such as ${secret:NAME} in the
// literal text counts as one plain character; Resolve checks again.
func (t *Template) checkURL(resolved bool) error {
	var sample strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			if !resolved {
				p.lit = withoutReferences(p.lit)
			}
			sample.WriteString(p.lit)
			continue
		}
		if p.place != inPath && p.place != inQuery {
			return crossdock.Errorf(crossdock.EINVALID, "template %q: {{%s}} is in the %s; placeholders may only be in the path or the query",
				t.src, p.name, placeNames[p.place])
		}
		sample.WriteByte('x')
	}
	u, err := url.Parse(sample.String())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return crossdock.Errorf(crossdock.EINVALID, "template %q: not an absolute http or https URL", t.src)
	}
	return nil
}

// withoutReferences replaces each ${...} in s with an x.
func withoutReferences(s string) string {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return s
		}
		s = s[:i] + "x" + s[i+j+1:]
	}
}

// Source returns the template's text as it was parsed.
func (t *Template) Source() string {
	return t.src
}

// Resolve returns a copy of the template whose literal text has passed
// through resolve, such as secret.Store.Resolve, leaving the placeholders
// alone: a resolved value is never read as a placeholder, and an event's
// value is never resolved. Error messages keep quoting the text as parsed.
// The error of resolve, or EINVALID when a resolved text holds a control
// character or, for a URL template, breaks the URL.
func (t *Template) Resolve(resolve func(string) (string, error)) (*Template, error) {
	r := &Template{src: t.src, parts: make([]part, len(t.parts)), url: t.url}
	for i, p := range t.parts {
		if p.name == "" {
			lit, err := resolve(p.lit)
			if err != nil {
				return nil, err
			}
			if controlIndex(lit) >= 0 {
				return nil, crossdock.Errorf(crossdock.EINVALID, "template %q: a resolved value holds a control character", t.src)
			}
			p.lit = lit
		}
		r.parts[i] = p
	}
	r.locate()
	if r.url {
		if err := r.checkURL(true); err != nil {
			return nil, crossdock.Errorf(crossdock.EINVALID, "template %q: once resolved, it is no longer a URL with placeholders in the path or query only", t.src)
		}
	}
	return r, nil
}

// value returns the text of a placeholder for the event.
func value(p *part, ev *crossdock.Event) string {
	if p.ext != "" {
		return ev.Extension(p.ext)
	}
	switch p.name {
	case "id":
		return ev.ID
	case "source":
		return ev.Source
	case "type":
		return ev.Type
	case "subject":
		return ev.Subject
	case "correlationid":
		return ev.CorrelationID()
	case "time":
		if ev.Time.IsZero() {
			return ""
		}
		return ev.Time.UTC().Format(time.RFC3339Nano)
	}
	return "" // Parse admits no other name
}

// URL expands the template into a URL for the event, each value escaped
// for its place. EINVALID when a placeholder is outside the path and query,
// when values make a path segment empty, "." or "..", or when the result is
// not an absolute http or https URL.
func (t *Template) URL(ev *crossdock.Event) (string, error) {
	var b strings.Builder
	b.Grow(len(t.src) + 64)
	var spans [4][2]int // where path values went; most templates have one
	inPathAt := spans[:0]
	for i := range t.parts {
		p := &t.parts[i]
		if p.name == "" {
			b.WriteString(p.lit)
			continue
		}
		v := value(p, ev)
		switch p.place {
		case inPath:
			v = url.PathEscape(v)
			inPathAt = append(inPathAt, [2]int{b.Len(), b.Len() + len(v)})
		case inQuery:
			v = url.QueryEscape(v)
		default:
			return "", crossdock.Errorf(crossdock.EINVALID, "template %q: {{%s}} is in the %s; placeholders may only be in the path or the query",
				t.src, p.name, placeNames[p.place])
		}
		b.WriteString(v)
	}
	s := b.String()
	// An escaped value holds no "/", "?" or "#", so the segment around it
	// runs from the "/" before it to the delimiter after it.
	for _, at := range inPathAt {
		from := strings.LastIndexByte(s[:at[0]], '/') + 1
		to := len(s)
		if k := strings.IndexAny(s[at[1]:], "/?#"); k >= 0 {
			to = at[1] + k
		}
		if seg := s[from:to]; seg == "" || seg == "." || seg == ".." {
			return "", crossdock.Errorf(crossdock.EINVALID, "template %q: the event's values make the path segment %q, which would change the path", t.src, seg)
		}
	}
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", crossdock.Errorf(crossdock.EINVALID, "template %q: does not expand to an absolute http or https URL", t.src)
	}
	return s, nil
}

// String expands the template for a header value: values as they are, with
// every control character (CR and LF included) replaced by a space.
func (t *Template) String(ev *crossdock.Event) string {
	var b strings.Builder
	for i := range t.parts {
		p := &t.parts[i]
		if p.name == "" {
			b.WriteString(p.lit)
			continue
		}
		v := value(p, ev)
		if controlIndex(v) < 0 {
			b.WriteString(v)
			continue
		}
		for k := 0; k < len(v); k++ {
			if c := v[k]; c < 0x20 || c == 0x7f {
				b.WriteByte(' ')
			} else {
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

// controlIndex returns the index of the first ASCII control character in s
// (tab included), or -1.
func controlIndex(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return i
		}
	}
	return -1
}

// Format prints the template as parsed for every verb, so that printing a
// Template never shows its resolved literals, which may be secrets.
func (t *Template) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "template(%q)", t.src)
}

// Expander expands one parsed template for an event, for a URL or for a
// header value.
type Expander struct {
	t   *Template
	url bool
}

// Compile parses text as a URL template (url true) or a header template,
// resolves the secret references of its literal text with resolve (nil
// leaves them as they are), and returns its Expander. The errors of
// ParseURL, Parse and Resolve.
func Compile(text string, url bool, resolve func(string) (string, error)) (*Expander, error) {
	parse := Parse
	if url {
		parse = ParseURL
	}
	t, err := parse(text)
	if err != nil {
		return nil, err
	}
	if resolve != nil {
		if t, err = t.Resolve(resolve); err != nil {
			return nil, err
		}
	}
	return &Expander{t: t, url: url}, nil
}

// Expand returns the template expanded for the event: Template.URL for a
// URL template, Template.String for a header template.
func (e *Expander) Expand(ev *crossdock.Event) (string, error) {
	if e.url {
		return e.t.URL(ev)
	}
	return e.t.String(ev), nil
}
