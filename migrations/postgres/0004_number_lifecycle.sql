-- Number lifecycle: cool-down, late calls, failure reasons, quarantine, code attempts.
ALTER TABLE groups
    ADD COLUMN require_code boolean NOT NULL DEFAULT false,
    ADD COLUMN max_code_attempts integer NOT NULL DEFAULT 5,
    ADD COLUMN cool_down integer NOT NULL DEFAULT 0,
    ADD COLUMN late_match_grace integer NOT NULL DEFAULT 0,
    ADD COLUMN quarantine_after_stray_calls integer NOT NULL DEFAULT 0;
-- freed_at is now when the number is lendable again: its reservation's end plus the cool-down
-- (a claim sets it to the expiry plus the cool-down).
ALTER TABLE numbers
    ADD COLUMN wrong_codes integer NOT NULL DEFAULT 0,
    ADD COLUMN quarantined_at bigint,
    ADD COLUMN strays bigint[],
    ADD COLUMN last_session text,
    ADD COLUMN last_code text,
    ADD COLUMN last_phone text,
    ADD COLUMN last_end bigint,
    ADD COLUMN last_reason text;
-- The purge finds expired reservations by index, in bounded batches.
CREATE INDEX numbers_by_expiry ON numbers (expires_at) WHERE session IS NOT NULL;
