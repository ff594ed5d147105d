//! One PostgreSQL transaction under the store's time bound, and what that bound covers.
//!
//! The bound (the store timeout, kept by the client) covers taking a connection, `BEGIN` and
//! every statement that decides; it never covers the `COMMIT`. A commit that landed after the
//! client stopped waiting would hold a number for a caller told 503. The `COMMIT` (with the
//! writes pipelined before it) gets its own wait, [`COMMIT_WAIT`]: when it answers, the
//! caller hears exactly what the database did (PostgreSQL refuses a cancel once the commit
//! record is written, so its own `statement_timeout` never reports a landed commit as
//! failed). When it does not answer (the connection broke or hangs), the outcome is unknown:
//! the caller gets 503, the connection is discarded, and retrying is safe (the calls are
//! idempotent, see `docs/architecture.md`, "Outcome unknown").

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::Transaction;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;

use super::{Db, claim, pg_error};
use crate::store::{ReserveError, StoreError};

/// How long a `COMMIT` may take to answer before its outcome counts as unknown.
pub const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// Errors an operation may end with; a lost race (deadlock, serialization failure, a key
/// another transaction inserted after this one looked for it) is retried: the next try reads
/// what the winner committed and decides on it (two admin calls adding one number: the
/// second answers that the number is taken, not 500).
pub(crate) trait TxError: From<StoreError> {
    fn store_error(&self) -> Option<&StoreError>;

    fn is_retryable(&self) -> bool {
        let Some(StoreError::Unavailable(source)) = self.store_error() else {
            return false;
        };
        source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code())
            .is_some_and(|c| {
                *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::UNIQUE_VIOLATION
            })
    }
}

impl TxError for StoreError {
    fn store_error(&self) -> Option<&StoreError> {
        Some(self)
    }
}

impl TxError for ReserveError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            ReserveError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Runs `attempt(deadline)` again when it lost a race (deadlock, serialization failure), up
/// to three tries; every try's deciding part ends by the one deadline, `timeout` from now.
pub(crate) async fn retried<T, E, Fut>(
    timeout: Duration,
    attempt: impl Fn(Instant) -> Fut,
) -> Result<T, E>
where
    E: TxError,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt(deadline).await {
            Err(e) if tries < 3 && e.is_retryable() && Instant::now() < deadline => continue,
            other => return other,
        }
    }
}

/// The deciding part of a transaction, cut off at `deadline` (503).
pub(crate) async fn before<T, E: From<StoreError>>(
    deadline: Instant,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match tokio::time::timeout_at(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::unavailable("postgres did not answer in time").into()),
    }
}

/// After [`COMMIT_WAIT`], how long the `COMMIT` is still waited for before its outcome counts
/// as unknown.
///
/// Why: the wait is measured on the node's clock, which goes on while the node itself does
/// not run (stopped, its VM paused, starved of CPU). The database's answer may then be in the
/// socket when the node wakes, with the timer already expired: the timer fired first and the
/// node answered 503 for a commit that had landed (an outside audit: a node stopped for 14 s
/// during its `COMMIT`, 2 runs in 3). A second, short wait lets the connection read what came.
pub const COMMIT_GRACE: Duration = Duration::from_secs(1);

/// Waits for a `COMMIT` (and whatever was pipelined before it) for at most [`COMMIT_WAIT`],
/// then [`COMMIT_GRACE`]. An answer from the database is the truth; no answer, or a broken
/// connection, is an unknown outcome.
pub(crate) async fn commit<T>(
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut work = std::pin::pin!(work);
    let answer = match tokio::time::timeout(COMMIT_WAIT, work.as_mut()).await {
        Ok(answer) => answer,
        Err(_) => match tokio::time::timeout(COMMIT_GRACE, work).await {
            Ok(answer) => answer,
            Err(_) => return Err(StoreError::unavailable(OutcomeUnknown(None))),
        },
    };
    match answer {
        Ok(value) => Ok(value),
        Err(e) if is_answer(&e) => Err(e),
        Err(e) => Err(StoreError::unavailable(OutcomeUnknown(Some(e)))),
    }
}

/// Whether an error came from the database itself (an SQLSTATE), not from the connection.
fn is_answer(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable(source) | StoreError::Query(source) => source
            .downcast_ref::<tokio_postgres::Error>()
            .is_some_and(|e| e.code().is_some()),
        StoreError::Corrupt { .. } | StoreError::SchemaTooNew { .. } => true,
    }
}

