-- access-broker SQLite schema, version 5: the purge deletes expired rows in small batches
-- through these indexes; idempotency keys keep a request's first answer for 24 h; the writer
-- probes whether the disk takes writes again by touching `heartbeat`.
CREATE INDEX reservations_by_expiry ON reservations (expires_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
-- data_by_expiry exists since version 4 (data on disk).
CREATE INDEX IF NOT EXISTS data_by_expiry ON data (expires_at);
CREATE TABLE idempotency (
    client TEXT NOT NULL,
    key TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client, key)
);
CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
