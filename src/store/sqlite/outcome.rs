//! What the writer thread tells waiting requests: which batches are resolved, which of them
//! were rolled back, and whether the store takes writes at all.
//!
//! Batches resolve in order. Rolled-back batches come in runs (a failed commit fails every
//! batch queued with it, and while the disk stays full each next run joins the last), so a
//! short list of ranges says which ones failed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;

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

/// Shared by the journal handle (requests) and the writer thread.
#[derive(Debug)]
pub struct Outcomes {
    pub resolved: watch::Sender<Resolved>,
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
            resolved: watch::channel(Resolved::default()).0,
            rebuilt_through: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            rebuilds: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn durable_through(&self, seq: u64) {
        self.failing.store(false, Ordering::SeqCst);
        self.resolved
            .send_modify(|r| r.through = r.through.max(seq));
    }

    /// Batches `lo..=hi` were rolled back because of `cause`.
    pub fn rolled_back(&self, lo: u64, hi: u64, cause: Cause) {
        self.failing.store(true, Ordering::SeqCst);
        *self.last_error.lock() = Some(cause.clone());
        self.resolved.send_modify(|r| {
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
        });
    }

    pub fn error(&self, what: &str) -> StoreError {
        match self.last_error.lock().clone() {
            Some(cause) => StoreError::Unavailable(cause),
            None => StoreError::unavailable(what.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolled_back_runs_merge_and_outcomes_follow() {
        let o = Outcomes::new();
        o.durable_through(3);
        o.rolled_back(
            4,
            6,
            std::sync::Arc::from(crate::store::BoxError::from("full")),
        );
        o.rolled_back(
            7,
            9,
            std::sync::Arc::from(crate::store::BoxError::from("full")),
        );
        o.durable_through(12);
        let r = o.resolved.borrow();
        assert_eq!(r.failed.len(), 1, "consecutive failures are one run");
        assert!(r.outcome(3).is_some_and(|o| o.is_ok()));
        assert!((4..=9).all(|s| r.outcome(s).is_some_and(|o| o.is_err())));
        assert!(r.outcome(10).is_some_and(|o| o.is_ok()));
        assert!(r.outcome(13).is_none(), "not resolved yet");
        assert!(
            !o.failing.load(Ordering::SeqCst),
            "a later success clears failing"
        );
    }
}
