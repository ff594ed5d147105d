//! Group commit on PostgreSQL: the calls of one kind waiting on this node go to the database
//! together, in one transaction, so a hundred calls cost a few round trips and one commit (one
//! WAL flush) instead of a hundred of each. Request-access (`reserve::reserve_many`) and
//! match-interaction (`matches::match_many`) both go through it: [`Work`] says how a batch of
//! each is decided and written.
//!
//! Nothing is answered before its batch commits. While a batch is in flight the next calls
//! queue; up to `parallel` batches of a kind run at once (on different pooled connections), so
//! the database's own group commit can overlap their flushes. Items are decided in arrival
//! order, exactly as if they had come one by one; an item's refusal (no session, no free
//! number, no match) is its own answer and does not undo the others. A failure of the whole
//! batch (outage, timeout) answers every item with it, as 503.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::prepared::{Stmt, prepare, send, send_prepared};
use super::{Db, retried, timed_out};
use crate::events::Event;
use crate::store::StoreError;

/// Most calls in one transaction: large enough to amortise the commit at 64 connections per
/// node, small enough that one batch's locks are held briefly.
const MAX_BATCH: usize = 128;

/// Calls a batch needs to start while another batch of its kind is in flight (see `drive`).
const FILL: usize = 32;

/// How a batch's transaction begins. Its statements are prepared once per connection and run
/// thousands of times a second; PostgreSQL plans a prepared statement again on every run
/// while a plan for the values at hand looks cheaper than its generic one, and it did so for
/// the cursor's update and the groups' read (by `pg_stat_statements` with `track_planning`:
/// 0.10 and 0.05 ms of planning per batch for 0.03 and 0.01 ms of execution). Every
/// statement of a batch looks rows up by key or walks an index from a key, so the generic
/// plans are the ones wanted: with them the statements' execution times were the same and
/// the planning was gone (docs/performance.md). `LOCAL`: only for this transaction; the
/// other paths keep PostgreSQL's choice.
const BEGIN: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

/// One kind of call that can be batched.
pub(super) trait Work: Send + Sync + 'static {
    type Req: Send + Sync + 'static;
    type Ans: Send + 'static;
    /// What a decided batch writes.
    type Plan: Send + Sync;

    /// Reads and decides a whole batch, inside the transaction [`attempt`] opened (the first
    /// statements it sends follow `BEGIN` in the same round trip), within the batch's
    /// deadline; answer i is for request i. `db` is the node's (its clock, its walks).
    fn decide<'a>(
        client: &'a deadpool_postgres::Client,
        db: &'a Db,
        reqs: &'a [Self::Req],
    ) -> impl Future<Output = Result<(Vec<Self::Ans>, Self::Plan), StoreError>> + Send + 'a;

    /// Writes what `decide` planned, its last statements through [`Finish::last`] (which
    /// sends the `COMMIT` with them when nothing else has to follow in the transaction).
    /// Returns the events of what it wrote.
    fn write<'a>(
        client: &'a deadpool_postgres::Client,
        reqs: &'a [Self::Req],
        plan: &'a Self::Plan,
        finish: &'a mut Finish,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send + 'a;

    /// Every item's answer when the whole batch failed.
    fn failed(err: StoreError) -> Self::Ans;

    /// Once the batch has committed (its locks let go): mends answers that must see what
    /// other transactions committed meanwhile (`retry_after.rs`). Nothing by default.
    fn after_commit<'a>(
        _db: &'a Db,
        _reqs: &'a [Self::Req],
        _answers: &'a mut [Self::Ans],
    ) -> impl Future<Output = ()> + Send + 'a {
        std::future::ready(())
    }

    /// Whether a request must be the last of its batch (its effects reach beyond the rows
    /// the batch read, so later requests must see them: they go in the next batch).
    fn closes_batch(_req: &Self::Req) -> bool {
        false
    }
}

type Job<W> = (
    <W as Work>::Req,
    oneshot::Sender<<W as Work>::Ans>,
    Arc<AtomicU8>,
);

/// A job's state, so a caller never gives up on a job a batch already took: a batch that
/// commits after its caller left would hold a number for a caller told 503.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

pub(super) struct Batcher<W: Work> {
    queue: mpsc::UnboundedSender<Job<W>>,
    db: Db,
}

/// Batches of one kind in flight at once: two keep the database busy while the node gathers
/// the next, and leave the rest of the pool to other calls.
pub fn parallel(max_connections: usize) -> usize {
    (max_connections / 4).clamp(1, 2)
}

