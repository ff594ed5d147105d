//! Group administration, searches and housekeeping in PostgreSQL.

use std::collections::HashMap;

use deadpool_postgres::Transaction;

use super::claim::{POLICY_COLUMNS, policy};
use super::pg_error;
use super::sessions::left;
use crate::domain::{
    AccessNumber, Allocation, BookingTimeout, GroupName, NumberPolicy, SessionId, UnixMillis,
};
use crate::rules;
use crate::store::{
    AddNumbers, DeleteGroup, GroupChange, GroupDetail, GroupSettings, GroupStats, NumberState,
    NumberView, NumbersFilter, PutGroup, RemoveNumber, ReservationFilter, ReservationView,
    StateKind, StoreError,
};

/// A reservation is live on a row while this holds ($2 is now).
pub(super) const LIVE: &str = "(session IS NOT NULL AND expires_at > $2)";

/// A column that does not parse: the parse error stays the source (never flattened).
fn corrupt<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::corrupt(what, e)
}

pub async fn ping(_tx: &Transaction<'_>, _now: i64) -> Result<(), StoreError> {
    Ok(())
}

/// Every group (or the one `name`d) with its settings and, when `counted`, its counts by
/// state (else all 0, and no number is read: a group's page counts in its own statement).
async fn stats(
    tx: &Transaction<'_>,
    now: i64,
    name: Option<&str>,
    counted: bool,
) -> Result<Vec<GroupStats>, StoreError> {
    let sql = format!(
        "SELECT g.name, g.allocation, g.booking_timeout,
                count(n.number) FILTER (WHERE NOT n.retiring),
                count(n.number) FILTER (WHERE NOT n.retiring AND {live}),
                count(n.number) FILTER (WHERE n.retiring AND {live}),
                count(n.number) FILTER (WHERE NOT n.retiring AND n.quarantined_at IS NOT NULL),
                count(n.number) FILTER (WHERE NOT n.retiring AND n.quarantined_at IS NULL
                                          AND NOT {live} AND n.freed_at > $2),
                g.{policy}
         FROM groups g LEFT JOIN numbers n ON $3 AND n.group_name = g.name
         WHERE $1::text IS NULL OR g.name = $1
         GROUP BY g.name ORDER BY g.name COLLATE \"C\"",
        live = "(n.session IS NOT NULL AND n.expires_at > $2)",
        policy = POLICY_COLUMNS.replace(", ", ", g."),
    );
    let rows = tx
        .query(&sql, &[&name, &now, &counted])
        .await
        .map_err(pg_error)?;
    rows.iter()
        .map(|r| {
            let (size, reserved, retiring): (i64, i64, i64) = (r.get(3), r.get(4), r.get(5));
            let (quarantined, cooling): (i64, i64) = (r.get(6), r.get(7));
            let allocation: String = r.get(1);
            let timeout: Option<i32> = r.get(2);
            Ok(GroupStats {
                name: GroupName::parse(r.get(0)).map_err(corrupt("groups.name"))?,
                allocation: allocation
                    .parse::<Allocation>()
                    .map_err(corrupt("groups.allocation"))?,
                booking_timeout: timeout.map(|t| t as u32),
                size: size as u64,
                free: (size - reserved - quarantined - cooling).max(0) as u64,
                reserved: reserved as u64,
                cooling: cooling as u64,
                quarantined: quarantined as u64,
                retiring: retiring as u64,
                policy: policy(r, 8),
            })
        })
        .collect()
}

pub async fn groups(tx: &Transaction<'_>, now: i64) -> Result<Vec<GroupStats>, StoreError> {
    stats(tx, now, None, true).await
}

/// A number's state as the admin page names it (`StateKind::name`; NULL: a retiring
/// number no reservation holds, gone from the group). `$2` is now.
const STATE: &str = "CASE WHEN session IS NOT NULL AND expires_at > $2
                          THEN CASE WHEN retiring THEN 'retiring' ELSE 'reserved' END
                        WHEN retiring THEN NULL
                        WHEN quarantined_at IS NOT NULL THEN 'quarantined'
                        WHEN freed_at > $2 THEN 'cooling'
                        ELSE 'free' END";

