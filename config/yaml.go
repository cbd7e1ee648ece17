package config

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// entry is one key of a mapping and its value; both nil when absent.
type entry struct {
	key *yaml.Node
	val *yaml.Node
}

// maxMergeDepth bounds merge keys ("<<") that merge mappings that merge
// others, which also stops a mapping merged into itself.
const maxMergeDepth = 8

// maxMerges bounds the mappings merged in one file, counting each time a
// mapping is merged: aliases can make a few lines merge millions of times.
const maxMerges = 10000

// mergeAllowed counts one more merged mapping and reports whether the file
// is still within maxMerges, reporting the first time it is not at node n.
func (p *parser) mergeAllowed(n *yaml.Node, path string) bool {
	p.merges++
	if p.merges == maxMerges+1 {
		p.addf(n, joinPath(path, "<<"), "more than %d merged mappings in the file: merge fewer aliases", maxMerges)
	}
	return p.merges <= maxMerges
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// mapping returns the entries of the mapping node n, at key path, reporting
// keys that are not strings, repeated or not among known. A null node is an
// empty mapping; anything else that is not a mapping is a problem, and nil.
func (p *parser) mapping(n *yaml.Node, path string, known []string) map[string]entry {
	return p.mergedMapping(n, path, known, 0)
}

func (p *parser) mergedMapping(n *yaml.Node, path string, known []string, depth int) map[string]entry {
	n = resolve(n)
	if isNull(n) {
		return map[string]entry{}
	}
	if n.Kind != yaml.MappingNode {
		p.addf(n, path, "must be a mapping of %s, not %s", strings.Join(known, ", "), describe(n))
		return nil
	}
	out := make(map[string]entry)
	var merged []map[string]entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.addf(k, path, "keys must be strings, not %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, p.merge(v, path, known, depth)...)
			continue
		}
		name := k.Value
		keyPath := joinPath(path, name)
		if first, dup := out[name]; dup {
			p.addf(k, keyPath, "duplicate key (first set on line %d)", first.key.Line)
			continue
		}
		if !contains(known, name) {
			if guess := suggest(name, known); guess != "" {
				p.addf(k, keyPath, "unknown key (did you mean %q?)", guess)
			} else {
				p.addf(k, keyPath, "unknown key (expected one of: %s)", strings.Join(known, ", "))
			}
			// Remember it, so that a repeat is not reported as unknown twice.
			out[name] = entry{key: k}
			continue
		}
		out[name] = entry{key: k, val: v}
	}
	for name, e := range out {
		if e.val == nil {
			delete(out, name)
		}
	}
	// Keys set in the mapping itself win over merged ones, and among merged
	// mappings the first wins, as the YAML merge key specifies.
	for _, m := range merged {
		for name, e := range m {
			if _, set := out[name]; !set {
				out[name] = e
			}
		}
	}
	return out
}

// merge returns the mappings a merge key's value names: one mapping or a
// list of them.
func (p *parser) merge(v *yaml.Node, path string, known []string, depth int) []map[string]entry {
	if depth == maxMergeDepth {
		p.addf(v, joinPath(path, "<<"), "merge keys nested too deeply")
		return nil
	}
	v = resolve(v)
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
	}
	var out []map[string]entry
	for _, item := range items {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			p.addf(item, joinPath(path, "<<"), "must be a mapping or a list of mappings, not %s", describe(item))
			continue
		}
		if !p.mergeAllowed(item, path) {
			return out
		}
		if m := p.mergedMapping(item, path, known, depth+1); m != nil {
			out = append(out, m)
		}
	}
	return out
}

// list returns the items of an optional list.
func (p *parser) list(e entry, path string) []*yaml.Node {
	if e.val == nil {
		return nil
	}
	n := resolve(e.val)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.addf(n, path, "must be a list, not %s", describe(n))
		return nil
	}
	return n.Content
}

// str returns an optional string value; a number or boolean counts as its
// text, null as "".
func (p *parser) str(e entry, path string) (string, bool) {
	if e.val == nil {
		return "", false
	}
	n := resolve(e.val)
	switch {
	case isNull(n):
		return "", true
	case n.Kind == yaml.ScalarNode:
		return n.Value, true
	}
	p.addf(n, path, "must be a string, not %s", describe(n))
	return "", false
}

// integer returns an optional integer value.
func (p *parser) integer(e entry, path string) (int64, bool) {
	n, ok := p.scalar(e)
	if !ok {
		return 0, false
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		p.addf(n, path, "must be an integer, not %s", describe(n))
		return 0, false
	}
	return v, true
}

// number returns an optional finite number.
func (p *parser) number(e entry, path string) (float64, bool) {
	n, ok := p.scalar(e)
	if !ok {
		return 0, false
	}
	var v float64
	tag := n.ShortTag()
	if n.Kind != yaml.ScalarNode || tag != "!!int" && tag != "!!float" || n.Decode(&v) != nil {
		p.addf(n, path, "must be a number, not %s", describe(n))
		return 0, false
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		p.addf(n, path, "must be a finite number")
		return 0, false
	}
	return v, true
}

