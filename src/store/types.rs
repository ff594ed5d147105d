//! The values that cross the `Store` trait: requests, answers and admin views.
//!
//! Why no `serde` here: these are the store's words, not the admin API's. The JSON names
//! (`_id`, `booking_expiration_timeout`, …) live in `http::admin_views`, so renaming a field
//! of the API never touches a backend, and a backend's type never leaks into a response.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::domain::{
    AccessCode, AccessNumber, Allocation, BookingTimeout, DataId, GroupName, PhoneNumber,
    ServiceName, SessionId,
};

use super::StoreError;

/// Posted fields, in the order they came; names are unique (the last value sent wins).
pub type Fields = Vec<(String, String)>;

/// Merges `update` into `fields`: same name replaces in place, new names are appended.
pub fn merge_fields(fields: &mut Fields, update: Fields) {
    for (k, v) in update {
        match fields.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => fields.push((k, v)),
        }
    }
}

/// Settings every backend reads when it opens.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Memory and SQLite read this clock; PostgreSQL reads only the database's `now()`.
    pub clock: Arc<dyn Clock>,
    /// PostgreSQL: most connections this node holds.
    pub max_connections: usize,
    /// PostgreSQL: how long to wait for a connection or a statement before answering 503.
    pub timeout: Duration,
    /// SQLite: `PRAGMA synchronous` (FULL survives power loss; NORMAL survives process crashes).
    pub sqlite_synchronous: SqliteSync,
    /// The node's id, recorded by shared stores to list the nodes seen recently.
    pub node_id: String,
    /// Where the store publishes each lifecycle event once its change is durable (the admin
    /// event stream reads it). There is always one, `[events]` or not.
    pub bus: crate::events::Bus,
    /// Whether events also wait in the store's outbox for webhook delivery (`[events]` set).
    pub keep_outbox: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            max_connections: 16,
            timeout: Duration::from_secs(5),
            sqlite_synchronous: SqliteSync::Full,
            node_id: "1".into(),
            bus: crate::events::bus(),
            keep_outbox: false,
        }
    }
}

/// An event waiting in a store's outbox for webhook delivery (`events::deliver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub event: crate::events::Event,
    /// Failed attempts so far.
    pub attempts: u32,
    /// How long it has waited since it was queued, by the store's clock.
    pub age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

/// A resource group as a node's config defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub settings: GroupSettings,
    pub numbers: Vec<AccessNumber>,
}

/// An admin change to one group (`Store::put_group`): settings left `None` keep their value
/// (a new group takes round-robin and the 30 s default); `numbers` are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    pub name: GroupName,
    pub allocation: Option<Allocation>,
    pub booking_timeout: Option<BookingTimeout>,
    pub numbers: Vec<AccessNumber>,
}

/// What `Store::put_group` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutGroup {
    Created,
    Changed,
    /// Nothing changed: this number already belongs to that group (or is listed twice).
    Taken(AccessNumber, GroupName),
}

/// A group's settings, without its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    pub name: GroupName,
    pub allocation: Allocation,
    /// The group's own booking time; `None` means the 30 s default.
    pub booking_timeout: Option<BookingTimeout>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub service: ServiceName,
    pub data_id: DataId,
    pub fields: Fields,
    pub ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub service: ServiceName,
    pub data_id: DataId,
    pub fields: Fields,
    /// Time left, as the store saw it when answering.
    pub expires_in: Duration,
}

#[derive(Debug, Clone)]
pub struct ReserveRequest {
    pub session: SessionId,
    pub group: GroupName,
    /// Request or service timeout; `None` falls back to the group's, then 30 s.
    pub timeout: Option<BookingTimeout>,
    /// A fresh code, used when the reservation is new or renewed without one.
    pub code: Option<AccessCode>,
    /// Replaces the reservation's phone number when given.
    pub phone: Option<PhoneNumber>,
    /// Whether the answer must carry the pool's size and free count (a shared store counts
    /// them only when asked).
    pub pool_health: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub number: AccessNumber,
    pub code: Option<AccessCode>,
    /// Time left, as the store saw it when answering (capped at the session's).
    pub expires_in: Duration,
    /// Counts of the group when asked (`ReserveRequest::pool_health`); a local store always
    /// fills them.
    pub pool_size: u64,
    pub pool_free: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("session not found")]
    SessionNotFound,
    #[error("unknown resource group")]
    UnknownGroup,
    #[error("no free number")]
    Exhausted {
        /// Until the group's first reservation ends (at least one second).
        retry_after: Duration,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct MatchRequest {
    pub number: AccessNumber,
    pub code: Option<AccessCode>,
    pub phone: Option<PhoneNumber>,
    /// When false, a reservation with a code matches a request without one (lenient GMS mode).
    pub code_required: bool,
    /// Also end the matched session (`_delete_service=true`).
    pub end_session: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    pub name: GroupName,
    pub allocation: Allocation,
    /// The group's own booking time in seconds (`None`: the 30 s default).
    pub booking_timeout: Option<u32>,
    /// Numbers in service (retiring ones excluded).
    pub size: u64,
    pub free: u64,
    pub reserved: u64,
    /// Removed numbers still held by a reservation.
    pub retiring: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDetail {
    pub stats: GroupStats,
    pub numbers: Vec<NumberView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberView {
    pub number: AccessNumber,
    pub state: NumberState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberState {
    Free,
    Reserved { session: SessionId, expires_in: u64 },
    Retiring { session: SessionId, expires_in: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteGroup {
    Deleted,
    NotFound,
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddNumbers {
    Added(u64),
    UnknownGroup,
    /// The number already belongs to this or another group.
    Taken(AccessNumber, GroupName),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveNumber {
    Removed,
    Retiring,
    UnknownGroup,
    UnknownNumber,
}

#[derive(Debug, Clone, Default)]
pub struct ReservationFilter {
    pub number: Option<AccessNumber>,
    pub session: Option<SessionId>,
    pub phone: Option<PhoneNumber>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationView {
    pub number: AccessNumber,
    pub group: GroupName,
    pub session: SessionId,
    pub phone: Option<PhoneNumber>,
    pub has_code: bool,
    pub expires_in: u64,
}
