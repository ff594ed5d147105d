//! `BrokerError`: every refusal a use case makes, typed, in the broker's own words.
//!
//! Why a layer of its own: the store says what happened to the data (`StoreError`,
//! `ReserveError`), the broker says which rule refused the request (this type), and only
//! `http::error` decides what a client sees (status, GMS exception kind, headers). `Display`
//! is the message a client may read, so it never shows a source; a store failure keeps its
//! cause as the `source()` for the 5xx log.

use std::time::Duration;

use crate::domain::{AccessNumber, CodeLength, CodePrefix, DataId, GroupName, SessionId};
use crate::store::{ReserveError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// request-access: neither the request nor the service names a group.
    #[error("_resource_group: required: the request names no group and the service has no default")]
    GroupRequired,
    /// The code length asked for leaves fewer than four random digits after the prefix.
    #[error(
        "_access_code_length: {} leaves fewer than 4 random digits after the node's access_code_prefix \"{prefix}\"",
        length.get()
    )]
    CodeTooShort {
        length: CodeLength,
        prefix: CodePrefix,
    },
    /// A reservation names a group no store knows.
    #[error("_resource_group: unknown resource group {:?}", .0.as_str())]
    UnknownGroup(GroupName),
    /// No configured service has this name.
    #[error("service {0:?} not found")]
    UnknownService(String),
    /// The session is unknown, expired or ended (GMS's kind for it is that of an unknown
    /// service, `ServiceNotFound`; the text says it is a session).
    #[error("session {:?} not found", .0.as_str())]
    SessionNotFound(SessionId),
    /// Every number of the group is busy; one frees up after `retry_after`.
    #[error("no free number in resource group {group}")]
    PoolExhausted {
        group: GroupName,
        retry_after: Duration,
    },
    /// The client holds as many live reservations as `[limits] reservations_per_client`.
    #[error(
        "this client holds {held} live reservations; [limits] reservations_per_client allows {limit}"
    )]
    QuotaExceeded {
        held: u64,
        limit: u64,
        retry_after: Duration,
    },
    /// match-interaction found no reservation that accepts the call; `reason` is there only
    /// where the service tells it (`return_failure_reason`).
    #[error("no live reservation matches access number {number}")]
    NoMatch {
        number: AccessNumber,
        reason: Option<crate::rules::call::Reason>,
    },
    /// Stored data unknown or expired.
    #[error("storage id {0} not found or expired")]
    DataNotFound(DataId),
    /// Admin: the group does not exist.
    #[error("resource group {0} not found")]
    GroupNotFound(GroupName),
    /// Admin: a group with live reservations is not deleted.
    #[error("group {0} holds live reservations; release them or wait for them to end")]
    GroupBusy(GroupName),
    /// Admin: deleting a group the config file defines, without `force`.
    #[error(
        "group {0} is defined in the config file; it would come back at the next start; add force=true to delete it anyway"
    )]
    ConfigGroup(GroupName),
    /// Admin: removing the last number in service of a group the config file defines, without
    /// `force`.
    #[error(
        "number {number} is the last number in service of group {group}, which the config file defines; the group would lend nothing until the next start puts its numbers back; add force=true to remove it anyway"
    )]
    LastConfigNumber {
        group: GroupName,
        number: AccessNumber,
    },
    /// Admin: a number to add belongs to another group.
    #[error("numbers: {number} already belongs to group {owner}")]
    NumberTaken {
        number: AccessNumber,
        owner: GroupName,
    },
    /// Admin: the number is not in that group.
    #[error("number {number} is not in group {group}")]
    NumberNotInGroup {
        group: GroupName,
        number: AccessNumber,
    },
    /// Admin: there is no live reservation on the number to release.
    #[error("number {0} holds no live reservation")]
    NoReservation(AccessNumber),
    /// An update would leave a session's data or a storage entry with too many fields.
    #[error("fields: storage id {id} would hold {count} fields; an entry holds at most {limit}")]
    TooManyFields {
        id: DataId,
        count: usize,
        limit: usize,
    },
    /// The store could not do it (unreachable, or its data broke its rules).
    #[error("store failed")]
    Store(#[from] StoreError),
}

impl BrokerError {
    /// The request parameter a 400 names, for the variants that are bad input.
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            Self::GroupRequired | Self::UnknownGroup(_) => Some("_resource_group"),
            Self::CodeTooShort { .. } => Some("_access_code_length"),
            Self::NumberTaken { .. } => Some("numbers"),
            Self::TooManyFields { .. } => Some("fields"),
            _ => None,
        }
    }

    /// Maps a reservation refusal, naming the session and group the request named.
    pub(super) fn from_reserve(err: ReserveError, session: &SessionId, group: &GroupName) -> Self {
        match err {
            ReserveError::SessionNotFound => Self::SessionNotFound(session.clone()),
            ReserveError::UnknownGroup => Self::UnknownGroup(group.clone()),
            ReserveError::Exhausted { retry_after } => Self::PoolExhausted {
                group: group.clone(),
                retry_after,
            },
            ReserveError::QuotaExceeded {
                held,
                limit,
                retry_after,
            } => Self::QuotaExceeded {
                held,
                limit,
                retry_after,
            },
            ReserveError::Store(e) => Self::Store(e),
            ReserveError::Refused => {
                Self::Store(StoreError::query("a refused call reached the store"))
            }
        }
    }
}
