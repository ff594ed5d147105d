//! Booking time, renewal and Retry-After: what a request-access writes on its number.

use std::time::Duration;

use crate::domain::{AccessCode, BookingTimeout, PhoneNumber, UnixMillis};

/// What a reservation holds after a request-access: the values a store writes on the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub code: Option<AccessCode>,
    pub phone: Option<PhoneNumber>,
    pub expires_at: UnixMillis,
}

/// The reservation a request-access leaves, new or renewed.
///
/// - Booking time: the request's (or service's) timeout, else the group's, else 30 s; the
///   bounds 5..=1800 s are those of [`BookingTimeout`], so nothing out of range gets here.
/// - A reservation never outlives its session: the expiry is capped at the session's.
/// - Renewal (`current` is the session's live reservation in the group): the number and its
///   code stay (a caller may already have been told the code); a fresh code is used only when
///   the reservation had none. A phone number given replaces the one held; none keeps it.
pub fn book(
    now: UnixMillis,
    timeout: Option<BookingTimeout>,
    group_timeout: Option<BookingTimeout>,
    session_expires_at: UnixMillis,
    fresh_code: Option<AccessCode>,
    phone: Option<PhoneNumber>,
    current: Option<&Booking>,
) -> Booking {
    let timeout = timeout.or(group_timeout).unwrap_or(BookingTimeout::DEFAULT);
    let expires_at = now.plus(timeout.duration()).min(session_expires_at);
    let (code, phone) = match current {
        Some(held) => (
            held.code.clone().or(fresh_code),
            phone.or_else(|| held.phone.clone()),
        ),
        None => (fresh_code, phone),
    };
    Booking {
        code,
        phone,
        expires_at,
    }
}

/// The fresh code a request-access offers the reservation: when the request (or service)
/// asks for one, or the group requires codes whatever the request says.
pub fn code_to_give(
    asked: bool,
    policy: &crate::domain::NumberPolicy,
    fresh: Option<AccessCode>,
) -> Option<AccessCode> {
    if asked || policy.require_code {
        fresh
    } else {
        None
    }
}

/// How long a refused caller should wait on an empty pool: until the group's earliest live
/// reservation ends, and at least one second (also when the pool has no reservation at all,
/// e.g. every number is retiring).
pub fn retry_after(now: UnixMillis, first_expiry: Option<UnixMillis>) -> Duration {
    first_expiry
        .map_or(Duration::ZERO, |at| at.remaining_from(now))
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = UnixMillis(1_000_000);

    fn secs(n: i64) -> Option<BookingTimeout> {
        Some(BookingTimeout::from_secs_lenient(n))
    }

    fn code(s: &str) -> Option<AccessCode> {
        Some(AccessCode::from_stored(s.to_owned()))
    }

    fn phone(s: &str) -> Option<PhoneNumber> {
        Some(PhoneNumber::parse(s).expect("phone"))
    }

    #[test]
    fn booking_time_is_request_then_group_then_30_s_capped_by_the_session() {
        let far = UnixMillis(i64::MAX);
        let cases = [
            (secs(60), secs(120), far, 60_000),
            (None, secs(120), far, 120_000),
            (None, None, far, 30_000),
            (secs(60), None, NOW.plus(Duration::from_secs(10)), 10_000),
        ];
        for (timeout, group, session, want_ms) in cases {
            let b = book(NOW, timeout, group, session, None, None, None);
            assert_eq!(b.expires_at.0 - NOW.0, want_ms, "{timeout:?} {group:?}");
        }
    }

    #[test]
    fn renewal_keeps_the_code_and_replaces_the_phone_only_when_given() {
        let far = UnixMillis(i64::MAX);
        let held = Booking {
            code: code("1234"),
            phone: phone("5551"),
            expires_at: NOW,
        };
        let renewed = book(NOW, None, None, far, code("9999"), None, Some(&held));
        assert_eq!((renewed.code, renewed.phone), (code("1234"), phone("5551")));
        let renewed = book(
            NOW,
            None,
            None,
            far,
            code("9999"),
            phone("5552"),
            Some(&held),
        );
        assert_eq!(renewed.phone, phone("5552"));
        let no_code = Booking { code: None, ..held };
        let renewed = book(NOW, None, None, far, code("9999"), None, Some(&no_code));
        assert_eq!(
            renewed.code,
            code("9999"),
            "a reservation without a code takes one"
        );
    }

    #[test]
    fn retry_after_is_the_first_expiry_and_at_least_a_second() {
        assert_eq!(retry_after(NOW, None), Duration::from_secs(1));
        assert_eq!(retry_after(NOW, Some(NOW)), Duration::from_secs(1));
        let later = NOW.plus(Duration::from_millis(42_500));
        assert_eq!(retry_after(NOW, Some(later)), Duration::from_millis(42_500));
    }
}
