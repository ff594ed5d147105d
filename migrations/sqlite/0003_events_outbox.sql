-- The webhook outbox: lifecycle events owed to `[events] url`, kept until delivered or given
-- up (24 h), so a restart still delivers them. Times are milliseconds since the Unix epoch.
CREATE TABLE events_outbox (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    time INTEGER NOT NULL,
    group_name TEXT NOT NULL,
    number TEXT NOT NULL,
    session TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at INTEGER NOT NULL,
    next_at INTEGER NOT NULL
);
