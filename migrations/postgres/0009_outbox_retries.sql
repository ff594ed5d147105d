-- access-broker PostgreSQL schema, version 9: webhook retries are claimed before first attempts.
--
-- A claim takes the due retries (`attempts > 0`) first, then the events never tried, so a
-- retry keeps the contract's "first retry within 5 s" behind a backlog (in one order by
-- `next_at` it waited for the whole backlog). Retries are few beside the backlog, and those
-- not due yet (backing off for up to 24 h) would fill a walk of `events_outbox_due` in front
-- of the due ones: their own partial index finds the due ones at once.
CREATE INDEX IF NOT EXISTS events_outbox_retries ON events_outbox (next_at) WHERE attempts > 0;
