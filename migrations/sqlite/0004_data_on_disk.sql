-- Stored fields stay on disk; the engine loads only each entry's id and expiry at start.
-- This index covers that read (and the purge), so restart never walks the fields' pages.
CREATE INDEX data_by_expiry ON data (expires_at, id);
