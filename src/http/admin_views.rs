//! The admin API's JSON: its field names (`_id`, `booking_expiration_timeout`, …) and shapes,
//! converted from the broker's and the store's plain types.
//!
//! Why here and not as `serde` attributes on the store's types: the JSON is a promise of the
//! HTTP API, so it is written where the API lives; a backend can rename or regroup its types
//! without changing a byte of what operators and the UI read.

use serde::Serialize;

use crate::advisor::Advice;
use crate::broker::{AuditEntry, GroupOverview, GroupPage, NodeSeen};
use crate::domain::{AccessNumber, Allocation, GroupName, PhoneNumber, SessionId};
use crate::metrics::Window;
use crate::store::{GroupStats, NumberState, NumberView, ReservationView};

/// A group's counts and settings.
#[derive(Debug, Serialize)]
pub struct GroupJson {
    name: GroupName,
    allocation: Allocation,
    /// `null`: the 30 s default.
    booking_expiration_timeout: Option<u32>,
    size: u64,
    free: u64,
    reserved: u64,
    cooling: u64,
    quarantined: u64,
    retiring: u64,
    require_code: bool,
    max_code_attempts: u32,
    cool_down: u32,
    late_match_grace: u32,
    quarantine_after_stray_calls: u32,
    utilisation: f64,
    refusals: u64,
    last_hour: Window,
    /// The config file defines it: admin changes to it last until the next start.
    defined_in_config: bool,
}

impl From<GroupOverview> for GroupJson {
    fn from(o: GroupOverview) -> Self {
        let GroupStats {
            name,
            allocation,
            booking_timeout,
            size,
            free,
            reserved,
            cooling,
            quarantined,
            retiring,
            policy,
        } = o.stats;
        Self {
            name,
            allocation,
            booking_expiration_timeout: booking_timeout,
            size,
            free,
            reserved,
            cooling,
            quarantined,
            retiring,
            require_code: policy.require_code,
            max_code_attempts: policy.max_code_attempts,
            cool_down: policy.cool_down,
            late_match_grace: policy.late_match_grace,
            quarantine_after_stray_calls: policy.quarantine_after_stray_calls,
            utilisation: o.utilisation,
            refusals: o.refusals,
            last_hour: o.last_hour,
            defined_in_config: o.defined_in_config,
        }
    }
}

/// One group's page: its overview, the advisor's advice and its numbers' states (all of
/// them, or those the request's `NumbersFilter` let through), with how many passed the filter.
#[derive(Debug, Serialize)]
pub struct GroupPageJson {
    #[serde(flatten)]
    group: GroupJson,
    advice: Advice,
    /// Numbers that pass the filter (all when none is given), before `offset` and `limit`.
    listed: u64,
    /// The `offset` of the next page, when numbers that passed are left after this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<u64>,
    numbers: Vec<NumberJson>,
}

impl GroupPageJson {
    /// The page that starts after `offset` numbers that passed the filter.
    pub fn new(p: GroupPage, offset: u64) -> Self {
        let end = offset.saturating_add(p.numbers.len() as u64);
        Self {
            group: p.overview.into(),
            advice: p.advice,
            listed: p.listed,
            next_offset: (!p.numbers.is_empty() && end < p.listed).then_some(end),
            numbers: p.numbers.into_iter().map(NumberJson::from).collect(),
        }
    }
}

/// `{"number", "state", "stray_calls"}`, plus `_id` and `expires_in` while a reservation
/// holds it, `seconds_left` while it cools down.
#[derive(Debug, Serialize)]
pub struct NumberJson {
    number: AccessNumber,
    state: &'static str,
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    session: Option<SessionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds_left: Option<u64>,
    stray_calls: u64,
}

impl From<NumberView> for NumberJson {
    fn from(v: NumberView) -> Self {
        let state = v.state.kind().name();
        let mut seconds_left = None;
        let (session, expires_in) = match v.state {
            NumberState::Free | NumberState::Quarantined => (None, None),
            NumberState::Cooling { seconds_left: s } => {
                seconds_left = Some(s);
                (None, None)
            }
            NumberState::Reserved {
                session,
                expires_in,
            }
            | NumberState::Retiring {
                session,
                expires_in,
            } => (Some(session), Some(expires_in)),
        };
        Self {
            number: v.number,
            state,
            session,
            expires_in,
            seconds_left,
            stray_calls: v.stray_calls,
        }
    }
}

/// A live reservation as the search answers it.
#[derive(Debug, Serialize)]
pub struct ReservationJson {
    number: AccessNumber,
    group: GroupName,
    #[serde(rename = "_id")]
    session: SessionId,
    phone: Option<PhoneNumber>,
    has_code: bool,
    expires_in: u64,
}

impl From<ReservationView> for ReservationJson {
    fn from(r: ReservationView) -> Self {
        Self {
            number: r.number,
            group: r.group,
            session: r.session,
            phone: r.phone,
            has_code: r.has_code,
            expires_in: r.expires_in,
        }
    }
}

/// A node sharing the store.
#[derive(Debug, Serialize)]
pub struct NodeJson {
    node_id: String,
    seen_seconds_ago: u64,
    this_node: bool,
}

impl From<NodeSeen> for NodeJson {
    fn from(n: NodeSeen) -> Self {
        Self {
            node_id: n.node_id,
            seen_seconds_ago: n.seen_seconds_ago,
            this_node: n.this_node,
        }
    }
}

/// One admin change: `at` in milliseconds since the Unix epoch (this node's clock), `user`,
/// `action` (`put_group`, `delete_group`, `add_numbers`, `remove_number`, `release`),
/// `outcome` (`done`, `refused`, `failed`), the `group` and `number` it names, and `detail`.
#[derive(Debug, Serialize)]
pub struct AuditJson {
    at: i64,
    user: String,
    action: &'static str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<GroupName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<AccessNumber>,
    detail: String,
}

impl From<AuditEntry> for AuditJson {
    fn from(e: AuditEntry) -> Self {
        Self {
            at: e.at.0,
            user: e.user.as_str().to_owned(),
            action: e.action.as_str(),
            outcome: e.outcome.as_str(),
            group: e.group,
            number: e.number,
            detail: e.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: impl Serialize) -> String {
        serde_json::to_string(&value).expect("serializes")
    }

    #[test]
    fn numbers_in_the_api_shape() {
        let session = SessionId::parse("1-2fb1").expect("id");
        let number = AccessNumber::parse("100").expect("number");
        let free = NumberView {
            number: number.clone(),
            state: NumberState::Free,
            stray_calls: 0,
        };
        let held = NumberView {
            number,
            state: NumberState::Retiring {
                session,
                expires_in: 29,
            },
            stray_calls: 0,
        };
        assert_eq!(
            json(NumberJson::from(free)),
            r#"{"number":"100","state":"free","stray_calls":0}"#
        );
        assert_eq!(
            json(NumberJson::from(held)),
            r#"{"number":"100","state":"retiring","_id":"1-2fb1","expires_in":29,"stray_calls":0}"#
        );
    }

    #[test]
    fn reservations_in_the_api_shape() {
        let view = ReservationView {
            number: AccessNumber::parse("100").expect("number"),
            group: GroupName::parse("DNIS").expect("group"),
            session: SessionId::parse("1-2fb1").expect("id"),
            phone: None,
            has_code: true,
            expires_in: 5,
        };
        assert_eq!(
            json(ReservationJson::from(view)),
            r#"{"number":"100","group":"DNIS","_id":"1-2fb1","phone":null,"has_code":true,"expires_in":5}"#
        );
    }
}
