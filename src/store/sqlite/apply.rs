//! How the writer thread turns journal changes into SQL: one transaction per group of
//! batches, and the purge of expired rows in small transactions of its own.
//!
//! The purge runs apart from the batches because it changes nothing anyone can see (the rows
//! it deletes had already expired): a failed purge must not roll back answered work, and one
//! bounded `DELETE … LIMIT` per transaction keeps a large backlog from holding the writer.

use std::collections::HashMap;

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::{DataId, UnixMillis};
use crate::store::local::journal::Change;
use crate::store::{Fields, merge_fields};

use super::statements::Statements;
use super::writer::Batch;

/// Rows one purge transaction deletes at most, per table.
const PURGE_BATCH: usize = 1_000;

/// How long an expired data row stays: a match that ended its session reads the row after
/// the commit (`Change::DataEnded`), and must find it there.
const DATA_READ_GRACE: Duration = Duration::from_secs(60);

/// For each merged update of a commit, the bytes the engine counted beyond the entry's real
/// growth: with the fields on disk it adds an update's whole size, not knowing which fields
/// it replaces; the writer takes the difference back once the commit is durable.
pub type Overcounts = Vec<(DataId, u64)>;

/// Writes `batches` in one transaction with the writer's held statements (`statements.rs`;
/// `BEGIN` and `COMMIT` among them: rusqlite's `Transaction` parsed both again for every
/// commit); a failure rolls back.
pub fn commit(st: &mut Statements<'_>, batches: &[Batch]) -> rusqlite::Result<Overcounts> {
    let conn = st.conn;
    if !conn.is_autocommit() {
        // Left open by a rollback that failed after an earlier failure.
        conn.execute_batch("ROLLBACK")?;
    }
    st.get("BEGIN")?.execute([])?;
    let written = write(st, batches).and_then(|over| st.get("COMMIT")?.execute([]).map(|_| over));
    if written.is_err() && !conn.is_autocommit() {
        // The caller hears the first error; a rollback that fails too is retried above.
        let _ = conn.execute_batch("ROLLBACK");
    }
    written
}

fn write(st: &mut Statements<'_>, batches: &[Batch]) -> rusqlite::Result<Overcounts> {
    let mut cursors: HashMap<&str, u32> = HashMap::new();
    let mut over = Overcounts::new();
    for change in batches.iter().flat_map(|b| &b.1) {
        // Cursors: only the last of each group is written. Everything else (the purge is a
        // no-op here: it runs after the commit, apart) is `apply`'s.
        match change {
            Change::Cursor { group, cursor } => {
                cursors.insert(group.as_str(), *cursor);
            }
            Change::DataMerged {
                id,
                fields,
                expires_at,
            } => {
                if let Some(n) = merge_data(st.conn, id, fields, *expires_at)?.filter(|&n| n > 0) {
                    over.push((id.clone(), n));
                }
            }
            _ => apply(st, change)?,
        }
    }
    for (group, cursor) in cursors {
        st.get("UPDATE groups SET cursor = ?1 WHERE name = ?2")?
            .execute(params![cursor, group])?;
    }
    Ok(over)
}

