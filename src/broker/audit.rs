//! The audit trail of admin changes: who changed what, logged at INFO and kept in a small ring
//! the admin API reads back (`GET /genesys/1/admin/audit`).
//!
//! Decisions:
//! - The ring is **per node, in memory, bounded** ([`AUDIT_CAPACITY`] entries, the oldest
//!   dropped first): it is not shared across a cluster and is lost at restart. It answers "what
//!   changed here lately" on the page; the durable trail is the INFO log line each entry also
//!   writes (target `access_broker::audit`), which log shipping keeps. Why not the store: a
//!   table every node writes to would be one more thing to migrate, purge and back up, for a
//!   list the log already holds.
//! - **Refusals are listed**, marked `refused` (a rule said no: 409, 404, a taken number) or
//!   `failed` (the store could not do it), with the reason as the detail, so an operator sees
//!   an attempt on a config group too. Only `done` entries changed anything. Bad input the HTTP
//!   layer rejects before the broker (a number that does not parse) is not a change attempt
//!   and is not listed.

use std::collections::VecDeque;
use std::fmt;

use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock};
use crate::domain::{AccessNumber, GroupName, UnixMillis};

use super::BrokerError;

/// How many entries a node keeps.
pub const AUDIT_CAPACITY: usize = 200;

/// Who asks for an admin change: the HTTP Basic user of the admin credentials, or
/// `anonymous` when the admin API needs none. Set by the HTTP layer once auth has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn named(user: impl Into<String>) -> Self {
        Self(user.into())
    }

    pub fn anonymous() -> Self {
        Self("anonymous".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The admin change asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    PutGroup,
    DeleteGroup,
    AddNumbers,
    RemoveNumber,
    Release,
    FreeNumber,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PutGroup => "put_group",
            Self::DeleteGroup => "delete_group",
            Self::AddNumbers => "add_numbers",
            Self::RemoveNumber => "remove_number",
            Self::Release => "release",
            Self::FreeNumber => "free_number",
        }
    }
}

/// What became of the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Done,
    /// A rule refused it; nothing changed.
    Refused,
    /// The store could not do it; nothing changed (an error answer changes nothing).
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }

    fn of(err: &BrokerError) -> Self {
        match err {
            BrokerError::Store(_) => Self::Failed,
            _ => Self::Refused,
        }
    }
}

/// One admin change, as it was asked for and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Wall-clock time on this node.
    pub at: UnixMillis,
    pub user: Actor,
    pub action: AuditAction,
    pub group: Option<GroupName>,
    pub number: Option<AccessNumber>,
    pub outcome: AuditOutcome,
    /// What changed (`allocation round-robin→random, 5 numbers added`), or why it was refused.
    pub detail: String,
}

/// What an audited change is about: its action and the group or number it names.
#[derive(Debug, Clone, Copy)]
pub struct AuditTarget<'a> {
    pub action: AuditAction,
    pub group: Option<&'a GroupName>,
    pub number: Option<&'a AccessNumber>,
}

/// The last [`AUDIT_CAPACITY`] entries of this node. A std-style mutex (parking_lot) held only
/// to push or copy: no await happens under it.
#[derive(Debug, Default)]
pub struct AuditLog {
    entries: Mutex<VecDeque<AuditEntry>>,
}

impl AuditLog {
    /// Logs the entry at INFO (the durable trail) and keeps it in the ring.
    pub fn record(&self, entry: AuditEntry) {
        tracing::info!(
            target: "access_broker::audit",
            user = %entry.user,
            action = entry.action.as_str(),
            outcome = entry.outcome.as_str(),
            group = entry.group.as_ref().map(GroupName::as_str),
            number = entry.number.as_ref().map(AccessNumber::as_str),
            detail = entry.detail.as_str(),
            "admin change"
        );
        let mut entries = self.entries.lock();
        if entries.len() == AUDIT_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The entries kept, newest first.
    pub fn recent(&self) -> Vec<AuditEntry> {
        self.entries.lock().iter().rev().cloned().collect()
    }

    /// Records the result of a change: `Ok` carries the detail of what changed, an error is
    /// recorded as refused or failed with its message. Hands the result back without the detail.
    pub fn outcome<T>(
        &self,
        user: &Actor,
        target: AuditTarget<'_>,
        result: Result<(T, String), BrokerError>,
    ) -> Result<T, BrokerError> {
        let (outcome, detail) = match &result {
            Ok((_, detail)) => (AuditOutcome::Done, detail.clone()),
            Err(err) => (AuditOutcome::of(err), err.to_string()),
        };
        self.record(AuditEntry {
            at: SystemClock.now(),
            user: user.clone(),
            action: target.action,
            group: target.group.cloned(),
            number: target.number.cloned(),
            outcome,
            detail,
        });
        result.map(|(value, _)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(action: AuditAction) -> AuditTarget<'static> {
        AuditTarget {
            action,
            group: None,
            number: None,
        }
    }

    #[test]
    fn newest_first_and_bounded() {
        let log = AuditLog::default();
        let ops = Actor::named("ops");
        for i in 0..AUDIT_CAPACITY + 5 {
            let r: Result<((), String), BrokerError> = Ok(((), format!("change {i}")));
            assert!(
                log.outcome(&ops, target(AuditAction::AddNumbers), r)
                    .is_ok()
            );
        }
        let recent = log.recent();
        assert_eq!(recent.len(), AUDIT_CAPACITY);
        assert_eq!(recent[0].detail, format!("change {}", AUDIT_CAPACITY + 4));
        assert_eq!(recent[AUDIT_CAPACITY - 1].detail, "change 5");
    }

    #[test]
    fn refusals_are_marked() {
        let log = AuditLog::default();
        let group = GroupName::parse("DNIS").expect("name");
        let refused: Result<((), String), BrokerError> = Err(BrokerError::GroupBusy(group.clone()));
        assert!(
            log.outcome(
                &Actor::anonymous(),
                AuditTarget {
                    action: AuditAction::DeleteGroup,
                    group: Some(&group),
                    number: None,
                },
                refused,
            )
            .is_err()
        );
        let entry = &log.recent()[0];
        assert_eq!(
            (entry.user.as_str(), entry.outcome, entry.group.as_ref()),
            ("anonymous", AuditOutcome::Refused, Some(&group))
        );
        assert!(
            entry.detail.contains("live reservations"),
            "{}",
            entry.detail
        );
    }
}
