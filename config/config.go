// Package config reads crossdock's YAML configuration file: publish and
// JetStream settings, topics, subscriptions and ingress endpoints.
//
// Parse checks the whole file before it returns anything: every problem it
// finds (syntax, unknown or duplicate keys, wrong types, bad names, durations
// and sizes, dangling topic references, filters, transforms and templates
// that do not compile, malformed or missing secrets) becomes one line
// "FILE:LINE: KEY: why" of a single EINVALID error, so one run of `crossdock
// validate` shows them all. Messages never contain a secret.
//
// The values returned have their defaults applied, and are otherwise as
// written: templates such as {{subject}} and secret references such as
// ${secret:NAME} stay unresolved, for the dispatcher to expand per request,
// so that nothing built from a Config can show a resolved secret.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/crossdock/crossdock"
)

// Sizes of published events.
const (
	DefaultMaxEventSize = 1 << 20  // 1 MiB
	MaxMaxEventSize     = 64 << 20 // the largest message NATS accepts
)

// Config is a configuration file's content, with defaults applied.
type Config struct {
	Publish       Publish
	JetStream     JetStream
	Topics        []crossdock.Topic
	Subscriptions []crossdock.Subscription
	Ingress       Ingress
}

// Publish holds the settings of the publish API.
type Publish struct {
	// MaxEventSize is the largest event accepted, in bytes.
	MaxEventSize int64

	// DedupWindow is the dedup window of topics that do not set their own.
	DedupWindow time.Duration
}

// JetStream holds the settings of the embedded JetStream server.
type JetStream struct {
	// SyncAlways makes the server fsync every write instead of periodically.
	SyncAlways bool
}

// Options are the checks Parse delegates to other packages.
type Options struct {
	// CheckFilter returns an error when a subscription filter does not
	// compile; cmd/crossdock sets it to a wrapper of filter.Compile. Nil
	// skips the check.
	CheckFilter func(expr string) error

	// CheckTransform returns an error when a jq transform does not
	// compile; cmd/crossdock sets it to a wrapper of transform.Compile.
	CheckTransform func(program string) error

	// CheckURLTemplate returns an error when a destination or enrichment
	// URL is not a valid URL template (template.ParseURL).
	CheckURLTemplate func(url string) error

	// CheckHeaderTemplate returns an error when a header value is not a
	// valid template (template.Parse).
	CheckHeaderTemplate func(value string) error

	// CheckSecret returns an error, naming the secret and never its
	// value, when a referenced secret cannot be resolved.
	CheckSecret func(name string) error
}

// Load reads the configuration file at path and parses it. EINVALID when the
// file cannot be read or has problems (see Parse).
func Load(path string, opts Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, crossdock.Errorf(crossdock.EINVALID, "read configuration: %v", err)
	}
	return Parse(path, data, opts)
}

// Parse parses a configuration file's content; filename only labels the
// messages. An empty file is an empty configuration. EINVALID listing every
// problem found, one per line, as "FILE:LINE: KEY: why".
func Parse(filename string, data []byte, opts Options) (*Config, error) {
	p := &parser{file: filename, opts: opts}
	cfg := p.parse(data)
	if len(p.problems) > 0 {
		return nil, p.err()
	}
	return cfg, nil
}

// problem is one thing wrong in the file.
type problem struct {
	line int
	key  string
	msg  string
}

// parser walks one file's YAML tree, collecting problems as it goes.
type parser struct {
	file     string
	opts     Options
	problems []problem
	secrets  []string // every secret value seen, to scrub from messages
	merges   int      // mappings merged so far, against maxMerges
}

// addf records a problem at the line of node n, or at no line when n is nil.
func (p *parser) addf(n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.problems = append(p.problems, problem{line: line, key: key, msg: fmt.Sprintf(format, args...)})
}

// err returns the problems as one EINVALID error, in file order.
func (p *parser) err() error {
	sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].line < p.problems[j].line })
	lines := make([]string, 0, len(p.problems))
	seen := make(map[problem]bool)
	for _, pr := range p.problems {
		// A mapping merged into several places reports its problems once.
		if seen[pr] {
			continue
		}
		seen[pr] = true
		var b strings.Builder
		b.WriteString(p.file)
		if pr.line > 0 {
			fmt.Fprintf(&b, ":%d", pr.line)
		}
		if pr.key != "" {
			b.WriteString(": ")
			b.WriteString(pr.key)
		}
		b.WriteString(": ")
		b.WriteString(pr.msg)
		lines = append(lines, b.String())
	}
	msg := strings.Join(lines, "\n")
	// Messages are written never to quote a secret; this catches one pasted
	// where another value belongs.
	for _, s := range p.secrets {
		if len(s) >= minScrubbed {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return crossdock.Errorf(crossdock.EINVALID, "%s", msg)
}

// minScrubbed is the shortest secret scrubbed from messages: shorter ones
// would mangle ordinary words, and no message quotes a secret anyway.
const minScrubbed = 6

// parse decodes the document and walks it.
func (p *parser) parse(data []byte) *Config {
	cfg := &Config{Publish: Publish{MaxEventSize: DefaultMaxEventSize, DedupWindow: crossdock.DefaultDedupWindow}}
	root, ok := p.document(data)
	if !ok || root == nil {
		return cfg
	}
	root = resolve(root)
	if isNull(root) {
		return cfg
	}
	top := p.mapping(root, "", []string{"publish", "jetstream", "topics", "subscriptions", "ingress"})
	if top == nil {
		return cfg
	}
	p.publish(top["publish"], &cfg.Publish)
	p.jetstream(top["jetstream"], &cfg.JetStream)
	topicLines := p.topics(top["topics"], cfg)
	p.subscriptions(top["subscriptions"], cfg, topicLines)
	p.ingress(top["ingress"], &cfg.Ingress, topicLines)
	return cfg
}

// document returns the root node of the file's only YAML document, nil for
// an empty file; false after a syntax problem.
func (p *parser) document(data []byte) (root *yaml.Node, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		p.syntax(data, err)
		return nil, false
	}
	var next yaml.Node
	switch err := decode(dec, &next); {
	case err == nil:
		p.addf(&next, "", "a second YAML document: the configuration is one document, remove the '---' line")
		return nil, false
	case !errors.Is(err, io.EOF):
		p.syntax(data, err)
		return nil, false
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

// decode decodes the next document, turning a panic of the YAML library on
// malformed input into an error, so that no input crashes the caller.
func decode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(n)
}

// syntax records a YAML syntax error. The library names a line for some
// errors only, and for some of those the line before the problem; so the
// line is found by parsing ever longer prefixes of the file until one fails
// the same way.
func (p *parser) syntax(data []byte, err error) {
	msg := syntaxMessage(err)
	line := errorLine(data, msg)
	p.problems = append(p.problems, problem{line: line, msg: "invalid YAML: " + msg})
}

// syntaxMessage returns a YAML error's message without "yaml: line N: ".
func syntaxMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i > 0 && strings.HasPrefix(rest[i:], ": ") {
			return rest[i+2:]
		}
	}
	return msg
}