/// A group's page in one statement, so one snapshot: its counts by state, how many numbers
/// pass the filter (`$3` state, `$4` digits), and the first `$5` of those in the group's
/// order. The counts are the list's picture (from two statements they disagreed in a tenth
/// of the answers under traffic); only the listed rows leave PostgreSQL (a million-number
/// group's whole list took 1.5 s a page).
fn page_sql() -> String {
    format!(
        "WITH v AS NOT MATERIALIZED (
             SELECT number, position, session, expires_at, freed_at, strays, state,
                    state IS NOT NULL AND ($3::text IS NULL OR state = $3)
                        AND ($4::text IS NULL OR strpos(number, $4) > 0) AS shown
               FROM (SELECT *, {STATE} AS state FROM numbers WHERE group_name = $1) n),
         counts AS (
             SELECT count(*) FILTER (WHERE state = 'free') AS free,
                    count(*) FILTER (WHERE state = 'reserved') AS reserved,
                    count(*) FILTER (WHERE state = 'cooling') AS cooling,
                    count(*) FILTER (WHERE state = 'quarantined') AS quarantined,
                    count(*) FILTER (WHERE state = 'retiring') AS retiring,
                    count(*) FILTER (WHERE shown) AS listed
               FROM v)
         SELECT counts.*, l.number, l.state, l.session, l.expires_at, l.freed_at, l.strays
           FROM counts LEFT JOIN LATERAL
                (SELECT * FROM v WHERE shown ORDER BY position LIMIT $5) l ON true"
    )
}

pub async fn group(
    tx: &Transaction<'_>,
    now: i64,
    name: &GroupName,
    filter: &NumbersFilter,
) -> Result<Option<GroupDetail>, StoreError> {
    let Some(mut stats) = stats(tx, now, Some(name.as_str()), false).await?.pop() else {
        return Ok(None);
    };
    let state = filter.state.map(StateKind::name);
    let limit = filter.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    let rows = tx
        .query(
            &page_sql(),
            &[&name.as_str(), &now, &state, &filter.digits, &limit],
        )
        .await
        .map_err(pg_error)?;
    let count = |i: usize| rows.first().map_or(0, |r| r.get::<_, i64>(i) as u64);
    stats.free = count(0);
    stats.reserved = count(1);
    stats.cooling = count(2);
    stats.quarantined = count(3);
    stats.retiring = count(4);
    stats.size = stats.free + stats.reserved + stats.cooling + stats.quarantined;
    let listed = count(5);
    let mut numbers = Vec::with_capacity(rows.len());
    // Without a listed number the one row carries the counts and NULLs.
    for r in rows
        .iter()
        .filter(|r| r.get::<_, Option<&str>>(6).is_some())
    {
        numbers.push(number_view(r, now)?);
    }
    Ok(Some(GroupDetail {
        stats,
        listed,
        numbers,
    }))
}

