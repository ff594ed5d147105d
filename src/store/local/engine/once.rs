//! The engine's memory of `Idempotency-Key` answers (see `store::once`): kept in the same
//! locked section and journal batch as the creation they answer.
//!
//! Memory store: every answer stays here for its 24 h (there is no disk).
//!
//! Disk mode (SQLite, `fields_on_disk`): the answers live in the `idempotency` table, and the
//! engine keeps only the recent ones (at least [`RECENT`], at most twice that) so memory does not grow with the request rate × 24 h. `LocalStore::create_once`
//! then looks a key up in three steps: the engine (recent answers), the table (after waiting
//! until every answer the engine had shown is durable), and the engine again under the lock
//! before it creates. Each answer gets a serial number; the lookup notes the serial before
//! reading the table and starts over if an answer with that serial or a later one was dropped
//! from memory meanwhile ([`Engine::forgot_since`]): such an answer might be in neither place
//! the lookup looked. Dropping happens in bulk (once the oldest is 2 × [`RECENT`] old), so a
//! lookup starts over about never.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::domain::UnixMillis;
use crate::store::local::journal::{Change, ChangeLog, record};
use crate::store::{Fields, IDEMPOTENCY_TTL, IdempotencyKey};

use super::Engine;

/// How long disk mode keeps an answer in memory as well (far above a commit's usual wait;
/// correctness does not depend on it, only how often a lookup starts over).
const RECENT: Duration = Duration::from_secs(10);

/// Answers by client and key, each with the instant it is forgotten.
#[derive(Debug, Default)]
pub struct Remembered {
    answers: HashMap<IdempotencyKey, (Fields, UnixMillis)>,
    /// Disk mode: the answers in memory, oldest first, with the instant each was made.
    recent: VecDeque<(UnixMillis, IdempotencyKey)>,
    /// Answers made since the engine was created (the serial of the next one).
    made: u64,
    /// Disk mode: every answer with a smaller serial has left memory.
    dropped_below: u64,
}

impl Engine {
    /// The first answer to `key`, while it is kept in memory.
    pub fn remembered(&self, key: &IdempotencyKey, now: UnixMillis) -> Option<&Fields> {
        self.remembered
            .answers
            .get(key)
            .filter(|(_, until)| !until.is_reached(now))
            .map(|(fields, _)| fields)
    }

    /// Disk mode: the serial the next answer will get; pass it to [`Engine::forgot_since`].
    pub fn remembered_serial(&self) -> u64 {
        self.remembered.made
    }

    /// Disk mode: whether an answer made at or after `serial` has left memory (it may be on
    /// disk only, and a table read that started before it was durable could have missed it).
    pub fn forgot_since(&self, serial: u64) -> bool {
        self.remembered.dropped_below > serial
    }

    /// Keeps `fields` as the answer to `key` for 24 h (disk mode: in memory for [`RECENT`]).
    pub fn remember(
        &mut self,
        key: &IdempotencyKey,
        fields: Fields,
        now: UnixMillis,
        log: &mut ChangeLog,
    ) {
        let expires_at = now.plus(IDEMPOTENCY_TTL);
        record(log, || Change::Remembered {
            client: key.client.clone(),
            key: key.key.clone(),
            fields: fields.clone(),
            expires_at,
        });
        let r = &mut self.remembered;
        r.answers.insert(key.clone(), (fields, expires_at));
        r.made += 1;
        if self.fields_on_disk {
            r.recent.push_back((now, key.clone()));
            r.drop_old(now);
        }
    }

    /// Forgets the answers older than 24 h (disk mode: drops the old recent ones from
    /// memory); returns how many left memory.
    pub fn forget_expired(&mut self, now: UnixMillis) -> u64 {
        let r = &mut self.remembered;
        if self.fields_on_disk {
            return r.drop_old(now);
        }
        let before = r.answers.len();
        r.answers.retain(|_, (_, until)| !until.is_reached(now));
        (before - r.answers.len()) as u64
    }