impl<W: Work> Batcher<W> {
    pub fn start(db: Db, parallel: usize) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(drive::<W>(db.clone(), jobs, parallel));
        Self { queue, db }
    }

    /// Queues one call and waits for its committed answer. A call still queued after the
    /// store's timeout gives up (503, nothing done); one a batch took waits for the batch's
    /// outcome, which its own bounds end (`tx.rs`).
    pub async fn call(&self, req: W::Req) -> W::Ans {
        let (reply, mut answer) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let gone = || StoreError::unavailable("the batcher stopped");
        if self.queue.send((req, reply, state.clone())).is_err() {
            return W::failed(gone());
        }
        let answer = match tokio::time::timeout(self.db.timeout, &mut answer).await {
            Ok(answer) => answer,
            Err(_) => {
                let left =
                    state.compare_exchange(QUEUED, ABANDONED, Ordering::SeqCst, Ordering::SeqCst);
                if left.is_ok() {
                    return W::failed(timed_out(self.db.timeout));
                }
                answer.await
            }
        };
        answer.unwrap_or_else(|_| W::failed(gone()))
    }
}

/// Takes the queued calls as one batch whenever a batch slot is free; ends when the store
/// (the only sender) is dropped.
///
/// While another batch of this kind is in flight, a new one starts only once it holds
/// [`FILL`] calls; until then it waits for more calls or for the other batch to end. So the
/// calls that arrive during a batch go in the next one together (one transaction, one
/// commit) rather than as many batches of one, and a batch that is slow (a lock held by
/// another node) still does not hold up a full queue.
async fn drive<W: Work>(db: Db, mut jobs: mpsc::UnboundedReceiver<Job<W>>, parallel: usize) {
    let slots = Arc::new(Semaphore::new(parallel));
    let ended = Arc::new(Notify::new());
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = jobs.recv().await else {
            return;
        };
        let mut closed = W::closes_batch(&first.0);
        let mut batch = vec![first];
        loop {
            while batch.len() < MAX_BATCH && !closed {
                match jobs.try_recv() {
                    Ok(job) => {
                        closed = W::closes_batch(&job.0);
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            let others = parallel - 1 - slots.available_permits();
            if closed || batch.len() >= FILL || others == 0 {
                break;
            }
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => {
                        closed = W::closes_batch(&job.0);
                        batch.push(job);
                    }
                    None => break,
                },
                () = ended.notified() => {}
            }
        }
        let db = db.clone();
        let ended = ended.clone();
        tokio::spawn(async move {
            run::<W>(&db, batch).await;
            drop(slot);
            ended.notify_one();
        });
    }
}

async fn run<W: Work>(db: &Db, batch: Vec<Job<W>>) {
    // Callers that gave up (timed out) are left out rather than served for nobody.
    let (reqs, replies): (Vec<W::Req>, Vec<oneshot::Sender<W::Ans>>) = batch
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
    let started = std::time::Instant::now();
    let outcome = retried(db.timeout, |deadline| attempt::<W>(db, &reqs, deadline)).await;
    tracing::debug!(
        kind = std::any::type_name::<W>(),
        size = reqs.len(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "batch"
    );
    match outcome {
        Ok(mut answers) => {
            W::after_commit(db, &reqs, &mut answers).await;
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::Chain(&e), size = replies.len(), "batch failed");
            for reply in replies {
                let _ = reply.send(W::failed(e.clone()));
            }
        }
    }
}

/// One try at a batch: a pooled connection, `BEGIN` sent with the batch's first reads, its
/// decisions within the deadline, then its writes with the `COMMIT` in one round trip
/// ([`Finish`]), after which the answers are given.
async fn attempt<W: Work>(
    db: &Db,
    reqs: &[W::Req],
    deadline: Instant,
) -> Result<Vec<W::Ans>, StoreError> {
    let started = std::time::Instant::now();
    let conn = OpenTx::take(db, deadline).await?;
    let client = conn.client()?;
    // try_join! polls in order, so BEGIN is sent before the first read.
    let begin = async { client.batch_execute(BEGIN).await.map_err(super::pg_error) };
    let decided = async {
        let ((), decided) = tokio::try_join!(begin, W::decide(client, db, reqs))?;
        Ok::<_, StoreError>(decided)
    };
    let (answers, plan) = super::before(deadline, decided).await?;
    let decided_at = started.elapsed();
    // With `[events]` the outbox insert needs the events the writes return, so the COMMIT
    // cannot ride with them.
    let mut finish = Finish {
        deadline,
        may_commit: !db.keeps_outbox(),
        committed: false,
    };
    let events = W::write(client, reqs, &plan, &mut finish).await?;
    if finish.committed {
        conn.committed(db, &events);
    } else {
        if db.keeps_outbox() {
            super::before(deadline, super::outbox::insert(client, &events)).await?;
        }
        conn.commit(db, &events).await?;
    }
    // Where a batch's time goes: the connection and the reads (with BEGIN) until decided,
    // then the writes and the commit.
    tracing::debug!(
        kind = std::any::type_name::<W>(),
        decided_ms = decided_at.as_secs_f64() * 1000.0,
        written_ms = (started.elapsed() - decided_at).as_secs_f64() * 1000.0,
        "batch trips"
    );
    Ok(answers)
}

