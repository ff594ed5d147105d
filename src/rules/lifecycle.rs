//! The life of a number around its reservations: how a reservation ends, when the number may
//! be lent again (cool-down), what is remembered of the last reservation (for late calls and
//! failure reasons), and when stray calls quarantine it.
//!
//! Free, reserved, cooling, quarantined and retiring are the states (docs/lifecycle.md); a
//! store keeps for each number its live reservation, its [`Ended`] last one, the times of its
//! recent stray calls, and `free_from`: the moment it may be lent again.

use std::time::Duration;

use crate::domain::{AccessCode, NumberPolicy, PhoneNumber, SessionId, UnixMillis};

/// How long a number remembers its last reservation for failure reasons, and how far back
/// stray calls count towards quarantine.
pub const MEMORY: Duration = Duration::from_secs(24 * 3600);

/// How a reservation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// It reached its expiry unmatched.
    Expired,
    /// A call matched it.
    Matched,
    /// Its session ended (deleted, or matched with `_delete_service`).
    SessionEnded,
    /// An operator released it.
    Released,
    /// Too many wrong codes cancelled it.
    Locked,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Matched => "matched",
            Self::SessionEnded => "session_ended",
            Self::Released => "released",
            Self::Locked => "locked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Expired,
            Self::Matched,
            Self::SessionEnded,
            Self::Released,
            Self::Locked,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// Whether a late call may still find the reservation (within the grace): only one that
    /// ended by itself or by a match; an operator's release, a lockout or a session's end
    /// closes it for good.
    pub fn allows_late_match(self) -> bool {
        matches!(self, Self::Expired | Self::Matched)
    }

    /// The lifecycle event a store records for this ending.
    pub fn event(self) -> crate::events::EventKind {
        use crate::events::EventKind;
        match self {
            Self::Expired => EventKind::Expired,
            Self::Matched => EventKind::Matched,
            Self::SessionEnded | Self::Released => EventKind::Released,
            Self::Locked => EventKind::Locked,
        }
    }
}

/// A number's last ended reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub session: SessionId,
    pub code: Option<AccessCode>,
    pub phone: Option<PhoneNumber>,
    pub at: UnixMillis,
    pub reason: EndReason,
}

/// When a reservation ended: at its expiry if that came first (a session that ends after its
/// reservation expired does not move the end), else now.
pub fn ended_at(expires_at: UnixMillis, now: UnixMillis) -> UnixMillis {
    expires_at.min(now)
}

/// When a number whose reservation ended at `ended_at` may be lent again: after the group's
/// cool-down. It is also the number's place in least-recently-used order.
pub fn free_from(ended_at: UnixMillis, policy: &NumberPolicy) -> UnixMillis {
    ended_at.plus(policy.cool_down())
}

/// Most stray-call times a number keeps (the admin API counts at most this many).
pub const MAX_STRAYS_KEPT: usize = 100;

/// What a stray call does to a number: its recent stray times (within [`MEMORY`], oldest
/// first, this one added) and whether it is now quarantined (the N-th within 24 h, N =
/// `quarantine_after_stray_calls`; 0 never quarantines). The last N (at least
/// [`MAX_STRAYS_KEPT`], and at least `max_code_attempts`: they bound guesses at an ended
/// reservation's code, `call::decide`) are kept: older ones can no longer make an N-th.
pub fn stray_call(
    recent: &[UnixMillis],
    now: UnixMillis,
    policy: &NumberPolicy,
) -> (Vec<UnixMillis>, bool) {
    let keep = (policy.quarantine_after_stray_calls as usize)
        .max(policy.max_code_attempts as usize)
        .max(MAX_STRAYS_KEPT);
    let window_start = UnixMillis(now.0.saturating_sub(MEMORY.as_millis() as i64));
    let mut times: Vec<UnixMillis> = recent
        .iter()
        .copied()
        .filter(|t| *t > window_start)
        .collect();
    times.push(now);
    if times.len() > keep {
        times.drain(..times.len() - keep);
    }
    let n = policy.quarantine_after_stray_calls as usize;
    let quarantined = n > 0 && times.len() >= n;
    (times, quarantined)
}

/// Stray calls on a number within the last 24 h, as the admin API shows them.
pub fn recent_strays(times: &[UnixMillis], now: UnixMillis) -> u64 {
    let window_start = now.0.saturating_sub(MEMORY.as_millis() as i64);
    times.iter().filter(|t| t.0 > window_start).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = UnixMillis(100_000_000);

    fn policy(cool_down: u32, quarantine: u32) -> NumberPolicy {
        NumberPolicy {
            cool_down,
            quarantine_after_stray_calls: quarantine,
            ..NumberPolicy::default()
        }
    }

    #[test]
    fn a_number_rests_for_the_cool_down_after_its_reservation_ends() {
        assert_eq!(free_from(NOW, &policy(0, 0)), NOW);
        assert_eq!(free_from(NOW, &policy(30, 0)), UnixMillis(NOW.0 + 30_000));
        assert_eq!(ended_at(UnixMillis(5), NOW), UnixMillis(5));
        assert_eq!(ended_at(UnixMillis(NOW.0 + 5), NOW), NOW);
    }

    #[test]
    fn the_nth_stray_call_within_a_day_quarantines() {
        let day = MEMORY.as_millis() as i64;
        let cases: [(&[i64], u32, usize, bool); 6] = [
            (&[], 0, 1, false),
            (&[], 1, 1, true),
            (&[-10], 2, 2, true),
            (&[-day - 1], 2, 1, false),
            (&[-30, -20, -10], 2, 4, true),
            (&[-30, -20, -10], 0, 4, false),
        ];
        for (before, n, kept, quarantined) in cases {
            let before: Vec<UnixMillis> = before.iter().map(|d| UnixMillis(NOW.0 + d)).collect();
            let (times, q) = stray_call(&before, NOW, &policy(0, n));
            assert_eq!((times.len(), q), (kept, quarantined), "{before:?} n={n}");
            assert_eq!(times.last(), Some(&NOW));
        }
    }

    #[test]
    fn late_matches_follow_only_expiry_and_match() {
        let late: Vec<_> = [
            EndReason::Expired,
            EndReason::Matched,
            EndReason::SessionEnded,
            EndReason::Released,
            EndReason::Locked,
        ]
        .into_iter()
        .filter(|r| r.allows_late_match())
        .collect();
        assert_eq!(late, [EndReason::Expired, EndReason::Matched]);
        for r in late {
            assert_eq!(EndReason::parse(r.as_str()), Some(r));
        }
    }
}
