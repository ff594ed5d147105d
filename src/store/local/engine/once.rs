//! The engine's memory of `Idempotency-Key` answers (see `store::once`): kept in the same
//! locked section and journal batch as the creation they answer.

use std::collections::HashMap;

use crate::domain::UnixMillis;
use crate::store::local::journal::{Change, ChangeLog, record};
use crate::store::{Fields, IDEMPOTENCY_TTL, IdempotencyKey};

use super::Engine;

/// Answers by client and key, each with the instant it is forgotten.
pub type Remembered = HashMap<IdempotencyKey, (Fields, UnixMillis)>;

impl Engine {
    /// The first answer to `key`, while it is kept.
    pub fn remembered(&self, key: &IdempotencyKey, now: UnixMillis) -> Option<&Fields> {
        self.remembered
            .get(key)
            .filter(|(_, until)| !until.is_reached(now))
            .map(|(fields, _)| fields)
    }

    /// Keeps `fields` as the answer to `key` for 24 h.
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
        self.remembered.insert(key.clone(), (fields, expires_at));
    }

    /// A kept answer read back at start (or at a rebuild).
    pub fn restore_remembered(
        &mut self,
        key: IdempotencyKey,
        fields: Fields,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) {
        if !expires_at.is_reached(now) {
            self.remembered.insert(key, (fields, expires_at));
        }
    }

    /// Forgets the answers older than 24 h; returns how many.
    pub fn forget_expired(&mut self, now: UnixMillis) -> u64 {
        let before = self.remembered.len();
        self.remembered
            .retain(|_, (_, until)| !until.is_reached(now));
        (before - self.remembered.len()) as u64
    }
}