/// How a batch's writes end its transaction: the last of them carry the `COMMIT` when
/// nothing else has to follow them (no outbox insert), so a batch's writes and its commit
/// cost one round trip.
pub(super) struct Finish {
    deadline: Instant,
    may_commit: bool,
    committed: bool,
}

impl Finish {
    /// Sends statements that are not the transaction's last, within the batch's deadline.
    pub async fn more(
        &self,
        client: &deadpool_postgres::Client,
        stmts: &[Stmt<'_>],
    ) -> Result<Vec<Vec<tokio_postgres::Row>>, StoreError> {
        let sent = async { send(client, stmts).await.map_err(super::pg_error) };
        super::before(self.deadline, sent).await
    }

    /// Runs other work of the transaction within the batch's deadline.
    pub async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        super::before(self.deadline, work).await
    }

    /// Sends the transaction's last statements, with the `COMMIT` after them when it may
    /// (then the answer is the commit's, waited for as `tx::commit` says, never cut off by the
    /// deadline). They are prepared first (`prepared::prepare`, within the deadline), so the
    /// `COMMIT` cannot overtake one of them. A statement that fails aborts the transaction
    /// and the `COMMIT` then rolls it back: the error is the batch's.
    pub async fn last(
        &mut self,
        client: &deadpool_postgres::Client,
        stmts: &[Stmt<'_>],
    ) -> Result<Vec<Vec<tokio_postgres::Row>>, StoreError> {
        if !self.may_commit {
            return self.more(client, stmts).await;
        }
        let ready = async { prepare(client, stmts).await.map_err(super::pg_error) };
        let prepared = super::before(self.deadline, ready).await?;
        let writes = async {
            send_prepared(client, &prepared, stmts)
                .await
                .map_err(super::pg_error)
        };
        let commit = async {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(super::pg_error)
        };
        let (rows, ()) = super::commit(async { tokio::try_join!(writes, commit) }).await?;
        self.committed = true;
        Ok(rows)
    }
}

/// A pooled connection with a transaction open on it. Unless `done` is called (after the
/// commit), dropping it discards the connection, whatever stopped the batch (an error, or the
/// caller's timeout dropping the future): closing the connection rolls the transaction back
/// in the database, and the pool never hands out a connection left inside a transaction.
pub struct OpenTx(Option<deadpool_postgres::Object>);

impl OpenTx {
    /// Takes a pooled connection for a batch's transaction (the caller sends `BEGIN`).
    pub(super) async fn take(db: &Db, deadline: Instant) -> Result<Self, StoreError> {
        let pool = async { db.pool.get().await.map_err(StoreError::unavailable) };
        Ok(Self(Some(super::before(deadline, pool).await?)))
    }

    /// The connection, with its statement cache (`prepared.rs`).
    pub fn client(&self) -> Result<&deadpool_postgres::Client, StoreError> {
        self.0
            .as_ref()
            .ok_or_else(|| StoreError::unavailable("connection already released"))
    }

    /// Commits the batch's transaction (waiting as `tx::commit` says, never under the
    /// batch's deadline), gives the connection back to the pool, and publishes the events.
    pub async fn commit(
        mut self,
        db: &Db,
        events: &[crate::events::Event],
    ) -> Result<(), StoreError> {
        let client = self.client()?;
        super::commit(async {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(super::pg_error)
        })
        .await?;
        self.0 = None;
        db.publish(events);
        Ok(())
    }

    /// The transaction committed (its `COMMIT` rode with its writes, [`Finish::last`]): the
    /// connection goes back to the pool and the events are published.
    pub fn committed(mut self, db: &Db, events: &[crate::events::Event]) {
        self.0 = None;
        db.publish(events);
    }
}

impl Drop for OpenTx {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}
