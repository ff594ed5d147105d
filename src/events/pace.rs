//! How many webhook deliveries are in flight at once: as many as the receiver takes.
//!
//! Up to [`MOST`] attempts run at once, which a small receiver cannot take (an outside audit:
//! a receiver with a listen queue of 5 reset most of 32 parallel connections; each refused
//! event waited out its 4 s backoff, so the outbox drained at ~64 events a second while the
//! node made ~350). So the number in flight follows the receiver, as TCP's congestion window
//! does: a busy answer (no connection, a reset, 429 or 503) halves it, once for all the
//! attempts started before that halving; every `limit` deliveries add one, back up to
//! [`MOST`]. Any other answer (a 400, a 500) says nothing of the receiver's load, and no
//! answer within the attempt's 10 s is a receiver that hangs, which fewer at once would
//! only drain slower: neither changes it. The outbox's retry schedule is untouched: this
//! only decides how many start at once.

/// Attempts in flight at most (and at first).
pub const MOST: usize = 32;

#[derive(Debug)]
pub struct Pace {
    limit: usize,
    /// Deliveries since the limit last grew.
    delivered: usize,
    /// Counts the halvings: an attempt started before the last one cannot halve again.
    epoch: u64,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            limit: MOST,
            delivered: 0,
            epoch: 0,
        }
    }
}

impl Pace {
    /// How many attempts may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What an attempt started now carries, to say later when it began.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// An attempt was delivered.
    pub fn delivered(&mut self) {
        self.delivered += 1;
        if self.delivered >= self.limit {
            self.delivered = 0;
            self.limit = (self.limit + 1).min(MOST);
        }
    }

    /// An attempt started at `epoch` found the receiver busy: halves the limit unless an
    /// attempt started since `epoch` already did. Returns the new limit when it changed.
    pub fn busy(&mut self, epoch: u64) -> Option<usize> {
        if epoch != self.epoch {
            return None;
        }
        self.epoch += 1;
        self.delivered = 0;
        let halved = (self.limit / 2).max(1);
        (halved != self.limit).then(|| {
            self.limit = halved;
            halved
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_of_busy_answers_halves_once() {
        let mut pace = Pace::default();
        let round = pace.epoch();
        assert_eq!(pace.busy(round), Some(MOST / 2));
        // The other attempts of the same round say nothing new.
        for _ in 0..10 {
            assert_eq!(pace.busy(round), None);
        }
        assert_eq!(pace.limit(), MOST / 2);
        // One started after the halving halves again, down to one and no lower.
        for want in [8, 4, 2, 1] {
            let e = pace.epoch();
            assert_eq!(pace.busy(e), Some(want));
        }
        let e = pace.epoch();
        assert_eq!(pace.busy(e), None);
        assert_eq!(pace.limit(), 1);
    }

    #[test]
    fn deliveries_grow_it_by_one_a_window_up_to_the_most() {
        let mut pace = Pace::default();
        let e = pace.epoch();
        pace.busy(e);
        let e = pace.epoch();
        pace.busy(e);
        assert_eq!(pace.limit(), 8);
        // Eight in a row make it nine, nine more ten.
        (0..7).for_each(|_| pace.delivered());
        assert_eq!(pace.limit(), 8);
        pace.delivered();
        assert_eq!(pace.limit(), 9);
        (0..9).for_each(|_| pace.delivered());
        assert_eq!(pace.limit(), 10);
        (0..10_000).for_each(|_| pace.delivered());
        assert_eq!(pace.limit(), MOST);
    }
}
