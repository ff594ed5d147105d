//! Applying a node's configured groups to the shared store at start, under an advisory lock
//! so nodes starting together take turns. Differences from what the store holds are returned
//! for the node to log loudly; live reservations are never touched: a number the config drops
//! retires and leaves when its reservation ends.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;

use super::admin::{LIVE, append, drop_gone, set_group};
use super::pg_error;
use crate::store::{GroupSpec, StoreError};

const LOCK_KEY: i64 = 0x6163_6365_7374;
/// How long applying the config's groups may take at start (large groups, many nodes queued
/// on the advisory lock).
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

pub async fn apply_groups(
    tx: &Transaction<'_>,
    now: i64,
    specs: &[GroupSpec],
) -> Result<Vec<String>, StoreError> {
    // The connection's statement timeout is sized for requests; this transaction is not one.
    // It is still bounded, by TIMEOUT, so one stuck node cannot hold the others forever.
    super::admin::allow(tx, TIMEOUT).await?;
    // One lock per schema: nodes sharing a schema queue, stores in other schemas (tests,
    // several deployments in one database) do not.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(current_schema(), $1))",
        &[&LOCK_KEY],
    )
    .await
    .map_err(pg_error)?;
    let mut notes = Vec::new();
    let mut changed = false;
    for spec in specs {
        changed |= apply_one(tx, now, spec, &mut notes).await?;
    }
    if changed {
        // Fresh statistics after a bulk change, so the planner keeps using the per-session
        // and per-position indexes instead of scanning a million-row group.
        tx.batch_execute("ANALYZE numbers")
            .await
            .map_err(pg_error)?;
    }
    Ok(notes)
}

/// FNV-1a over the group's settings and numbers in order: stable across builds and
/// platforms, which is all a "same config as last time" check needs.
fn fingerprint(spec: &GroupSpec) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes.iter().chain(b"\n") {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(spec.settings.allocation.as_str().as_bytes());
    feed(format!("{:?}", spec.settings.booking_timeout.map(|t| t.secs())).as_bytes());
    feed(format!("{:?}", spec.settings.policy).as_bytes());
    for number in &spec.numbers {
        feed(number.as_str().as_bytes());
    }
    format!("v2:{hash:016x}:{}", spec.numbers.len())
}

/// Applies one group; `false` when the store already holds exactly this config (nothing
/// to compare or write).
async fn apply_one(
    tx: &Transaction<'_>,
    now: i64,
    spec: &GroupSpec,
    notes: &mut Vec<String>,
) -> Result<bool, StoreError> {
    let name = spec.settings.name.as_str();
    super::admin::hold_group(tx, name).await?;
    let current = tx
        .query_opt(
            "SELECT allocation, booking_timeout, config_hash FROM groups WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(pg_error)?;
    let print = fingerprint(spec);
    if current
        .as_ref()
        .is_some_and(|row| row.get::<_, Option<String>>(2).as_deref() == Some(print.as_str()))
    {
        return Ok(false);
    }
    if current.is_some()
        && let Some(before) = super::views::stats(tx, now, Some(name), false).await?.pop()
    {
        let before = crate::store::described_settings(
            before.allocation,
            before.booking_timeout,
            &before.policy,
        );
        let changes = crate::store::setting_changes(before, spec.settings.described());
        if !changes.is_empty() {
            notes.push(format!(
                "group {name}: settings in the store differ from the config; applying the config: {}",
                changes.join(", ")
            ));
        }
    }
    set_group(tx, now, &spec.settings).await?;

    // What the group holds now: number -> (retiring, live).
    let sql = format!("SELECT number, retiring, {LIVE} FROM numbers WHERE group_name = $1");
    let rows = tx.query(&sql, &[&name, &now]).await.map_err(pg_error)?;
    let held: HashMap<String, (bool, bool)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let wanted: HashSet<&str> = spec.numbers.iter().map(|n| n.as_str()).collect();

    let (mut retire, mut delete) = (Vec::new(), Vec::new());
    for (number, &(retiring, live)) in &held {
        if !retiring && !wanted.contains(number.as_str()) {
            if live {
                retire.push(number.as_str())
            } else {
                delete.push(number.as_str())
            }
        }
    }
    if !retire.is_empty() || !delete.is_empty() {
        notes.push(format!(
            "group {name}: {} numbers not in the config are retired",
            retire.len() + delete.len()
        ));
    }
    tx.execute(
        "UPDATE numbers SET retiring = true WHERE number = ANY($1)",
        &[&retire],
    )
    .await
    .map_err(pg_error)?;
    tx.execute("DELETE FROM numbers WHERE number = ANY($1)", &[&delete])
        .await
        .map_err(pg_error)?;

    // Listed again while retiring: back in service.
    let back: Vec<&str> = held
        .iter()
        .filter(|(n, (retiring, _))| *retiring && wanted.contains(n.as_str()))
        .map(|(n, _)| n.as_str())
        .collect();
    tx.execute(
        "UPDATE numbers SET retiring = false WHERE number = ANY($1)",
        &[&back],
    )
    .await
    .map_err(pg_error)?;

    let missing: Vec<&str> = spec
        .numbers
        .iter()
        .map(|n| n.as_str())
        .filter(|n| !held.contains_key(*n))
        .collect();
    drop_gone(tx, now, &missing).await?;
    let elsewhere = tx
        .query(
            "SELECT number, group_name FROM numbers WHERE number = ANY($1)",
            &[&missing],
        )
        .await
        .map_err(pg_error)?;
    let taken: HashSet<String> = elsewhere.iter().map(|r| r.get(0)).collect();
    for r in &elsewhere {
        let (number, owner): (String, String) = (r.get(0), r.get(1));
        notes.push(format!("group {name}: number {number} still belongs to group {owner} (an operator moved it there); it is left there"));
    }
    let new: Vec<&str> = missing
        .into_iter()
        .filter(|n| !taken.contains(*n))
        .collect();
    if current.is_some() && !new.is_empty() {
        notes.push(format!(
            "group {name}: {} numbers from the config were added",
            new.len()
        ));
    }
    append(tx, name, &new).await?;
    // Remember the config only when the group now holds all of it: a number still held by
    // another group must be tried again at the next start.
    let complete = taken.is_empty();
    let hash = complete.then_some(print);
    tx.execute(
        "UPDATE groups SET config_hash = $2 WHERE name = $1",
        &[&name, &hash],
    )
    .await
    .map_err(pg_error)?;
    Ok(true)
}