fn apply(st: &mut Statements<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::Group(s) => {
            let sql = "INSERT INTO groups (name, allocation, booking_timeout, require_code, max_code_attempts, cool_down, late_match_grace, quarantine_after_stray_calls)
                       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                       ON CONFLICT (name) DO UPDATE SET allocation = excluded.allocation, booking_timeout = excluded.booking_timeout,
                           require_code = excluded.require_code, max_code_attempts = excluded.max_code_attempts, cool_down = excluded.cool_down,
                           late_match_grace = excluded.late_match_grace, quarantine_after_stray_calls = excluded.quarantine_after_stray_calls";
            let p = &s.policy;
            st.get(sql)?.execute(params![
                s.name.as_str(),
                s.allocation.as_str(),
                s.booking_timeout.map(|t| t.secs()),
                p.require_code,
                p.max_code_attempts,
                p.cool_down,
                p.late_match_grace,
                p.quarantine_after_stray_calls
            ])?;
        }
        Change::GroupDeleted(name) => {
            let sql = "DELETE FROM reservations WHERE number IN (SELECT number FROM numbers WHERE group_name = ?1)";
            st.get(sql)?.execute([name.as_str()])?;
            st.get("DELETE FROM numbers WHERE group_name = ?1")?
                .execute([name.as_str()])?;
            st.get("DELETE FROM groups WHERE name = ?1")?
                .execute([name.as_str()])?;
        }
        Change::Number {
            group,
            number,
            position,
            retiring,
        } => {
            let sql = "INSERT INTO numbers (number, group_name, position, retiring) VALUES (?1, ?2, ?3, ?4)
                       ON CONFLICT (number) DO UPDATE SET group_name = excluded.group_name, position = excluded.position, retiring = excluded.retiring";
            st.get(sql)?
                .execute(params![number.as_str(), group.as_str(), position, retiring])?;
        }
        Change::NumberDeleted(number) => {
            st.get("DELETE FROM reservations WHERE number = ?1")?
                .execute([number.as_str()])?;
            st.get("DELETE FROM numbers WHERE number = ?1")?
                .execute([number.as_str()])?;
        }
        Change::Reserved {
            number,
            session,
            code,
            phone,
            expires_at,
            wrong_codes,
            client,
        } => {
            let sql = "INSERT OR REPLACE INTO reservations (number, session, code, phone, expires_at, wrong_codes, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
            let (code, phone) = (
                code.as_ref().map(|c| c.as_str()),
                phone.as_ref().map(|p| p.as_str()),
            );
            st.get(sql)?.execute(params![
                number.as_str(),
                session.as_str(),
                code,
                phone,
                expires_at.0,
                wrong_codes,
                client.as_deref()
            ])?;
        }
        Change::Released {
            number,
            freed_at,
            ended,
        } => {
            st.get("DELETE FROM reservations WHERE number = ?1")?
                .execute([number.as_str()])?;
            let sql = "UPDATE numbers SET freed_at = ?1, last_session = ?2, last_code = ?3, last_phone = ?4,
                       last_end = ?5, last_reason = ?6 WHERE number = ?7";
            st.get(sql)?.execute(params![
                freed_at.0,
                ended.session.as_str(),
                ended.code.as_ref().map(|c| c.as_str()),
                ended.phone.as_ref().map(|p| p.as_str()),
                ended.at.0,
                ended.reason.as_str(),
                number.as_str()
            ])?;
        }
        Change::WrongCodes { number, count } => {
            st.get("UPDATE reservations SET wrong_codes = ?1 WHERE number = ?2")?
                .execute(params![count, number.as_str()])?;
        }
        Change::Rest {
            number,
            freed_at,
            quarantined_at,
            strays,
        } => {
            let strays = (!strays.is_empty()).then(|| {
                strays
                    .iter()
                    .map(|t| t.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            });
            let sql = "UPDATE numbers SET freed_at = ?1, quarantined_at = ?2, strays = ?3 WHERE number = ?4";
            st.get(sql)?.execute(params![
                freed_at.0,
                quarantined_at.map(|t| t.0),
                strays,
                number.as_str()
            ])?;
        }
        Change::Cursor { .. } => {}
        Change::Session {
            id,
            service,
            data_id,
            expires_at,
        } => {
            let sql = "INSERT OR REPLACE INTO sessions (id, service, data_id, expires_at) VALUES (?1, ?2, ?3, ?4)";
            st.get(sql)?.execute(params![
                id.as_str(),
                service.as_str(),
                data_id.as_str(),
                expires_at.0
            ])?;
        }
        Change::SessionEnded(id) => {
            st.get("DELETE FROM sessions WHERE id = ?1")?
                .execute([id.as_str()])?;
        }
        Change::Data {
            id,
            fields,
            expires_at,
        } => {
            let json = serde_json::to_string(fields).unwrap_or_else(|_| "[]".into());
            let sql = "INSERT OR REPLACE INTO data (id, fields, expires_at, bytes) VALUES (?1, ?2, ?3, ?4)";
            let bytes = crate::store::fields_bytes(fields) as i64;
            st.get(sql)?
                .execute(params![id.as_str(), json, expires_at.0, bytes])?;
        }
        Change::DataMerged {
            id,
            fields,
            expires_at,
        } => drop(merge_data(st.conn, id, fields, *expires_at)?),
        Change::DataDeleted(id) => {
            st.get("DELETE FROM data WHERE id = ?1")?
                .execute([id.as_str()])?;
        }
        // The webhook outbox (events branch): its own table, written by sqlite/outbox.rs.
        Change::EventQueued { .. } | Change::EventDone(_) | Change::EventRetry { .. } => {
            super::outbox::apply(st.conn, change)?;
        }
        Change::DataEnded { id, at } => {
            let sql = "UPDATE data SET expires_at = min(expires_at, ?2) WHERE id = ?1";
            st.get(sql)?.execute(params![id.as_str(), at.0])?;
        }
        // After the commit, apart (see the module doc).
        Change::Purge(_) => {}
        Change::Remembered {
            client,
            key,
            fields,
            expires_at,
        } => {
            let json = serde_json::to_string(fields).unwrap_or_else(|_| "[]".into());
            let sql = "INSERT OR REPLACE INTO idempotency (client, key, status, body, expires_at) VALUES (?1, ?2, 200, ?3, ?4)";
            st.get(sql)?
                .execute(params![client, key, json, expires_at.0])?;
        }
    }
    Ok(())
}

