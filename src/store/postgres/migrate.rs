//! Versioned migrations, applied at open under a transaction-level advisory lock so several
//! nodes starting at the same moment apply each one exactly once.

use deadpool_postgres::Transaction;

use super::pg_error;
use crate::store::StoreError;

const MIGRATIONS: [&str; 10] = [
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_config_hash.sql"),
    include_str!("../../../migrations/postgres/0003_rules_leave_sql.sql"),
    include_str!("../../../migrations/postgres/0004_number_lifecycle.sql"),
    include_str!("../../../migrations/postgres/0005_events_outbox.sql"),
    include_str!("../../../migrations/postgres/0006_expiry_indexes.sql"),
    include_str!("../../../migrations/postgres/0007_heap_only_pairs.sql"),
    include_str!("../../../migrations/postgres/0008_field_bytes.sql"),
    include_str!("../../../migrations/postgres/0009_outbox_retries.sql"),
    include_str!("../../../migrations/postgres/0010_reservation_client.sql"),
];
/// Any constant; every node uses the same one.
const LOCK_KEY: i64 = 0x6163_6365_7373;

pub async fn migrate(tx: &Transaction<'_>, _now: i64) -> Result<(), StoreError> {
    // One lock per schema, as for applying groups (apply.rs).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(current_schema(), $1))",
        &[&LOCK_KEY],
    )
    .await
    .map_err(pg_error)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        .await
        .map_err(pg_error)?;
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let done: i32 = row.get(0);
    if done as usize > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found: i64::from(done),
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        tx.batch_execute(sql).await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(pg_error)?;
    }
    Ok(())
}
