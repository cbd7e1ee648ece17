package outbox_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/outbox"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		in   string
		want outbox.DSN
	}{
		{"postgres://app:pw@db.internal:5432/shop?sslmode=disable",
			outbox.DSN{Dialect: outbox.PostgreSQL, Driver: "pgx", DataSource: "postgres://app:pw@db.internal:5432/shop?sslmode=disable"}},
		{"postgresql://127.0.0.1/shop",
			outbox.DSN{Dialect: outbox.PostgreSQL, Driver: "pgx", DataSource: "postgresql://127.0.0.1/shop"}},
		{"sqlite:/var/lib/app/app.db",
			outbox.DSN{Dialect: outbox.SQLite, Driver: "sqlite", DataSource: "/var/lib/app/app.db?_pragma=busy_timeout(10000)", Path: "/var/lib/app/app.db"}},
		{"sqlite:app.db",
			outbox.DSN{Dialect: outbox.SQLite, Driver: "sqlite", DataSource: "app.db?_pragma=busy_timeout(10000)", Path: "app.db"}},
		{"sqlite:///var/lib/app.db?_pragma=journal_mode(WAL)",
			outbox.DSN{Dialect: outbox.SQLite, Driver: "sqlite", DataSource: "/var/lib/app.db?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)", Path: "/var/lib/app.db"}},
		{"sqlite:app.db?",
			outbox.DSN{Dialect: outbox.SQLite, Driver: "sqlite", DataSource: "app.db?_pragma=busy_timeout(10000)", Path: "app.db"}},
		{"sqlite:app.db?_pragma=busy_timeout(500)",
			outbox.DSN{Dialect: outbox.SQLite, Driver: "sqlite", DataSource: "app.db?_pragma=busy_timeout(500)", Path: "app.db"}},
		{"sqlite:file:app.db?cache=shared",
			outbox.DSN{Dialect: outbox.SQLite, Driver: "sqlite", DataSource: "file:app.db?cache=shared&_pragma=busy_timeout(10000)", Path: "app.db"}},
	}
	for _, tt := range tests {
		got, err := outbox.ParseDSN(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDSN(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}

	bad := []struct{ in, want string }{
		{"", "starts with postgres://"},
		{"mysql://u:pw@h/db", "starts with postgres://"},
		{"postgres:/nohost", "starts with postgres://"},
		{"postgres://u:hunter2@h:notaport/db", "cannot be parsed"},
		{"postgres://u:hunter2@h/db?sslmode=sometimes", "cannot be parsed"},
		{"sqlite:", "names no file"},
		{"sqlite://?x=1", "names no file"},
		{"sqlite::memory:", "in-memory"},
		{"sqlite:file::memory:?cache=shared", "in-memory"},
		{"sqlite:x.db?mode=memory", "in-memory"},
		{"sqlite:x.db?a=%zz", "cannot be parsed"},
	}
	for _, tt := range bad {
		_, err := outbox.ParseDSN(tt.in)
		if crossdock.ErrorCode(err) != crossdock.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseDSN(%q): %v, want EINVALID saying %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseDSN(%q): the error %q shows the password", tt.in, err)
		}
	}
}

// FuzzParseDSN checks that any address parses without panicking into a
// dialect with its driver, and that an error never repeats the password of
// a URL.
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"postgres://app:pw@db:5432/shop?sslmode=disable&search_path=x",
		"postgresql://127.0.0.1/shop",
		"postgres://u:secret@h:99999/db",
		"postgres://[::1]:5432/db?connect_timeout=x",
		"sqlite:/var/lib/app.db",
		"sqlite:///tmp/a.db?_pragma=journal_mode(WAL)",
		"sqlite:file:a.db?mode=ro",
		"sqlite::memory:",
		"sqlite:a.db?%",
		"mysql://x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := outbox.ParseDSN(s)
		if err != nil {
			if crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Fatalf("ParseDSN(%q): %v is not EINVALID", s, err)
			}
			if u, perr := url.Parse(s); perr == nil {
				if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Contains(err.Error(), pw) {
					t.Fatalf("ParseDSN(%q): the error %q shows the password", s, err)
				}
			}
			return
		}
		switch d.Dialect {
		case outbox.PostgreSQL:
			if d.Driver != "pgx" || d.DataSource != s {
				t.Fatalf("ParseDSN(%q) = %+v", s, d)
			}
		case outbox.SQLite:
			if d.Driver != "sqlite" || d.Path == "" || !strings.Contains(d.DataSource, "timeout") ||
				!strings.HasPrefix(s, "sqlite:") {
				t.Fatalf("ParseDSN(%q) = %+v", s, d)
			}
		default:
			t.Fatalf("ParseDSN(%q) = %+v: no dialect", s, d)
		}
	})
}