    /// Carries the serials into a rebuilt engine: it holds none of this engine's answers in
    /// memory, so every serial so far counts as dropped.
    pub(super) fn copy_remembered_serials(&mut self, from: &Engine) {
        self.remembered.made = from.remembered.made.max(self.remembered.made);
        self.remembered.dropped_below = self.remembered.made;
    }
}

impl Remembered {
    /// Disk mode: once the oldest answer in memory is 2 × [`RECENT`] old, drops every answer
    /// older than [`RECENT`] (in bulk, so a lookup in flight rarely has to start over).
    fn drop_old(&mut self, now: UnixMillis) -> u64 {
        let old =
            |at: &UnixMillis, age: Duration| now.0.saturating_sub(at.0) >= age.as_millis() as i64;
        if !self
            .recent
            .front()
            .is_some_and(|(at, _)| old(at, 2 * RECENT))
        {
            return 0;
        }
        let mut dropped = 0;
        while let Some((at, _)) = self.recent.front() {
            if !old(at, RECENT) {
                break;
            }
            if let Some((at, key)) = self.recent.pop_front() {
                // Unless the key was answered again since (after its 24 h).
                let expires_at = at.plus(IDEMPOTENCY_TTL);
                if self
                    .answers
                    .get(&key)
                    .is_some_and(|(_, until)| *until == expires_at)
                {
                    self.answers.remove(&key);
                }
                dropped += 1;
            }
        }
        // Serials are given in the order of `recent`: the first left in memory has this one.
        self.dropped_below = self.made - self.recent.len() as u64;
        self.answers.shrink_to(self.recent.len() * 2);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey {
            client: "c".into(),
            key: k.into(),
        }
    }

    #[test]
    fn disk_mode_drops_old_answers_in_bulk_and_says_which_serials_left() {
        let mut e = Engine::new();
        e.keep_fields_on_disk();
        let t0 = UnixMillis(1_000_000);
        let first = e.remembered_serial();
        e.remember(&key("a"), Fields::new(), t0, &mut None);
        let second = e.remembered_serial();
        e.remember(&key("b"), Fields::new(), t0.plus(RECENT), &mut None);
        // "a" is RECENT old: kept until the oldest is 2 × RECENT old.
        assert!(e.remembered(&key("a"), t0.plus(RECENT)).is_some());
        assert!(!e.forgot_since(first));
        let later = t0.plus(2 * RECENT);
        e.remember(&key("c"), Fields::new(), later, &mut None);
        assert!(e.remembered(&key("a"), later).is_none(), "a left memory");
        assert!(
            e.remembered(&key("b"), later).is_none(),
            "b is RECENT old: left too"
        );
        assert!(e.remembered(&key("c"), later).is_some());
        assert!(e.forgot_since(first) && e.forgot_since(second - 1));
        assert!(e.forgot_since(second), "b's serial left");
        assert!(
            !e.forgot_since(e.remembered_serial() - 1),
            "c is still here"
        );
    }

    #[test]
    fn memory_mode_keeps_answers_for_24_hours() {
        let mut e = Engine::new();
        let t0 = UnixMillis(1_000_000);
        e.remember(&key("a"), Fields::new(), t0, &mut None);
        let later = t0.plus(Duration::from_secs(3600));
        e.remember(&key("b"), Fields::new(), later, &mut None);
        assert!(e.remembered(&key("a"), later).is_some());
        assert_eq!(e.forget_expired(later), 0);
        assert!(!e.forgot_since(0));
        let day = t0.plus(IDEMPOTENCY_TTL);
        assert!(e.remembered(&key("a"), day).is_none());
        assert_eq!(e.forget_expired(day), 1);
    }

    #[test]
    fn a_rebuilt_engine_counts_every_earlier_serial_as_dropped() {
        let mut old = Engine::new();
        old.keep_fields_on_disk();
        old.remember(&key("a"), Fields::new(), UnixMillis(1), &mut None);
        let serial = old.remembered_serial();
        let mut rebuilt = Engine::new();
        rebuilt.copy_modes_from(&old);
        assert!(rebuilt.forgot_since(serial - 1));
        assert!(!rebuilt.forgot_since(serial));
        assert_eq!(rebuilt.remembered_serial(), serial);
    }
}
