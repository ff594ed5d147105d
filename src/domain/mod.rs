//! Pure domain types: parsed once at the edge, trusted everywhere below.
//!
//! Every type here is a parse-don't-validate newtype: `parse` returns a [`ParseError`]
//! naming what was wrong, and `Display` writes back exactly what was parsed.

mod allocation;
mod code;
mod flag;
mod ids;
mod number;
mod policy;
mod time;
mod timeouts;

pub use allocation::Allocation;
pub use code::{AccessCode, CodeLength, CodePrefix};
pub use flag::parse_bool;
pub use ids::{DataId, GroupName, NodeId, ServiceName, SessionId, uuid_v4};
pub use number::{AccessNumber, NumberRange, NumberSpec, PhoneNumber};
pub use policy::{MAX_POLICY_SECS, NumberPolicy, PolicyChange};

/// Bounds on how many numbers one range or request may expand to.
pub mod number_limits {
    pub use super::number::MAX_RANGE_SPAN;
}
pub use time::UnixMillis;
pub use timeouts::{BookingTimeout, SessionTtl, StorageTtl};

/// Why a value could not be parsed. The caller adds the parameter or key name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}
