-- access-broker PostgreSQL schema, version 2: the reservation decision as a function, so a
-- node can send many request-access calls in one round trip and one commit
-- (src/store/postgres/batch.rs). Out columns are prefixed o_ so they never shadow a table
-- column inside the function body.

-- Fingerprint of the config a group was last applied from (settings and numbers, in order);
-- a node starting with the same config skips the number-by-number comparison. Any change
-- through the admin API clears it, so the next start compares again.
ALTER TABLE groups ADD COLUMN config_hash text;

-- How long a booking lasts, in ms: the request's timeout, else the group's, else 30 s; a
-- stored group value out of 5..1800 counts as 30 (as in the embedded engine). Inlined by
-- the planner wherever it is used.
CREATE FUNCTION ab_booking_ms(p_timeout integer, p_group_timeout integer) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_timeout,
                    CASE WHEN p_group_timeout BETWEEN 5 AND 1800 THEN p_group_timeout ELSE 30 END
           )::bigint * 1000
$$;

-- One reservation for a session in a group, with the same rules as the embedded engine:
-- a live session is required (its row is locked first); asking again renews the session's own
-- number; otherwise a free number is claimed by the group's allocation rule. o_status is
-- 'ok', 'session' (no such live session), 'group' (no such group) or 'exhausted' (then
-- o_expires_at is the earliest expiry in the group, for Retry-After).
CREATE FUNCTION ab_reserve(
    p_session text, p_group text, p_code text, p_phone text, p_timeout integer,
    p_health boolean, p_now bigint)
RETURNS TABLE (o_status text, o_number text, o_code text, o_expires_at bigint,
               o_pool_size bigint, o_pool_free bigint)
-- Generic plans from the first call: custom ones cost a millisecond of planning per call,
-- more than the work itself, and the statements below are written to need none.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_session_expiry bigint;
    v_allocation text;
    v_group_timeout integer;
    v_expires bigint;
    v_number text;
    v_position bigint;
    v_start bigint;
    v_code text;
BEGIN
    SELECT s.expires_at INTO v_session_expiry FROM sessions s
     WHERE s.id = p_session AND s.expires_at > p_now FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'session'::text, NULL::text, NULL::text, NULL::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    SELECT g.allocation, g.booking_timeout INTO v_allocation, v_group_timeout FROM groups g
     WHERE g.name = p_group;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'group'::text, NULL::text, NULL::text, NULL::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    v_expires := least(p_now + ab_booking_ms(p_timeout, v_group_timeout), v_session_expiry);

    SELECT n.number INTO v_number FROM numbers n
     WHERE n.group_name = p_group AND n.session = p_session AND n.expires_at > p_now;
    IF v_number IS NULL THEN
        IF v_allocation = 'least-recently-used' THEN
            SELECT n.number INTO v_number FROM numbers n
             WHERE n.group_name = p_group AND NOT n.retiring
               AND (n.session IS NULL OR n.expires_at <= p_now)
             ORDER BY n.freed_at, n.position LIMIT 1 FOR UPDATE SKIP LOCKED;
        ELSE
            IF v_allocation = 'round-robin' THEN
                -- The group row's lock keeps the cursor exact across nodes.
                SELECT g.cursor INTO v_start FROM groups g WHERE g.name = p_group FOR UPDATE;
            ELSE
                -- Random: a random start, then the next free number (one index probe).
                SELECT floor(random() * (coalesce(max(n.position), 0) + 1))::bigint
                  INTO v_start FROM numbers n WHERE n.group_name = p_group;
            END IF;
            SELECT n.number, n.position INTO v_number, v_position FROM numbers n
             WHERE n.group_name = p_group AND NOT n.retiring
               AND (n.session IS NULL OR n.expires_at <= p_now) AND n.position >= v_start
             ORDER BY n.position LIMIT 1 FOR UPDATE SKIP LOCKED;
            IF v_number IS NULL THEN
                SELECT n.number, n.position INTO v_number, v_position FROM numbers n
                 WHERE n.group_name = p_group AND NOT n.retiring
                   AND (n.session IS NULL OR n.expires_at <= p_now) AND n.position < v_start
                 ORDER BY n.position LIMIT 1 FOR UPDATE SKIP LOCKED;
            END IF;
            IF v_number IS NOT NULL AND v_allocation = 'round-robin' THEN
                UPDATE groups g SET cursor = v_position + 1 WHERE g.name = p_group;
            END IF;
        END IF;
        IF v_number IS NULL THEN
            RETURN QUERY SELECT 'exhausted'::text, NULL::text, NULL::text, min(n.expires_at),
                                0::bigint, 0::bigint
                           FROM numbers n
                          WHERE n.group_name = p_group AND n.session IS NOT NULL
                            AND n.expires_at > p_now;
            RETURN;
        END IF;
    END IF;

    UPDATE numbers n SET session = p_session, expires_at = v_expires, freed_at = v_expires,
           code = CASE WHEN n.session = p_session AND n.expires_at > p_now
                       THEN coalesce(n.code, p_code) ELSE p_code END,
           phone = CASE WHEN n.session = p_session AND n.expires_at > p_now
                        THEN coalesce(p_phone, n.phone) ELSE p_phone END
     WHERE n.number = v_number
    RETURNING n.code INTO v_code;
    IF p_health THEN
        RETURN QUERY SELECT 'ok'::text, v_number, v_code, v_expires,
                            count(*) FILTER (WHERE NOT n.retiring),
                            count(*) FILTER (WHERE NOT n.retiring
                                             AND (n.session IS NULL OR n.expires_at <= p_now))
                       FROM numbers n WHERE n.group_name = p_group;
    ELSE
        RETURN QUERY SELECT 'ok'::text, v_number, v_code, v_expires, 0::bigint, 0::bigint;
    END IF;