/// The latest purge instant among the batches, if any asked for one.
pub fn purge_instant(batches: &[Batch]) -> Option<UnixMillis> {
    batches
        .iter()
        .flat_map(|b| &b.1)
        .filter_map(|c| match c {
            Change::Purge(now) => Some(*now),
            _ => None,
        })
        .max()
}

/// Deletes rows that expired before `now`, `PURGE_BATCH` at a time, each batch its own short
/// transaction; then retired numbers no reservation holds. Returns the rows deleted.
/// Sessions, data and idempotency keys are found through their `expires_at` indexes;
/// reservations by a scan (a `WITHOUT ROWID` table keyed by number, with no expiry index since
/// migration 6: it holds only live and not yet purged rows, and a pair writes one B-tree less).
/// Retiring numbers whose reservation has ended leave (found through `numbers_retiring`,
/// migration 7, not by a scan of every number).
pub(super) const GONE: &str =
    "DELETE FROM numbers WHERE retiring = 1 AND number NOT IN (SELECT number FROM reservations)";

pub fn purge(conn: &Connection, now: UnixMillis) -> rusqlite::Result<u64> {
    let mut total = 0u64;
    let tables = [
        ("reservations", "number"),
        ("sessions", "rowid"),
        ("data", "rowid"),
        ("idempotency", "rowid"),
    ];
    for (table, key) in tables {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN \
             (SELECT {key} FROM {table} WHERE expires_at <= ?1 LIMIT {PURGE_BATCH})"
        );
        let before = match table {
            "data" => now.0.saturating_sub(DATA_READ_GRACE.as_millis() as i64),
            _ => now.0,
        };
        loop {
            let n = conn.prepare_cached(&sql)?.execute([before])?;
            total += n as u64;
            if n < PURGE_BATCH {
                break;
            }
        }
    }
    total += conn.prepare_cached(GONE)?.execute([])? as u64;
    Ok(total)
}

/// Merges `update` into the stored entry and sets its expiry: read, merged and written back
/// inside this transaction, so merges apply one after another in journal order. Stored JSON
/// that does not parse is logged and replaced by the update alone (a commit that fails on it
/// would be retried for ever). Returns how many of the update's bytes did not grow the entry
/// (the fields it replaced), `None` when the entry is gone.
fn merge_data(
    tx: &Connection,
    id: &DataId,
    update: &Fields,
    expires_at: UnixMillis,
) -> rusqlite::Result<Option<u64>> {
    let stored: Option<String> = tx
        .prepare_cached("SELECT fields FROM data WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    let Some(stored) = stored else {
        // Deleted after the engine decided: the delete came later in the journal.
        return Ok(None);
    };
    let mut fields: Fields = serde_json::from_str(&stored).unwrap_or_else(|e| {
        tracing::error!(data_id = %id, error = %e, "stored fields do not parse; keeping the update only");
        Fields::new()
    });
    let before = crate::store::fields_bytes(&fields);
    merge_fields(&mut fields, update.clone());
    let json = serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into());
    let after = crate::store::fields_bytes(&fields);
    tx.prepare_cached("UPDATE data SET fields = ?2, expires_at = ?3, bytes = ?4 WHERE id = ?1")?
        .execute(params![id.as_str(), json, expires_at.0, after as i64])?;
    // The engine added the update's whole size; the entry changed by `after - before` (less
    // than nothing when the update shrank it): the difference is taken back.
    Ok(Some(
        (crate::store::fields_bytes(update) + before).saturating_sub(after),
    ))
}
