//! The writer thread: owns the connection, commits queued changes in batches (group commit),
//! and publishes the last durable sequence number for waiting requests.
//!
//! A failed commit is retried with backoff, never skipped: the engine has already decided on
//! those changes, so the only way to stay consistent is to get them on disk (meanwhile
//! requests time out with 503 StoreUnavailable).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::watch;

use crate::domain::{DataId, UnixMillis};
use crate::store::local::journal::{Change, Journal};
use crate::store::{Fields, StoreError, merge_fields};

/// Most changes folded into one transaction.
const MAX_BATCH: usize = 20_000;

type Batch = (u64, Vec<Change>);

/// How long an expired data row stays for a reader that saw it live.
const DATA_READ_GRACE: Duration = Duration::from_secs(60);

pub struct SqliteJournal {
    sender: Mutex<Option<mpsc::Sender<Batch>>>,
    submitted: AtomicU64,
    durable: watch::Receiver<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
    timeout: Duration,
}

impl SqliteJournal {
    /// `lock` is the node's lock on the file; the thread releases it after the connection
    /// closes, so the next node finds the file complete.
    pub fn start(conn: Connection, lock: std::fs::File, timeout: Duration) -> Self {
        let (sender, receiver) = mpsc::channel();
        let (durable_tx, durable) = watch::channel(0);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                run(conn, receiver, durable_tx);
                drop(lock);
            })
            .ok();
        Self {
            sender: Mutex::new(Some(sender)),
            submitted: AtomicU64::new(0),
            durable,
            thread: Mutex::new(thread),
            timeout,
        }
    }
}

impl Journal for SqliteJournal {
    fn submit(&self, changes: Vec<Change>) -> u64 {
        let seq = self.submitted.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(sender) = self.sender.lock().as_ref() {
            // A send fails only once the writer is gone; waiters then time out with 503.
            let _ = sender.send((seq, changes));
        }
        seq
    }

    fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::SeqCst)
    }

    fn durable(&self, seq: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut rx = self.durable.clone();
        Box::pin(async move {
            if *rx.borrow() >= seq {
                return Ok(());
            }
            match tokio::time::timeout(self.timeout, rx.wait_for(|&d| d >= seq)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(StoreError::unavailable(e)),
                Err(e) => Err(StoreError::unavailable(format!(
                    "sqlite commit not done after {:?}: {e}",
                    self.timeout
                ))),
            }
        })
    }
}

