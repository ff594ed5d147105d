//! Which free number each allocation strategy takes: the one place "how is a number picked"
//! is answered, for every store.
//!
//! A group's numbers have stable positions (the order they were added); round-robin walks
//! them. Stores keep their free numbers in whatever shape is fast for them and show them to
//! [`pick`] through [`FreeNumbers`]: the embedded engine from in-memory sets, PostgreSQL from
//! candidate rows it locked with `FOR UPDATE SKIP LOCKED`. A store only answers the question
//! its group's strategy asks; the strategy's rule is written here.

use rand::Rng;

use crate::domain::Allocation;

/// A number's position in its group.
pub type Pos = u32;

/// The free numbers of one group, as a store shows them.
pub trait FreeNumbers {
    /// The first free position at or after `from`, in position order (round-robin).
    fn first_from(&self, from: Pos) -> Option<Pos>;
    /// How many free numbers `nth` can reach (random).
    fn count(&self) -> usize;
    /// The `i`-th of them, `i < count()`, in any fixed order (random).
    ///
    /// A store may show a sample of its free numbers instead of all of them, if every free
    /// number is equally likely to be in the sample (PostgreSQL probes random positions): a
    /// uniform pick from such a sample is a uniform pick from all free numbers.
    fn nth(&self, i: usize) -> Option<Pos>;
    /// The number free the longest, ties broken by position (least-recently-used).
    fn oldest(&self) -> Option<Pos>;
}

/// The position a strategy takes, or `None` when nothing is free.
///
/// - round-robin: the first free number at or after the cursor, wrapping to the start;
/// - random: uniformly among the free numbers;
/// - least-recently-used: the number free the longest (ties: lowest position).
pub fn pick(
    allocation: Allocation,
    cursor: Pos,
    free: &impl FreeNumbers,
    rng: &mut impl Rng,
) -> Option<Pos> {
    match allocation {
        Allocation::RoundRobin => free.first_from(cursor).or_else(|| free.first_from(0)),
        Allocation::Random => match free.count() {
            0 => None,
            n => free.nth(rng.random_range(0..n)),
        },
        Allocation::LeastRecentlyUsed => free.oldest(),
    }
}

/// The round-robin cursor after taking `taken`: just past it, so the walk goes on from there.
pub fn cursor_after_pick(taken: Pos) -> Pos {
    taken.saturating_add(1)
}

/// The cursor after an admin change of a group's settings: kept when the strategy stays,
/// back to the first number when it changes (a group switched to round-robin starts its walk
/// at the beginning, on every store).
pub fn cursor_after_change(old: Allocation, new: Allocation, cursor: Pos) -> Pos {
    if old == new { cursor } else { 0 }
}

/// Where a number added to a group goes: after every number the group has, and never before
/// the round-robin cursor, so it is last in the walk and comes next if the walk already
/// passed the end (a removed number's place is never given to a new one).
pub fn next_position(last: Option<Pos>, cursor: Pos) -> Pos {
    last.map_or(0, |p| p.saturating_add(1)).max(cursor)
}

/// Free numbers held in a plain list, for stores that read candidates into memory (and for
/// tests). Positions are unique; `freed_at` orders least-recently-used.
#[derive(Debug, Default, Clone)]
pub struct Candidates {
    /// (position, freed_at), in the order the store found them.
    items: Vec<(Pos, i64)>,
}

impl Candidates {
    pub fn new(items: Vec<(Pos, i64)>) -> Self {
        Self { items }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes a picked position out, so the next pick of a batch sees the rest.
    pub fn remove(&mut self, pos: Pos) {
        self.items.retain(|&(p, _)| p != pos);
    }
}

impl FreeNumbers for Candidates {
    fn first_from(&self, from: Pos) -> Option<Pos> {
        self.items
            .iter()
            .map(|&(p, _)| p)
            .filter(|&p| p >= from)
            .min()
    }

    fn count(&self) -> usize {
        self.items.len()
    }

    fn nth(&self, i: usize) -> Option<Pos> {
        self.items.get(i).map(|&(p, _)| p)
    }

    fn oldest(&self) -> Option<Pos> {
        self.items
            .iter()
            .min_by_key(|&&(p, at)| (at, p))
            .map(|&(p, _)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(positions: &[Pos]) -> Candidates {
        Candidates::new(positions.iter().map(|&p| (p, 0)).collect())
    }

    #[test]
    fn round_robin_goes_on_from_the_cursor_and_wraps() {
        let mut rng = rand::rng();
        let set = free(&[1, 4, 6]);
        assert_eq!(pick(Allocation::RoundRobin, 0, &set, &mut rng), Some(1));
        assert_eq!(pick(Allocation::RoundRobin, 2, &set, &mut rng), Some(4));
        assert_eq!(pick(Allocation::RoundRobin, 4, &set, &mut rng), Some(4));
        assert_eq!(
            pick(Allocation::RoundRobin, 7, &set, &mut rng),
            Some(1),
            "wraps"
        );
        assert_eq!(pick(Allocation::RoundRobin, 7, &free(&[]), &mut rng), None);
    }

    #[test]
    fn least_recently_used_takes_the_oldest_then_the_lowest_position() {
        let set = Candidates::new(vec![(3, 10), (1, 20), (2, 10)]);
        assert_eq!(
            pick(Allocation::LeastRecentlyUsed, 0, &set, &mut rand::rng()),
            Some(2)
        );
    }

    #[test]
    fn random_is_uniform_among_the_free() {
        let set = free(&[0, 1, 2, 7, 8]);
        let mut counts = [0u32; 9];
        let mut rng = rand::rng();
        for _ in 0..5_000 {
            let p = pick(Allocation::Random, 0, &set, &mut rng).expect("free");
            counts[p as usize] += 1;
        }
        // Chi-square with 4 degrees of freedom; 18.47 is the p = 0.001 critical value.
        let chi: f64 = [0, 1, 2, 7, 8]
            .iter()
            .map(|&p| (f64::from(counts[p]) - 1000.0).powi(2) / 1000.0)
            .sum();
        assert!(chi < 18.47, "chi-square {chi}: {counts:?}");
    }

    #[test]
    fn a_new_number_goes_last_and_not_behind_the_cursor() {
        assert_eq!(next_position(None, 0), 0);
        assert_eq!(next_position(Some(4), 2), 5);
        assert_eq!(
            next_position(Some(1), 3),
            3,
            "the last one was removed after a pick"
        );
    }

    #[test]
    fn the_cursor_moves_past_a_pick_and_resets_when_the_strategy_changes() {
        assert_eq!(cursor_after_pick(4), 5);
        let (rr, rnd) = (Allocation::RoundRobin, Allocation::Random);
        assert_eq!(cursor_after_change(rr, rr, 5), 5);
        assert_eq!(cursor_after_change(rr, rnd, 5), 0);
        assert_eq!(cursor_after_change(rnd, rr, 5), 0);
    }
}
