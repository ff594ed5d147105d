//! Expiry of reservations: exactly at `expires_at` with no sweeper, never after their
//! session's end, and the booking time chosen request > group > 30 s.

use access_broker::domain::{Allocation, BookingTimeout};

use crate::support::{TestStore, group, reserve_request};
use crate::{MS, SEC, exhausted, live_on, matches};

crate::conformance!(
    reservations_end_exactly_at_expiry,
    reservations_never_outlive_their_session,
    booking_timeout_falls_back_to_group_then_30,
);

async fn reservations_end_exactly_at_expiry(t: TestStore) {
    let g = t.with_group("DNIS", 1, Allocation::RoundRobin).await;
    let a = t.session(300 * SEC).await;
    let r = t.reserve(&a, &g).await.expect("reserved");
    let n = r.number.to_string();
    let b = t.session(300 * SEC).await;
    t.advance(30 * SEC - MS);
    exhausted(t.reserve(&b, &g).await);
    assert_eq!(live_on(&t, &n).await, 1, "held 1 ms before expiry");
    t.advance(MS);
    assert_eq!(live_on(&t, &n).await, 0, "not live at expiry");
    assert!(!matches(&t, &r.number).await, "expired: no match");
    let r2 = t.reserve(&b, &g).await;
    assert_eq!(
        r2.expect("free at expiry, no sweeper needed").number,
        r.number
    );
}

async fn reservations_never_outlive_their_session(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let s = t.session(12 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    assert_eq!(r.expires_in, 12 * SEC, "capped at the session's expiry");
    t.advance(12 * SEC);
    let other = t.session(300 * SEC).await;
    let r2 = t.reserve(&other, &g).await.expect("reserved");
    assert_eq!(
        r2.pool_free, 1,
        "the capped reservation ended with its session"
    );
}

async fn booking_timeout_falls_back_to_group_then_30(t: TestStore) {
    let mut spec = group("DNIS", 3, Allocation::RoundRobin);
    spec.settings.booking_timeout = Some(BookingTimeout::from_secs_lenient(90));
    let dnis = spec.settings.name.clone();
    t.store.apply_groups(&[spec]).await.expect("apply");
    let other = t.with_group("OTHER", 1, Allocation::RoundRobin).await;
    // (group, booking time asked for, booking time expected, why)
    for (g, asked, want, why) in [
        (&dnis, None, 90, "group timeout"),
        (&dnis, Some(600), 600, "request beats group"),
        (&other, None, 30, "default 30"),
    ] {
        let s = t.session(3000 * SEC).await;
        let mut req = reserve_request(&s, g);
        req.timeout = asked.map(BookingTimeout::from_secs_lenient);
        let r = t.store.reserve(req).await.expect("reserved");
        assert_eq!(r.expires_in, want * SEC, "{why}");
    }
}
