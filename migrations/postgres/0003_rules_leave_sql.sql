-- access-broker PostgreSQL schema, version 3: schema only, no rules. The reservation rules
-- live in Rust (src/rules/), called by every store; PostgreSQL only locks, reads and writes
-- rows. Drop the functions version 2 once created.
DROP FUNCTION IF EXISTS ab_reserve_batch(text[], text[], text[], text[], integer[], boolean[], bigint);
DROP FUNCTION IF EXISTS ab_reserve(text, text, text, text, integer, boolean, bigint);
DROP FUNCTION IF EXISTS ab_booking_ms(integer, integer);
