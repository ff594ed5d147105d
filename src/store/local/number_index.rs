//! Where each access number lives: (group, position), found by the number's text.
//!
//! A plain `HashMap<AccessNumber, (u32, u32)>` would keep a second copy of every number next
//! to the one in its group's slot, and with a million numbers that copy is most of the map.
//! This table stores only the 8-byte location and reads the number back from the slot (through
//! the `key` function the engine passes) whenever it hashes or compares.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// A number's place: its group's index and its position in that group.
pub type Location = (u32, u32);

#[derive(Default)]
pub struct NumberIndex {
    table: HashTable<Location>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl std::fmt::Debug for NumberIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NumberIndex({} numbers)", self.table.len())
    }
}

impl NumberIndex {
    pub fn get<'a>(&self, number: &str, key: impl Fn(Location) -> &'a str) -> Option<Location> {
        let hash = self.hasher.hash_one(number);
        self.table.find(hash, |&at| key(at) == number).copied()
    }

    /// Points `number` at `at`, replacing where it pointed before. The slot at `at` must
    /// already hold `number`.
    pub fn insert<'a>(&mut self, number: &str, at: Location, key: impl Fn(Location) -> &'a str) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(number);
        match self.table.entry(
            hash,
            |&old| key(old) == number,
            |&old| hasher.hash_one(key(old)),
        ) {
            Entry::Occupied(mut e) => *e.get_mut() = at,
            Entry::Vacant(e) => {
                e.insert(at);
            }
        }
    }

    /// Makes room for `additional` more numbers at once (one allocation instead of a chain of
    /// doublings when a large group loads).
    pub fn reserve<'a>(&mut self, additional: usize, key: impl Fn(Location) -> &'a str) {
        let hasher = &self.hasher;
        self.table
            .reserve(additional, |&at| hasher.hash_one(key(at)));
    }

    /// Forgets `number`; its slot must still hold it (remove before dropping the slot).
    pub fn remove<'a>(&mut self, number: &str, key: impl Fn(Location) -> &'a str) {
        let hash = self.hasher.hash_one(number);
        if let Ok(e) = self.table.find_entry(hash, |&at| key(at) == number) {
            e.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_replaces_and_forgets_through_the_slots() {
        let slots: Vec<String> = (0..10_000).map(|i| format!("+1555{i:07}")).collect();
        let key = |(_, p): Location| slots[p as usize].as_str();
        let mut index = NumberIndex::default();
        for (p, n) in slots.iter().enumerate() {
            index.insert(n, (0, p as u32), key);
        }
        assert_eq!(index.get("+15550000042", key), Some((0, 42)));
        assert_eq!(index.get("+15559999999", key), None);
        index.insert("+15550000042", (0, 42), key);
        index.remove("+15550000042", key);
        assert_eq!(index.get("+15550000042", key), None);
        assert_eq!(index.get("+15550000043", key), Some((0, 43)));
    }
}
