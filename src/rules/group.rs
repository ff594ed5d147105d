//! A group's settings after an admin change.

use crate::domain::{Allocation, BookingTimeout, NumberPolicy, PolicyChange};

/// The policy after an admin change: what it names, else the group's current policy, else
/// the defaults (a new group).
pub fn changed_policy(current: Option<NumberPolicy>, change: &PolicyChange) -> NumberPolicy {
    change.apply(current.unwrap_or_default())
}

/// What an admin change leaves: the allocation and booking time it names, else the group's
/// current ones (`current`, `None` for a new group), else round-robin and no booking time of
/// the group's own (the 30 s default applies).
pub fn changed_settings(
    current: Option<(Allocation, Option<BookingTimeout>)>,
    allocation: Option<Allocation>,
    booking_timeout: Option<BookingTimeout>,
) -> (Allocation, Option<BookingTimeout>) {
    let (old_allocation, old_timeout) = current.unwrap_or_default();
    (
        allocation.unwrap_or(old_allocation),
        booking_timeout.or(old_timeout),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let secs = |n| Some(BookingTimeout::from_secs_lenient(n));
        let (lru, rnd) = (Allocation::LeastRecentlyUsed, Allocation::Random);
        let cases = [
            (None, None, None, (Allocation::RoundRobin, None)),
            (None, Some(rnd), secs(60), (rnd, secs(60))),
            (Some((lru, secs(90))), None, None, (lru, secs(90))),
            (Some((lru, secs(90))), Some(rnd), None, (rnd, secs(90))),
            (Some((lru, None)), None, secs(45), (lru, secs(45))),
        ];
        for (current, allocation, timeout, want) in cases {
            assert_eq!(changed_settings(current, allocation, timeout), want);
        }
    }
}
