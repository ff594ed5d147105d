//! What the writer thread tells waiting requests: which batches are resolved, which of them
//! were rolled back, and whether the store takes writes at all.
//!
//! Batches resolve in order. Rolled-back batches come in runs (a failed commit fails every
//! batch queued with it, and while the disk stays full each next run joins the last), so a
//! short list of ranges says which ones failed.
//!
//! Waiting requests are kept by the batch they wait for, in order, next to the outcomes under
//! one lock: a commit through batch N wakes exactly the requests waiting for N or earlier,
//! each with its own outcome (told after the lock is released). (A `watch` channel woke every waiter on every commit, and the
//! ones whose batch was still queued polled their whole request again to sleep once more.)
//! A waiter carries no timer of its own: [`Outcomes::expire`], run by the journal's deadline
//! thread, fails the ones that waited longer than the store's timeout (see `deadline.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::store::{Cause, StoreError};

/// Failed ranges kept for waiters that look late; older ones count as rolled back too.
const KEPT_RANGES: usize = 256;

#[derive(Debug, Default)]
pub struct Resolved {
    /// Every batch up to here has its outcome.
    pub through: u64,
    failed: VecDeque<(u64, u64)>,
    cause: Option<Cause>,
}

impl Resolved {
    /// `None` while `seq` is unresolved; else whether it became durable.
    pub fn outcome(&self, seq: u64) -> Option<Result<(), StoreError>> {
        if seq > self.through {
            return None;
        }
        let forgotten = self.failed.len() == KEPT_RANGES
            && self.failed.front().is_some_and(|&(lo, _)| seq < lo);
        let failed = forgotten || self.failed.iter().any(|&(lo, hi)| lo <= seq && seq <= hi);
        Some(if failed {
            Err(StoreError::Unavailable(self.cause.clone().unwrap_or_else(
                || std::sync::Arc::from(crate::store::BoxError::from("sqlite commit failed")),
            )))
        } else {
            Ok(())
        })
    }
}

/// What a waiter hears: its batch's outcome. Dropped unsent when it waited too long.
pub type Told = oneshot::Receiver<Result<(), StoreError>>;

/// A request waiting for its batch, since when.
#[derive(Debug)]
struct Waiter {
    since: Instant,
    tell: oneshot::Sender<Result<(), StoreError>>,
}

#[derive(Debug, Default)]
struct State {
    resolved: Resolved,
    /// Keyed by (batch, ticket): in batch order, one entry per waiting request.
    waiting: BTreeMap<(u64, u64), Waiter>,
    tickets: u64,
}

impl State {
    /// Takes out every waiter of a batch up to `through`, each with its outcome, for the
    /// caller to tell once the lock is released (a wake schedules a task: not under a lock
    /// that every new waiter takes).
    fn due(&mut self) -> Vec<(Waiter, Result<(), StoreError>)> {
        let later = self.waiting.split_off(&(self.resolved.through + 1, 0));
        let due = std::mem::replace(&mut self.waiting, later);
        due.into_iter()
            .filter_map(|((seq, _), w)| self.resolved.outcome(seq).map(|outcome| (w, outcome)))
            .collect()
    }
}

/// Tells each waiter its outcome. The request may have gone (its client left, or its own
/// deadline passed): then nobody hears it.
fn tell(due: Vec<(Waiter, Result<(), StoreError>)>) {
    for (waiter, outcome) in due {
        let _ = waiter.tell.send(outcome);
    }
}

/// Where a request stands on its batch.
pub enum Wait {
    Done(Result<(), StoreError>),
    Pending(Told),
}

/// Shared by the journal handle (requests) and the writer thread.
#[derive(Debug)]
pub struct Outcomes {
    state: Mutex<State>,
    /// The engine shows no batch up to here that is not durable (it was rebuilt after them).
    pub rebuilt_through: AtomicU64,
    /// The last commit (or probe) failed and none succeeded since.
    pub failing: AtomicBool,
    /// The engine's rebuild failed: it must not be used until a rebuild succeeds.
    pub broken: AtomicBool,
    /// Rebuilds of the engine from the file since the store opened (each failed commit
    /// while healthy, and each retry of a rebuild that failed).
    pub rebuilds: AtomicU64,
    pub last_error: Mutex<Option<Cause>>,
}

