//! One `request failed` line a second while a store is down, not one a call.
//!
//! While a store cannot be reached or written, every call that needs it answers 503
//! `StoreUnavailable`, and each logged its whole cause at ERROR: thousands of identical
//! lines a second on a busy node, the store's own line (it logs once when it goes away and
//! once when it comes back) lost among them, and every `/ready` probe one more (an outside
//! audit). Such failures now write one line a second with how many were left out since the
//! last one and how long ago that was (the last second of one outage is counted in the first
//! line of the next, which says so); every other 5xx is still logged each time.

use std::sync::atomic::{AtomicU64, Ordering};

/// Whether a line may be written in the current second, and how many were held back.
#[derive(Debug, Default)]
pub struct Flood {
    /// The second of the last line written (seconds since the epoch), 0 before any.
    second: AtomicU64,
    left_out: AtomicU64,
}

impl Flood {
    pub const fn new() -> Self {
        Self {
            second: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// `Some((left_out, last))` when a line may be written at `now` (seconds): the first
    /// failure of a second writes it, with the failures left out since the last line and
    /// that line's second (0: none before); `None` for the others, which are counted.
    pub fn admit(&self, now: u64) -> Option<(u64, u64)> {
        let last = self.second.load(Ordering::Relaxed);
        let first_of_its_second = now != last
            && self
                .second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        match first_of_its_second {
            true => Some((self.left_out.swap(0, Ordering::Relaxed), last)),
            false => {
                self.left_out.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_saying_how_many_were_left_out() {
        let flood = Flood::new();
        assert_eq!(flood.admit(100), Some((0, 0)));
        assert_eq!(flood.admit(100), None);
        assert_eq!(flood.admit(100), None);
        assert_eq!(flood.admit(101), Some((2, 100)));
        assert_eq!(flood.admit(101), None);
        assert_eq!(
            flood.admit(105),
            Some((1, 101)),
            "one left out, four seconds before"
        );
        assert_eq!(flood.admit(106), Some((0, 105)));
    }
}
