//! The webhook outbox on PostgreSQL (`events_outbox`): events are inserted in the transaction
//! of the change that made them, and any node delivers them.
//!
//! Why a lease and not a lock held during delivery: a POST may take seconds, and a transaction
//! left open that long would pin a pooled connection. A claim is one short statement that
//! takes due rows with `FOR UPDATE SKIP LOCKED` (two nodes claiming at once get different
//! rows) and sets `claimed_until`; other nodes skip the row until the lease runs out, which is
//! longer than a delivery may take. A node that dies mid-delivery leaves a lease that simply
//! expires, and the event is delivered again (at least once).

use std::time::Duration;

use deadpool_postgres::Transaction;
use tokio_postgres::types::Type;

use super::pg_error;
use super::prepared::Prepared as _;
use crate::domain::{AccessNumber, GroupName, SessionId, UnixMillis};
use crate::events::{Event, EventKind};
use crate::store::{PendingEvent, StoreError};

/// How long a claimed event is this node's alone: well over a delivery's timeout.
pub const LEASE: Duration = Duration::from_secs(60);

/// Queues events for delivery, due at their own `time`, in one statement. Call it inside the
/// transaction that makes the change the events describe (and only when the store keeps an
/// outbox, `PgStore::keeps_outbox`). An id already queued is left as it is.
pub async fn insert<C: deadpool_postgres::GenericClient>(
    tx: &C,
    events: &[Event],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let times: Vec<i64> = events.iter().map(|e| e.time.0).collect();
    let groups: Vec<&str> = events.iter().map(|e| e.group.as_str()).collect();
    let numbers: Vec<&str> = events.iter().map(|e| e.number.as_str()).collect();
    let sessions: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.session.as_ref().map(|s| s.as_str()))
        .collect();
    let sql = "INSERT INTO events_outbox (id, kind, time, group_name, number, session, queued_at, next_at)
               SELECT id, kind, t, g, n, s, t, t
                 FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[])
                   AS u(id, kind, t, g, n, s)
               ON CONFLICT (id) DO NOTHING";
    tx.execute(sql, &[&ids, &kinds, &times, &groups, &numbers, &sessions])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Claims up to `limit` due events for this node for [`LEASE`]: the retries first, then the
/// events never tried, each the longest-waiting first (a retry behind a backlog of first
/// attempts came as late as the backlog was long; `engine/outbox.rs` keeps the same order).
/// Each kind is read by its own index (`events_outbox_retries`, `events_outbox_due`); rows
/// locked and not claimed are free again when the transaction ends.
pub async fn claim(
    tx: &Transaction<'_>,
    now: i64,
    limit: &usize,
) -> Result<Vec<PendingEvent>, StoreError> {
    let sql = "WITH retries AS (SELECT id, next_at FROM events_outbox
                                 WHERE attempts > 0 AND next_at <= $1
                                   AND (claimed_until IS NULL OR claimed_until <= $1)
                                 ORDER BY next_at LIMIT $3
                                 FOR UPDATE SKIP LOCKED),
                    fresh AS (SELECT id, next_at FROM events_outbox
                               WHERE attempts = 0 AND next_at <= $1
                                 AND (claimed_until IS NULL OR claimed_until <= $1)
                               ORDER BY next_at LIMIT $3
                               FOR UPDATE SKIP LOCKED),
                    chosen AS (SELECT id FROM (SELECT id, 0 AS kind, next_at FROM retries
                                               UNION ALL
                                               SELECT id, 1 AS kind, next_at FROM fresh) due
                                ORDER BY kind, next_at LIMIT $3)
               UPDATE events_outbox o SET claimed_until = $1 + $2
                 FROM chosen WHERE o.id = chosen.id
            RETURNING o.id, o.kind, o.time, o.group_name, o.number, o.session, o.attempts, o.queued_at";
    let lease = LEASE.as_millis() as i64;
    let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
    let rows = tx
        .query_prepared(
            sql,
            &[
                (&now, Type::INT8),
                (&lease, Type::INT8),
                (&limit, Type::INT8),
            ],
        )
        .await
        .map_err(pg_error)?;
    let mut due = Vec::with_capacity(rows.len());
    for row in rows {
        let bad = |what: &'static str| StoreError::corrupt(what, "unreadable event in the outbox");
        let kind: String = row.get(1);
        let group: String = row.get(3);
        let number: String = row.get(4);
        let session: Option<String> = row.get(5);
        let attempts: i32 = row.get(6);
        let queued_at: i64 = row.get(7);
        due.push(PendingEvent {
            event: Event {
                id: row.get(0),
                kind: EventKind::parse(&kind).ok_or_else(|| bad("events_outbox.kind"))?,
                time: UnixMillis(row.get(2)),
                group: GroupName::from_stored(&group)
                    .map_err(|_| bad("events_outbox.group_name"))?,
                number: AccessNumber::parse(&number).map_err(|_| bad("events_outbox.number"))?,
                session: match session {
                    Some(s) => {
                        Some(SessionId::parse(&s).map_err(|_| bad("events_outbox.session"))?)
                    }
                    None => None,
                },
            },
            attempts: u32::try_from(attempts).unwrap_or(0),
            age: UnixMillis(now).remaining_from(UnixMillis(queued_at)),
        });
    }
    Ok(due)
}

/// The events leave the outbox (delivered, or given up), in one statement.
pub async fn done(tx: &Transaction<'_>, _now: i64, ids: &Vec<String>) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute("DELETE FROM events_outbox WHERE id = ANY($1)", &[ids])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Leases given back unattempted (the node is stopping): any node may claim them now. A
/// clean stop left them leased for [`LEASE`], as a crash does.
pub async fn unclaim(tx: &Transaction<'_>, _now: i64, ids: &Vec<String>) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "UPDATE events_outbox SET claimed_until = NULL WHERE id = ANY($1)",
        &[ids],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// A failed attempt: counted, the lease ends, and the next attempt waits `after`.
pub async fn retry(
    tx: &Transaction<'_>,
    now: i64,
    id: &String,
    after: &Duration,
) -> Result<(), StoreError> {
    let next_at = now.saturating_add(after.as_millis() as i64);
    tx.execute(
        "UPDATE events_outbox SET attempts = attempts + 1, next_at = $2, claimed_until = NULL WHERE id = $1",
        &[id, &next_at],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Events still owed.
pub async fn len(tx: &Transaction<'_>, _now: i64) -> Result<u64, StoreError> {
    let row = tx
        .query_one("SELECT count(*) FROM events_outbox", &[])
        .await
        .map_err(pg_error)?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}
