-- Number lifecycle (cool-down, late calls, failure reasons, quarantine, code attempts).
ALTER TABLE groups ADD COLUMN require_code INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN max_code_attempts INTEGER NOT NULL DEFAULT 5;
ALTER TABLE groups ADD COLUMN cool_down INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN late_match_grace INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN quarantine_after_stray_calls INTEGER NOT NULL DEFAULT 0;
-- numbers.freed_at is now the moment the number is lendable again (after its cool-down).
ALTER TABLE numbers ADD COLUMN quarantined_at INTEGER;
-- Times (ms) of recent stray calls, comma-separated; NULL for none.
ALTER TABLE numbers ADD COLUMN strays TEXT;
-- The last ended reservation: for late calls and failure reasons.
ALTER TABLE numbers ADD COLUMN last_session TEXT;
ALTER TABLE numbers ADD COLUMN last_code TEXT;
ALTER TABLE numbers ADD COLUMN last_phone TEXT;
ALTER TABLE numbers ADD COLUMN last_end INTEGER;
ALTER TABLE numbers ADD COLUMN last_reason TEXT;
ALTER TABLE reservations ADD COLUMN wrong_codes INTEGER NOT NULL DEFAULT 0;
