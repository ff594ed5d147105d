//! `[limits] reservations_per_client`: whether a client may take one more reservation, and
//! when it may try again if not.
//!
//! A client's quota counts the live reservations the store holds for it (`Hold::client` in the
//! engine, `numbers.client` on PostgreSQL), decided in the same step as the reservation, so a
//! burst of one client's calls, calls through several nodes, and calls after a restart all
//! meet the same count. A renewal (the session already holds a number in the group) takes no
//! number from the pool and always passes, whoever asks; the reservation goes on counting for
//! the client that made it ([`owner`]).
//!
//! A refusal says when the client may come back (`Retry-After`, as an empty pool does): once
//! enough of its reservations have ended for one more to fit, by their expiries. A match or a
//! session end may free one sooner; a renewal may push one later.

use std::time::Duration;

use crate::domain::UnixMillis;
use crate::store::{ClientId, Quota, ReserveError};

/// Who a reservation counts for after a call that made or renewed it: `current`, the client
/// the live reservation counts for (`None` for a new one), else `asker`, the client that
/// asked (`None` when clients are not counted).
///
/// A reservation counts for the client that made it for as long as it lives: a renewal by
/// another client (the same session asked for from another address or user) passes, as
/// every renewal does, but does not take the reservation over. When it did (the reservation
/// counted for whoever asked last), two clients could pass reservations back and forth, each
/// renewal freeing the other's place, and hold a whole pool between them with a limit of two
/// each (an outside audit). One made while clients were not counted counts for the first
/// client that renews it.
pub fn owner(current: Option<&ClientId>, asker: Option<&ClientId>) -> Option<ClientId> {
    current.or(asker).cloned()
}

/// Refuses a new reservation for `quota.client` when the live reservations it holds (`ends`:
/// when each of them expires) are as many as its limit. A client holds more than its limit
/// only after a lowered limit or a renewal of a reservation made while clients were not
/// counted; the refusal says how many it holds, and waits for as many of them to end as are
/// over it.
///
/// Counted before anything is gathered: a client under its limit (nearly every call) costs a
/// walk of its reservations, and only a refusal sorts out the one whose end makes room.
pub fn admit(
    quota: &Quota,
    ends: impl Iterator<Item = UnixMillis> + Clone,
    now: UnixMillis,
) -> Result<(), ReserveError> {
    let held = ends.clone().count() as u64;
    let Some(over) = held.checked_sub(quota.limit) else {
        return Ok(());
    };
    let mut ends: Vec<UnixMillis> = ends.collect();
    let room_at = usize::try_from(over)
        .ok()
        .filter(|&i| i < ends.len())
        .map(|i| *ends.select_nth_unstable(i).1);
    let wait = room_at.map_or(Duration::ZERO, |end| end.remaining_from(now));
    Err(ReserveError::QuotaExceeded {
        held,
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
                held: 2..,
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
    fn a_refusal_says_how_many_are_held() {
        let now = UnixMillis(0);
        let ends = [UnixMillis(1_000), UnixMillis(2_000), UnixMillis(3_000)];
        let refused = admit(&quota(2), ends.into_iter(), now);
        assert!(
            matches!(
                refused,
                Err(ReserveError::QuotaExceeded {
                    held: 3,
                    limit: 2,
                    ..
                })
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn a_reservation_counts_for_its_maker_while_it_lives() {
        let (maker, other): (ClientId, ClientId) = ("ip:127.0.0.1".into(), "ip:127.0.0.2".into());
        assert_eq!(owner(None, Some(&maker)), Some(maker.clone()), "a new one");
        assert_eq!(
            owner(Some(&maker), Some(&other)),
            Some(maker.clone()),
            "renewed by another client"
        );
        assert_eq!(owner(Some(&maker), None), Some(maker.clone()), "limits off");
        assert_eq!(owner(None, Some(&other)), Some(other), "made uncounted");
        assert_eq!(owner(None, None), None);
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