/// One listed row of the page statement (columns from 6: number, state, session,
/// expires_at, freed_at, strays).
fn number_view(r: &tokio_postgres::Row, now: i64) -> Result<NumberView, StoreError> {
    let state: &str = r.get(7);
    let kind = StateKind::from_name(state)
        .ok_or_else(|| StoreError::corrupt("numbers state", format!("{state:?} is not a state")))?;
    let held = || -> Result<(SessionId, u64), StoreError> {
        let session = SessionId::parse(r.get(8)).map_err(corrupt("numbers.session"))?;
        Ok((session, left(r.get(9), now).as_secs()))
    };
    let state = match kind {
        StateKind::Free => NumberState::Free,
        StateKind::Quarantined => NumberState::Quarantined,
        StateKind::Cooling => {
            let ms = u64::try_from(r.get::<_, i64>(10) - now).unwrap_or(0);
            NumberState::Cooling {
                seconds_left: ms.div_ceil(1000),
            }
        }
        StateKind::Reserved => {
            let (session, expires_in) = held()?;
            NumberState::Reserved {
                session,
                expires_in,
            }
        }
        StateKind::Retiring => {
            let (session, expires_in) = held()?;
            NumberState::Retiring {
                session,
                expires_in,
            }
        }
    };
    let strays: Vec<UnixMillis> = r
        .get::<_, Option<Vec<i64>>>(11)
        .unwrap_or_default()
        .into_iter()
        .map(UnixMillis)
        .collect();
    Ok(NumberView {
        number: AccessNumber::parse(r.get(6)).map_err(corrupt("numbers.number"))?,
        state,
        stray_calls: rules::lifecycle::recent_strays(&strays, UnixMillis(now)),
    })
}

/// How long an admin change of a group's numbers (a `PUT` with numbers, an add, a group's
/// delete) may take: longer than a call (the store's timeout, 5 s by default), shorter than
/// the HTTP request's own bound (`request_timeout_ms`, 30 s by default), so the answer is
/// the store's.
pub const BULK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Lets this transaction's statements and lock waits run for `bound` (each connection's
/// own limits are the store's timeout).
pub(super) async fn allow(
    tx: &Transaction<'_>,
    bound: std::time::Duration,
) -> Result<(), StoreError> {
    let ms = bound.as_millis();
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}"
    ))
    .await
    .map_err(pg_error)
}

/// Before an admin change locks a group's row: the lock that guards its round-robin cursor,
/// so that request-access batches skip the cursor while the change runs instead of waiting
/// on the row (adding 100,000 numbers to a group held every request-access on it for the
/// whole 1.5 s of the change, on every node).
pub(super) async fn hold_group(tx: &Transaction<'_>, name: &str) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT pg_advisory_xact_lock({})",
        super::reserve::cursor_lock("$1")
    );
    tx.execute(&sql, &[&name]).await.map_err(pg_error)?;
    Ok(())
}

/// A group's settings and round-robin cursor, its row locked (two admins changing one group
/// take turns; request-access batches leave the cursor alone meanwhile, `hold_group`);
/// `None` for an unknown group.
async fn lock_group(tx: &Transaction<'_>, name: &str) -> Result<Option<Locked>, StoreError> {
    hold_group(tx, name).await?;
    let sql = format!(
        "SELECT allocation, booking_timeout, cursor, {POLICY_COLUMNS} FROM groups WHERE name = $1 FOR UPDATE"
    );
    let row = tx.query_opt(&sql, &[&name]).await.map_err(pg_error)?;
    row.map(|r| {
        let allocation: String = r.get(0);
        let timeout: Option<i32> = r.get(1);
        let cursor: i64 = r.get(2);
        Ok(Locked {
            allocation: allocation.parse().map_err(corrupt("groups.allocation"))?,
            timeout: timeout.map(|t| BookingTimeout::from_secs_lenient(i64::from(t))),
            cursor: rules::Pos::try_from(cursor.max(0)).unwrap_or(rules::Pos::MAX),
            policy: policy(&r, 3),
        })
    })
    .transpose()
}

/// A group's row as `lock_group` read it.
#[derive(Debug, Clone, Copy)]
struct Locked {
    allocation: Allocation,
    timeout: Option<BookingTimeout>,
    cursor: rules::Pos,
    policy: NumberPolicy,
}

