//! The writer thread: owns the connection, commits queued changes in batches (group commit)
//! with statements it keeps prepared from one commit to the next (`statements.rs`), and
//! publishes each batch's outcome for waiting requests.
//!
//! A failed commit is never retried: the batches in it, and every batch queued after them
//! (decided on the same state), are rolled back. Under the engine's lock the thread drops
//! whatever is still queued, rebuilds the engine from the tables (the durable state), marks
//! the store failing, and only then tells the waiters, who answer 503. While it is failing,
//! the local store refuses writes before they touch the engine (`store/local/mod.rs`), so
//! the engine stays exactly the durable state and a disk that stays full costs this one
//! rebuild, not one per attempted write. The thread probes the file with a one-row write
//! every [`PROBE_EVERY`]; the first success lets writes in again, with no rebuild needed,
//! so `/ready` turns green by itself once the disk takes writes. Why this design:
//! `docs/architecture.md`, "When a write fails".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use rusqlite::Connection;

use super::apply::{commit, purge, purge_instant};
use super::deadline;
use super::load::load;
use super::outcome::{Outcomes, Wait};
use super::statements::Statements;
use crate::clock::Clock;
use crate::store::local::engine::Engine;
use crate::store::local::journal::{Change, Journal, JournalError};
use crate::store::{Cause, StoreError};

/// Most changes folded into one transaction.
const MAX_BATCH: usize = 20_000;
/// How often a failing store probes whether writes work again (also the longest a write
/// waits after space returns: writes are refused until a probe succeeds).
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(500);

pub type Batch = (u64, Vec<Change>);

pub struct SqliteJournal {
    sender: Mutex<Option<mpsc::Sender<Batch>>>,
    submitted: AtomicU64,
    outcomes: Arc<Outcomes>,
    thread: Mutex<Option<JoinHandle<()>>>,
    timeout: Duration,
    /// Keeps the deadline thread (`deadline.rs`) running; dropped with the journal.
    _deadline: mpsc::Sender<()>,
}

/// What the writer thread needs to rebuild the engine after a failed commit.
pub struct Rebuild {
    pub engine: Arc<Mutex<Engine>>,
    pub clock: Arc<dyn Clock>,
}

impl SqliteJournal {
    /// `lock` is the node's lock on the file; the thread releases it after the connection
    /// closes, so the next node finds the file complete.
    pub fn start(
        conn: Connection,
        lock: super::Locks,
        rebuild: Rebuild,
        timeout: Duration,
    ) -> Self {
        let (sender, receiver) = mpsc::channel();
        let outcomes = Arc::new(Outcomes::new());
        let writer = Writer {
            conn,
            receiver,
            outcomes: outcomes.clone(),
            rebuild,
        };
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                writer.run();
                drop(lock);
            })
            .ok();
        Self {
            sender: Mutex::new(Some(sender)),
            submitted: AtomicU64::new(0),
            _deadline: deadline::start(&outcomes, timeout),
            outcomes,
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

    fn pending(&self) -> Option<u64> {
        let seq = self.submitted.load(Ordering::SeqCst);
        (seq > self.outcomes.rebuilt_through.load(Ordering::SeqCst)).then_some(seq)
    }

    fn durable(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        let told = match self.outcomes.wait(seq) {
            Wait::Done(outcome) => return Box::pin(std::future::ready(rolled_back(outcome))),
            Wait::Pending(told) => told,
        };
        Box::pin(async move {
            match told.await {
                Ok(outcome) => rolled_back(outcome),
                // Dropped unsent: the deadline thread gave up on it.
                Err(_) => Err(JournalError::Unavailable(StoreError::unavailable(format!(
                    "sqlite commit not done after {:?}",
                    self.timeout
                )))),
            }
        })
    }

    fn usable(&self) -> Result<(), StoreError> {
        match self.outcomes.broken.load(Ordering::SeqCst) {
            true => Err(self.outcomes.error("sqlite store cannot be read")),
            false => Ok(()),
        }
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.outcomes.failing.load(Ordering::SeqCst) {
            true => Err(self.outcomes.error("sqlite writes fail")),
            false => Ok(()),
        }
    }

    fn rebuilds(&self) -> u64 {
        self.outcomes.rebuilds.load(Ordering::SeqCst)
    }
}

