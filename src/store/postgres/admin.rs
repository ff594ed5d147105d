//! Group administration in PostgreSQL: creating, changing and deleting groups, adding and
//! removing numbers. What the groups look like is `views.rs`'s; nodes and the purge are
//! `housekeeping.rs`'s.

use std::collections::HashMap;

use deadpool_postgres::Transaction;

use super::claim::{POLICY_COLUMNS, policy};
use super::pg_error;
use crate::domain::{AccessNumber, Allocation, BookingTimeout, GroupName, NumberPolicy};
use crate::rules;
use crate::store::{
    AddNumbers, DeleteGroup, GroupChange, GroupSettings, PutGroup, RemoveNumber, StoreError,
};

/// A reservation is live on a row while this holds ($2 is now).
pub(super) const LIVE: &str = "(session IS NOT NULL AND expires_at > $2)";

/// A column that does not parse: the parse error stays the source (never flattened).
pub(super) fn corrupt<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::corrupt(what, e)
}

/// How long an admin change of a group's numbers (a `PUT` with numbers, an add, a group's
/// delete) may take: longer than a call (the store's timeout, 5 s by default), shorter than
/// the HTTP request's own bound (`request_timeout_ms`, 30 s by default), so the answer is
/// the store's.
pub const BULK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Lets this transaction's statements and lock waits, and the node's work between them, run
/// for `bound` (each connection's own limits are the store's timeout).
pub(super) async fn allow(
    tx: &Transaction<'_>,
    bound: std::time::Duration,
) -> Result<(), StoreError> {
    let ms = bound.as_millis();
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms};
         SET LOCAL idle_in_transaction_session_timeout = {ms}"
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
            let owner =
                GroupName::from_stored(row.get(1)).map_err(corrupt("numbers.group_name"))?;
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
    // A group that holds a live reservation now is refused before any number is locked:
    // locking them all first made every node's claims skip the group's numbers while the
    // delete looked, so an operator retrying the delete of a busy group (a routine 409)
    // turned callers away with 503 `PoolExhausted` from a nearly free pool (an outside
    // audit: 32–80 refusals a run). The check runs again under the locks below.
    let busy = format!("SELECT 1 FROM numbers WHERE group_name = $1 AND {LIVE} LIMIT 1");
    let holds_live = || async {
        let row = tx.query_opt(&busy, &[&g, &now]).await.map_err(pg_error)?;
        Ok::<_, StoreError>(row.is_some())
    };
    if holds_live().await? {
        return Ok(DeleteGroup::Busy);
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
    if holds_live().await? {
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