/// Writes a group's settings over what `lock_group` read (`was`); the cursor follows
/// `rules::cursor_after_change`. `true` when the group was created.
async fn write_group(
    tx: &Transaction<'_>,
    now: i64,
    name: &str,
    allocation: Allocation,
    booking_timeout: Option<BookingTimeout>,
    policy: &NumberPolicy,
    was: Option<Locked>,
) -> Result<bool, StoreError> {
    let cursor = was.map_or(0, |w| {
        rules::cursor_after_change(w.allocation, allocation, w.cursor)
    });
    let sql = "INSERT INTO groups (name, allocation, booking_timeout, cursor, require_code,
                   max_code_attempts, cool_down, late_match_grace, quarantine_after_stray_calls)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (name) DO UPDATE SET allocation = excluded.allocation,
                   booking_timeout = excluded.booking_timeout, cursor = excluded.cursor,
                   require_code = excluded.require_code,
                   max_code_attempts = excluded.max_code_attempts,
                   cool_down = excluded.cool_down, late_match_grace = excluded.late_match_grace,
                   quarantine_after_stray_calls = excluded.quarantine_after_stray_calls,
                   config_hash = NULL
               RETURNING (xmax = 0)";
    let timeout = booking_timeout.map(|t| t.secs() as i32);
    let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let row = tx
        .query_one(
            sql,
            &[
                &name,
                &allocation.as_str(),
                &timeout,
                &i64::from(cursor),
                &policy.require_code,
                &n(policy.max_code_attempts),
                &n(policy.cool_down),
                &n(policy.late_match_grace),
                &n(policy.quarantine_after_stray_calls),
            ],
        )
        .await
        .map_err(pg_error)?;
    if let Some(was) = was
        && was.policy.cool_down != policy.cool_down
    {
        rest_by(tx, now, name, allocation, policy).await?;
    }
    Ok(row.get(0))
}

