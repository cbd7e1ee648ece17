package config

import (
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
	"gopkg.in/yaml.v3"

	"github.com/crossdock/crossdock"
)

// refOpen starts a secret reference, ${secret:NAME}.
const refOpen = "${secret:"

// maxSecretName is the longest secret name, as the secret package has it.
const maxSecretName = 128

// reference is one ${secret:NAME} in a value.
type reference struct {
	start, end int // value[start:end] is the whole reference
	name       string
}

// references returns the secret references in the value of node n, at key;
// false after reporting a malformed one. The syntax is the secret package's:
// there is no escape, so every "${secret:" must start a valid reference.
func (p *parser) references(n *yaml.Node, key, value string) ([]reference, bool) {
	var refs []reference
	for off := 0; ; {
		i := strings.Index(value[off:], refOpen)
		if i < 0 {
			return refs, true
		}
		start := off + i
		nameAt := start + len(refOpen)
		j := strings.IndexByte(value[nameAt:], '}')
		if j < 0 || !validSecretName(value[nameAt:nameAt+j]) {
			p.addf(n, key, "malformed secret reference at column %d: write ${secret:NAME} with NAME of lower-case letters, digits, _ and - (at most %d)", start+1, maxSecretName)
			return nil, false
		}
		refs = append(refs, reference{start: start, end: nameAt + j + 1, name: value[nameAt : nameAt+j]})
		off = nameAt + j + 1
	}
}

// checkSecrets reports each referenced secret that CheckSecret refuses,
// once per value. The hook's messages name a secret, never its value.
func (p *parser) checkSecrets(n *yaml.Node, key string, refs []reference) {
	if p.opts.CheckSecret == nil {
		return
	}
	seen := make(map[string]bool)
	for _, r := range refs {
		if seen[r.name] {
			continue
		}
		seen[r.name] = true
		if err := p.opts.CheckSecret(r.name); err != nil {
			p.addf(n, key, "%s", err.Error())
		}
	}
}

// secretValue checks a value that holds a credential written out or
// references to secrets; one written out is remembered, to be scrubbed
// from messages.
func (p *parser) secretValue(n *yaml.Node, key, value string) {
	if !strings.Contains(value, refOpen) {
		p.secrets = append(p.secrets, value)
		return
	}
	if refs, ok := p.references(n, key, value); ok {
		p.checkSecrets(n, key, refs)
	}
}

