//! The free numbers of one group, shaped for its allocation so that taking one costs
//! O(log n) or O(1) whatever the pool size.

use std::collections::BTreeSet;

use crate::domain::{Allocation, UnixMillis};
use crate::rules::{self, FreeNumbers, Pos};

/// Slot positions (indexes into the group's number list) that are free now.
#[derive(Debug)]
pub enum FreeSet {
    /// Round-robin: ordered positions and a cursor just past the last one handed out.
    Ordered { set: BTreeSet<u32>, cursor: u32 },
    /// Random: a dense vector for uniform picks, and each position's index in it.
    Dense { items: Vec<u32>, index: Vec<u32> },
    /// Least-recently-used: ordered by when each number was freed, then by position.
    ByAge {
        set: BTreeSet<(UnixMillis, u32)>,
        freed_at: Vec<UnixMillis>,
    },
}

const ABSENT: u32 = u32::MAX;

impl FreeSet {
    pub fn new(allocation: Allocation) -> Self {
        match allocation {
            Allocation::RoundRobin => Self::Ordered {
                set: BTreeSet::new(),
                cursor: 0,
            },
            Allocation::Random => Self::Dense {
                items: Vec::new(),
                index: Vec::new(),
            },
            Allocation::LeastRecentlyUsed => Self::ByAge {
                set: BTreeSet::new(),
                freed_at: Vec::new(),
            },
        }
    }