impl Outcomes {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            rebuilt_through: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            rebuilds: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// `seq`'s outcome if it has one, else a receiver that hears it.
    pub fn wait(&self, seq: u64) -> Wait {
        let mut state = self.state.lock();
        if let Some(outcome) = state.resolved.outcome(seq) {
            return Wait::Done(outcome);
        }
        let (tell, told) = oneshot::channel();
        state.tickets += 1;
        let ticket = state.tickets;
        let since = Instant::now();
        state.waiting.insert((seq, ticket), Waiter { since, tell });
        Wait::Pending(told)
    }

    pub fn durable_through(&self, seq: u64) {
        self.failing.store(false, Ordering::SeqCst);
        let due = {
            let mut state = self.state.lock();
            state.resolved.through = state.resolved.through.max(seq);
            state.due()
        };
        tell(due);
    }

    /// Batches `lo..=hi` were rolled back because of `cause`.
    pub fn rolled_back(&self, lo: u64, hi: u64, cause: Cause) {
        self.failing.store(true, Ordering::SeqCst);
        *self.last_error.lock() = Some(cause.clone());
        let mut state = self.state.lock();
        let r = &mut state.resolved;
        match r.failed.back_mut() {
            Some(last) if last.1 + 1 >= lo => last.1 = last.1.max(hi),
            _ => {
                if r.failed.len() == KEPT_RANGES {
                    r.failed.pop_front();
                }
                r.failed.push_back((lo, hi));
            }
        }
        r.through = r.through.max(hi);
        r.cause = Some(cause);
        let due = state.due();
        drop(state);
        tell(due);
    }

    /// Drops the waiters that have waited `timeout` or longer (they answer 503); returns
    /// how many still wait.
    pub fn expire(&self, timeout: Duration) -> usize {
        let mut state = self.state.lock();
        if let Some(cutoff) = Instant::now().checked_sub(timeout) {
            state.waiting.retain(|_, w| w.since > cutoff);
        }
        state.waiting.len()
    }

    pub fn error(&self, what: &str) -> StoreError {
        match self.last_error.lock().clone() {
            Some(cause) => StoreError::Unavailable(cause),
            None => StoreError::unavailable(what.to_owned()),
        }
    }

    #[cfg(test)]
    fn outcome(&self, seq: u64) -> Option<Result<(), StoreError>> {
        self.state.lock().resolved.outcome(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Cause {
        std::sync::Arc::from(crate::store::BoxError::from("full"))
    }

    #[test]
    fn rolled_back_runs_merge_and_outcomes_follow() {
        let o = Outcomes::new();
        o.durable_through(3);
        o.rolled_back(4, 6, full());
        o.rolled_back(7, 9, full());
        o.durable_through(12);
        assert_eq!(
            o.state.lock().resolved.failed.len(),
            1,
            "consecutive failures are one run"
        );
        assert!(o.outcome(3).is_some_and(|o| o.is_ok()));
        assert!((4..=9).all(|s| o.outcome(s).is_some_and(|o| o.is_err())));
        assert!(o.outcome(10).is_some_and(|o| o.is_ok()));
        assert!(o.outcome(13).is_none(), "not resolved yet");
        assert!(
            !o.failing.load(Ordering::SeqCst),
            "a later success clears failing"
        );
    }

    fn pending(o: &Outcomes, seq: u64) -> Told {
        match o.wait(seq) {
            Wait::Pending(told) => told,
            Wait::Done(_) => panic!("batch {seq} is not resolved yet"),
        }
    }

    #[test]
    fn a_commit_wakes_only_the_batches_it_covers() {
        let o = Outcomes::new();
        let mut two = pending(&o, 2);
        let mut three = pending(&o, 3);
        let mut five = pending(&o, 5);
        o.durable_through(3);
        assert!(matches!(two.try_recv(), Ok(Ok(()))));
        assert!(matches!(three.try_recv(), Ok(Ok(()))));
        assert!(
            matches!(five.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
            "batch 5 is still queued: its waiter sleeps on"
        );
        o.rolled_back(4, 5, full());
        assert!(
            matches!(five.try_recv(), Ok(Err(_))),
            "told it was rolled back"
        );
        assert!(
            matches!(o.wait(1), Wait::Done(Ok(()))),
            "resolved: no waiting"
        );
        assert_eq!(o.expire(Duration::ZERO), 0, "nobody left waiting");
    }

    #[test]
    fn waiters_past_the_timeout_are_dropped() {
        let o = Outcomes::new();
        let mut old = pending(&o, 1);
        assert_eq!(o.expire(Duration::from_secs(60)), 1, "not yet");
        assert_eq!(o.expire(Duration::ZERO), 0);
        assert!(matches!(
            old.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
