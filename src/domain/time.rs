//! Points in time as milliseconds since the Unix epoch: what every backend stores.

use std::time::Duration;

/// Milliseconds since the Unix epoch. Plain integer so SQL backends store it as-is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// Time left until `self`, as seen at `now`; zero once `now` has reached it.
    pub fn remaining_from(self, now: UnixMillis) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(now.0)).unwrap_or(0))
    }

    /// A deadline is reached when `now >= self` (the contract's expiry rule).
    pub fn is_reached(self, now: UnixMillis) -> bool {
        now >= self
    }
}
