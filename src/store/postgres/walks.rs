//! Where this node's round-robin walks stand, beside the cursors stored in `groups`.
//!
//! A batch moves a group's stored cursor only when no other open transaction guards it (an
//! advisory lock tried, never waited for: `reserve::CURSOR_SQL`). While an admin change holds
//! the group (adding 100,000 numbers takes 1–4 s, a settings `PUT` tens of milliseconds), or
//! this node's other batch in flight holds the lock, the move is skipped; and the admin change
//! then writes back the cursor it read when it began. Read back, the stored cursor sent the
//! next batch to where the walk stood before: a session that gave its number back and asked
//! again got the same number on every turn of the change, and again after it, where the
//! contract has round-robin go on "from where the last allocation stopped".
//!
//! So each node remembers, per group, where its own walk stands and which stored cursors
//! stand for it: the one its last batch read, and the ones its own recent batches tried to
//! store. While the stored cursor is one of those, nobody else has moved the
//! walk (an admin change that kept the strategy wrote back what it read), and the next batch
//! starts from the node's own position (`claim::reads`). Any other value (another node's
//! batch) is taken as it is. A stored 0 never stands for a walk: a batch stores the position
//! after the number it took, never 0, so 0 is a group's start, where a new group and a switch
//! to round-robin put it (`rules::cursor_after_change`). This keeps the order only: which
//! numbers are free, and who holds what, is the database's alone.

use hashbrown::HashMap;
use parking_lot::Mutex;

use super::claim;

/// How many of its own recent cursor writes a node recognises: more than the batches of a
/// kind it runs at once (`batch::parallel`), whose writes may land late or not at all.
const RECENT: usize = 4;

/// The stored cursor of a group's start (new, or switched to round-robin).
const START: i64 = 0;

#[derive(Default)]
pub struct Walks(Mutex<HashMap<String, Walk>>);

/// One group's walk on this node.
struct Walk {
    /// Where the walk stands: the cursor after the node's last batch in the group.
    at: i64,
    /// The stored cursor the node's last batch read.
    base: i64,
    /// The cursors its latest batches tried to store, oldest first.
    tried: Vec<i64>,
}

impl Walk {
    fn stands_for(&self, stored: i64) -> bool {
        stored != START && (self.base == stored || self.tried.contains(&stored))
    }
}

impl Walks {
    /// For [`claim::reads`]: each stored cursor that stands for this node's walk in one of
    /// `groups`, with where that walk stands.
    pub fn hints(&self, groups: &[&str]) -> claim::Hints {
        let walks = self.0.lock();
        let mut hints = claim::Hints::default();
        for (name, walk) in groups.iter().filter_map(|g| Some((*g, walks.get(*g)?))) {
            let tried = walk.tried.iter().filter(|&&t| t != walk.base);
            let seen = std::iter::once(&walk.base).chain(tried);
            for &seen in seen.filter(|&&s| walk.stands_for(s)) {
                hints.groups.push(name.to_owned());
                hints.seen.push(seen);
                hints.own.push(walk.at);
            }
        }
        hints
    }

    /// A batch read `stored` as the group's cursor and walked to `at`, which it tries to store.
    pub fn walked(&self, group: &str, stored: i64, at: i64) {
        let mut walks = self.0.lock();
        let walk = walks.entry_ref(group).or_insert_with(|| Walk {
            at,
            base: stored,
            tried: Vec::new(),
        });
        if !walk.stands_for(stored) {
            // Another writer moved the walk (or set it to the start): the batch began there.
            walk.tried.clear();
        }
        // What is stored now stands for the walk until another writer moves it, however many
        // of the node's next writes are skipped.
        walk.base = stored;
        walk.at = at;
        if walk.tried.len() == RECENT {
            walk.tried.remove(0);
        }
        walk.tried.push(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(walks: &Walks, group: &str) -> Vec<(i64, i64)> {
        let h = walks.hints(&[group]);
        h.seen.into_iter().zip(h.own).collect()
    }

    #[test]
    fn a_walk_unknown_here_gives_no_hint() {
        assert!(hints(&Walks::default(), "G").is_empty());
    }

    #[test]
    fn the_walk_goes_on_while_its_writes_are_skipped() {
        let walks = Walks::default();
        walks.walked("G", 3, 4);
        assert_eq!(hints(&walks, "G"), [(3, 4), (4, 4)]);
        // Its writes were skipped (an admin change held the lock): 3 is still stored, and
        // still stands for the walk however many were skipped.
        for at in 5..=9 {
            walks.walked("G", 3, at);
        }
        assert!(hints(&walks, "G").contains(&(3, 9)));
        assert!(hints(&walks, "G").iter().all(|(_, own)| *own == 9));
        assert_eq!(hints(&walks, "G").len(), 1 + RECENT);
    }

    #[test]
    fn a_stored_cursor_stands_for_the_walk_after_more_writes_than_it_remembers() {
        let walks = Walks::default();
        // Its writes land: each batch reads what the one before stored.
        for at in 1..=5 {
            walks.walked("G", at - 1, at);
        }
        // Then an admin change holds the group: 5 stays stored, many more turns than RECENT.
        for at in 6..=20 {
            walks.walked("G", 5, at);
            assert!(hints(&walks, "G").contains(&(5, at)), "turn {at}");
        }
    }

    #[test]
    fn a_cursor_another_writer_stored_is_taken_as_it_is() {
        let walks = Walks::default();
        walks.walked("G", 3, 4);
        // Another node stored 7; this batch began there.
        walks.walked("G", 7, 8);
        assert_eq!(hints(&walks, "G"), [(7, 8), (8, 8)]);
        assert!(hints(&walks, "H").is_empty());
    }

    #[test]
    fn its_own_write_landing_late_still_stands_for_the_walk() {
        let walks = Walks::default();
        walks.walked("G", 3, 4);
        walks.walked("G", 3, 5);
        // The first batch's write (4) landed after the second read; the second's (5) may
        // still land.
        walks.walked("G", 4, 6);
        assert_eq!(hints(&walks, "G"), [(4, 6), (5, 6), (6, 6)]);
    }

    #[test]
    fn the_start_never_stands_for_a_walk() {
        let walks = Walks::default();
        // A new group: the walk began at the start and took the first number.
        walks.walked("G", START, 1);
        assert_eq!(hints(&walks, "G"), [(1, 1)]);
        // A switch to round-robin set the start again; the next batch begins there.
        walks.walked("G", START, 1);
        assert_eq!(hints(&walks, "G"), [(1, 1)]);
    }
}
