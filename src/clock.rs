//! The clock memory and SQLite backends read. Tests use a manual one they advance by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::domain::UnixMillis;

pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> UnixMillis;

    /// A test clock's frozen time. `None` in production, where the PostgreSQL backend reads
    /// only the database's clock; a test clock returns `Some`, so the same SQL runs against a
    /// time that moves only when the test says (exact expiry boundaries, no sleeping).
    fn frozen(&self) -> Option<UnixMillis> {
        None
    }
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        UnixMillis(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

/// A clock tests move by hand: a fixed start plus an offset that only `advance` changes.
/// PostgreSQL uses it in place of the database's clock (see [`Clock::frozen`]), so one
/// conformance suite can step every backend across an expiry boundary without sleeping.
#[derive(Debug)]
pub struct ManualClock {
    start: UnixMillis,
    offset_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(start: UnixMillis) -> Self {
        Self {
            start,
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Starts at the current wall-clock time, so rows written through it look recent.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.start.0 + self.offset_ms.load(Ordering::SeqCst))
    }

    fn frozen(&self) -> Option<UnixMillis> {
        Some(self.now())
    }
}
