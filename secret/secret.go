// Package secret resolves secret references, ${secret:NAME}, in
// configuration text, notices when a secret changes, and keeps resolved
// values out of log lines and error messages.
//
// A value comes from the environment variable CROSSDOCK_SECRET_NAME (the
// name upper-cased, "-" spelled "_") or else from the file NAME in a secrets
// directory, such as a mounted Kubernetes secret or Docker secret. Error
// messages name a secret, never its value; Redact and the slog helpers
// replace every value the Store has resolved with [secret:NAME].
package secret

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crossdock/crossdock"
)

// Reference syntax and sources.
const (
	// EnvPrefix starts the environment variable that holds a secret.
	EnvPrefix = "CROSSDOCK_SECRET_"

	// MaxNameLength is the longest secret name.
	MaxNameLength = 128

	// MinRedacted is the shortest value Redact replaces: a shorter one
	// would mangle ordinary words in every log line. Resolve warns about
	// a secret this short, once.
	MinRedacted = 6

	// DefaultInterval is how often Watch looks at the secrets directory.
	DefaultInterval = time.Second

	// maxFileSize bounds a secret file; a larger one is not a secret.
	maxFileSize = 1 << 20

	refOpen = "${secret:"
)

// Store resolves secret references. Its zero value reads the environment
// only; it is safe for concurrent use.
type Store struct {
	// Dir is the secrets directory, one file per secret named after it; ""
	// for none.
	Dir string

	// Env looks up an environment variable; nil means os.LookupEnv.
	Env func(string) (string, bool)

	// Interval is how often Watch looks at Dir; 0 means DefaultInterval.
	Interval time.Duration

	// Logger receives warnings (a secret too short to redact, a secret
	// file that cannot be read while watching); nil discards them.
	Logger *slog.Logger

	mu       sync.RWMutex
	known    map[string][]string  // name → every value resolved, for Redact
	files    map[string]fileState // name → the file as Value last read it, for Watch
	warned   map[string]bool
	replacer *strings.Replacer // built from known on demand; nil when stale
}

// ValidName reports whether name can be a secret's name: 1 to
// MaxNameLength lower-case letters, digits, "_" or "-".
func ValidName(name string) bool {
	if name == "" || len(name) > MaxNameLength {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// EnvName returns the environment variable that holds the named secret.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// reference is one ${secret:NAME} found in a text.
type reference struct {
	start, end int // text[start:end] is the whole reference
	name       string
}

// scan finds every reference in text. EINVALID, naming the column, for a
// "${secret:" that does not continue with a valid name and "}".
func scan(text string) ([]reference, error) {
	var refs []reference
	for off := 0; ; {
		i := strings.Index(text[off:], refOpen)
		if i < 0 {
			return refs, nil
		}
		start := off + i
		nameAt := start + len(refOpen)
		j := strings.IndexByte(text[nameAt:], '}')
		if j < 0 || !ValidName(text[nameAt:nameAt+j]) {
			return nil, crossdock.Errorf(crossdock.EINVALID,
				"malformed secret reference at column %d: write ${secret:NAME} with NAME of lower-case letters, digits, _ and - (at most %d)",
				start+1, MaxNameLength)
		}
		refs = append(refs, reference{start: start, end: nameAt + j + 1, name: text[nameAt : nameAt+j]})
		off = nameAt + j + 1
	}
}

// References returns the names of the well-formed secret references in
// text, each once, in order of first appearance.
func References(text string) []string {
	var names []string
	for off := 0; ; {
		i := strings.Index(text[off:], refOpen)
		if i < 0 {
			return names
		}
		nameAt := off + i + len(refOpen)
		j := strings.IndexByte(text[nameAt:], '}')
		if j < 0 {
			return names
		}
		if name := text[nameAt : nameAt+j]; ValidName(name) && !slices.Contains(names, name) {
			names = append(names, name)
			off = nameAt + j + 1
		} else {
			off = nameAt
		}
	}
}

// Resolve returns text with every ${secret:NAME} replaced by the secret's
// value; a value is inserted as it is and never read for references
// itself. On any error it returns "" and the error: EINVALID for a
// malformed reference, ENOTFOUND naming a secret set nowhere, or the error
// of reading a secret file. Messages never hold a value.
func (s *Store) Resolve(text string) (string, error) {
	refs, err := scan(text)
	if err != nil {
		return "", err
	}
	if len(refs) == 0 {
		return text, nil
	}
	var b strings.Builder
	prev := 0
	for _, r := range refs {
		v, err := s.Value(r.name)
		if err != nil {
			return "", err
		}
		b.WriteString(text[prev:r.start])
		b.WriteString(v)
		prev = r.end
	}
	b.WriteString(text[prev:])
	return b.String(), nil
}

// Value returns the named secret's value: the environment variable first,
// then the file in Dir with one trailing newline trimmed. EINVALID for an
// invalid name, ENOTFOUND when the secret is set nowhere, or the error of
// reading its file.
func (s *Store) Value(name string) (string, error) {
	if !ValidName(name) {
		return "", crossdock.Errorf(crossdock.EINVALID, "secret name %q is invalid: use lower-case letters, digits, _ and - (at most %d)", name, MaxNameLength)
	}
	lookup := s.Env
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if v, ok := lookup(EnvName(name)); ok {
		s.remember(name, v)
		return v, nil
	}
	if s.Dir != "" {
		v, err := readSecret(filepath.Join(s.Dir, name))
		switch {
		case err == nil:
			s.record(name, stateOf(v))
			s.remember(name, v)
			return v, nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("read secret %s: %w", name, err)
		}
		s.record(name, fileState{})
	}
	where := "the environment variable " + EnvName(name)
	if s.Dir != "" {
		where = fmt.Sprintf("%s or the file %s", where, filepath.Join(s.Dir, name))
	}
	return "", crossdock.Errorf(crossdock.ENOTFOUND, "secret %q is not set: set %s", name, where)
}

// readSecret reads a secret file and trims one trailing newline ("\n" or
// "\r\n"), which editors and echo add.
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return "", fmt.Errorf("%s is a directory", path)
	}
	if fi.Size() > maxFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize))
	if err != nil {
		return "", err
	}
	v := string(b)
	v = strings.TrimSuffix(v, "\n")
	v = strings.TrimSuffix(v, "\r")
	return v, nil
}

