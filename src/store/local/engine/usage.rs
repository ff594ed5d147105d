//! What the engine holds, for `[limits]` (`Store::usage`): live sessions and the bytes of
//! live stored fields.
//!
//! Counted by walking the maps, under the engine's lock: the HTTP layer asks at most once a
//! second and only when a store-wide limit is set, so no counter has to be kept in step with
//! every write, expiry and restore.

use super::Engine;
use crate::domain::UnixMillis;
use crate::store::Usage;

impl Engine {
    pub fn usage(&self, now: UnixMillis) -> Usage {
        let sessions = self
            .sessions
            .values()
            .filter(|s| !s.expires_at.is_reached(now))
            .count() as u64;
        let stored_bytes = self
            .data
            .values()
            .filter(|d| !d.expires_at.is_reached(now))
            .map(|d| d.bytes)
            .sum();
        Usage {
            sessions,
            stored_bytes,
        }
    }
}
