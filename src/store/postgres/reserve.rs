//! Reserving, matching and releasing in PostgreSQL: the locking decisions live here.
//!
//! Lock order is session row → group row (round-robin only) → number rows, the same in
//! every path that takes more than one, so concurrent calls queue rather than deadlock
//! (match locks the number, then ends the session only when asked; a rare deadlock with a
//! concurrent reserve of that same session is retried by `with_tx`).

use std::time::Duration;

use rand::Rng;
use tokio_postgres::Transaction;

use super::pg_error;
use super::sessions::{self, left};
use crate::domain::{AccessCode, AccessNumber, Allocation, BookingTimeout};
use crate::store::{
    MatchRequest, NewSession, Reservation, ReserveError, ReserveRequest, Session, StoreError,
};

/// A number is free when no live reservation sits on it (an expired one counts as none).
const FREE: &str = "NOT retiring AND (session IS NULL OR expires_at <= $2)";

pub async fn reserve(
    tx: &Transaction<'_>,
    now: i64,
    req: &ReserveRequest,
) -> Result<Reservation, ReserveError> {
    let sql = "SELECT expires_at FROM sessions WHERE id = $1 AND expires_at > $2 FOR UPDATE";
    let row = tx
        .query_opt(sql, &[&req.session.as_str(), &now])
        .await
        .map_err(pg_error)?;
    let session_expiry: i64 = row.ok_or(ReserveError::SessionNotFound)?.get(0);
    let group = req.group.as_str();
    let row = tx
        .query_opt(
            "SELECT allocation, booking_timeout FROM groups WHERE name = $1",
            &[&group],
        )
        .await
        .map_err(pg_error)?
        .ok_or(ReserveError::UnknownGroup)?;
    let allocation: String = row.get(0);
    let allocation: Allocation = allocation
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("group {group}: {e}")))?;
    let group_timeout: Option<i32> = row.get(1);
    let timeout = req
        .timeout
        .or(group_timeout.map(|t| BookingTimeout::from_secs_lenient(i64::from(t))))
        .unwrap_or(BookingTimeout::DEFAULT);
    let expires_at = (now + i64::from(timeout.secs()) * 1000).min(session_expiry);

    let mine =
        "SELECT number FROM numbers WHERE group_name = $1 AND session = $3 AND expires_at > $2";
    let existing = tx
        .query_opt(mine, &[&group, &now, &req.session.as_str()])
        .await
        .map_err(pg_error)?;
    let number: String = match existing {
        Some(row) => row.get(0),
        None => pick(tx, now, group, allocation).await?,
    };
    let code = req.code.as_ref().map(|c| c.as_str());
    let phone = req.phone.as_ref().map(|p| p.as_str());
    let sql = "UPDATE numbers SET session = $3, expires_at = $2, freed_at = $2,
                      code = CASE WHEN session = $3 AND expires_at > $5 THEN coalesce(code, $4) ELSE $4 END,
                      phone = CASE WHEN session = $3 AND expires_at > $5 THEN coalesce($6, phone) ELSE $6 END
               WHERE number = $1 RETURNING code";
    let row = tx
        .query_one(
            sql,
            &[
                &number,
                &expires_at,
                &req.session.as_str(),
                &code,
                &now,
                &phone,
            ],
        )
        .await
        .map_err(pg_error)?;
    let code: Option<String> = row.get(0);
    let (pool_size, pool_free) = if req.pool_health {
        counts(tx, now, group).await?
    } else {
        (0, 0)
    };
    Ok(Reservation {
        number: AccessNumber::parse(&number).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        code: code.map(AccessCode::from_stored),
        expires_in: left(expires_at, now),
        pool_size,
        pool_free,
    })
}