END
$$;

-- Many reservations in one call, decided as if one by one in order; row i of the answer is
-- for item i. Every session row of the batch is locked first, in id order, so two batches
-- sharing a session queue instead of deadlocking on a group row. Renewals (a session asking
-- again in a group where it holds a live number) are one set-based UPDATE, the common case
-- of apps that poll; the rest go through ab_reserve in order. A renewal never frees or takes
-- a number, so doing them first gives the same answers as doing them in their place.
CREATE FUNCTION ab_reserve_batch(
    p_sessions text[], p_groups text[], p_codes text[], p_phones text[],
    p_timeouts integer[], p_health boolean[], p_now bigint)
RETURNS TABLE (o_status text, o_number text, o_code text, o_expires_at bigint,
               o_pool_size bigint, o_pool_free bigint)
-- Generic plans from the first call: custom ones cost a millisecond of planning per call,
-- more than the work itself, and the statements below are written to need none.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_n integer := coalesce(array_length(p_sessions, 1), 0);
    v_status text[] := array_fill(NULL::text, ARRAY[v_n]);
    v_number text[] := array_fill(NULL::text, ARRAY[v_n]);
    v_code text[] := array_fill(NULL::text, ARRAY[v_n]);
    v_expires bigint[] := array_fill(NULL::bigint, ARRAY[v_n]);
    v_size bigint[] := array_fill(0::bigint, ARRAY[v_n]);
    v_free bigint[] := array_fill(0::bigint, ARRAY[v_n]);
    v_is bigint[];
    v_numbers text[];
    v_codes text[];
    v_expiries bigint[];
    v_one record;
BEGIN
    PERFORM 1 FROM sessions s WHERE s.id = ANY (p_sessions) ORDER BY s.id FOR UPDATE;

    WITH req AS (
        SELECT * FROM unnest(p_sessions, p_groups, p_codes, p_phones, p_timeouts, p_health)
            WITH ORDINALITY AS r(session, grp, code, phone, timeout, health, i)
    ), firsts AS (
        SELECT DISTINCT ON (session, grp) * FROM req ORDER BY session, grp, i
    ), renewals AS (
        SELECT f.i, f.code, f.phone, held.number,
               least(p_now + ab_booking_ms(f.timeout, g.booking_timeout), s.expires_at)
                   AS expires
          -- One index probe per item and table: LATERAL … LIMIT 1 keeps the plan a nested
          -- loop driven by the batch, never a scan of every session or held number, whatever
          -- the statistics say. "session IS NOT NULL" lets the last one use the partial index
          -- numbers_by_session.
          FROM firsts f
          CROSS JOIN LATERAL (
              SELECT s.expires_at FROM sessions s
               WHERE s.id = f.session AND s.expires_at > p_now LIMIT 1) s
          CROSS JOIN LATERAL (
              SELECT g.booking_timeout FROM groups g WHERE g.name = f.grp LIMIT 1) g
          CROSS JOIN LATERAL (
              SELECT h.number FROM numbers h
               WHERE h.session IS NOT NULL AND h.session = f.session
                 AND h.group_name = f.grp AND h.expires_at > p_now
               LIMIT 1) held
         WHERE NOT f.health
    ), renewed AS (
        UPDATE numbers n SET expires_at = x.expires, freed_at = x.expires,
               code = coalesce(n.code, x.code), phone = coalesce(x.phone, n.phone)
          FROM renewals x
         WHERE n.number = x.number
        RETURNING x.i, n.number, n.code, n.expires_at
    )
    SELECT array_agg(r.i), array_agg(r.number), array_agg(r.code), array_agg(r.expires_at)
      INTO v_is, v_numbers, v_codes, v_expiries
      FROM renewed r;
    FOR k IN 1 .. coalesce(array_length(v_is, 1), 0) LOOP
        v_status[v_is[k]] := 'ok';
        v_number[v_is[k]] := v_numbers[k];
        v_code[v_is[k]] := v_codes[k];
        v_expires[v_is[k]] := v_expiries[k];
    END LOOP;

    FOR i IN 1 .. v_n LOOP
        IF v_status[i] IS NULL THEN
            SELECT * INTO v_one FROM ab_reserve(p_sessions[i], p_groups[i], p_codes[i],
                                                p_phones[i], p_timeouts[i], p_health[i], p_now);
            v_status[i] := v_one.o_status;
            v_number[i] := v_one.o_number;
            v_code[i] := v_one.o_code;
            v_expires[i] := v_one.o_expires_at;
            v_size[i] := v_one.o_pool_size;
            v_free[i] := v_one.o_pool_free;
        END IF;
    END LOOP;
    RETURN QUERY SELECT * FROM unnest(v_status, v_number, v_code, v_expires, v_size, v_free);
END
$$;
