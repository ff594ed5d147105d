//! Where this node's round-robin walks stand, beside the cursors stored in `groups`.
//!
//! A batch moves a group's stored cursor only when no other open transaction guards it (an
//! advisory lock tried, never waited for: `reserve::CURSOR_SQL`). While an admin change holds
//! the group (adding 100,000 numbers takes 1–2 s), or this node's other batch in flight holds
//! the lock, the move is skipped; read back, the stored cursor then sent the next batch to
//! where the walk stood before, so a session that gave its number back and asked again got
//! the same number each turn, where the contract has round-robin go on "from where the last
//! allocation stopped".
//!
//! So each node remembers, per group, where its own walk stands and which versions of the
//! group's row stand for it (a row's version is the transaction that wrote it, `xmin`: every
//! write makes a new one and no two share it): the version it last read from another writer,
//! and the ones its own recent batches' writes would give the row. While the row is one of
//! those versions nobody else has written it, and the next batch starts from the node's own
//! position (`claim::reads`). A row another node's batch or an admin change wrote is taken as
//! it is, its cursor with it: after an admin change that wrote the row (an add marks the group
//! changed by the API) the walk goes on from the stored cursor, which is where it stood when
//! the change began. This keeps the order only: which numbers are free, and who holds what,
//! is the database's alone.

use hashbrown::HashMap;
use parking_lot::Mutex;

use super::claim;

/// How many of its own recent cursor writes a node recognises: more than the batches of a
/// kind it runs at once (`batch::parallel`), whose writes may land late or not at all.
const RECENT: usize = 4;

#[derive(Default)]
pub struct Walks(Mutex<HashMap<String, Walk>>);

/// One group's walk on this node.
struct Walk {
    /// Where the walk stands: the cursor after the node's last batch in the group.
    at: i64,
    /// The version of the group's row the node last took from another writer (or found at
    /// its first batch).
    base: i64,
    /// The versions its latest batches' writes give the row, oldest first.
    tried: Vec<i64>,
}

impl Walk {
    fn stands_for(&self, version: i64) -> bool {
        self.base == version || self.tried.contains(&version)
    }
}

impl Walks {
    /// For [`claim::reads`]: each version of a group's row that stands for this node's walk
    /// in one of `groups`, with where that walk stands.
    pub fn hints(&self, groups: &[&str]) -> claim::Hints {
        let walks = self.0.lock();
        let mut hints = claim::Hints::default();
        for (name, walk) in groups.iter().filter_map(|g| Some((*g, walks.get(*g)?))) {
            for seen in std::iter::once(&walk.base).chain(&walk.tried) {
                hints.groups.push(name.to_owned());
                hints.seen.push(*seen);
                hints.own.push(walk.at);
            }
        }
        hints
    }

    /// A batch read the group's row at version `read` and walked to `at`, which it tries to
    /// store; if it does, the row's version is `written`.
    pub fn walked(&self, group: &str, (read, written): (i64, i64), at: i64) {
        let mut walks = self.0.lock();
        let walk = walks.entry_ref(group).or_insert_with(|| Walk {
            at,
            base: read,
            tried: Vec::new(),
        });
        if !walk.stands_for(read) {
            // Another writer wrote the row: its cursor was the batch's start, and its version
            // is the base from now on.
            walk.base = read;
            walk.tried.clear();
        }
        walk.at = at;
        if walk.tried.len() == RECENT {
            walk.tried.remove(0);
        }
        walk.tried.push(written);
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
        // The row at version 100; this batch's write would make it 501.
        walks.walked("G", (100, 501), 1);
        assert_eq!(hints(&walks, "G"), [(100, 1), (501, 1)]);
        // Its write was skipped (an admin change held the lock): the row is still at 100.
        for (writer, at) in [(502, 2), (503, 3), (504, 4), (505, 5), (506, 6)] {
            walks.walked("G", (100, writer), at);
        }
        // However many writes were skipped, version 100 still stands for this walk.
        assert!(hints(&walks, "G").contains(&(100, 6)));
        assert!(hints(&walks, "G").iter().all(|(_, own)| *own == 6));
        assert_eq!(hints(&walks, "G").len(), 1 + RECENT);
    }

    #[test]
    fn a_row_another_writer_wrote_is_taken_as_it_is() {
        let walks = Walks::default();
        walks.walked("G", (100, 501), 1);
        // Another node (or an admin change) wrote the row: version 300.
        walks.walked("G", (300, 502), 8);
        assert_eq!(hints(&walks, "G"), [(300, 8), (502, 8)]);
        assert!(hints(&walks, "H").is_empty());
    }

    #[test]
    fn its_own_write_landing_late_still_stands_for_the_walk() {
        let walks = Walks::default();
        walks.walked("G", (100, 501), 1);
        walks.walked("G", (100, 502), 2);
        // The first batch's write (version 501) landed after the second read.
        walks.walked("G", (501, 503), 3);
        assert!(hints(&walks, "G").contains(&(100, 3)));
        assert!(hints(&walks, "G").contains(&(501, 3)));
        assert!(hints(&walks, "G").contains(&(503, 3)));
    }
}
