package nats_test

import (
	"encoding/base64"
	"testing"

	cdnats "github.com/crossdock/crossdock/nats"
)

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		version, min string
		want         bool
	}{
		{"2.12.0", "2.12.0", true},
		{"2.15.2", "2.12.0", true},
		{"3.0.0", "2.12.0", true},
		{"2.9.10", "2.12.0", false},
		{"2.11.99", "2.12.0", false},
		{"2.12.0-beta.1", "2.12.0", true},
		{"v2.12.1", "2.12.0", true},
		{"", "2.12.0", false},
		{"2.12", "2.12.0", false},
		{"a.b.c", "2.12.0", false},
		{"1.4.1", "2.12.0", false},
	}
	for _, tt := range tests {
		if got := cdnats.VersionAtLeast(tt.version, tt.min); got != tt.want {
			t.Errorf("VersionAtLeast(%q, %q) = %v, want %v", tt.version, tt.min, got, tt.want)
		}
	}
}

// validToken reports whether s can be one token of a NATS subject as the
// dead-letter stream uses it.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func FuzzIDToken(f *testing.F) {
	for _, s := range []string{"a", "order-1", "id with spaces.and.dots", "ünïcödé", string(make([]byte, 151)), "*", ">"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if id == "" {
			return
		}
		tok := cdnats.IDToken(id)
		if !validToken(tok) {
			t.Fatalf("IDToken(%q) = %q is not a subject token", id, tok)
		}
		if tok != cdnats.IDToken(id) {
			t.Fatal("IDToken is not deterministic")
		}
		if len(id) <= 150 {
			back, err := base64.RawURLEncoding.DecodeString(tok)
			if err != nil || string(back) != id {
				t.Fatalf("IDToken(%q) = %q does not decode back", id, tok)
			}
		} else if len(tok) != 65 {
			t.Fatalf("long id token has %d characters", len(tok))
		}
	})
}

func FuzzVersionAtLeast(f *testing.F) {
	for _, s := range []string{"2.9.10", "2.12.0", "2.15.2-RC.1", "", "1..2", "99999999999999999999.0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		// Must not panic, and a version is always at least itself when it
		// parses.
		if cdnats.VersionAtLeast(v, "2.12.0") && !cdnats.VersionAtLeast(v, v) {
			t.Fatalf("%q is at least 2.12.0 but not at least itself", v)
		}
	})
}
