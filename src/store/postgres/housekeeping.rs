//! PostgreSQL's housekeeping: the nodes sharing the store and when each was last seen, the
//! purge of expired rows (with the expiry events it owes), and the readiness probe.

use deadpool_postgres::Transaction;

use super::pg_error;
use crate::store::StoreError;

/// Whether a transaction can be had at all (`/ready`).
pub async fn ping(_tx: &Transaction<'_>, _now: i64) -> Result<(), StoreError> {
    Ok(())
}

/// Records that `node` is alive now (at start, then at each purge).
pub async fn touch_node(tx: &Transaction<'_>, now: i64, node: &str) -> Result<(), StoreError> {
    let sql = "INSERT INTO nodes (node_id, last_seen) VALUES ($1, $2) ON CONFLICT (node_id) DO UPDATE SET last_seen = excluded.last_seen";
    tx.execute(sql, &[&node, &now]).await.map_err(pg_error)?;
    Ok(())
}

/// Frees the space of expired rows (every row removed here was already dead by its expiry);
/// returns how many, and the expiry events of the reservations it recorded.
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
                    session = NULL, code = NULL, phone = NULL, expires_at = NULL, wrong_codes = 0,
                    client = NULL
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