impl Drop for SqliteJournal {
    /// Closes the queue and waits for the writer to commit what was queued, so the file is
    /// complete and unlocked when the store is gone.
    fn drop(&mut self) {
        self.sender.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

fn run(mut conn: Connection, receiver: mpsc::Receiver<Batch>, durable: watch::Sender<u64>) {
    while let Ok(first) = receiver.recv() {
        let mut count = first.1.len();
        let mut batches = vec![first];
        while count < MAX_BATCH {
            match receiver.try_recv() {
                Ok(b) => {
                    count += b.1.len();
                    batches.push(b);
                }
                Err(_) => break,
            }
        }
        let last = batches.last().map_or(0, |b| b.0);
        let mut backoff = Duration::from_millis(100);
        while let Err(err) = commit(&mut conn, &batches) {
            tracing::error!(error = %err, retry_in = ?backoff, "sqlite commit failed; retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        durable.send_replace(last);
    }
    drop(conn);
}

fn commit(conn: &mut Connection, batches: &[Batch]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut cursors: HashMap<&str, u32> = HashMap::new();
    for change in batches.iter().flat_map(|b| &b.1) {
        if let Change::Cursor { group, cursor } = change {
            cursors.insert(group.as_str(), *cursor);
        } else {
            apply(&tx, change)?;
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
            let sql = "INSERT INTO groups (name, allocation, booking_timeout, require_code, max_code_attempts, cool_down, late_match_grace, quarantine_after_stray_calls)
                       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                       ON CONFLICT (name) DO UPDATE SET allocation = excluded.allocation, booking_timeout = excluded.booking_timeout,
                           require_code = excluded.require_code, max_code_attempts = excluded.max_code_attempts, cool_down = excluded.cool_down,
                           late_match_grace = excluded.late_match_grace, quarantine_after_stray_calls = excluded.quarantine_after_stray_calls";
            let p = &s.policy;
            tx.prepare_cached(sql)?.execute(params![
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
            wrong_codes,
        } => {
            let sql = "INSERT OR REPLACE INTO reservations (number, session, code, phone, expires_at, wrong_codes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
            let (code, phone) = (
                code.as_ref().map(|c| c.as_str()),
                phone.as_ref().map(|p| p.as_str()),
            );
            tx.prepare_cached(sql)?.execute(params![
                number.as_str(),
                session.as_str(),
                code,
                phone,
                expires_at.0,
                wrong_codes
            ])?;
        }
        Change::Released {
            number,
            freed_at,
            ended,
        } => {
            tx.prepare_cached("DELETE FROM reservations WHERE number = ?1")?
                .execute([number.as_str()])?;
            let sql = "UPDATE numbers SET freed_at = ?1, last_session = ?2, last_code = ?3, last_phone = ?4,
                       last_end = ?5, last_reason = ?6 WHERE number = ?7";
            tx.prepare_cached(sql)?.execute(params![
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
            tx.prepare_cached("UPDATE reservations SET wrong_codes = ?1 WHERE number = ?2")?
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
            tx.prepare_cached(sql)?.execute(params![
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
            let sql = "INSERT OR REPLACE INTO data (id, fields, expires_at, bytes) VALUES (?1, ?2, ?3, ?4)";
            let bytes = crate::store::local::engine::fields_bytes(fields) as i64;
            tx.prepare_cached(sql)?
                .execute(params![id.as_str(), json, expires_at.0, bytes])?;
        }
        Change::DataMerged {
            id,
            fields,
            expires_at,
        } => merge_data(tx, id, fields, *expires_at)?,
        Change::DataDeleted(id) => {
            tx.prepare_cached("DELETE FROM data WHERE id = ?1")?
                .execute([id.as_str()])?;
        }
        // The webhook outbox (events branch): its own table, written by sqlite/outbox.rs.
        Change::EventQueued { .. } | Change::EventDone(_) | Change::EventRetry { .. } => {
            super::outbox::apply(tx, change)?;
        }
        Change::DataEnded { id, at } => {
            let sql = "UPDATE data SET expires_at = min(expires_at, ?2) WHERE id = ?1";
            tx.prepare_cached(sql)?
                .execute(params![id.as_str(), at.0])?;
        }
        Change::Purge(now) => {
            for sql in [
                "DELETE FROM reservations WHERE expires_at <= ?1",
                "DELETE FROM sessions WHERE expires_at <= ?1",
            ] {
                tx.prepare_cached(sql)?.execute([now.0])?;
            }
            // Data a minute later: a match that ended its session reads the row after the
            // commit (`Change::DataEnded`), and must find it there.
            let grace = DATA_READ_GRACE.as_millis() as i64;
            tx.prepare_cached("DELETE FROM data WHERE expires_at <= ?1")?
                .execute([now.0.saturating_sub(grace)])?;
            let gone = "DELETE FROM numbers WHERE retiring = 1 AND number NOT IN (SELECT number FROM reservations)";
            tx.prepare_cached(gone)?.execute([])?;
        }
    }
    Ok(())
}

/// Adds or replaces `update` in a stored entry and sets its expiry: read, merged and written
/// back inside this transaction, so merges apply one after another in journal order. Stored
/// JSON that does not parse is logged and replaced by the update alone (a commit that fails
/// on it would be retried for ever).
fn merge_data(
    tx: &Transaction,
    id: &DataId,
    update: &Fields,
    expires_at: UnixMillis,
) -> rusqlite::Result<()> {
    let stored: Option<String> = tx
        .prepare_cached("SELECT fields FROM data WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    let Some(stored) = stored else {
        // Deleted after the engine decided: the delete came later in the journal.
        return Ok(());
    };
    let mut fields: Fields = serde_json::from_str(&stored).unwrap_or_else(|e| {
        tracing::error!(data_id = %id, error = %e, "stored fields do not parse; keeping the update only");
        Fields::new()
    });
    merge_fields(&mut fields, update.clone());
    let json = serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into());
    let bytes = crate::store::local::engine::fields_bytes(&fields) as i64;
    tx.prepare_cached("UPDATE data SET fields = ?2, expires_at = ?3, bytes = ?4 WHERE id = ?1")?
        .execute(params![id.as_str(), json, expires_at.0, bytes])?;
    Ok(())
}
