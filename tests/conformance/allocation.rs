//! Allocation: round-robin walks on and wraps, least-recently-used hands out the number free
//! longest, random hands out every number before refusing.

use std::collections::HashSet;

use access_broker::domain::Allocation;

use crate::support::TestStore;
use crate::{SEC, exhausted, reserve_fresh};

crate::conformance!(
    round_robin_walks_in_order,
    least_recently_used_picks_the_longest_free,
    random_hands_out_every_number,
);

async fn round_robin_walks_in_order(t: TestStore) {
    let g = t.with_group("DNIS", 4, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let first = t.reserve(&s, &g).await.expect("reserved");
    assert_eq!(first.number.to_string(), "5550000");
    assert!(
        t.store.end_session(&s).await.expect("end"),
        "free the first one again"
    );
    // (number expected, why): walks on from the last one, not back to a freed one, then wraps.
    for (want, why) in [
        ("5550001", "walks on"),
        ("5550002", "walks on, not back to a freed one"),
        ("5550003", "walks on"),
        ("5550000", "then wraps"),
    ] {
        let r = reserve_fresh(&t, &g).await;
        assert_eq!(r.number.to_string(), want, "{why}");
    }
}

async fn least_recently_used_picks_the_longest_free(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::LeastRecentlyUsed).await;
    let mut holders = Vec::new();
    for _ in 0..3 {
        let s = t.session(300 * SEC).await;
        let n = t.reserve(&s, &g).await.expect("reserved").number;
        holders.push((s, n));
    }
    // Free them in the order 2, 0, 1; LRU must hand them out in that order.
    for i in [2, 0, 1] {
        t.advance(SEC);
        assert!(t.store.end_session(&holders[i].0).await.expect("end"));
    }
    for i in [2, 0, 1] {
        assert_eq!(reserve_fresh(&t, &g).await.number, holders[i].1);
    }
}

async fn random_hands_out_every_number(t: TestStore) {
    let g = t.with_group("DNIS", 20, Allocation::Random).await;
    let mut seen = HashSet::new();
    for _ in 0..20 {
        assert!(seen.insert(reserve_fresh(&t, &g).await.number));
    }
    let s = t.session(300 * SEC).await;
    exhausted(t.reserve(&s, &g).await);
}
