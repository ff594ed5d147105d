//! Stored fields kept outside the engine: the trait a durable backend implements so a local
//! store can read session fields and storage entries from disk, when asked.
//!
//! Why: fields are most of a node's bytes (a storage entry may hold hundreds of kilobytes),
//! and the engine needs none of them to decide anything. On SQLite the engine keeps only each
//! entry's expiry; the fields stay in the `data` table, so memory and restart time do not
//! grow with stored bytes. The engine still decides whether an entry is live; the backend
//! only hands over its last committed fields.
//!
//! The same holds for `Idempotency-Key` answers (24 h of them, at the request rate): the
//! backend keeps them, the engine only the recent ones (`engine/once.rs`).

use futures::future::BoxFuture;

use crate::domain::{DataId, UnixMillis};
use crate::store::{Fields, IdempotencyKey, StoreError};

/// Reads the last committed fields of a data entry, outside the engine's lock.
pub trait FieldReader: Send + Sync + 'static {
    /// The entry's fields as last committed; `None` if its row is gone (deleted since the
    /// engine saw it live). Called only after every change the caller could have seen is
    /// durable, so a read never misses a write that was answered before it.
    fn read(&self, id: DataId) -> BoxFuture<'_, Result<Option<Fields>, StoreError>>;

    /// The committed first answer to `key`, unless it expired by `now`. Called only after
    /// every answer the engine had shown is durable (see `LocalStore::create_once`).
    fn remembered(
        &self,
        key: IdempotencyKey,
        now: UnixMillis,
    ) -> BoxFuture<'_, Result<Option<Fields>, StoreError>>;
}