// remember records a resolved value for Redact. Old values stay known: log
// lines about work begun before a rotation may still carry them.
func (s *Store) remember(name, value string) {
	s.mu.RLock()
	seen := slices.Contains(s.known[name], value)
	s.mu.RUnlock()
	if seen {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.known[name], value) {
		return
	}
	if s.known == nil {
		s.known = make(map[string][]string)
		s.warned = make(map[string]bool)
	}
	s.known[name] = append(s.known[name], value)
	s.replacer = nil
	if value != "" && len(value) < MinRedacted && !s.warned[name] {
		s.warned[name] = true
		s.logger().Warn("secret is too short to be redacted from logs", "secret", name, "min_length", MinRedacted)
	}
}

func (s *Store) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Redact returns text with every value the Store has resolved, of at least
// MinRedacted bytes, replaced by [secret:NAME].
func (s *Store) Redact(text string) string {
	r := s.redactor()
	if r == nil {
		return text
	}
	return r.Replace(text)
}

// redactor returns the replacer for the known values, longest first so
// that a value containing another is replaced whole; nil when there are
// none.
func (s *Store) redactor() *strings.Replacer {
	s.mu.RLock()
	r, n := s.replacer, len(s.known)
	s.mu.RUnlock()
	if r != nil || n == 0 {
		return r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replacer != nil {
		return s.replacer
	}
	type pair struct{ value, name string }
	var pairs []pair
	for name, values := range s.known {
		for _, v := range values {
			if len(v) >= MinRedacted {
				pairs = append(pairs, pair{v, name})
			}
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if d := len(b.value) - len(a.value); d != 0 {
			return d
		}
		return strings.Compare(a.value, b.value)
	})
	args := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		args = append(args, p.value, "[secret:"+p.name+"]")
	}
	s.replacer = strings.NewReplacer(args...)
	return s.replacer
}

// Watch looks at Dir at once and then every Interval until ctx is done,
// and calls onChange, from Watch's goroutine, with the name of each secret
// file that appeared, changed or disappeared, so the caller can resolve
// again. A file is compared with what Resolve last read from it, or else
// with what Watch saw the time before; so a secret rotated between loading
// the configuration and starting Watch is reported on the first look.
// Contents are compared, not modification times, so that a rewrite within
// the clock's resolution or a swapped symbolic link (how Kubernetes updates
// a mounted secret) is noticed. Watch returns nil when ctx is done, at once
// when Dir is "", and an error when Dir cannot be read on the first look.
func (s *Store) Watch(ctx context.Context, onChange func(name string)) error {
	if s.Dir == "" {
		return nil
	}
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last map[string]fileState // nil until the first look
	for {
		now, err := s.look()
		switch {
		case err != nil && last == nil:
			return fmt.Errorf("watch secrets: %w", err)
		case err != nil:
			s.logger().Warn("cannot read the secrets directory", "dir", s.Dir, "error", err)
		default:
			for _, name := range s.changed(last, now) {
				if ctx.Err() != nil {
					return nil
				}
				onChange(name)
			}
			last = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// fileState is a secret file as last seen: absent, or present with the hash
// of its content. A hash, so that the values of files nobody references are
// not kept in memory.
type fileState struct {
	present bool
	sum     [sha256.Size]byte
}

func stateOf(value string) fileState {
	return fileState{present: true, sum: sha256.Sum256([]byte(value))}
}

// record notes what Value read from a secret file.
func (s *Store) record(name string, st fileState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files = make(map[string]fileState)
	}
	s.files[name] = st
}

// look reads every secret file in Dir. A file that cannot be read counts as
// absent, with a warning.
func (s *Store) look() (map[string]fileState, error) {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, err
	}
	files := make(map[string]fileState, len(entries))
	for _, e := range entries {
		name := e.Name()
		if !ValidName(name) {
			continue // dot files, such as Kubernetes' ..data, and strays
		}
		v, err := readSecret(filepath.Join(s.Dir, name))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.logger().Warn("cannot read a secret file", "secret", name, "error", err)
			}
			continue
		}
		files[name] = stateOf(v)
	}
	return files, nil
}

// changed returns, sorted, the names whose files differ in now from the
// state before: the previous look, or else what Value read. On the first
// look (last is nil), a file Value never read is no change.
func (s *Store) changed(last, now map[string]fileState) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make(map[string]bool, len(now)+len(last)+len(s.files))
	for name := range now {
		names[name] = true
	}
	for name := range last {
		names[name] = true
	}
	for name := range s.files {
		names[name] = true
	}
	var out []string
	for name := range names {
		before, ok := last[name]
		if !ok {
			before, ok = s.files[name]
		}
		if !ok && last == nil {
			continue
		}
		if before != now[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
