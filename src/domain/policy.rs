//! A group's number policy: the settings that govern what happens around a reservation
//! (codes, wrong-code lockout, cool-down, late calls, quarantine). The rules that read them
//! live in `crate::rules`; this is only the parsed, trusted value.

use std::time::Duration;

/// Longest cool-down, grace or other rest a group may set: one day, in seconds.
pub const MAX_POLICY_SECS: u32 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberPolicy {
    /// Every reservation gets a code, and a match without it never finds the reservation.
    pub require_code: bool,
    /// Wrong codes a reservation survives; the next one cancels it. 0 = no limit.
    pub max_code_attempts: u32,
    /// Seconds a number rests after its reservation ends before it is lent again.
    pub cool_down: u32,
    /// Seconds after a reservation ended (by expiry or match) in which a late call finds it.
    pub late_match_grace: u32,
    /// Stray calls on one number within 24 h that quarantine it. 0 = never.
    pub quarantine_after_stray_calls: u32,
}

impl NumberPolicy {
    pub fn cool_down(&self) -> Duration {
        Duration::from_secs(u64::from(self.cool_down))
    }

    pub fn late_match_grace(&self) -> Duration {
        Duration::from_secs(u64::from(self.late_match_grace))
    }
}

impl Default for NumberPolicy {
    /// The contract's defaults: codes as the request says, five wrong codes, no rest, no
    /// grace, no quarantine.
    fn default() -> Self {
        Self {
            require_code: false,
            max_code_attempts: 5,
            cool_down: 0,
            late_match_grace: 0,
            quarantine_after_stray_calls: 0,
        }
    }
}

/// An admin change to a policy: each `Some` replaces that setting, `None` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyChange {
    pub require_code: Option<bool>,
    pub max_code_attempts: Option<u32>,
    pub cool_down: Option<u32>,
    pub late_match_grace: Option<u32>,
    pub quarantine_after_stray_calls: Option<u32>,
}

impl PolicyChange {
    pub fn apply(&self, to: NumberPolicy) -> NumberPolicy {
        NumberPolicy {
            require_code: self.require_code.unwrap_or(to.require_code),
            max_code_attempts: self.max_code_attempts.unwrap_or(to.max_code_attempts),
            cool_down: self.cool_down.unwrap_or(to.cool_down),
            late_match_grace: self.late_match_grace.unwrap_or(to.late_match_grace),
            quarantine_after_stray_calls: self
                .quarantine_after_stray_calls
                .unwrap_or(to.quarantine_after_stray_calls),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
