//! How the writer thread turns journal changes into SQL: one transaction per group of
//! batches, and the purge of expired rows in small transactions of its own.
//!
//! The purge runs apart from the batches because it changes nothing anyone can see (the rows
//! it deletes had already expired): a failed purge must not roll back answered work, and one
//! bounded `DELETE … LIMIT` per transaction keeps a large backlog from holding the writer.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};

use crate::domain::UnixMillis;
use crate::store::local::journal::Change;

use super::writer::Batch;

/// Rows one purge transaction deletes at most, per table.
const PURGE_BATCH: usize = 1_000;

pub fn commit(conn: &mut Connection, batches: &[Batch]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut cursors: HashMap<&str, u32> = HashMap::new();
    for change in batches.iter().flat_map(|b| &b.1) {
        match change {
            Change::Cursor { group, cursor } => {
                cursors.insert(group.as_str(), *cursor);
            }
            // After the commit, apart: see the module doc.
            Change::Purge(_) => {}
            Change::Remembered {
                client,
                key,
                fields,
                expires_at,
            } => {
                let json = serde_json::to_string(fields).unwrap_or_else(|_| "[]".into());
                let sql = "INSERT OR REPLACE INTO idempotency (client, key, status, body, expires_at) VALUES (?1, ?2, 200, ?3, ?4)";
                tx.prepare_cached(sql)?
                    .execute(params![client, key, json, expires_at.0])?;
            }
            _ => apply(&tx, change)?,
        }
    }
    for (group, cursor) in cursors {
        tx.prepare_cached("UPDATE groups SET cursor = ?1 WHERE name = ?2")?
            .execute(params![cursor, group])?;
    }
    tx.commit()
}

fn apply(tx: &Transaction, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::Group(s) => {
            let sql = "INSERT INTO groups (name, allocation, booking_timeout) VALUES (?1, ?2, ?3)
                       ON CONFLICT (name) DO UPDATE SET allocation = excluded.allocation, booking_timeout = excluded.booking_timeout";
            tx.prepare_cached(sql)?.execute(params![
                s.name.as_str(),
                s.allocation.as_str(),
                s.booking_timeout.map(|t| t.secs())
            ])?;
        }
        Change::GroupDeleted(name) => {
            let sql = "DELETE FROM reservations WHERE number IN (SELECT number FROM numbers WHERE group_name = ?1)";
            tx.prepare_cached(sql)?.execute([name.as_str()])?;
            tx.prepare_cached("DELETE FROM numbers WHERE group_name = ?1")?
                .execute([name.as_str()])?;
            tx.prepare_cached("DELETE FROM groups WHERE name = ?1")?
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
            tx.prepare_cached(sql)?.execute(params![
                number.as_str(),
                group.as_str(),
                position,
                retiring
            ])?;
        }
        Change::NumberDeleted(number) => {
            tx.prepare_cached("DELETE FROM reservations WHERE number = ?1")?
                .execute([number.as_str()])?;
            tx.prepare_cached("DELETE FROM numbers WHERE number = ?1")?
                .execute([number.as_str()])?;
        }
        Change::Reserved {
            number,
            session,
            code,
            phone,
            expires_at,
        } => {
            let sql = "INSERT OR REPLACE INTO reservations (number, session, code, phone, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)";
            let (code, phone) = (
                code.as_ref().map(|c| c.as_str()),
                phone.as_ref().map(|p| p.as_str()),
            );
            tx.prepare_cached(sql)?.execute(params![
                number.as_str(),
                session.as_str(),
                code,
                phone,
                expires_at.0
            ])?;
        }
        Change::Released { number, freed_at } => {
            tx.prepare_cached("DELETE FROM reservations WHERE number = ?1")?
                .execute([number.as_str()])?;
            tx.prepare_cached("UPDATE numbers SET freed_at = ?1 WHERE number = ?2")?
                .execute(params![freed_at.0, number.as_str()])?;
        }
        Change::Cursor { .. } => {}
        Change::Session {
            id,
            service,
            data_id,
            expires_at,
        } => {
            let sql = "INSERT OR REPLACE INTO sessions (id, service, data_id, expires_at) VALUES (?1, ?2, ?3, ?4)";
            tx.prepare_cached(sql)?.execute(params![
                id.as_str(),
                service.as_str(),
                data_id.as_str(),
                expires_at.0
            ])?;
        }
        Change::SessionEnded(id) => {
            tx.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
                .execute([id.as_str()])?;
        }
        Change::Data {
            id,
            fields,
            expires_at,
        } => {
            let json = serde_json::to_string(fields).unwrap_or_else(|_| "[]".into());
            let sql = "INSERT OR REPLACE INTO data (id, fields, expires_at) VALUES (?1, ?2, ?3)";
            tx.prepare_cached(sql)?
                .execute(params![id.as_str(), json, expires_at.0])?;
        }
        Change::DataDeleted(id) => {
            tx.prepare_cached("DELETE FROM data WHERE id = ?1")?
                .execute([id.as_str()])?;
        }
        Change::Purge(_) => {}
        Change::Remembered {
            client,
            key,
            fields,
            expires_at,
        } => {
            let json = serde_json::to_string(fields).unwrap_or_else(|_| "[]".into());
            let sql = "INSERT OR REPLACE INTO idempotency (client, key, status, body, expires_at) VALUES (?1, ?2, 200, ?3, ?4)";
            tx.prepare_cached(sql)?
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

/// Deletes rows that expired before `now`, `PURGE_BATCH` at a time through the `expires_at`
/// indexes, each batch its own short transaction; then retired numbers no reservation holds.
/// Returns the rows deleted.
pub fn purge(conn: &mut Connection, now: UnixMillis) -> rusqlite::Result<u64> {
    let mut total = 0u64;
    for table in ["reservations", "sessions", "data", "idempotency"] {
        let sql = format!(
            "DELETE FROM {table} WHERE rowid IN \
             (SELECT rowid FROM {table} WHERE expires_at <= ?1 LIMIT {PURGE_BATCH})"
        );
        loop {
            let n = conn.prepare_cached(&sql)?.execute([now.0])?;
            total += n as u64;
            if n < PURGE_BATCH {
                break;
            }
        }
    }
    let gone = "DELETE FROM numbers WHERE retiring = 1 AND number NOT IN (SELECT number FROM reservations)";
    total += conn.prepare_cached(gone)?.execute([])? as u64;
    Ok(total)
}
