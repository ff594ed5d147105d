-- Stored fields stay on disk; the engine loads only each entry's id, expiry and size at
-- start (`[limits] max_storage_bytes` counts sizes). This index covers that read (and the
-- purge), so restart never walks the fields' pages. Entries stored before this migration
-- count 0 bytes until they are written again.
ALTER TABLE data ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX data_by_expiry ON data (expires_at, id, bytes);
