-- access-broker PostgreSQL schema, version 7: a reservation and its release change no
-- indexed column, so PostgreSQL writes them as heap-only (HOT) updates.
--
-- Before, every claim and every release changed `numbers.session` and `numbers.expires_at`
-- (indexed by `numbers_by_session` and `numbers_by_expiry`) and `freed_at`
-- (`numbers_by_age`): none of the 0.4 million updates of a ten-round benchmark was HOT, each
-- wrote a new entry into all five of the table's indexes, and the dead entries stayed until
-- a vacuum (never, where autovacuum is off): the table and its indexes grew, and throughput
-- fell round after round (−23 % to −35 % over ten rounds).
--
-- Now:
-- * A session's reservations are found from the session: `sessions.holds` lists the numbers
--   it may hold (a superset, each checked against the number's row, which stays the truth).
--   A batch that claims rewrites the list of the sessions it served (the live ones only, so it
--   never grows past what the session holds).
-- * The purge of expired reservations (every 30 s) and the admin list of reservations scan
--   the numbers instead of `numbers_by_expiry`: a sequential pass in the background, against
--   an index entry on every claim.
-- * Least-recently-used order reads `lru_at`, a copy of `freed_at` that only
--   least-recently-used groups keep up to date (the writes set it from the group's
--   allocation; a group switched to least-recently-used copies it first): `freed_at` is no
--   longer indexed, and in the other groups a pair changes no indexed column.
-- * `fillfactor` leaves room on each page for the new versions (HOT needs the same page);
--   it applies to pages written from now on.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS holds text[] NOT NULL DEFAULT '{}';
UPDATE sessions s SET holds = h.numbers
  FROM (SELECT session, array_agg(number ORDER BY number) AS numbers
          FROM numbers WHERE session IS NOT NULL GROUP BY session) h
 WHERE s.id = h.session;
DROP INDEX IF EXISTS numbers_by_session;
DROP INDEX IF EXISTS numbers_by_expiry;
ALTER TABLE numbers ADD COLUMN IF NOT EXISTS lru_at bigint NOT NULL DEFAULT 0;
UPDATE numbers SET lru_at = freed_at;
DROP INDEX IF EXISTS numbers_by_age;
CREATE INDEX IF NOT EXISTS numbers_by_lru ON numbers (group_name, lru_at, position);
ALTER TABLE numbers SET (fillfactor = 50);
ALTER TABLE sessions SET (fillfactor = 80);
