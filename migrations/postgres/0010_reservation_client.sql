-- access-broker PostgreSQL schema, version 10: who asked for each reservation.
--
-- `[limits] reservations_per_client` counts the live reservations a client holds in the store,
-- so the count is the same on every node and survives restarts (each node kept it in memory,
-- from the reservations it handed out itself). Set with a reservation when the node counts
-- clients, kept by a renewal that does not, and cleared whenever the reservation ends (a
-- write that empties `session` empties it too), so the index holds only live reservations
-- of counted clients: a client's count reads its few entries. NULL when clients are not
-- counted, so that a pair's updates of a number stay heap-only then (migration 7).
ALTER TABLE numbers ADD COLUMN IF NOT EXISTS client text;
CREATE INDEX IF NOT EXISTS numbers_by_client ON numbers (client) WHERE client IS NOT NULL;
