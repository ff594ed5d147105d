//! The clock memory and SQLite backends read. Tests use a manual one they advance by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::domain::UnixMillis;

pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> UnixMillis;

    /// How far tests have moved this clock ahead of real time. Zero in production; the
    /// PostgreSQL backend adds it to the database's `now()`, its only clock.
    fn offset_ms(&self) -> i64 {
        0
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
/// PostgreSQL, which reads the database's `now()`, adds the same offset (see [`Clock::offset_ms`]),
/// so one conformance suite can step every backend across an expiry boundary without sleeping.
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

    fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}
