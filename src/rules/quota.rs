//! `[limits] reservations_per_client`: whether a client may take one more reservation.
//!
//! A client's quota counts the live reservations the store holds for it (`Hold::client` in the
//! engine, `numbers.client` on PostgreSQL), decided in the same step as the reservation, so a
//! burst of one client's calls, calls through several nodes, and calls after a restart all
//! meet the same count. A renewal (the session already holds a number in the group) takes no
//! number from the pool and always passes, whoever asks.

use crate::store::{Quota, ReserveError};

/// Refuses a new reservation for `quota.client` when it already holds `held` live ones and
/// that is its limit. `held` may be counted only up to the limit (the engine stops there), so
/// the refusal says the limit: a client holds more only after its renewals of other
/// clients' reservations (which always pass) or a lowered limit.
pub fn admit(quota: &Quota, held: u64) -> Result<(), ReserveError> {
    if held >= quota.limit {
        return Err(ReserveError::QuotaExceeded {
            held: quota.limit,
            limit: quota.limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_the_most_held() {
        let quota = Quota {
            client: "ip:127.0.0.1".into(),
            limit: 2,
        };
        assert!(admit(&quota, 0).is_ok());
        assert!(admit(&quota, 1).is_ok());
        for held in [2, 3] {
            assert!(matches!(
                admit(&quota, held),
                Err(ReserveError::QuotaExceeded { held: 2, limit: 2 })
            ));
        }
    }
}