// boolean returns an optional true or false.
func (p *parser) boolean(e entry, path string) (bool, bool) {
	n, ok := p.scalar(e)
	if !ok {
		return false, false
	}
	var v bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		p.addf(n, path, "must be true or false, not %s", describe(n))
		return false, false
	}
	return v, true
}

// duration returns an optional non-negative duration.
func (p *parser) duration(e entry, path string) (time.Duration, bool) {
	n, ok := p.scalar(e)
	if !ok {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode {
		p.addf(n, path, "must be a duration such as 30s, 5m or 7d, not %s", describe(n))
		return 0, false
	}
	d, err := parseDuration(n.Value)
	switch {
	case err != nil:
		p.addf(n, path, "invalid duration %s: use a number with a unit (ms, s, m, h or d), such as 30s, 5m, 1h30m or 7d", quote(n.Value))
		return 0, false
	case d < 0:
		p.addf(n, path, "must not be negative")
		return 0, false
	}
	return d, true
}

// size returns an optional non-negative size in bytes.
func (p *parser) size(e entry, path string) (int64, bool) {
	n, ok := p.scalar(e)
	if !ok {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode {
		p.addf(n, path, "must be a size such as 1MiB, not %s", describe(n))
		return 0, false
	}
	v, err := parseSize(n.Value)
	switch {
	case err != nil:
		p.addf(n, path, "invalid size %s: use a number of bytes, optionally with a unit (B, KB, MB, KiB or MiB), such as 1MiB", quote(n.Value))
		return 0, false
	case v < 0:
		p.addf(n, path, "must not be negative")
		return 0, false
	}
	return v, true
}

// scalar returns an entry's value node unless it is absent or null.
func (p *parser) scalar(e entry) (*yaml.Node, bool) {
	if e.val == nil {
		return nil, false
	}
	n := resolve(e.val)
	if isNull(n) {
		return nil, false
	}
	return n, true
}

// parseDuration parses a Go duration, also accepting a leading number of
// days: "7d", "1d12h".
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	i := 0
	for i < len(body) && body[i] >= '0' && body[i] <= '9' {
		i++
	}
	if i == 0 || i == len(body) || body[i] != 'd' {
		return time.ParseDuration(s)
	}
	days, err := strconv.ParseInt(body[:i], 10, 64)
	if err != nil || days > int64(math.MaxInt64/(24*time.Hour)) {
		return 0, fmt.Errorf("duration %q out of range", s)
	}
	d := time.Duration(days) * 24 * time.Hour
	if rest := body[i+1:]; rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		r, err := time.ParseDuration(rest)
		if err != nil || r > math.MaxInt64-d {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

// sizeUnits maps each unit, in lower case, to its bytes.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1000, "mb": 1000 * 1000,
	"kib": 1 << 10, "mib": 1 << 20,
}

// parseSize parses a whole number of bytes with an optional unit: "1MiB",
// "512 KB", "1048576".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	i := 0
	for i < len(body) && body[i] >= '0' && body[i] <= '9' {
		i++
	}
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(body[i:]))]
	if i == 0 || !ok {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	n, err := strconv.ParseInt(body[:i], 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, fmt.Errorf("size %q out of range", s)
	}
	if neg {
		return -n * unit, nil
	}
	return n * unit, nil
}

// describe names a node's kind and, for a scalar, its value, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return "the string " + quote(n.Value)
		case "!!int", "!!float":
			return "the number " + quote(n.Value)
		case "!!bool":
			return n.Value
		}
		return "a value tagged " + n.ShortTag()
	}
	return "an empty document"
}

// quote quotes a value for a message, cut short when long. A value that
// looks like a signing secret is never shown, whichever key it was set on.
func quote(s string) string {
	const max = 60
	if strings.HasPrefix(strings.TrimSpace(s), "whsec_") {
		return `"whsec_..." (not shown)`
	}
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

func joinPath(path, key string) string {
	if strings.HasPrefix(key, "whsec_") {
		key = "(key not shown)"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the candidate closest to s, if it is close enough to be
// a likely typo, else "".
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), c); d < bestDist || d == bestDist && c < best {
			best, bestDist = c, d
		}
	}
	if best == "" || bestDist > 2 || bestDist >= len(s) {
		return ""
	}
	return best
}

// editDistance returns the Levenshtein distance between a and b, in bytes.
// Keys are short; beyond 64 bytes it gives up and returns a large number.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt32
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// secretHelp says what a signing secret looks like, without showing one.
const secretHelp = `must be "whsec_" followed by the base64 of 24 to 64 random bytes, or a reference ${secret:NAME}; ` +
	`make one with: echo "whsec_$(openssl rand -base64 32)"`

// validSecret reports whether s is a Standard Webhooks signing secret.
func validSecret(s string) bool {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && len(key) >= 24 && len(key) <= 64
}
