//! The values that cross the `Store` trait: requests, answers and admin views.
//!
//! Why no `serde` here: these are the store's words, not the admin API's. The JSON names
//! (`_id`, `booking_expiration_timeout`, …) live in `http::admin_views`, so renaming a field
//! of the API never touches a backend, and a backend's type never leaks into a response.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::domain::{
    AccessCode, AccessNumber, Allocation, BookingTimeout, DataId, GroupName, NumberPolicy,
    PhoneNumber, PolicyChange, ServiceName, SessionId,
};

use super::{Fields, StoreError};

/// What a store holds, for `[limits]` `max_sessions` and `max_storage_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Live sessions.
    pub sessions: u64,
    /// Bytes of the names and values of live session data and storage entries.
    pub stored_bytes: u64,
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
    /// `None`: unchanged; `Some(None)`: back to no booking time of the group's own.
    pub booking_timeout: Option<Option<BookingTimeout>>,
    pub policy: PolicyChange,
    pub numbers: Vec<AccessNumber>,
}

/// What `Store::put_group` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutGroup {
    Created,
    Changed,
    /// Nothing changed: this number belongs to that (other) group.
    Taken(AccessNumber, GroupName),
}

/// A group's settings, without its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    pub name: GroupName,
    pub allocation: Allocation,
    /// The group's own booking time; `None` means the 30 s default.
    pub booking_timeout: Option<BookingTimeout>,
    /// Codes, lockout, cool-down, late calls and quarantine.
    pub policy: NumberPolicy,
}