func validSecretName(name string) bool {
	if name == "" || len(name) > maxSecretName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// urlTemplate checks a URL that may hold placeholders ({{subject}}) and
// secret references. The URL is never quoted: it may carry credentials.
func (p *parser) urlTemplate(n *yaml.Node, key, raw string) {
	const help = "must be an absolute http or https URL, such as https://erp.example.com/orders"
	if !validURL(withoutTemplates(raw)) {
		p.addf(n, key, help)
		return
	}
	if p.opts.CheckURLTemplate != nil {
		if err := p.opts.CheckURLTemplate(raw); err != nil {
			p.addf(n, key, "invalid URL template: %s", templateMessage(raw, err))
			return
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if strings.Contains(raw, refOpen) {
			p.addf(n, key, "secret references may stand in the path or the query only, such as https://erp.example.com/orders?key=${secret:erp-key}")
		} else {
			p.addf(n, key, "placeholders may stand in the path or the query only, such as https://erp.example.com/orders/{{subject}}")
		}
		return
	}
	if pw, ok := u.User.Password(); ok {
		p.secrets = append(p.secrets, pw)
	}
	if refs, ok := p.references(n, key, raw); ok {
		p.checkSecrets(n, key, refs)
	}
}

// withoutTemplates returns s with each placeholder {{...}} and each
// reference ${...} replaced by an x, to check the URL around them.
func withoutTemplates(s string) string {
	for _, delim := range [][2]string{{"{{", "}}"}, {"${", "}"}} {
		var b strings.Builder
		for {
			i := strings.Index(s, delim[0])
			if i < 0 {
				break
			}
			j := strings.Index(s[i:], delim[1])
			if j < 0 {
				break
			}
			b.WriteString(s[:i])
			b.WriteByte('x')
			s = s[i+j+len(delim[1]):]
		}
		b.WriteString(s)
		s = b.String()
	}
	return s
}

// templateMessage returns a template error's message without the template,
// which may hold a credential.
func templateMessage(src string, err error) string {
	msg := crossdock.ErrorMessage(err)
	msg = strings.TrimPrefix(msg, fmt.Sprintf("template %q: ", src))
	return strings.TrimPrefix(msg, "template: ")
}

// reservedHeaders are set by the hub on every request; configuring them
// would break the request or its signature.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"webhook-id": true, "webhook-timestamp": true, "webhook-signature": true,
}

// headers reads a mapping of header names to values: names are HTTP
// tokens, unique regardless of case; values are templates that may hold
// secret references. Merge keys ("<<: *auth") share headers between
// mappings; the mapping's own headers win.
func (p *parser) headers(e entry, path string) map[string]string {
	if e.val == nil || isNull(resolve(e.val)) {
		return nil
	}
	own, merged := p.headerEntries(e.val, path, 0)
	out := make(map[string]string)
	first := make(map[string]*yaml.Node) // lower-case name → the key that set it
	for i, he := range append(own, merged...) {
		name := he.key.Value
		lower := strings.ToLower(name)
		if prev := first[lower]; prev != nil {
			if i < len(own) {
				p.addf(he.key, joinPath(path, name), "duplicate header (first set as %q on line %d)", prev.Value, prev.Line)
			}
			continue
		}
		first[lower] = he.key
		key := joinPath(path, name)
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			p.addf(he.key, path, "%s is not a valid header name: use letters, digits and !#$%%&'*+-.^_`|~", quote(name))
			continue
		case reservedHeaders[lower]:
			p.addf(he.key, key, "is set by the hub and cannot be configured")
			continue
		}
		value, ok := p.str(he, key)
		if !ok {
			continue
		}
		out[name] = value
		if sensitiveHeader(lower) && !strings.Contains(value, refOpen) {
			p.secrets = append(p.secrets, value)
		}
		if p.opts.CheckHeaderTemplate != nil {
			if err := p.opts.CheckHeaderTemplate(value); err != nil {
				p.addf(he.val, key, "invalid template: %s", templateMessage(value, err))
				continue
			}
		}
		if refs, ok := p.references(he.val, key, value); ok {
			p.checkSecrets(he.val, key, refs)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// headerEntries returns the entries of a headers mapping: its own, in file
// order, and those of the mappings it merges.
func (p *parser) headerEntries(n *yaml.Node, path string, depth int) (own, merged []entry) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.addf(n, path, "must be a mapping of header names to values, not %s", describe(n))
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.addf(k, path, "keys must be strings, not %s", describe(k))
			continue
		}
		if k.ShortTag() != "!!merge" {
			own = append(own, entry{key: k, val: v})
			continue
		}
		if depth == maxMergeDepth {
			p.addf(v, joinPath(path, "<<"), "merge keys nested too deeply")
			continue
		}
		v = resolve(v)
		items := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			items = v.Content
		}
		for _, item := range items {
			if item = resolve(item); item.Kind != yaml.MappingNode {
				p.addf(item, joinPath(path, "<<"), "must be a mapping or a list of mappings, not %s", describe(item))
				continue
			}
			if !p.mergeAllowed(item, path) {
				return own, merged
			}
			o, m := p.headerEntries(item, path, depth+1)
			merged = append(append(merged, o...), m...)
		}
	}
	return own, merged
}

// sensitiveHeader reports whether a header, by its lower-case name, likely
// carries a credential, whose value is then scrubbed from messages.
func sensitiveHeader(lower string) bool {
	if lower == "cookie" {
		return true
	}
	for _, w := range []string{"auth", "key", "token", "secret", "password", "signature"} {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}
