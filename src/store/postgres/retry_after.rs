//! `Retry-After` of a batch's pool-exhausted refusals, counted again once the batch has
//! committed. Inside the batch, another batch in flight in the same group (on this node or
//! another) holds the numbers it is taking under lock, unseen: the refusals counted only
//! the reservations committed before, and a burst of calls on a small pool was told up to
//! six times too long, or too short (an outside audit: blocks of 27–106 refusals of ~100
//! with another value than the first reservation's end; SQLite, one writer, never).
//!
//! After the commit this batch holds no lock, so it may wait for the others, without ever
//! waiting on a lock itself: one statement looks for a free number no transaction holds
//! (`FOR SHARE SKIP LOCKED`, one row) and whether any number looks free at all (no lock).
//! A free one makes the wait 1 s (the least `Retry-After`); numbers that look free but are
//! all held mean a transaction is taking them, so the statement is sent again shortly after
//! (2 ms, then twice as late each time up to 64 ms; the connection back in the pool meanwhile); none means the group's next end is read from
//! what the others committed. Bounded by the store's timeout; past it, or on an error, the
//! refusal keeps the count made in the batch.
//!
//! Why no waiting lock: an earlier version locked every free-looking number (`FOR SHARE`)
//! and so waited, holding those it had, in the table's order, while matches lock numbers in
//! their own order: a cluster test caught PostgreSQL's deadlock detector aborting matches
//! (each a 1 s stall and a retry), and claims skipping the numbers it held (`SKIP LOCKED`)
//! while it waited, refusing calls with numbers free. The statement now holds at most one
//! row, for as long as it runs.

use hashbrown::HashMap;
use std::sync::LazyLock;
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
        let mut counted = Vec::with_capacity(by_group.len());
        for &group in by_group.keys() {
            counted.push((group, next_end(db, group).await?));
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

/// How soon the numbers other transactions are taking are looked at again: at first (a
/// claim commits within milliseconds), then twice as late each time up to [`POLL_MAX`] (an
/// admin change holding a group's numbers for seconds is not asked a thousand times).
const POLL: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(64);

/// Whether a group has a free number nobody holds (locked for as long as the statement runs),
/// and whether any number looks free; `$1` the group, `$2` now.
static LOOK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT (SELECT number FROM numbers WHERE group_name = $1 AND {FREE}
                  LIMIT 1 FOR SHARE SKIP LOCKED) IS NOT NULL,
                EXISTS (SELECT 1 FROM numbers WHERE group_name = $1 AND {FREE})"
    )
});

/// How long until `group` lends a number again, once no transaction is taking one of its
/// free-looking numbers.
async fn next_end(db: &Db, group: &str) -> Result<Duration, StoreError> {
    let sql = LOOK.as_str();
    let mut poll = POLL;
    loop {
        let conn = db.pool.get().await.map_err(StoreError::unavailable)?;
        let now = claim::clock(&conn, db.frozen()).await?;
        let row = conn
            .query_one_prepared(sql, &[(&group, Type::TEXT), (&now, Type::INT8)])
            .await
            .map_err(super::pg_error)?;
        let (free, looks_free): (bool, bool) = (row.get(0), row.get(1));
        if free {
            return Ok(Duration::from_secs(1));
        }
        if !looks_free {
            let lendable = claim::lendable_at(&conn, now, group).await?;
            let first = lendable.values().min().copied().map(UnixMillis);
            return Ok(crate::rules::retry_after(UnixMillis(now), first));
        }
        drop(conn);
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(POLL_MAX);
    }
}
