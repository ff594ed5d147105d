//! `[limits] reservations_per_client`: whether a client may take one more reservation, and
//! when it may try again if not.
//!
//! A client's quota counts the live reservations the store holds for it (`Hold::client` in the
//! engine, `numbers.client` on PostgreSQL), decided in the same step as the reservation, so a
//! burst of one client's calls, calls through several nodes, and calls after a restart all
//! meet the same count. A renewal (the session already holds a number in the group) takes no
//! number from the pool and always passes, whoever asks.
//!
//! A refusal says when the client may come back (`Retry-After`, as an empty pool does): once
//! enough of its reservations have ended for one more to fit, by their expiries. A match or a
//! session end may free one sooner; a renewal may push one later.

use std::time::Duration;

use crate::domain::UnixMillis;
use crate::store::{Quota, ReserveError};

/// Refuses a new reservation for `quota.client` when the live reservations it holds (`ends`:
/// when each of them expires) are as many as its limit. A client holds more than its limit
/// only after its renewals of other clients' reservations (which always pass) or a lowered
/// limit; the refusal says the limit as what it holds, and waits for as many of them to end
/// as are over it.
///
/// Counted before anything is gathered: a client under its limit (nearly every call) costs a
/// walk of its reservations, and only a refusal sorts out the one whose end makes room.
pub fn admit(
    quota: &Quota,
    ends: impl Iterator<Item = UnixMillis> + Clone,
    now: UnixMillis,
) -> Result<(), ReserveError> {
    let Some(over) = (ends.clone().count() as u64).checked_sub(quota.limit) else {
        return Ok(());
    };
    let mut ends: Vec<UnixMillis> = ends.collect();
    let room_at = usize::try_from(over)
        .ok()
        .filter(|&i| i < ends.len())
        .map(|i| *ends.select_nth_unstable(i).1);
    let wait = room_at.map_or(Duration::ZERO, |end| end.remaining_from(now));
    Err(ReserveError::QuotaExceeded {
        held: quota.limit,
        limit: quota.limit,
        retry_after: wait.max(Duration::from_secs(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(limit: u64) -> Quota {
        Quota {
            client: "ip:127.0.0.1".into(),
            limit,
        }
    }

    fn retry_after(result: Result<(), ReserveError>) -> Duration {
        match result {
            Err(ReserveError::QuotaExceeded {
                held: 2,
                limit: 2,
                retry_after,
            }) => retry_after,
            other => panic!("not a refusal at the limit: {other:?}"),
        }
    }

    #[test]
    fn the_limit_is_the_most_held() {
        let now = UnixMillis(1_000_000);
        let ends = |n: usize| {
            (0..n)
                .rev()
                .map(move |i| UnixMillis(now.0 + 10_000 * (i as i64 + 1)))
        };
        assert!(admit(&quota(2), ends(0), now).is_ok());
        assert!(admit(&quota(2), ends(1), now).is_ok());
        assert_eq!(
            retry_after(admit(&quota(2), ends(2), now)),
            Duration::from_secs(10),
            "one more fits once the first of the two ends"
        );
        assert_eq!(
            retry_after(admit(&quota(2), ends(3), now)),
            Duration::from_secs(20),
            "three held against two allowed: two must end"
        );
    }

    #[test]
    fn the_wait_is_at_least_a_second() {
        let now = UnixMillis(5_000);
        let ends = [UnixMillis(9_000), UnixMillis(5_200)];
        assert_eq!(
            retry_after(admit(&quota(2), ends.into_iter(), now)),
            Duration::from_secs(1)
        );
    }
}
