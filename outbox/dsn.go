package outbox

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/crossdock/crossdock"
	"github.com/jackc/pgx/v5"
)

// sqliteBusyTimeout is how long, in milliseconds, an SQLite connection
// opened from a DSN waits for another writer (the application) before
// giving up.
const sqliteBusyTimeout = "10000"

// DSN is a parsed database address: postgres://... (or postgresql://...)
// for PostgreSQL, sqlite:PATH for SQLite.
type DSN struct {
	Dialect Dialect

	// Driver and DataSource are what sql.Open takes.
	Driver     string
	DataSource string

	// Path is an SQLite database's file, without parameters.
	Path string
}

// ParseDSN parses a database address. A PostgreSQL URL is anything pgx
// accepts (postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=...,
// search_path=... and so on). sqlite:PATH (or sqlite://PATH) names a file,
// optionally followed by ?PARAMS for modernc.org/sqlite; the connection
// waits up to ten seconds for the application's writes unless PARAMS set a
// busy_timeout. EINVALID for anything else; the error never repeats a
// password.
func ParseDSN(s string) (DSN, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case ok && (scheme == "postgres" || scheme == "postgresql") && strings.HasPrefix(rest, "//"):
		if _, err := pgx.ParseConfig(s); err != nil {
			return DSN{}, crossdock.Errorf(crossdock.EINVALID,
				"the PostgreSQL URL cannot be parsed: use postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=disable")
		}
		return DSN{Dialect: PostgreSQL, Driver: "pgx", DataSource: s}, nil
	case ok && scheme == "sqlite":
		return parseSQLite(rest)
	}
	return DSN{}, crossdock.Errorf(crossdock.EINVALID,
		"a database address starts with postgres://, postgresql:// or sqlite: (as in sqlite:/var/lib/app/app.db)")
}

func parseSQLite(rest string) (DSN, error) {
	rest = strings.TrimPrefix(rest, "//")
	path, query, hasQuery := strings.Cut(rest, "?")
	if path == "" {
		return DSN{}, crossdock.Errorf(crossdock.EINVALID, "sqlite: names no file: use sqlite:PATH")
	}
	if strings.ContainsRune(path, 0) {
		return DSN{}, crossdock.Errorf(crossdock.EINVALID, "the SQLite path contains a NUL byte")
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return DSN{}, crossdock.Errorf(crossdock.EINVALID, "the SQLite parameters after ? cannot be parsed: %v", err)
	}
	if path == ":memory:" || strings.HasPrefix(path, "file::memory:") || params.Get("mode") == "memory" {
		return DSN{}, crossdock.Errorf(crossdock.EINVALID, "an in-memory SQLite database is private to one process: name the application's database file")
	}
	busy := false
	for _, p := range params["_pragma"] {
		if strings.Contains(strings.ToLower(p), "busy_timeout") {
			busy = true
		}
	}
	if params.Get("_busy_timeout") != "" || params.Get("_timeout") != "" {
		busy = true
	}
	ds := path
	if hasQuery {
		ds += "?" + query
	}
	if !busy {
		sep := "?"
		if hasQuery && query != "" {
			sep = "&"
		} else if hasQuery {
			sep = ""
		}
		ds += sep + "_pragma=busy_timeout(" + sqliteBusyTimeout + ")"
	}
	return DSN{Dialect: SQLite, Driver: "sqlite", DataSource: ds, Path: strings.TrimPrefix(path, "file:")}, nil
}

// Open parses a database address and opens its database; no connection is
// made until the first use. EINVALID for an address ParseDSN refuses.
func Open(s string) (*sql.DB, Dialect, error) {
	dsn, err := ParseDSN(s)
	if err != nil {
		return nil, "", err
	}
	db, err := sql.Open(dsn.Driver, dsn.DataSource)
	if err != nil {
		return nil, "", fmt.Errorf("open %s database: %w", dsn.Dialect, err)
	}
	return db, dsn.Dialect, nil
}