/// A `COMMIT` whose outcome the node cannot know.
#[derive(Debug, thiserror::Error)]
#[error("no answer to COMMIT (outcome unknown; retrying the call is safe)")]
pub struct OutcomeUnknown(#[source] Option<StoreError>);

/// The error for an operation that took longer than the store's bound.
pub(crate) fn timed_out(timeout: Duration) -> StoreError {
    StoreError::unavailable(format!("postgres did not answer within {timeout:?}"))
}

pub(crate) type TxFuture<'a, T, E> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>;

impl Db {
    /// A test's frozen time in ms (`Clock::frozen`), else `None`: the database's clock.
    pub(crate) fn frozen(&self) -> Option<i64> {
        self.clock.frozen().map(|t| t.0)
    }

    /// Whether an operation's events go to the outbox ([`super::outbox::insert`] in its
    /// transaction; `with_events` does both, the batcher checks it itself).
    pub(crate) fn keeps_outbox(&self) -> bool {
        self.keep_outbox
    }

    /// Runs one operation (as `in_tx!` does) whose function also returns the events its
    /// change made: they go to the outbox in the same transaction (with `[events]`), and on
    /// the live bus once it committed. A rolled-back attempt publishes nothing.
    pub(crate) async fn with_events<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: TxError + Send + 'static,
        F: for<'a> Fn(&'a Transaction<'a>, i64) -> TxFuture<'a, (T, Vec<crate::events::Event>), E>,
    {
        let keep = self.keeps_outbox();
        let (value, events) = self
            .with_tx(|tx, now| {
                let made = f(tx, now);
                Box::pin(async move {
                    let (value, events) = made.await?;
                    if keep {
                        super::outbox::insert(tx, &events).await?;
                    }
                    Ok::<_, E>((value, events))
                })
            })
            .await?;
        self.publish(&events);
        Ok(value)
    }

    /// Publishes events on the live bus; call it after the transaction that made them
    /// committed, never before (a rolled-back change must not be seen).
    pub(crate) fn publish(&self, events: &[crate::events::Event]) {
        for event in events {
            let _ = self.bus.send(event.clone());
        }
    }

    /// Runs `f` in one transaction with the database's `now` (ms). An error rolls back; a
    /// lost race is retried up to three times; the deciding part within the store's timeout,
    /// the commit as [`commit`] says. The closure owns its inputs (clone them in), so the
    /// future borrows only the transaction.
    pub(super) async fn with_tx<T, E, F>(&self, f: F) -> Result<T, E>
    where
        E: TxError,
        F: for<'a> Fn(&'a Transaction<'a>, i64) -> TxFuture<'a, T, E>,
    {
        self.with_tx_within(self.timeout, f).await
    }

    /// `with_tx` with its own bound (start-up work on large groups needs more than a request).
    pub(super) async fn with_tx_within<T, E, F>(&self, timeout: Duration, f: F) -> Result<T, E>
    where
        E: TxError,
        F: for<'a> Fn(&'a Transaction<'a>, i64) -> TxFuture<'a, T, E>,
    {
        retried(timeout, |deadline| self.try_tx(&f, deadline)).await
    }

    async fn try_tx<T, E, F>(&self, f: &F, deadline: Instant) -> Result<T, E>
    where
        E: TxError,
        F: for<'a> Fn(&'a Transaction<'a>, i64) -> TxFuture<'a, T, E>,
    {
        let mut client = before(deadline, async {
            self.pool.get().await.map_err(StoreError::unavailable)
        })
        .await?;
        let frozen = self.frozen();
        // Whether the connection ended its transaction cleanly and may go back to the pool.
        let mut clean = false;
        let decided = async {
            let tx = before(deadline, async {
                client.transaction().await.map_err(pg_error)
            })
            .await?;
            let decided = before(deadline, async {
                let now = claim::now(&tx, frozen).await?;
                f(&tx, now).await
            })
            .await;
            match decided {
                Ok(value) => {
                    let committed = commit(async { tx.commit().await.map_err(pg_error) })
                        .await
                        .map(|()| value);
                    clean = committed.is_ok();
                    committed.map_err(E::from)
                }
                Err(e) => {
                    // Roll back now rather than on drop: a dropped transaction's ROLLBACK
                    // waits for the connection task, and meanwhile the connection holds its
                    // locks. Bounded: a connection that does not answer is discarded below.
                    clean = matches!(
                        tokio::time::timeout(COMMIT_WAIT, tx.rollback()).await,
                        Ok(Ok(()))
                    );
                    Err(e)
                }
            }
        }
        .await;
        if !clean {
            // Whatever state the connection is in (a statement cut off, a commit unanswered),
            // it is not handed out again.
            drop(deadpool_postgres::Object::take(client));
        }
        decided
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A `COMMIT` whose answer came while the node was not running: polled at the wait's end,
    /// it is not read yet (the timer's turn comes in that same poll, after it); read at the
    /// next poll. Before `due` it waits for the timer's wake.
    struct AnsweredLate {
        due: Instant,
        seen_due: bool,
    }

    impl Future for AnsweredLate {
        type Output = Result<u8, StoreError>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if Instant::now() < self.due {
                return Poll::Pending;
            }
            if self.seen_due {
                return Poll::Ready(Ok(7));
            }
            self.seen_due = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_read_after_the_wait_ran_out_is_the_answer() {
        let due = Instant::now() + COMMIT_WAIT;
        let answer = commit(AnsweredLate {
            due,
            seen_due: false,
        })
        .await;
        assert!(
            matches!(answer, Ok(7)),
            "the landed commit is reported, not an unknown outcome: {answer:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_at_all_is_an_unknown_outcome() {
        let answer = commit(std::future::pending::<Result<u8, StoreError>>()).await;
        let Err(StoreError::Unavailable(cause)) = answer else {
            panic!("not unavailable: {answer:?}");
        };
        assert!(cause.downcast_ref::<OutcomeUnknown>().is_some(), "{cause}");
    }
}
