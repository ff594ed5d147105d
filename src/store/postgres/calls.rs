//! An operator's `free` and `release` of a number, and the end of a reservation with its
//! session, in PostgreSQL, one number at a time (match-interaction is batched:
//! `matches.rs`). The number's row is locked and changed through `rows.rs`, so these paths
//! read and write a row exactly as the calls do.

use hashbrown::HashMap;

use deadpool_postgres::{GenericClient, Transaction};

use super::pg_error;
use super::prepared::Prepared as _;
use super::rows::{self, NumberRow};
use crate::domain::{AccessNumber, GroupName, UnixMillis};
use crate::events::Event;
use crate::rules::lifecycle::EndReason;
use crate::store::{FreeNumber, StoreError};

/// Ends the reservation on a locked row for `reason` (`Expired` if it had expired by `now`)
/// and writes the row; `None` if it held none. `live_only`: an expired one is not ended.
async fn end_hold<C: GenericClient>(
    tx: &C,
    now: i64,
    number: &AccessNumber,
    reason: EndReason,
    live_only: bool,
) -> Result<Option<Event>, StoreError> {
    let Some(mut row) = rows::lock_one(tx, number).await? else {
        return Ok(None);
    };
    let Some(held) = row
        .held
        .take_if(|h| !live_only || !h.at.is_reached(UnixMillis(now)))
    else {
        return Ok(None);
    };
    let event = row.end(now, number, held, reason);
    write_one(tx, number, row).await?;
    Ok(Some(event))
}

async fn write_one<C: GenericClient>(
    tx: &C,
    number: &AccessNumber,
    row: NumberRow,
) -> Result<(), StoreError> {
    rows::write(tx, &HashMap::from([(number.as_str().to_owned(), row)])).await
}

/// Ends a number's cool-down or quarantine (`Store::free_number`).
pub async fn free_number(
    tx: &Transaction<'_>,
    now: i64,
    group: &GroupName,
    number: &AccessNumber,
) -> Result<FreeNumber, StoreError> {
    let known = tx
        .query_opt_cached("SELECT 1 FROM groups WHERE name = $1", &[&group.as_str()])
        .await
        .map_err(pg_error)?;
    if known.is_none() {
        return Ok(FreeNumber::UnknownGroup);
    }
    let mut row = match rows::lock_one(tx, number).await? {
        Some(row) if row.group == *group => row,
        _ => return Ok(FreeNumber::UnknownNumber),
    };
    let live = row
        .held
        .as_ref()
        .is_some_and(|h| !h.at.is_reached(UnixMillis(now)));
    // A retiring number is the group's while its reservation lives (the engine reaps it the
    // moment that ends; here the purge removes it later).
    if row.retiring && !live {
        return Ok(FreeNumber::UnknownNumber);
    }
    let cooling = !live && row.freed_at > now;
    if !(row.quarantined_at.is_some() || cooling) {
        return Ok(FreeNumber::NotResting);
    }
    row.freed_at = now;
    row.quarantined_at = None;
    row.strays.clear();
    row.changed = true;
    write_one(tx, number, row).await?;
    Ok(FreeNumber::Freed)
}

/// Ends the reservation on a number because its session ended (`sessions::end`).
pub async fn end_session_hold<C: GenericClient>(
    tx: &C,
    now: i64,
    number: &AccessNumber,
) -> Result<Option<Event>, StoreError> {
    end_hold(tx, now, number, EndReason::SessionEnded, false).await
}

/// `Store::release`: ends the live reservation on a number (admin); `false` if it had none.
pub async fn release_number(
    tx: &Transaction<'_>,
    now: i64,
    number: &AccessNumber,
) -> Result<(bool, Vec<Event>), StoreError> {
    let event = end_hold(tx, now, number, EndReason::Released, true).await?;
    Ok((event.is_some(), event.into_iter().collect()))
}
