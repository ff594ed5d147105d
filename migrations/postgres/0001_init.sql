-- access-broker PostgreSQL schema, version 1. Times are milliseconds since the Unix epoch,
-- always computed by the database (see now_ms in src/store/postgres/mod.rs).
CREATE TABLE groups (
    name text PRIMARY KEY,
    allocation text NOT NULL,
    booking_timeout integer,
    cursor bigint NOT NULL DEFAULT 0
);

-- One row per number; the reservation lives on the row, so a number can never carry two.
-- A reservation is live while session IS NOT NULL AND expires_at > now.
CREATE TABLE numbers (
    number text PRIMARY KEY,
    group_name text NOT NULL REFERENCES groups (name),
    position bigint NOT NULL,
    retiring boolean NOT NULL DEFAULT false,
    -- When the number became (or will become) free: least-recently-used order. A claim sets
    -- it to the reservation's expiry, so busy numbers sort last.
    freed_at bigint NOT NULL DEFAULT 0,
    session text,
    code text,
    phone text,
    expires_at bigint
);
CREATE INDEX numbers_by_position ON numbers (group_name, position);
CREATE INDEX numbers_by_age ON numbers (group_name, freed_at, position);
CREATE INDEX numbers_by_session ON numbers (session, group_name) WHERE session IS NOT NULL;

CREATE TABLE sessions (
    id text PRIMARY KEY,
    service text NOT NULL,
    data_id text NOT NULL,
    expires_at bigint NOT NULL
);

CREATE TABLE data (
    id text PRIMARY KEY,
    fields text NOT NULL,
    expires_at bigint NOT NULL
);

CREATE TABLE nodes (
    node_id text PRIMARY KEY,
    last_seen bigint NOT NULL
);
