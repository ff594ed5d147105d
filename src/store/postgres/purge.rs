//! Housekeeping that always finishes: expired sessions, data and idempotency keys are deleted
//! in batches of [`BATCH`] rows, each its own short transaction under the store's timeout,
//! found through the `expires_at` indexes (migration 4).
//!
//! One `DELETE` of everything expired was a single transaction with no index: past the
//! statement timeout it rolled back every time and the tables grew without bound. Here each
//! batch commits on its own, so a purge interrupted half-way still freed what it reached, and
//! `SKIP LOCKED` lets several nodes purge at once without waiting on each other.

use deadpool_postgres::Transaction;

use super::pg_error;
use crate::store::StoreError;

/// Rows one purge transaction deletes at most.
pub const BATCH: i64 = 1_000;
/// Batches one purge runs at most per table (the next purge, 5 or 30 s later, goes on).
pub const MAX_BATCHES: usize = 1_000;
/// The tables whose rows end at `expires_at` and are deleted then.
pub const TABLES: [&str; 3] = ["sessions", "data", "idempotency"];

/// Deletes up to [`BATCH`] rows of `table` that expired by `now`; returns how many.
pub async fn purge_batch(tx: &Transaction<'_>, now: i64, table: &str) -> Result<u64, StoreError> {
    let sql = format!(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM {table} WHERE expires_at <= $1 LIMIT {BATCH} FOR UPDATE SKIP LOCKED))"
    );
    tx.execute(&sql, &[&now]).await.map_err(pg_error)
}
