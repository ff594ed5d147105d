//! What the shared store holds, for `[limits]` (`Store::usage`): live sessions and the bytes
//! of live stored fields, counted over every node's rows; and the live reservations of one
//! client (`Store::client_holds`).
//!
//! The bytes are the fields' names and values (`data.bytes`, written with each row by
//! `store::fields::fields_bytes`), as the embedded stores count them.

use deadpool_postgres::Transaction;

use super::prepared::send;
use super::{claim, pg_error};
use crate::domain::{GroupName, SessionId};
use crate::store::{Hold, StoreError, Usage};

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

/// The live reservations `client` holds (`numbers.client`, migration 10), read by the
/// statement a reservation batch counts them with (`claim::client_holds`), at `now`.
pub async fn client_holds(
    tx: &Transaction<'_>,
    now: i64,
    client: &str,
) -> Result<Vec<Hold>, StoreError> {
    let clients = [client];
    let read = send(tx, &[claim::client_holds(Some(now), &clients)])
        .await
        .map_err(pg_error)?;
    let bad = |what: &'static str| StoreError::corrupt(what, "unreadable reservation");
    read[0]
        .iter()
        .map(|row| {
            let session = SessionId::parse(row.get(1)).map_err(|_| bad("numbers.session"))?;
            let group =
                GroupName::from_stored(row.get(2)).map_err(|_| bad("numbers.group_name"))?;
            Ok((session, group))
        })
        .collect()
}
