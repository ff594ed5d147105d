//! Which of a group's numbers an admin page lists (`?state=&digits=&limit=`). The store
//! applies it where the numbers are: a page of a million-number group built whole and cut
//! afterwards held the engine's lock for ~70 ms (every call on the node waited) and moved a
//! million rows out of PostgreSQL (1.5 s), on every refresh of an open management page.

use super::types::NumberState;
use crate::domain::AccessNumber;

/// A number's state without its details: what a page filters on and counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    Free,
    Reserved,
    Cooling,
    Quarantined,
    Retiring,
}

impl StateKind {
    pub const ALL: [StateKind; 5] = [
        StateKind::Free,
        StateKind::Reserved,
        StateKind::Cooling,
        StateKind::Quarantined,
        StateKind::Retiring,
    ];

    /// The name the admin API shows (and PostgreSQL's page statement computes).
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Free => "free",
            StateKind::Reserved => "reserved",
            StateKind::Cooling => "cooling",
            StateKind::Quarantined => "quarantined",
            StateKind::Retiring => "retiring",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl NumberState {
    pub fn kind(&self) -> StateKind {
        match self {
            NumberState::Free => StateKind::Free,
            NumberState::Reserved { .. } => StateKind::Reserved,
            NumberState::Retiring { .. } => StateKind::Retiring,
            NumberState::Cooling { .. } => StateKind::Cooling,
            NumberState::Quarantined => StateKind::Quarantined,
        }
    }
}

/// The numbers a page lists: those in one state, containing some digits, at most `limit` of
/// them in the group's order after skipping the first `offset` that pass. The default lists
/// every number (the admin API caps a page: `http/admin.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumbersFilter {
    pub state: Option<StateKind>,
    /// Digits the number contains.
    pub digits: Option<String>,
    /// The most numbers listed (`None`: all).
    pub limit: Option<usize>,
    /// Numbers that pass the filter skipped before the first listed.
    pub offset: u64,
}

impl NumbersFilter {
    /// Counts without listing any number (an overview after a change).
    pub fn none() -> Self {
        Self {
            limit: Some(0),
            ..Self::default()
        }
    }

    pub fn passes(&self, number: &AccessNumber, kind: StateKind) -> bool {
        self.state.is_none_or(|s| s == kind)
            && self
                .digits
                .as_deref()
                .is_none_or(|d| number.as_str().contains(d))
    }

    /// Whether the number that passed the filter after `passed` others goes on a page already
    /// holding `listed` numbers.
    pub fn takes(&self, passed: u64, listed: usize) -> bool {
        passed >= self.offset && self.limit.is_none_or(|l| listed < l)
    }
}
