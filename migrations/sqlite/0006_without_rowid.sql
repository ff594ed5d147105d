-- access-broker SQLite schema, version 6: a pair (request-access, then the match that
-- releases the number) writes fewer B-trees. `reservations` is keyed by its number alone
-- (WITHOUT ROWID: one B-tree instead of the table and its primary-key index) and has no
-- expiry index any more: it only holds live and not yet purged rows, so the purge every 30 s
-- scans it. (`numbers` stays a rowid table: rebuilt WITHOUT ROWID, a pair measured dearer,
-- its update rewriting the whole row in the key's B-tree.)
CREATE TABLE reservations_v6 (
    number TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    code TEXT,
    phone TEXT,
    expires_at INTEGER NOT NULL,
    wrong_codes INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO reservations_v6 (number, session, code, phone, expires_at, wrong_codes)
    SELECT number, session, code, phone, expires_at, wrong_codes FROM reservations;
DROP TABLE reservations;
ALTER TABLE reservations_v6 RENAME TO reservations;
