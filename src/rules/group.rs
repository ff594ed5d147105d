//! A group's settings and numbers after an admin change.

use std::collections::HashSet;

use crate::domain::{
    AccessNumber, Allocation, BookingTimeout, GroupName, NumberPolicy, PolicyChange,
};

/// The policy after an admin change: what it names, else the group's current policy, else
/// the defaults (a new group).
pub fn changed_policy(current: Option<NumberPolicy>, change: &PolicyChange) -> NumberPolicy {
    change.apply(current.unwrap_or_default())
}

/// What an admin change leaves: the allocation and booking time it names (a booking time
/// named as `None`: none of the group's own, the service's or the 30 s default applies), else
/// the group's current ones (`current`, `None` for a new group), else round-robin and no
/// booking time of the group's own.
pub fn changed_settings(
    current: Option<(Allocation, Option<BookingTimeout>)>,
    allocation: Option<Allocation>,
    booking_timeout: Option<Option<BookingTimeout>>,
) -> (Allocation, Option<BookingTimeout>) {
    let (old_allocation, old_timeout) = current.unwrap_or_default();
    (
        allocation.unwrap_or(old_allocation),
        booking_timeout.unwrap_or(old_timeout),
    )
}

/// Which of an admin request's `numbers` join `group`: each once, in the order sent, without
/// those `group` already has (whatever their state), so that a `PUT` or an add sent again
/// changes nothing. A number of another group (`owner` names a number's group, `None` for
/// none) refuses the whole request: `Err((number, its group))`.
pub fn numbers_to_add(
    group: &GroupName,
    numbers: Vec<AccessNumber>,
    owner: impl Fn(&AccessNumber) -> Option<GroupName>,
) -> Result<Vec<AccessNumber>, (AccessNumber, GroupName)> {
    let mut seen = HashSet::with_capacity(numbers.len());
    let mut add = Vec::with_capacity(numbers.len());
    for number in numbers {
        match owner(&number) {
            Some(other) if other != *group => return Err((number, other)),
            Some(_) => {}
            None if seen.insert(number.clone()) => add.push(number),
            None => {}
        }
    }
    Ok(add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_a_group_has_are_left_out_and_another_groups_refuse() {
        let n = |s: &str| AccessNumber::parse(s).expect("number");
        let g = |s: &str| GroupName::parse(s).expect("group");
        let owner = |x: &AccessNumber| match x.as_str() {
            "100" => Some(g("DNIS")),
            "900" => Some(g("OTHER")),
            _ => None,
        };
        let sent = vec![n("101"), n("100"), n("102"), n("101")];
        assert_eq!(
            numbers_to_add(&g("DNIS"), sent, owner),
            Ok(vec![n("101"), n("102")]),
            "its own number skipped, a repeat added once, the order kept"
        );
        assert_eq!(
            numbers_to_add(&g("DNIS"), vec![n("103"), n("900")], owner),
            Err((n("900"), g("OTHER")))
        );
        assert_eq!(
            numbers_to_add(&g("NEW"), vec![n("100")], owner),
            Err((n("100"), g("DNIS"))),
            "a new group cannot take another's number"
        );
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let secs = |n| Some(BookingTimeout::from_secs_lenient(n));
        let (lru, rnd) = (Allocation::LeastRecentlyUsed, Allocation::Random);
        let cases = [
            (None, None, None, (Allocation::RoundRobin, None)),
            (None, Some(rnd), Some(secs(60)), (rnd, secs(60))),
            (Some((lru, secs(90))), None, None, (lru, secs(90))),
            (Some((lru, secs(90))), Some(rnd), None, (rnd, secs(90))),
            (Some((lru, None)), None, Some(secs(45)), (lru, secs(45))),
            // Named as none: the group's own is cleared.
            (Some((lru, secs(90))), None, Some(None), (lru, None)),
        ];
        for (current, allocation, timeout, want) in cases {
            assert_eq!(changed_settings(current, allocation, timeout), want);
        }
    }
}
