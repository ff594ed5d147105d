-- The webhook outbox: lifecycle events owed to `[events] url`, written in the transaction of the
-- change that made them and kept until delivered or given up (24 h). Any node delivers: a
-- node claims due rows with FOR UPDATE SKIP LOCKED and leases them (claimed_until), so two
-- nodes never deliver one event at the same time. Times are milliseconds since the Unix epoch.
CREATE TABLE events_outbox (
    id text PRIMARY KEY,
    kind text NOT NULL,
    time bigint NOT NULL,
    group_name text NOT NULL,
    number text NOT NULL,
    session text,
    attempts integer NOT NULL DEFAULT 0,
    queued_at bigint NOT NULL,
    next_at bigint NOT NULL,
    claimed_until bigint
);
CREATE INDEX events_outbox_due ON events_outbox (next_at);
