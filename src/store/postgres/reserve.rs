//! Reserving, matching and releasing in PostgreSQL: the locking decisions live here.
//!
//! Lock order is session row → group row (round-robin only) → number rows, the same in
//! every path that takes more than one, so concurrent calls queue rather than deadlock
//! (match locks the number, then ends the session only when asked; a rare deadlock with a
//! concurrent reserve of that same session is retried by `with_tx`).

use std::time::Duration;

use tokio_postgres::Transaction;

use super::pg_error;
use super::sessions::{self, left};
use crate::domain::{AccessCode, AccessNumber};
use crate::store::{
    MatchRequest, NewSession, Reservation, ReserveError, ReserveRequest, Session, StoreError,
};

/// One reservation in the caller's transaction (request-interaction uses it after creating
/// the session); the decision itself is the `ab_reserve` function (migration 0002).
pub async fn reserve(
    tx: &Transaction<'_>,
    now: i64,
    req: &ReserveRequest,
) -> Result<Reservation, ReserveError> {
    let row = tx
        .query_one(
            "SELECT * FROM ab_reserve($1, $2, $3, $4, $5, $6, $7)",
            &[
                &req.session.as_str(),
                &req.group.as_str(),
                &req.code.as_ref().map(|c| c.as_str()),
                &req.phone.as_ref().map(|p| p.as_str()),
                &req.timeout.map(|t| t.secs() as i32),
                &req.pool_health,
                &now,
            ],
        )
        .await
        .map_err(pg_error)?;
    answer(&row, now)?
}

/// The batch statement: one implicit transaction (autocommit), `now` from the database's
/// clock unless a test froze it ($7), returned with every row.
pub const BATCH_SQL: &str = "SELECT b.*, t.now FROM
    (SELECT coalesce($7::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) AS now) t,
    LATERAL ab_reserve_batch($1, $2, $3, $4, $5, $6, t.now) b";

/// Many reservations in one round trip, decided in order (see `batch.rs`).
pub async fn reserve_batch(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    frozen_now: Option<i64>,
    reqs: &[ReserveRequest],
) -> Result<Vec<Result<Reservation, ReserveError>>, StoreError> {
    let sessions: Vec<&str> = reqs.iter().map(|r| r.session.as_str()).collect();
    let groups: Vec<&str> = reqs.iter().map(|r| r.group.as_str()).collect();
    let codes: Vec<Option<&str>> = reqs
        .iter()
        .map(|r| r.code.as_ref().map(|c| c.as_str()))
        .collect();
    let phones: Vec<Option<&str>> = reqs
        .iter()
        .map(|r| r.phone.as_ref().map(|p| p.as_str()))
        .collect();
    let timeouts: Vec<Option<i32>> = reqs
        .iter()
        .map(|r| r.timeout.map(|t| t.secs() as i32))
        .collect();
    let health: Vec<bool> = reqs.iter().map(|r| r.pool_health).collect();
    let rows = client
        .query(
            statement,
            &[
                &sessions,
                &groups,
                &codes,
                &phones,
                &timeouts,
                &health,
                &frozen_now,
            ],
        )
        .await
        .map_err(pg_error)?;
    if rows.len() != reqs.len() {
        return Err(StoreError::Corrupt(format!(
            "ab_reserve_batch answered {} rows for {} requests",
            rows.len(),
            reqs.len()
        )));
    }
    rows.iter()
        .map(|row| {
            let now: i64 = row.try_get("now").map_err(corrupt)?;
            answer(row, now)
        })
        .collect()
}

/// Reads one `ab_reserve` row: the outer error is a broken row, the inner one the answer.
fn answer(
    row: &tokio_postgres::Row,
    now: i64,
) -> Result<Result<Reservation, ReserveError>, StoreError> {
    let status: &str = row.try_get(0).map_err(corrupt)?;
    let expires_at: Option<i64> = row.try_get(3).map_err(corrupt)?;
    Ok(match status {
        "ok" => {
            let number: &str = row.try_get(1).map_err(corrupt)?;
            let code: Option<String> = row.try_get(2).map_err(corrupt)?;
            let (size, free): (i64, i64) = (
                row.try_get(4).map_err(corrupt)?,
                row.try_get(5).map_err(corrupt)?,
            );
            Ok(Reservation {
                number: AccessNumber::parse(number)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                code: code.map(AccessCode::from_stored),
                expires_in: left(expires_at.unwrap_or(now), now),
                pool_size: size as u64,
                pool_free: free as u64,
            })
        }
        "session" => Err(ReserveError::SessionNotFound),
        "group" => Err(ReserveError::UnknownGroup),
        "exhausted" => Err(ReserveError::Exhausted {
            retry_after: left(expires_at.unwrap_or(now), now).max(Duration::from_secs(1)),
        }),
        other => {
            return Err(StoreError::Corrupt(format!(
                "ab_reserve answered status {other:?}"
            )));
        }
    })
}

fn corrupt(e: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(format!("ab_reserve row: {e}"))
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
