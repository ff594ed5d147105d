-- access-broker SQLite schema, version 8: who asked for each reservation.
--
-- `[limits] reservations_per_client` counts the live reservations a client holds in the
-- store, so the count survives a restart (it was kept in the node's memory and started at
-- zero again). NULL when clients are not counted, as for every reservation made before.
ALTER TABLE reservations ADD COLUMN client TEXT;
