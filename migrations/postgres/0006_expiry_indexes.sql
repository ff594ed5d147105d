-- access-broker PostgreSQL schema, version 6: housekeeping that always finishes.
--
-- The purge deletes expired rows in small batches (1000 rows, one short transaction each),
-- found through these indexes instead of a scan of the whole table. `numbers_by_expiry`
-- serves the release of expired reservations the same way.
--
-- `idempotency` keeps, per client and Idempotency-Key, the first answer to a session
-- creation, request-interaction or storage POST for 24 h; the row is inserted in the same
-- transaction as what it answers, and the primary key makes a racing second request wait for
-- the first and then read its answer.
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
CREATE INDEX IF NOT EXISTS data_by_expiry ON data (expires_at);
CREATE INDEX IF NOT EXISTS numbers_by_expiry ON numbers (expires_at) WHERE session IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    client text NOT NULL,
    key text NOT NULL,
    status integer NOT NULL,
    body text NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (client, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_at);
