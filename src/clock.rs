//! The clock memory and SQLite backends read. Tests use one that follows tokio's paused time.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::UnixMillis;

pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> UnixMillis;
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

/// A fixed start plus tokio's elapsed time: with `start_paused = true`, `tokio::time::advance`
/// moves it exactly, so tests land on expiry boundaries without sleeping.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start: UnixMillis,
    base: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(start: UnixMillis) -> Self {
        Self { start, base: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> UnixMillis {
        self.start.plus(self.base.elapsed())
    }
}
