-- access-broker PostgreSQL schema, version 8: the bytes `[limits] max_storage_bytes` counts.
--
-- A data row's `bytes` is its fields' names and values in bytes, written by the node with the
-- row (`store::fields::fields_bytes`, the count the embedded stores keep), so every store
-- counts the same bytes and the usage query sums one column instead of measuring the JSON
-- text (which carries brackets, quotes and escapes besides). Rows written before this version
-- are counted here once, by the same rule.
ALTER TABLE data ADD COLUMN IF NOT EXISTS bytes bigint NOT NULL DEFAULT 0;
UPDATE data SET bytes = (SELECT coalesce(sum(octet_length(e ->> 0) + octet_length(e ->> 1)), 0)
                           FROM json_array_elements(fields::json) AS e);
