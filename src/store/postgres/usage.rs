//! What the shared store holds, for `[limits]` (`Store::usage`): live sessions and the bytes
//! of live stored fields, counted over every node's rows.
//!
//! The bytes are the fields' names and values (`data.bytes`, written with each row by
//! `store::fields::fields_bytes`), as the embedded stores count them.

use deadpool_postgres::Transaction;

use super::pg_error;
use crate::store::{StoreError, Usage};

pub async fn usage(tx: &Transaction<'_>, now: i64) -> Result<Usage, StoreError> {
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM sessions WHERE expires_at > $1),
                    (SELECT coalesce(sum(bytes), 0)::bigint FROM data WHERE expires_at > $1)",
            &[&now],
        )
        .await
        .map_err(pg_error)?;
    Ok(Usage {
        sessions: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        stored_bytes: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
    })
}
