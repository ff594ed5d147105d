//! Group commit for request-access on PostgreSQL: the calls waiting on this node go to the
//! database together, in one transaction (`reserve::reserve_many`), so a hundred
//! reservations cost one round trip and one commit (one WAL flush) instead of a hundred.
//!
//! Nothing is answered before its batch commits. While a batch is in flight the next calls
//! queue; up to `parallel` batches run at once (on different pooled connections), so the
//! database's own group commit can overlap their flushes. Items are decided in arrival
//! order, exactly as if they had come one by one; an item's refusal (no session, no free
//! number) is its own answer and does not undo the others. A failure of the whole batch
//! (outage, timeout) answers every item with it, as 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Db, before, commit, reserve, retried, timed_out};
use crate::store::{Reservation, ReserveError, ReserveRequest, StoreError};

/// Most reservations in one transaction: large enough to amortise the commit at 64
/// connections per node, small enough that one batch's locks are held briefly.
const MAX_BATCH: usize = 128;

type Answer = Result<Reservation, ReserveError>;
type Job = (ReserveRequest, oneshot::Sender<Answer>, Arc<AtomicU8>);

/// A job's state, so a caller never gives up on a job a batch already took: a batch that
/// commits after its caller left would hold a number for a caller told 503.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

pub struct Batcher {
    queue: mpsc::UnboundedSender<Job>,
    db: Db,
}

/// Batches in flight at once: two keep the database busy while the node gathers the next,
/// and leave the rest of the pool to sessions, matches and admin calls.
pub fn parallel(max_connections: usize) -> usize {
    (max_connections / 2).clamp(1, 2)
}

impl Batcher {
    pub fn start(db: Db, parallel: usize) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(drive(db.clone(), jobs, parallel));
        Self { queue, db }
    }

    /// Queues one request-access and waits for its committed answer. A call still queued
    /// after the store's timeout gives up (503, nothing done); one a batch took waits for the
    /// batch's outcome, which its own bounds end (`tx.rs`).
    pub async fn reserve(&self, req: ReserveRequest) -> Answer {
        let (reply, mut answer) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let gone = || StoreError::unavailable("the reservation batcher stopped");
        self.queue
            .send((req, reply, state.clone()))
            .map_err(|_| gone())?;
        let answer = match tokio::time::timeout(self.db.timeout, &mut answer).await {
            Ok(answer) => answer,
            Err(_) => {
                let left =
                    state.compare_exchange(QUEUED, ABANDONED, Ordering::SeqCst, Ordering::SeqCst);
                if left.is_ok() {
                    return Err(timed_out(self.db.timeout).into());
                }
                answer.await
            }
        };
        answer.unwrap_or_else(|_| Err(gone().into()))
    }
}

/// Takes the queued calls as one batch whenever a batch slot is free; ends when the store
/// (the only sender) is dropped.
async fn drive(db: Db, mut jobs: mpsc::UnboundedReceiver<Job>, parallel: usize) {
    let slots = Arc::new(Semaphore::new(parallel));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = jobs.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let db = db.clone();
        tokio::spawn(async move {
            run(&db, batch).await;
            drop(slot);
        });
    }
}

async fn run(db: &Db, batch: Vec<Job>) {
    // Callers that gave up (timed out) are left out rather than reserved for nobody.
    let (reqs, replies): (Vec<ReserveRequest>, Vec<oneshot::Sender<Answer>>) = batch
        .into_iter()
        .filter(|(_, r, state)| {
            !r.is_closed()
                && state
                    .compare_exchange(QUEUED, TAKEN, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
        })
        .map(|(req, reply, _)| (req, reply))
        .unzip();
    if reqs.is_empty() {
        return;
    }
    let outcome = retried(db.timeout, |deadline| attempt(db, &reqs, deadline)).await;
    match outcome {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::Chain(&e), size = replies.len(), "reservation batch failed");
            for reply in replies {
                let _ = reply.send(Err(e.clone().into()));
            }
        }
    }
}

/// The whole batch in one transaction, in three round trips: `BEGIN` with the reads, the
/// candidates, the writes with `COMMIT`. The rows are decided in order by the rules
/// (`reserve::reserve_many`). Nothing is answered before the commit. The deadline covers the
/// first two round trips; the last one, with the `COMMIT`, waits as `tx::commit` says.
async fn attempt(
    db: &Db,
    reqs: &[ReserveRequest],
    deadline: tokio::time::Instant,
) -> Result<Vec<Answer>, StoreError> {
    let pool = async { db.pool.get().await.map_err(StoreError::unavailable) };
    let conn = OpenTx(Some(before(deadline, pool).await?));
    let client: &tokio_postgres::Client = conn.client()?;
    let frozen = db.clock.frozen().map(|t| t.0);
    // try_join! polls in order, so BEGIN is sent before the first read.
    let begin = async { client.batch_execute("BEGIN").await.map_err(super::pg_error) };
    let decide = async { tokio::try_join!(begin, reserve::reserve_many(client, frozen, reqs)) };
    let ((), (answers, writes)) = before(deadline, decide).await?;
    let finish = async {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(super::pg_error)
    };
    // The writes and COMMIT go together; with an outbox, its insert must come between (it
    // needs the expiries the writes found), which costs one more round trip, still within
    // the deadline (it decides nothing, but it is not the COMMIT).
    let events = if db.keeps_outbox() {
        let write = async {
            let events = reserve::write(client, &writes).await?;
            super::outbox::insert(client, &events).await?;
            Ok::<_, StoreError>(events)
        };
        let events = before(deadline, write).await?;
        commit(finish).await?;
        events
    } else {
        commit(async { tokio::try_join!(reserve::write(client, &writes), finish) })
            .await?
            .0
    };
    conn.done();
    db.publish(&events);
    Ok(answers)
}

/// A pooled connection with a transaction open on it. Unless `done` is called (after the
/// commit), dropping it discards the connection, whatever stopped the batch (an error, or the
/// caller's timeout dropping the future): closing the connection rolls the transaction back
/// in the database, and the pool never hands out a connection left inside a transaction.
struct OpenTx(Option<deadpool_postgres::Object>);

impl OpenTx {
    fn client(&self) -> Result<&tokio_postgres::Client, StoreError> {
        self.0
            .as_deref()
            .map(|wrapper| &**wrapper)
            .ok_or_else(|| StoreError::unavailable("connection already released"))
    }

    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for OpenTx {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}