impl Drop for SqliteJournal {
    /// Closes the queue and waits for the writer to commit what was queued, so the file is
    /// complete and unlocked when the store is gone. The writer never retries a commit, so
    /// this ends even when the disk is full.
    fn drop(&mut self) {
        self.sender.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

/// A batch's outcome as the journal reports it.
fn rolled_back(outcome: Result<(), StoreError>) -> Result<(), JournalError> {
    outcome.map_err(JournalError::RolledBack)
}

struct Writer {
    conn: Connection,
    receiver: mpsc::Receiver<Batch>,
    outcomes: Arc<Outcomes>,
    rebuild: Rebuild,
}

/// A commit that failed: its batches `lo..=hi` and why.
struct Failed {
    lo: u64,
    hi: u64,
    error: rusqlite::Error,
}

impl Writer {
    fn run(mut self) {
        loop {
            let unhealthy = self.outcomes.failing.load(Ordering::SeqCst)
                || self.outcomes.broken.load(Ordering::SeqCst);
            if unhealthy {
                // Probes and rebuilds need the connection to themselves: no statements held.
                match self.receiver.recv_timeout(PROBE_EVERY) {
                    Ok(first) => {
                        let failed = self.commit_from(&mut Statements::new(&self.conn), first);
                        if let Err(failed) = failed {
                            self.roll_back(failed);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => self.probe(),
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                continue;
            }
            // Healthy: the statements stay prepared and held from one commit to the next
            // (`statements.rs`) until one fails; they go back to the cache before the rebuild.
            let failed = {
                let mut statements = Statements::new(&self.conn);
                loop {
                    let Ok(first) = self.receiver.recv() else {
                        return;
                    };
                    if let Err(failed) = self.commit_from(&mut statements, first) {
                        break failed;
                    }
                }
            };
            self.roll_back(failed);
        }
    }

    /// Commits `first` and whatever is queued behind it, up to [`MAX_BATCH`] changes, in one
    /// transaction; on success tells the waiters and runs a purge the batches asked for.
    fn commit_from(&self, statements: &mut Statements<'_>, first: Batch) -> Result<(), Failed> {
        let mut count = first.1.len();
        let mut batches = vec![first];
        while count < MAX_BATCH {
            match self.receiver.try_recv() {
                Ok(b) => {
                    count += b.1.len();
                    batches.push(b);
                }
                Err(_) => break,
            }
        }
        let (lo, hi) = (batches[0].0, batches.last().map_or(0, |b| b.0));
        let overcounts = match commit(statements, &batches) {
            Ok(overcounts) => overcounts,
            Err(error) => return Err(Failed { lo, hi, error }),
        };
        // Before the waiters hear of the commit, so their next call counts the real size.
        if !overcounts.is_empty() {
            let mut engine = self.rebuild.engine.lock();
            for (id, bytes) in overcounts {
                engine.data_overcounted(&id, bytes);
            }
        }
        self.outcomes.durable_through(hi);
        if let Some(now) = purge_instant(&batches) {
            match purge(statements.conn, now) {
                Ok(n) if n > 0 => tracing::debug!(purged = n, "expired rows purged"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "purge failed; will retry"),
            }
        }
        Ok(())
    }

    /// Fails batches `lo..=hi` and everything queued after them, and rebuilds the engine from
    /// the tables before any waiter hears of it.
    fn roll_back(&mut self, Failed { lo, hi, error }: Failed) {
        let cause: Cause = Arc::new(error);
        tracing::error!(error = %cause, batches = hi - lo + 1, "sqlite commit failed; rolling back and refusing writes until a probe write succeeds");
        let engine = self.rebuild.engine.clone();
        let mut engine = engine.lock();
        // Under the engine lock nothing new is queued: everything decided so far is here.
        let mut last = hi;
        while let Ok((seq, _)) = self.receiver.try_recv() {
            last = seq;
        }
        self.reload(&mut engine);
        self.outcomes.rebuilt_through.store(last, Ordering::SeqCst);
        self.outcomes.rolled_back(lo, last, cause);
    }

    fn reload(&mut self, engine: &mut Engine) {
        let rebuilds = self.outcomes.rebuilds.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!(rebuilds, "rebuilding the engine from the sqlite file");
        match load(&mut self.conn, self.rebuild.clock.now()) {
            Ok(mut rebuilt) => {
                rebuilt.copy_modes_from(engine);
                *engine = rebuilt;
                self.outcomes.broken.store(false, Ordering::SeqCst);
            }
            Err(reason) => {
                tracing::error!(%reason, "cannot rebuild the engine from the sqlite file; answering 503 until it can");
                self.outcomes.broken.store(true, Ordering::SeqCst);
            }
        }
    }

    /// While unhealthy: retries the rebuild if it failed, else tries one small write.
    fn probe(&mut self) {
        if self.outcomes.broken.load(Ordering::SeqCst) {
            let engine = self.rebuild.engine.clone();
            let mut engine = engine.lock();
            self.reload(&mut engine);
            if self.outcomes.broken.load(Ordering::SeqCst) {
                return;
            }
        }
        let now = self.rebuild.clock.now().0;
        let sql = "INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?1)";
        match self.conn.execute(sql, [now]) {
            Ok(_) => {
                tracing::info!("sqlite writes succeed again");
                self.outcomes.failing.store(false, Ordering::SeqCst);
            }
            Err(err) => tracing::debug!(error = %err, "sqlite still cannot write"),
        }
    }
}