// errorLine returns the first line at whose end a prefix of data fails to
// parse with the message msg, or 0 when none does.
func errorLine(data []byte, msg string) int {
	var ends []int // ends[i] is the end of line i+1
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(n int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(data[:ends[n-1]]))
		for {
			var doc yaml.Node
			err := decode(dec, &doc)
			if err == nil {
				continue
			}
			return syntaxMessage(err) == msg
		}
	}
	// The prefixes that fail this way are assumed to be all those from
	// some line on: a binary search finds it in a few parses.
	lo, hi := 1, len(ends)
	if !fails(hi) {
		return 0
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// publish reads the publish section.
func (p *parser) publish(e entry, out *Publish) {
	m := p.section(e, "publish", []string{"max_event_size", "dedup_window"})
	if v, ok := p.size(m["max_event_size"], "publish.max_event_size"); ok && v != 0 {
		if v > MaxMaxEventSize {
			p.addf(m["max_event_size"].val, "publish.max_event_size", "must be at most 64MiB")
		} else {
			out.MaxEventSize = v
		}
	}
	if d, ok := p.duration(m["dedup_window"], "publish.dedup_window"); ok && d != 0 {
		out.DedupWindow = d
	}
}

// jetstream reads the jetstream section.
func (p *parser) jetstream(e entry, out *JetStream) {
	m := p.section(e, "jetstream", []string{"sync_always"})
	if b, ok := p.boolean(m["sync_always"], "jetstream.sync_always"); ok {
		out.SyncAlways = b
	}
}

// section returns the entries of an optional top-level mapping.
func (p *parser) section(e entry, key string, known []string) map[string]entry {
	if e.val == nil {
		return nil
	}
	return p.mapping(e.val, key, known)
}

// topics reads the topics list into cfg and returns the line of each topic
// name, for references from subscriptions.
func (p *parser) topics(e entry, cfg *Config) map[string]int {
	lines := make(map[string]int)
	for i, item := range p.list(e, "topics") {
		path := fmt.Sprintf("topics[%d]", i)
		m := p.mapping(item, path, []string{"name", "dedup_window", "retention"})
		if m == nil {
			continue
		}
		before := len(p.problems)
		var t crossdock.Topic
		var ok bool
		t.Name, ok = p.str(m["name"], path+".name")
		switch {
		case m["name"].val != nil && !ok:
		case t.Name == "":
			p.addf(item, path+".name", "required")
		case !crossdock.ValidTopicName(t.Name):
			p.addf(m["name"].val, path+".name", "%s is not a valid topic name: use lower-case dot-separated segments of letters, digits and '-', such as sales.order.created", quote(t.Name))
		case lines[t.Name] != 0:
			p.addf(m["name"].val, path+".name", "duplicate topic %s (first defined on line %d)", quote(t.Name), lines[t.Name])
		default:
			lines[t.Name] = m["name"].val.Line
		}
		t.DedupWindow, _ = p.duration(m["dedup_window"], path+".dedup_window")
		t.Retention, _ = p.duration(m["retention"], path+".retention")
		if len(p.problems) > before {
			continue
		}
		if t.DedupWindow == 0 {
			t.DedupWindow = cfg.Publish.DedupWindow
		}
		t = t.WithDefaults()
		if t.DedupWindow > t.Retention {
			// JetStream refuses a stream whose dedup window outlasts its events.
			if m["dedup_window"].val != nil {
				p.addf(m["dedup_window"].val, path+".dedup_window", "must not exceed the retention (%v)", t.Retention)
			} else {
				p.addf(m["retention"].val, path+".retention", "must be at least the dedup window (%v)", t.DedupWindow)
			}
			continue
		}
		if err := t.Validate(); err != nil {
			p.addf(item, path, "%s", crossdock.ErrorMessage(err))
			continue
		}
		cfg.Topics = append(cfg.Topics, t)
	}
	return lines
}
