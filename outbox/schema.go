package outbox

// The DDL of the outbox table, one statement per string. docs/outbox.md
// shows the same text; a test holds the two together.
//
// partition_key is computed from the event's partitionkey attribute, so a
// program in any language that writes only topic and event gets ordering
// right. Times on SQLite are UTC text, YYYY-MM-DDTHH:MM:SS.SSSZ, which sorts
// as it reads.
var (
	sqliteSchema = []string{
		`CREATE TABLE IF NOT EXISTS crossdock_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    topic           TEXT NOT NULL,
    event           TEXT NOT NULL CHECK (json_valid(event)),
    partition_key   TEXT NOT NULL GENERATED ALWAYS AS (coalesce(json_extract(event, '$.partitionkey'), '')) STORED,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)`,
		`CREATE INDEX IF NOT EXISTS crossdock_outbox_due ON crossdock_outbox (next_attempt_at)`,
		`CREATE INDEX IF NOT EXISTS crossdock_outbox_partition ON crossdock_outbox (topic, partition_key, id) WHERE partition_key <> ''`,
	}

	postgresSchema = []string{
		`CREATE TABLE IF NOT EXISTS crossdock_outbox (
    id              BIGSERIAL PRIMARY KEY,
    topic           TEXT NOT NULL,
    event           JSON NOT NULL,
    partition_key   TEXT NOT NULL GENERATED ALWAYS AS (coalesce(event ->> 'partitionkey', '')) STORED,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`,
		`CREATE INDEX IF NOT EXISTS crossdock_outbox_due ON crossdock_outbox (next_attempt_at)`,
		`CREATE INDEX IF NOT EXISTS crossdock_outbox_partition ON crossdock_outbox (topic, partition_key, id) WHERE partition_key <> ''`,
		`CREATE OR REPLACE FUNCTION crossdock_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crossdock_outbox', '');
    RETURN NULL;
END
$$`,
		`DROP TRIGGER IF EXISTS crossdock_outbox_notify ON crossdock_outbox`,
		`CREATE TRIGGER crossdock_outbox_notify
    AFTER INSERT OR UPDATE OF next_attempt_at ON crossdock_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION crossdock_outbox_notify()`,
	}
)
