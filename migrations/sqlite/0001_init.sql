-- access-broker SQLite schema, version 1. Times are milliseconds since the Unix epoch.
CREATE TABLE groups (
    name TEXT PRIMARY KEY,
    allocation TEXT NOT NULL,
    booking_timeout INTEGER,
    cursor INTEGER
);
CREATE TABLE numbers (
    number TEXT PRIMARY KEY,
    group_name TEXT NOT NULL,
    position INTEGER NOT NULL,
    retiring INTEGER NOT NULL DEFAULT 0,
    freed_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX numbers_by_group ON numbers (group_name, position);
CREATE TABLE reservations (
    number TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    code TEXT,
    phone TEXT,
    expires_at INTEGER NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    data_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE data (
    id TEXT PRIMARY KEY,
    fields TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
