//! `Retry-After` of a batch's pool-exhausted refusals, counted again once the batch has
//! committed. Inside the batch, another batch in flight in the same group (on this node or
//! another) holds the numbers it is taking under lock, unseen: the refusals counted only
//! the reservations committed before, and a burst of calls on a small pool was told up to
//! six times too long, or too short (an outside audit: blocks of 27–106 refusals of ~100
//! with another value than the first reservation's end; SQLite, one writer, never).
//!
//! After the commit this batch holds no lock, so it may wait for the others: one statement
//! locks the group's numbers that look free (`FOR SHARE`), which waits for every
//! transaction taking one of them, and sees each as that transaction left it; then the
//! group's next end is read from what they committed. A number still free then makes the
//! wait 1 s (the least `Retry-After`). Bounded by the store's timeout; past it, or on an
//! error, the refusal keeps the count made in the batch.

use hashbrown::HashMap;
use std::time::Duration;

use tokio_postgres::types::Type;

use super::Db;
use super::claim::{self, FREE};
use super::prepared::Prepared as _;
use crate::domain::UnixMillis;
use crate::store::{ReserveError, ReserveRequest, StoreError};

/// Counts again the `Retry-After` of each `Exhausted` refusal among a batch's answers, each
/// with the request it answers.
pub async fn recount<'a, T: 'a>(
    db: &Db,
    answers: impl Iterator<Item = (&'a ReserveRequest, &'a mut Result<T, ReserveError>)>,
) {
    let mut by_group: HashMap<&str, Vec<&mut Duration>> = HashMap::new();
    for (req, answer) in answers {
        if let Err(ReserveError::Exhausted { retry_after }) = answer {
            by_group
                .entry(req.group.as_str())
                .or_default()
                .push(retry_after);
        }
    }
    if by_group.is_empty() {
        return;
    }
    let counted = tokio::time::timeout(db.timeout, async {
        let conn = db.pool.get().await.map_err(StoreError::unavailable)?;
        let mut counted = Vec::with_capacity(by_group.len());
        for &group in by_group.keys() {
            counted.push((group, next_end(&conn, db, group).await?));
        }
        Ok::<_, StoreError>(counted)
    })
    .await;
    match counted {
        Ok(Ok(counted)) => {
            for (group, wait) in counted {
                for retry_after in by_group.get_mut(group).into_iter().flatten() {
                    **retry_after = wait;
                }
            }
        }
        Ok(Err(err)) => tracing::debug!(error = %err, "Retry-After not counted again"),
        Err(_) => tracing::debug!("Retry-After not counted again within the store's timeout"),
    }
}

/// How long until `group` lends a number again, once every transaction taking one of its
/// free-looking numbers has ended.
async fn next_end(
    conn: &deadpool_postgres::Client,
    db: &Db,
    group: &str,
) -> Result<Duration, StoreError> {
    let now = claim::clock(conn, db.frozen()).await?;
    let sql = format!("SELECT number FROM numbers WHERE group_name = $1 AND {FREE} FOR SHARE");
    let free = conn
        .query_prepared(&sql, &[(&group, Type::TEXT), (&now, Type::INT8)])
        .await
        .map_err(super::pg_error)?;
    if !free.is_empty() {
        return Ok(Duration::from_secs(1));
    }
    let now = claim::clock(conn, db.frozen()).await?;
    let lendable = claim::lendable_at(conn, now, group).await?;
    let first = lendable.values().min().copied().map(UnixMillis);
    Ok(crate::rules::retry_after(UnixMillis(now), first))
}