    /// The set of `allocation` holding `free`: positions in ascending order, each with when it
    /// became free, all below `slots`. Built in one pass (the trees in bulk from sorted
    /// items), not number by number: an allocation switch of a million-number group rebuilds
    /// its set under the engine's lock, 140–160 ms one by one.
    pub fn build(
        allocation: Allocation,
        free: impl Iterator<Item = (u32, UnixMillis)>,
        slots: usize,
    ) -> Self {
        match allocation {
            Allocation::RoundRobin => Self::Ordered {
                set: free.map(|(pos, _)| pos).collect(),
                cursor: 0,
            },
            Allocation::Random => {
                let items: Vec<u32> = free.map(|(pos, _)| pos).collect();
                let mut index = vec![ABSENT; slots];
                for (i, &pos) in items.iter().enumerate() {
                    index[pos as usize] = i as u32;
                }
                Self::Dense { items, index }
            }
            Allocation::LeastRecentlyUsed => {
                let mut ages = vec![UnixMillis(i64::MIN); slots];
                let mut order: Vec<(UnixMillis, u32)> = free
                    .map(|(pos, at)| {
                        ages[pos as usize] = at;
                        (at, pos)
                    })
                    .collect();
                order.sort_unstable();
                Self::ByAge {
                    set: order.into_iter().collect(),
                    freed_at: ages,
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Ordered { set, .. } => set.len(),
            Self::Dense { items, .. } => items.len(),
            Self::ByAge { set, .. } => set.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Round-robin cursor, kept across restarts by the SQLite journal.
    pub fn cursor(&self) -> Option<u32> {
        match self {
            Self::Ordered { cursor, .. } => Some(*cursor),
            _ => None,
        }
    }

    pub fn set_cursor(&mut self, value: u32) {
        if let Self::Ordered { cursor, .. } = self {
            *cursor = value;
        }
    }

    /// Marks `pos` free since `freed_at`. Inserting a position already present is a no-op.
    pub fn insert(&mut self, pos: u32, freed_at: UnixMillis) {
        match self {
            Self::Ordered { set, .. } => {
                set.insert(pos);
            }
            Self::Dense { items, index } => {
                let i = pos as usize;
                if index.len() <= i {
                    index.resize(i + 1, ABSENT);
                }
                if index[i] == ABSENT {
                    index[i] = items.len() as u32;
                    items.push(pos);
                }
            }
            Self::ByAge {
                set,
                freed_at: ages,
            } => {
                let i = pos as usize;
                if ages.len() <= i {
                    ages.resize(i + 1, UnixMillis(i64::MIN));
                }
                if ages[i] != UnixMillis(i64::MIN) {
                    set.remove(&(ages[i], pos));
                }
                ages[i] = freed_at;
                set.insert((freed_at, pos));
            }
        }
    }

    /// Takes `pos` out (it was reserved or removed by other means than `take`).
    pub fn remove(&mut self, pos: u32) {
        match self {
            Self::Ordered { set, .. } => {
                set.remove(&pos);
            }
            Self::Dense { items, index } => {
                let i = pos as usize;
                let Some(&at) = index.get(i) else { return };
                if at == ABSENT {
                    return;
                }
                items.swap_remove(at as usize);
                if let Some(&moved) = items.get(at as usize) {
                    index[moved as usize] = at;
                }
                index[i] = ABSENT;
            }
            Self::ByAge { set, freed_at } => {
                if let Some(age) = freed_at.get_mut(pos as usize)
                    && *age != UnixMillis(i64::MIN)
                {
                    set.remove(&(*age, pos));
                    *age = UnixMillis(i64::MIN);
                }
            }
        }
    }

    /// The strategy this shape serves.
    fn allocation(&self) -> Allocation {
        match self {
            Self::Ordered { .. } => Allocation::RoundRobin,
            Self::Dense { .. } => Allocation::Random,
            Self::ByAge { .. } => Allocation::LeastRecentlyUsed,
        }
    }

    /// Picks and removes the next free position by the group's strategy (`rules::pick`),
    /// moving the round-robin cursor past it.
    pub fn take(&mut self) -> Option<u32> {
        let cursor = self.cursor().unwrap_or(0);
        let pos = rules::pick(self.allocation(), cursor, self, &mut rand::rng())?;
        self.set_cursor(rules::cursor_after_pick(pos));
        self.remove(pos);
        Some(pos)
    }
}

/// Each shape answers the question of its own strategy in O(log n) or O(1); the others are
/// never asked (the set is built for its group's allocation) and answer `None`.
impl FreeNumbers for FreeSet {
    fn first_from(&self, from: Pos) -> Option<Pos> {
        match self {
            Self::Ordered { set, .. } => set.range(from..).next().copied(),
            _ => None,
        }
    }

    fn count(&self) -> usize {
        match self {
            Self::Dense { items, .. } => items.len(),
            _ => 0,
        }
    }

    fn nth(&self, i: usize) -> Option<Pos> {
        match self {
            Self::Dense { items, .. } => items.get(i).copied(),
            _ => None,
        }
    }

    fn oldest(&self) -> Option<Pos> {
        match self {
            Self::ByAge { set, .. } => set.first().map(|&(_, pos)| pos),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(allocation: Allocation, n: u32) -> FreeSet {
        let mut set = FreeSet::new(allocation);
        for pos in 0..n {
            set.insert(pos, UnixMillis(0));
        }
        set
    }

    #[test]
    fn a_set_built_at_once_is_the_set_built_number_by_number() {
        // Gaps (busy numbers) and freed times out of position order.
        let free: Vec<(u32, UnixMillis)> = (0..50u32)
            .filter(|p| p % 3 != 1)
            .map(|p| (p, UnixMillis(i64::from((p * 7) % 11))))
            .collect();
        for allocation in [
            Allocation::RoundRobin,
            Allocation::Random,
            Allocation::LeastRecentlyUsed,
        ] {
            let mut one_by_one = FreeSet::new(allocation);
            for &(pos, at) in &free {
                one_by_one.insert(pos, at);
            }
            let mut built = FreeSet::build(allocation, free.iter().copied(), 60);
            // The same changes on both, then everything taken.
            for set in [&mut one_by_one, &mut built] {
                set.remove(9);
                set.insert(1, UnixMillis(3));
                set.insert(0, UnixMillis(20));
            }
            let taken = |set: &mut FreeSet| {
                let mut all: Vec<u32> = std::iter::from_fn(|| set.take()).collect();
                if allocation == Allocation::Random {
                    all.sort_unstable();
                }
                all
            };
            assert_eq!(taken(&mut built), taken(&mut one_by_one), "{allocation:?}");
        }
    }

    #[test]
    fn round_robin_walks_on_from_the_cursor_and_wraps() {
        let mut set = filled(Allocation::RoundRobin, 4);
        assert_eq!(set.take(), Some(0));
        assert_eq!(set.take(), Some(1));
        set.insert(0, UnixMillis(5));
        assert_eq!(set.take(), Some(2), "walks on before coming back");
        assert_eq!(set.take(), Some(3));
        assert_eq!(set.take(), Some(0), "wraps");
        assert_eq!(set.take(), None);
    }

    #[test]
    fn random_takes_every_free_position_once() {
        let mut set = filled(Allocation::Random, 100);
        set.remove(7);
        set.remove(7);
        let mut seen: Vec<u32> = std::iter::from_fn(|| set.take()).collect();
        seen.sort_unstable();
        let want: Vec<u32> = (0..100).filter(|&p| p != 7).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn lru_takes_the_number_free_the_longest() {
        let mut set = filled(Allocation::LeastRecentlyUsed, 3);
        assert_eq!(set.take(), Some(0));
        assert_eq!(set.take(), Some(1));
        set.insert(0, UnixMillis(10));
        set.insert(1, UnixMillis(5));
        assert_eq!(set.take(), Some(2), "free since the start");
        assert_eq!(set.take(), Some(1), "freed at 5");
        assert_eq!(set.take(), Some(0), "freed at 10");
        assert!(set.is_empty());
    }
}