/// A group's settings as the admin API names them, each with its value as the logs show it:
/// the audit trail's `old→new` and a start's note of what it put back.
pub fn described_settings(
    allocation: Allocation,
    booking_secs: Option<u32>,
    p: &NumberPolicy,
) -> [(&'static str, String); 7] {
    [
        ("allocation", allocation.to_string()),
        (
            "booking_expiration_timeout",
            booking_secs.map_or_else(|| "30 (default)".to_owned(), |s| s.to_string()),
        ),
        ("require_code", p.require_code.to_string()),
        ("max_code_attempts", p.max_code_attempts.to_string()),
        ("cool_down", p.cool_down.to_string()),
        ("late_match_grace", p.late_match_grace.to_string()),
        (
            "quarantine_after_stray_calls",
            p.quarantine_after_stray_calls.to_string(),
        ),
    ]
}

/// `key old→new` for each setting that differs.
pub fn setting_changes(
    before: [(&'static str, String); 7],
    after: [(&'static str, String); 7],
) -> Vec<String> {
    before
        .into_iter()
        .zip(after)
        .filter(|(old, new)| old.1 != new.1)
        .map(|((key, old), (_, new))| format!("{key} {old}→{new}"))
        .collect()
}

impl GroupSettings {
    pub fn described(&self) -> [(&'static str, String); 7] {
        described_settings(
            self.allocation,
            self.booking_timeout.map(|t| t.secs()),
            &self.policy,
        )
    }
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
    /// A fresh code, given when the request asks for one (`provide_code`) or the group
    /// requires codes, to a reservation that is new or renewed without one.
    pub code: Option<AccessCode>,
    pub provide_code: bool,
    /// Replaces the reservation's phone number when given.
    pub phone: Option<PhoneNumber>,
    /// Whether the answer must carry the pool's size and free count (a shared store counts
    /// them only when asked).
    pub pool_health: bool,
    /// Who asks and how many live reservations it may hold (`[limits]
    /// reservations_per_client`): a new reservation past it is refused
    /// (`rules::quota`), and the client is kept with the reservation
    /// (`Store::client_holds`), so every node and a restarted one count it.
    pub quota: Option<Quota>,
}

/// A client's reservation quota, as a request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub client: ClientId,
    pub limit: u64,
}

/// A client as `[limits]` names it (`user:NAME` or `ip:ADDRESS`), shared by the reservations
/// it holds.
pub type ClientId = std::sync::Arc<str>;

/// A live reservation as a client's quota counts it: a session's hold in one group (a session
/// holds at most one reservation per group, so this names it).
pub type Hold = (SessionId, GroupName);

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
    /// The client holds as many live reservations as its quota (`rules::quota`).
    #[error("client quota reached")]
    QuotaExceeded {
        held: u64,
        limit: u64,
        /// Until enough of the client's reservations expire for one more (at least a second).
        retry_after: Duration,
    },
    /// A [`super::Creation::Refused`] whose key had no answer to replay, or an update of an
    /// entry that is not there.
    #[error("refused before the store")]
    Refused,
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
    /// The caller shows the session's fields (`_return_data`): a store that keeps them apart
    /// (SQLite keeps them on disk) reads them only then.
    pub with_fields: bool,
}

/// What a match-interaction call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOutcome {
    /// A reservation accepted the call: its session (`late`: one that had ended within the
    /// group's grace).
    Matched {
        session: Session,
        group: GroupName,
        late: bool,
        /// The call's wrong code cancelled the number's live reservation (one too many)
        /// before an ended one answered it late: that reservation's session.
        locked: Option<SessionId>,
    },
    /// Nothing matched; why, and what the call did to the number.
    NoMatch {
        reason: crate::rules::call::Reason,
        /// The number's group (`None`: the number is in no group).
        group: Option<GroupName>,
        /// The call cancelled a reservation by one wrong code too many: its session.
        locked: Option<SessionId>,
        /// The call was stray (no live or late reservation on a number of a group).
        stray: bool,
        /// The stray call put the number in quarantine.
        quarantined: bool,
    },
}

impl MatchOutcome {
    /// The matched session, if the call matched (live or late).
    pub fn into_session(self) -> Option<Session> {
        match self {
            Self::Matched { session, .. } => Some(session),
            Self::NoMatch { .. } => None,
        }
    }

    /// A call refused on a number of `group`, which it left as it was.
    pub fn refused(reason: crate::rules::call::Reason, group: GroupName) -> Self {
        Self::NoMatch {
            reason,
            group: Some(group),
            locked: None,
            stray: false,
            quarantined: false,
        }
    }

    /// A call whose wrong code was one too many: the number's reservation, held by
    /// `session`, is cancelled.
    pub fn locked_out(group: GroupName, session: SessionId) -> Self {
        Self::NoMatch {
            reason: crate::rules::call::Reason::Locked,
            group: Some(group),
            locked: Some(session),
            stray: false,
            quarantined: false,
        }
    }

    /// A stray call on a number of `group` (`quarantined`: it put the number in quarantine).
    pub fn stray(reason: crate::rules::call::Reason, group: GroupName, quarantined: bool) -> Self {
        Self::NoMatch {
            reason,
            group: Some(group),
            locked: None,
            stray: true,
            quarantined,
        }
    }

    pub fn unknown_number() -> Self {
        Self::NoMatch {
            reason: crate::rules::call::Reason::UnknownNumber,
            group: None,
            locked: None,
            stray: false,
            quarantined: false,
        }
    }
}

/// What `Store::free_number` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeNumber {
    /// The number was cooling or quarantined and is free now.
    Freed,
    /// It was neither (free, reserved or retiring): nothing changed.
    NotResting,
    UnknownGroup,
    UnknownNumber,
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
    /// Numbers resting after a reservation (`cool_down`).
    pub cooling: u64,
    pub quarantined: u64,
    /// Removed numbers still held by a reservation.
    pub retiring: u64,
    pub policy: NumberPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDetail {
    pub stats: GroupStats,
    /// Numbers that passed the page's filter (`NumbersFilter`), before its limit.
    pub listed: u64,
    /// Those of them the page lists, in the group's order.
    pub numbers: Vec<NumberView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberView {
    pub number: AccessNumber,
    pub state: NumberState,
    /// Stray calls on it within the last 24 h.
    pub stray_calls: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberState {
    Free,
    Reserved {
        session: SessionId,
        expires_in: u64,
    },
    Retiring {
        session: SessionId,
        expires_in: u64,
    },
    /// Resting after a reservation; lendable in `seconds_left` (rounded up).
    Cooling {
        seconds_left: u64,
    },
    Quarantined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteGroup {
    Deleted,
    NotFound,
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddNumbers {
    /// How many numbers joined (those the group had already are not counted).
    Added(u64),
    UnknownGroup,
    /// Nothing changed: the number belongs to another group.
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
    /// The most listed, the first in the stores' order (`None`: all).
    pub limit: Option<usize>,
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
