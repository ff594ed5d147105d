//! How many webhook deliveries are in flight at once: as many as the receiver takes.
//!
//! Up to [`MOST`] attempts run at once, which a small receiver cannot take (an outside audit:
//! against a receiver with a listen queue of 5, 25 of 32 connection attempts waited for the
//! kernel's 1 s SYN retry, and the outbox drained at ~64 events a second while the node made
//! ~350). So the number in flight follows the receiver, as TCP's congestion window does: a
//! busy answer (no connection, a reset, 429 or 503) halves it, once for all the attempts
//! started before that halving; from there it grows by one a second at most (a busy signal
//! may take the 0.9 s connect timeout to come: grown by one a round meanwhile, it overshot
//! again before the signal came), and after 10 s without one, by one every `limit`
//! deliveries, back up to [`MOST`]. Any other answer (a 400, a 500) says nothing of the
//! receiver's load, and no answer within the attempt's 10 s is a receiver that hangs, which
//! fewer at once would only drain slower: neither changes it. The outbox's retry schedule is
//! untouched: this only decides how many start at once.

use std::time::{Duration, Instant};

/// Attempts in flight at most (and at first).
pub const MOST: usize = 32;

/// Past the last halving's level, the limit grows by one at most this often: a busy signal
/// can take the connect timeout (0.9 s) to arrive, and a limit grown by one a round meanwhile
/// (+15 a second at 240 deliveries a second) overshot the receiver again before it came.
const STEP: Duration = Duration::from_secs(1);

/// This long without a busy answer, the limit grows a round at a time again (up to
/// [`MOST`]): the receiver that was busy is not any more, or was replaced.
const CALM: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Pace {
    limit: usize,
    /// Deliveries since the limit last grew.
    delivered: usize,
    /// Counts the halvings: an attempt started before the last one cannot halve again.
    epoch: u64,
    /// The level the last halving set: below it the limit grows by one a round (as TCP's
    /// slow start), from it by one a [`STEP`] (as its congestion avoidance).
    ceiling: usize,
    /// The last halving.
    last_busy: Option<Instant>,
    /// The last halving, or the last growth from `ceiling` on.
    last_step: Option<Instant>,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            limit: MOST,
            delivered: 0,
            epoch: 0,
            ceiling: MOST,
            last_busy: None,
            last_step: None,
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

    /// An attempt was delivered at `now`.
    pub fn delivered(&mut self, now: Instant) {
        let since = |at: Option<Instant>| at.map(|at| now.saturating_duration_since(at));
        if since(self.last_busy).is_some_and(|calm| calm >= CALM) {
            self.ceiling = MOST;
        }
        self.delivered += 1;
        if self.delivered < self.limit || self.limit >= MOST {
            return;
        }
        if self.limit >= self.ceiling {
            if since(self.last_step).is_some_and(|step| step < STEP) {
                return;
            }
            self.last_step = Some(now);
        }
        self.delivered = 0;
        self.limit += 1;
    }

    /// An attempt started at `epoch` found the receiver busy at `now`: halves the limit
    /// unless an attempt started since `epoch` already did. Returns the new limit when it
    /// changed.
    pub fn busy(&mut self, epoch: u64, now: Instant) -> Option<usize> {
        if epoch != self.epoch {
            return None;
        }
        self.epoch += 1;
        self.delivered = 0;
        self.last_busy = Some(now);
        self.last_step = Some(now);
        let halved = (self.limit / 2).max(1);
        self.ceiling = halved;
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
        let now = Instant::now();
        let mut pace = Pace::default();
        let round = pace.epoch();
        assert_eq!(pace.busy(round, now), Some(MOST / 2));
        // The other attempts of the same round say nothing new.
        for _ in 0..10 {
            assert_eq!(pace.busy(round, now), None);
        }
        assert_eq!(pace.limit(), MOST / 2);
        // One started after the halving halves again, down to one and no lower.
        for want in [8, 4, 2, 1] {
            let e = pace.epoch();
            assert_eq!(pace.busy(e, now), Some(want));
        }
        let e = pace.epoch();
        assert_eq!(pace.busy(e, now), None);
        assert_eq!(pace.limit(), 1);
    }

    #[test]
    fn after_a_halving_it_grows_by_one_a_second_then_by_rounds_once_calm() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut pace = Pace::default();
        for _ in 0..2 {
            let e = pace.epoch();
            pace.busy(e, t0);
        }
        assert_eq!(pace.limit(), 8);
        // Many deliveries within the second after the halving: no growth.
        (0..100).for_each(|_| pace.delivered(at(500)));
        assert_eq!(pace.limit(), 8);
        // A round's deliveries after it: one more, then none until the next second.
        (0..8).for_each(|_| pace.delivered(at(1_000)));
        assert_eq!(pace.limit(), 9);
        (0..100).for_each(|_| pace.delivered(at(1_900)));
        assert_eq!(pace.limit(), 9);
        (0..9).for_each(|_| pace.delivered(at(2_000)));
        assert_eq!(pace.limit(), 10);
        // One a second on (its own steps do not count as busy answers)...
        for second in 3..=9 {
            (0..100).for_each(|_| pace.delivered(at(second * 1_000)));
        }
        assert_eq!(pace.limit(), 17);
        // ...until 10 s after the last busy answer: a round at a time again, up to the most.
        (0..10_000).for_each(|_| pace.delivered(at(10_500)));
        assert_eq!(pace.limit(), MOST);
    }

    #[test]
    fn never_halved_it_stays_at_the_most() {
        let mut pace = Pace::default();
        (0..1_000).for_each(|_| pace.delivered(Instant::now()));
        assert_eq!(pace.limit(), MOST);
    }
}
