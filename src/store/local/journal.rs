//! The changes a local engine makes, in order, for a durable backend to write down.
//!
//! The engine decides; the journal records. SQLite replays these into its tables in one
//! transaction per batch, so a restart rebuilds exactly the state that was answered.

use crate::domain::{
    AccessCode, AccessNumber, DataId, GroupName, PhoneNumber, ServiceName, SessionId, UnixMillis,
};
use crate::events::Event;
use crate::rules::lifecycle::Ended;
use crate::store::{Fields, GroupSettings, StoreError};

use futures::future::BoxFuture;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Group(GroupSettings),
    GroupDeleted(GroupName),
    Number {
        group: GroupName,
        number: AccessNumber,
        position: u32,
        retiring: bool,
    },
    NumberDeleted(AccessNumber),
    Reserved {
        number: AccessNumber,
        session: SessionId,
        code: Option<AccessCode>,
        phone: Option<PhoneNumber>,
        expires_at: UnixMillis,
        wrong_codes: u32,
        /// Who asked for it, when clients are counted (`ReserveRequest::client`).
        client: Option<crate::store::ClientId>,
    },
    /// A reservation ended: the number is lendable from `freed_at` and remembers it.
    Released {
        number: AccessNumber,
        freed_at: UnixMillis,
        ended: Ended,
    },
    /// A live reservation's count of wrong codes.
    WrongCodes {
        number: AccessNumber,
        count: u32,
    },
    /// A number's rest: lendable from `freed_at`, quarantined since, recent stray calls.
    Rest {
        number: AccessNumber,
        freed_at: UnixMillis,
        quarantined_at: Option<UnixMillis>,
        strays: Vec<UnixMillis>,
    },
    Cursor {
        group: GroupName,
        cursor: u32,
    },
    Session {
        id: SessionId,
        service: ServiceName,
        data_id: DataId,
        expires_at: UnixMillis,
    },
    SessionEnded(SessionId),
    Data {
        id: DataId,
        fields: Fields,
        expires_at: UnixMillis,
    },
    /// Adds or replaces `fields` in the stored entry (read, merged and written back inside
    /// the writer's transaction) and sets its expiry: the fields are not in memory.
    DataMerged {
        id: DataId,
        fields: Fields,
        expires_at: UnixMillis,
    },
    DataDeleted(DataId),
    /// The entry's session ended at `at`: it expires then, and its row stays until a purge
    /// (an answer of that operation may still read its fields).
    DataEnded {
        id: DataId,
        at: UnixMillis,
    },
    /// Delete rows that expired before this instant (space only; they were already dead).
    Purge(UnixMillis),
    // ---- the webhook outbox (engine/outbox.rs) ----
    /// An event owed to the webhook, due at once.
    EventQueued {
        event: Event,
        queued_at: UnixMillis,
    },
    /// Delivered or given up: the event leaves the outbox.
    EventDone(String),
    /// A failed attempt; the next one is due at `next_at`.
    EventRetry {
        id: String,
        attempts: u32,
        next_at: UnixMillis,
    },
    /// The first answer to an `Idempotency-Key`, kept until `expires_at`.
    Remembered {
        client: String,
        key: String,
        fields: Fields,
        expires_at: UnixMillis,
    },
}

/// Where the engine writes its changes; `None` for memory://, which keeps nothing.
pub type ChangeLog = Option<Vec<Change>>;

pub(crate) fn record(log: &mut ChangeLog, change: impl FnOnce() -> Change) {
    if let Some(log) = log {
        log.push(change());
    }
}

/// Why a journal could not confirm a batch.
#[derive(Debug, Clone)]
pub enum JournalError {
    /// The batch's commit failed and the engine was rebuilt from the durable state: the
    /// batch's changes are gone, from memory too. A read that waited on it may run again.
    RolledBack(StoreError),
    /// No outcome in time, or the engine cannot be trusted until it is rebuilt.
    Unavailable(StoreError),
}

impl JournalError {
    // A method, not `From`: a second `From` into `StoreError` would leave `?` on generic
    // errors elsewhere without a type to infer.
    pub fn into_store(self) -> StoreError {
        match self {
            Self::RolledBack(e) | Self::Unavailable(e) => e,
        }
    }
}

/// A durable log of changes, written in the order they were submitted.
///
/// A batch either becomes durable or is rolled back: when a commit fails, every batch
/// decided on the failed state (all those queued) fails too, and the journal rebuilds the
/// engine from what is durable before anyone hears of it. So an operation answered with an
/// error left no trace, in memory or on disk.
pub trait Journal: Send + Sync + 'static {
    /// Queues one operation's changes. Called under the engine lock, so the journal sees
    /// changes in decision order. Returns the batch's sequence number.
    fn submit(&self, changes: Vec<Change>) -> u64;
    /// The last batch whose effects the engine may show while its outcome is unknown; `None`
    /// when the engine shows only durable state (nothing queued since its last rebuild).
    /// Called under the engine lock.
    fn pending(&self) -> Option<u64>;
    /// Resolves once every batch up to `seq` is durable; fails if one of them was rolled back
    /// or no outcome came within the store's timeout.
    fn durable(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>>;
    /// `Err` while the engine cannot be trusted (its rebuild failed); nothing may read or
    /// change it then. Called under the engine lock.
    fn usable(&self) -> Result<(), StoreError>;
    /// `Err` while writes fail (the last commit failed and no probe succeeded since). Called
    /// under the engine lock before every operation that may write: a failing journal
    /// refuses writes before they touch the engine.
    fn writable(&self) -> Result<(), StoreError>;
    /// How many times the engine was rebuilt from the durable state since the store opened.
    fn rebuilds(&self) -> u64 {
        0
    }
}