/// A number rests by the `cool_down` in force when its reservation ends (the embedded stores
/// read it then). Here a reservation writes when its number is lendable again as it is made
/// (`freed_at`: an expiry then needs no write), so a change of `cool_down` rewrites that time
/// for the group's live reservations; a rest already running keeps its end.
async fn rest_by(
    tx: &Transaction<'_>,
    now: i64,
    name: &str,
    allocation: Allocation,
    policy: &NumberPolicy,
) -> Result<(), StoreError> {
    let cool_down = i64::try_from(policy.cool_down().as_millis()).unwrap_or(i64::MAX);
    let lru = allocation == Allocation::LeastRecentlyUsed;
    let sql = format!(
        "UPDATE numbers SET freed_at = expires_at + $3,
                lru_at = CASE WHEN $4 THEN expires_at + $3 ELSE lru_at END
          WHERE group_name = $1 AND {LIVE}"
    );
    tx.execute(&sql, &[&name, &now, &cool_down, &lru])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Sets a group's whole settings from the config at start (see `apply.rs`).
pub(super) async fn set_group(
    tx: &Transaction<'_>,
    now: i64,
    s: &GroupSettings,
) -> Result<(), StoreError> {
    let name = s.name.as_str();
    let was = lock_group(tx, name).await?;
    write_group(
        tx,
        now,
        name,
        s.allocation,
        s.booking_timeout,
        &s.policy,
        was,
    )
    .await?;
    let switched = was.is_some_and(|w| w.allocation != Allocation::LeastRecentlyUsed);
    if switched && s.allocation == Allocation::LeastRecentlyUsed {
        // Start-up work has a bound of its own (`apply.rs`): the whole group in one statement.
        order_by_age(tx, name, i64::MAX).await?;
    }
    Ok(())
}

/// Rows a transaction of [`order_by_age`] copies at most when called from the admin API.
pub const ORDER_BATCH: i64 = 10_000;

/// Copies `freed_at` to `lru_at` for up to `limit` of a group's numbers where they differ;
/// returns how many it found (0: the group's order is complete). Groups that do not lend least
/// recently used leave `lru_at` behind (their pairs' updates stay heap-only, migration 7); a
/// group switched to it orders by `lru_at` from then on. A row a claim or release is changing
/// is waited for and copied as that left it (the update re-reads it).
pub async fn order_by_age(tx: &Transaction<'_>, name: &str, limit: i64) -> Result<u64, StoreError> {
    let row = tx
        .query_one(
            "WITH todo AS (SELECT number FROM numbers WHERE group_name = $1 AND lru_at <> freed_at
                            LIMIT $2),
                  done AS (UPDATE numbers n SET lru_at = n.freed_at FROM todo
                            WHERE n.number = todo.number AND n.lru_at <> n.freed_at RETURNING 1)
             SELECT (SELECT count(*) FROM todo), (SELECT count(*) FROM done)",
            &[&name, &limit],
        )
        .await
        .map_err(pg_error)?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// The admin API's change to one group, in this one transaction: the group row is locked
/// first, every number is checked before anything is written, then settings and numbers are
/// written together. Settings left `None` keep their value (`rules::group::changed_settings`).
pub async fn put_group(
    tx: &Transaction<'_>,
    now: i64,
    change: &GroupChange,
) -> Result<PutGroup, StoreError> {
    let g = change.name.as_str();
    let was = lock_group(tx, g).await?;
    let numbers = match numbers_to_add(tx, now, &change.name, change.numbers.clone()).await? {
        Ok(numbers) => numbers,
        Err((number, owner)) => return Ok(PutGroup::Taken(number, owner)),
    };
    let (allocation, timeout) = rules::group::changed_settings(
        was.map(|w| (w.allocation, w.timeout)),
        change.allocation,
        change.booking_timeout,
    );
    let policy = rules::group::changed_policy(was.map(|w| w.policy), &change.policy);
    let created = write_group(tx, now, g, allocation, timeout, &policy, was).await?;
    let texts: Vec<&str> = numbers.iter().map(AccessNumber::as_str).collect();
    append(tx, g, &texts).await?;
    analyze_if_grown(tx, texts.len()).await?;
    unretire_listed(tx, now, g, &change.numbers).await?;
    Ok(if created {
        PutGroup::Created
    } else {
        PutGroup::Changed
    })
}

/// The numbers of an admin request that join `group` (`rules::group::numbers_to_add`), with
/// their owners read in one statement. Rows of retired numbers whose reservation ended are
/// dropped first: they belong to no one.
async fn numbers_to_add(
    tx: &Transaction<'_>,
    now: i64,
    group: &GroupName,
    numbers: Vec<AccessNumber>,
) -> Result<Result<Vec<AccessNumber>, (AccessNumber, GroupName)>, StoreError> {
    let mut owners = HashMap::new();
    if !numbers.is_empty() {
        let texts: Vec<&str> = numbers.iter().map(AccessNumber::as_str).collect();
        drop_gone(tx, now, &texts).await?;
        let rows = tx
            .query(
                "SELECT number, group_name FROM numbers WHERE number = ANY($1)",
                &[&texts],
            )
            .await
            .map_err(pg_error)?;
        for row in rows {
            let owner = GroupName::parse(row.get(1)).map_err(corrupt("numbers.group_name"))?;
            owners.insert(row.get::<_, String>(0), owner);
        }
    }
    Ok(rules::group::numbers_to_add(group, numbers, |n| {
        owners.get(n.as_str()).cloned()
    }))
}

pub async fn delete_group(
    tx: &Transaction<'_>,
    now: i64,
    name: &GroupName,
) -> Result<DeleteGroup, StoreError> {
    let g = name.as_str();
    hold_group(tx, g).await?;
    if tx
        .query_opt("SELECT 1 FROM groups WHERE name = $1 FOR UPDATE", &[&g])
        .await
        .map_err(pg_error)?
        .is_none()
    {
        return Ok(DeleteGroup::NotFound);
    }
    // Every number of the group locked first: a request-access batch holding one (about to
    // commit a reservation on it) is waited for, so that the check below, a statement of
    // its own, sees that reservation. (Batches leave a held group's row alone, `hold_group`:
    // the check read too early, and the delete took a just-reserved number with it.) Batches
    // that come later skip the locked numbers and find the group gone (`reserve.rs`).
    tx.query_one(
        "SELECT count(*) FROM (SELECT 1 FROM numbers WHERE group_name = $1 FOR UPDATE) n",
        &[&g],
    )
    .await
    .map_err(pg_error)?;
    let busy = format!("SELECT 1 FROM numbers WHERE group_name = $1 AND {LIVE} LIMIT 1");
    if tx
        .query_opt(&busy, &[&g, &now])
        .await
        .map_err(pg_error)?
        .is_some()
    {
        return Ok(DeleteGroup::Busy);
    }
    tx.execute("DELETE FROM numbers WHERE group_name = $1", &[&g])
        .await
        .map_err(pg_error)?;
    tx.execute("DELETE FROM groups WHERE name = $1", &[&g])
        .await
        .map_err(pg_error)?;
    Ok(DeleteGroup::Deleted)
}

/// Drops rows of retired numbers whose reservation has ended (they are gone already).
pub(super) async fn drop_gone(
    tx: &Transaction<'_>,
    now: i64,
    numbers: &[&str],
) -> Result<(), StoreError> {
    let sql = format!("DELETE FROM numbers WHERE number = ANY($1) AND retiring AND NOT {LIVE}");
    tx.execute(&sql, &[&numbers, &now])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Appends numbers to a group at `rules::next_position` (after its last number, never behind
/// the round-robin cursor). Callers hold the group row's lock.
pub(super) async fn append(
    tx: &Transaction<'_>,
    group: &str,
    numbers: &[&str],
) -> Result<(), StoreError> {
    let row = tx
        .query_one(
            "SELECT (SELECT max(position) FROM numbers WHERE group_name = $1),
                    (SELECT cursor FROM groups WHERE name = $1)",
            &[&group],
        )
        .await
        .map_err(pg_error)?;
    let last: Option<i64> = row.get(0);
    let cursor: Option<i64> = row.get(1);
    let pos = |v: i64| {
        rules::Pos::try_from(v.max(0)).map_err(|e| StoreError::corrupt("numbers.position", e))
    };
    let start = rules::next_position(last.map(pos).transpose()?, pos(cursor.unwrap_or(0))?);
    let sql = "INSERT INTO numbers (number, group_name, position)
               SELECT n, $2, $3 + ord - 1
               FROM unnest($1::text[]) WITH ORDINALITY AS t(n, ord)";
    tx.execute(sql, &[&numbers, &group, &i64::from(start)])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Fresh statistics for `numbers` in the transaction that added `added` rows to it, when they
/// are many next to what the planner last measured: as many as would make autovacuum analyze
/// it (50 rows and a tenth of the table). Each pooled connection plans its prepared
/// statements once, for the table as it was measured then, until new statistics come; a
/// group of 20 numbers grown by 100,000 had every request-access scan the whole table,
/// 3.4 → 120 ms a call (an outside audit, on a server without autovacuum). A start that
/// applies the config does the same (`apply.rs`).
async fn analyze_if_grown(tx: &Transaction<'_>, added: usize) -> Result<(), StoreError> {
    if added == 0 {
        return Ok(());
    }
    let measured: f32 = tx
        .query_one(
            "SELECT reltuples FROM pg_class WHERE oid = 'numbers'::regclass",
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    // -1: never measured.
    let threshold = 50.0 + f64::from(measured.max(0.0)) / 10.0;
    if added as f64 >= threshold {
        tx.batch_execute("ANALYZE numbers")
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

/// The group no longer matches the config it was applied from (see `apply.rs`).
async fn forget_config(tx: &Transaction<'_>, group: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE groups SET config_hash = NULL WHERE name = $1",
        &[&group],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

pub async fn add_numbers(
    tx: &Transaction<'_>,
    now: i64,
    group: &GroupName,
    numbers: &[AccessNumber],
) -> Result<AddNumbers, StoreError> {
    let g = group.as_str();
    hold_group(tx, g).await?;
    if tx
        .query_opt("SELECT 1 FROM groups WHERE name = $1 FOR UPDATE", &[&g])
        .await
        .map_err(pg_error)?
        .is_none()
    {
        return Ok(AddNumbers::UnknownGroup);
    }
    forget_config(tx, g).await?;
    let asked = numbers;
    let numbers = match numbers_to_add(tx, now, group, numbers.to_vec()).await? {
        Ok(numbers) => numbers,
        Err((number, owner)) => return Ok(AddNumbers::Taken(number, owner)),
    };
    let texts: Vec<&str> = numbers.iter().map(AccessNumber::as_str).collect();
    append(tx, g, &texts).await?;
    analyze_if_grown(tx, texts.len()).await?;
    let back = unretire_listed(tx, now, g, asked).await?;
    Ok(AddNumbers::Added(numbers.len() as u64 + back))
}

/// The group's own retiring numbers that an admin request lists go back into service (an
/// operator who removed a reserved number and adds it again keeps it); how many did.
async fn unretire_listed(
    tx: &Transaction<'_>,
    now: i64,
    group: &str,
    listed: &[AccessNumber],
) -> Result<u64, StoreError> {
    let listed: Vec<&str> = listed.iter().map(AccessNumber::as_str).collect();
    tx.execute(
        &format!(
            "UPDATE numbers SET retiring = false
              WHERE number = ANY($1) AND retiring AND group_name = $3 AND {LIVE}"
        ),
        &[&listed, &now, &group],
    )
    .await
    .map_err(pg_error)
}

pub async fn remove_number(
    tx: &Transaction<'_>,
    now: i64,
    group: &GroupName,
    number: &AccessNumber,
) -> Result<RemoveNumber, StoreError> {
    if tx
        .query_opt("SELECT 1 FROM groups WHERE name = $1", &[&group.as_str()])
        .await
        .map_err(pg_error)?
        .is_none()
    {
        return Ok(RemoveNumber::UnknownGroup);
    }
    hold_group(tx, group.as_str()).await?;
    forget_config(tx, group.as_str()).await?;
    let sql = format!(
        "SELECT retiring, {LIVE} FROM numbers WHERE number = $1 AND group_name = $3 FOR UPDATE"
    );
    let Some(row) = tx
        .query_opt(&sql, &[&number.as_str(), &now, &group.as_str()])
        .await
        .map_err(pg_error)?
    else {
        return Ok(RemoveNumber::UnknownNumber);
    };
    let (retiring, live): (bool, bool) = (row.get(0), row.get(1));
    match (retiring, live) {
        (true, true) => Ok(RemoveNumber::Retiring),
        (true, false) => Ok(RemoveNumber::UnknownNumber),
        (false, true) => {
            tx.execute(
                "UPDATE numbers SET retiring = true WHERE number = $1",
                &[&number.as_str()],
            )
            .await
            .map_err(pg_error)?;
            Ok(RemoveNumber::Retiring)
        }
        (false, false) => {
            tx.execute("DELETE FROM numbers WHERE number = $1", &[&number.as_str()])
                .await
                .map_err(pg_error)?;
            Ok(RemoveNumber::Removed)
        }
    }
}

pub async fn find_reservations(
    tx: &Transaction<'_>,
    now: i64,
    f: &ReservationFilter,
) -> Result<Vec<ReservationView>, StoreError> {
    // The phone is compared here, not in SQL, by `PhoneNumber::same_digits` (a `+` or not, same
    // digits), so the search's rule is written once for every backend. Names are ordered by
    // their bytes (`COLLATE "C"`), as the embedded stores order them, whatever the database's
    // collation. SQL narrows to
    // reservations that carry a phone; an admin search is rare enough for those to be read.
    let sql = format!(
        "SELECT number, group_name, session, phone, code IS NOT NULL, expires_at FROM numbers
         WHERE {LIVE} AND ($1::text IS NULL OR number = $1) AND ($3::text IS NULL OR session = $3)
           AND (NOT $4 OR phone IS NOT NULL)
         ORDER BY group_name COLLATE \"C\", position"
    );
    let (number, session, by_phone) = (
        f.number.as_ref().map(|n| n.as_str()),
        f.session.as_ref().map(|s| s.as_str()),
        f.phone.is_some(),
    );
    let rows = tx
        .query(&sql, &[&number, &now, &session, &by_phone])
        .await
        .map_err(pg_error)?;
    let views = rows.iter().map(|r| {
        let phone: Option<String> = r.get(3);
        Ok(ReservationView {
            number: AccessNumber::parse(r.get(0)).map_err(corrupt("numbers.number"))?,
            group: GroupName::parse(r.get(1)).map_err(corrupt("numbers.group_name"))?,
            session: SessionId::parse(r.get(2)).map_err(corrupt("numbers.session"))?,
            phone: phone.map(crate::domain::PhoneNumber::from_stored),
            has_code: r.get(4),
            expires_in: left(r.get(5), now).as_secs(),
        })
    });
    let mut found = Vec::new();
    for view in views {
        let view: ReservationView = view?;
        let wanted = f.phone.as_ref().is_none_or(|want| {
            view.phone
                .as_ref()
                .is_some_and(|held| held.same_digits(want))
        });
        if wanted {
            found.push(view);
        }
    }
    Ok(found)
}

pub async fn touch_node(tx: &Transaction<'_>, now: i64, node: &str) -> Result<(), StoreError> {
    let sql = "INSERT INTO nodes (node_id, last_seen) VALUES ($1, $2) ON CONFLICT (node_id) DO UPDATE SET last_seen = excluded.last_seen";
    tx.execute(sql, &[&node, &now]).await.map_err(pg_error)?;
    Ok(())
}

/// Space only: every row removed here was already dead by its expiry.
/// Frees the space of expired rows; returns how many, and the expiry events of the
/// reservations it recorded.
pub async fn purge(
    tx: &Transaction<'_>,
    now: i64,
    node: &str,
) -> Result<(u64, Vec<crate::events::Event>), StoreError> {
    // Sessions, data and idempotency keys: in bounded batches, `purge.rs`.
    // Expired reservations become their numbers' last ones (late calls, failure reasons),
    // a bounded batch at a time by the expiry index, each with its event. Before the retired
    // numbers go: a removed number's reservation that expired is owed its event too.
    let ended = tx
        .query(
            "WITH due AS (SELECT number FROM numbers WHERE session IS NOT NULL AND expires_at <= $1
                           ORDER BY expires_at LIMIT 10000 FOR UPDATE SKIP LOCKED)
             UPDATE numbers n SET last_session = n.session, last_code = n.code,
                    last_phone = n.phone, last_end = n.expires_at, last_reason = 'expired',
                    session = NULL, code = NULL, phone = NULL, expires_at = NULL, wrong_codes = 0
               FROM due WHERE n.number = due.number
             RETURNING n.number, n.group_name, n.last_session, n.last_end",
            &[&now],
        )
        .await
        .map_err(pg_error)?;
    let mut n = ended.len() as u64;
    let events: Vec<_> = ended
        .iter()
        .filter_map(super::reserve::expired_event)
        .collect();
    let gone =
        "DELETE FROM numbers WHERE retiring AND NOT (session IS NOT NULL AND expires_at > $1)";
    n += tx.execute(gone, &[&now]).await.map_err(pg_error)?;
    touch_node(tx, now, node).await?;
    Ok((n, events))
}

/// Every node that touched the store (at start, then at each purge, every 5 or 30 s).
pub async fn nodes(tx: &Transaction<'_>, now: i64) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = tx
        .query("SELECT node_id, last_seen FROM nodes ORDER BY node_id", &[])
        .await
        .map_err(pg_error)?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                u64::try_from((now - r.get::<_, i64>(1)) / 1000).unwrap_or(0),
            )
        })
        .collect())
}