/// Locks a free number of the group by its allocation rule; `Exhausted` when none is free.
async fn pick(
    tx: &Transaction<'_>,
    now: i64,
    group: &str,
    allocation: Allocation,
) -> Result<String, ReserveError> {
    let from = |order: &str, filter: &str| {
        format!(
            "SELECT number, position FROM numbers WHERE group_name = $1 AND {FREE} {filter} ORDER BY {order} LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
    };
    let found = match allocation {
        Allocation::LeastRecentlyUsed => tx
            .query_opt(&from("freed_at, position", ""), &[&group, &now])
            .await
            .map_err(pg_error)?,
        Allocation::RoundRobin => {
            // The group row's lock makes the cursor exact across nodes (allocations in one
            // round-robin group take turns; other groups and rules are not held up).
            let row = tx
                .query_one(
                    "SELECT cursor FROM groups WHERE name = $1 FOR UPDATE",
                    &[&group],
                )
                .await
                .map_err(pg_error)?;
            let cursor: i64 = row.get(0);
            let found = around(tx, now, group, cursor, &from).await?;
            if let Some(row) = &found {
                let position: i64 = row.get(1);
                tx.execute(
                    "UPDATE groups SET cursor = $2 WHERE name = $1",
                    &[&group, &(position + 1)],
                )
                .await
                .map_err(pg_error)?;
            }
            found
        }
        Allocation::Random => {
            // A random start position, then the next free number: uniform when few numbers
            // are busy, and cheap (one index probe) at any pool size.
            let row = tx
                .query_one(
                    "SELECT max(position) FROM numbers WHERE group_name = $1",
                    &[&group],
                )
                .await
                .map_err(pg_error)?;
            let max: Option<i64> = row.get(0);
            let start = rand::rng().random_range(0..=max.unwrap_or(0).max(0));
            around(tx, now, group, start, &from).await?
        }
    };
    match found {
        Some(row) => Ok(row.get(0)),
        None => Err(exhausted(tx, now, group).await?),
    }
}

/// The first free number at or after `start`, wrapping to the start of the group.
async fn around(
    tx: &Transaction<'_>,
    now: i64,
    group: &str,
    start: i64,
    from: &impl Fn(&str, &str) -> String,
) -> Result<Option<tokio_postgres::Row>, StoreError> {
    let after = tx
        .query_opt(
            &from("position", "AND position >= $3"),
            &[&group, &now, &start],
        )
        .await
        .map_err(pg_error)?;
    if after.is_some() {
        return Ok(after);
    }
    tx.query_opt(
        &from("position", "AND position < $3"),
        &[&group, &now, &start],
    )
    .await
    .map_err(pg_error)
}

async fn exhausted(
    tx: &Transaction<'_>,
    now: i64,
    group: &str,
) -> Result<ReserveError, StoreError> {
    let sql = "SELECT min(expires_at) FROM numbers WHERE group_name = $1 AND session IS NOT NULL AND expires_at > $2";
    let row = tx.query_one(sql, &[&group, &now]).await.map_err(pg_error)?;
    let first: Option<i64> = row.get(0);
    let retry_after = left(first.unwrap_or(now), now).max(Duration::from_secs(1));
    Ok(ReserveError::Exhausted { retry_after })
}

async fn counts(tx: &Transaction<'_>, now: i64, group: &str) -> Result<(u64, u64), StoreError> {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE NOT retiring), count(*) FILTER (WHERE {FREE}) FROM numbers WHERE group_name = $1"
    );
    let row = tx
        .query_one(&sql, &[&group, &now])
        .await
        .map_err(pg_error)?;
    let (size, free): (i64, i64) = (row.get(0), row.get(1));
    Ok((size as u64, free as u64))
}

pub async fn reserve_new_session(
    tx: &Transaction<'_>,
    now: i64,
    new: &NewSession,
    req: &ReserveRequest,
) -> Result<(Session, Reservation), ReserveError> {
    let session = sessions::create(tx, now, new).await?;
    let reservation = reserve(tx, now, req).await?;
    Ok((session, reservation))
}

pub async fn match_reservation(
    tx: &Transaction<'_>,
    now: i64,
    req: &MatchRequest,
) -> Result<Option<Session>, StoreError> {
    let sql = "SELECT session, code, phone FROM numbers WHERE number = $1 AND session IS NOT NULL AND expires_at > $2 FOR UPDATE";
    let Some(row) = tx
        .query_opt(sql, &[&req.number.as_str(), &now])
        .await
        .map_err(pg_error)?
    else {
        return Ok(None);
    };
    let (session, code, phone): (String, Option<String>, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    let code_ok = match (&code, &req.code) {
        (Some(want), Some(got)) => want == got.as_str(),
        (Some(_), None) => !req.code_required,
        (None, _) => true,
    };
    let phone_ok = match (&phone, &req.phone) {
        (Some(want), Some(got)) => want == got.as_str(),
        _ => true,
    };
    if !code_ok || !phone_ok {
        return Ok(None);
    }
    let id = crate::domain::SessionId::parse(&session)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let Some(found) = sessions::get(tx, now, &id).await? else {
        return Ok(None);
    };
    release(tx, now, &req.number).await?;
    if req.end_session {
        sessions::end(tx, now, &id).await?;
    }
    Ok(Some(found))
}

/// Ends the live reservation on a number; a retiring number leaves the group.
pub async fn release(
    tx: &Transaction<'_>,
    now: i64,
    number: &AccessNumber,
) -> Result<bool, StoreError> {
    let sql = "UPDATE numbers SET session = NULL, code = NULL, phone = NULL, expires_at = NULL, freed_at = $2
               WHERE number = $1 AND session IS NOT NULL AND expires_at > $2 RETURNING retiring";
    let Some(row) = tx
        .query_opt(sql, &[&number.as_str(), &now])
        .await
        .map_err(pg_error)?
    else {
        return Ok(false);
    };
    let retiring: bool = row.get(0);
    if retiring {
        tx.execute("DELETE FROM numbers WHERE number = $1", &[&number.as_str()])
            .await
            .map_err(pg_error)?;
    }
    Ok(true)
}
