//! Short scenarios for drifts the random sequences found (or were known before), so each has
//! a test that names it. Every scenario runs on every store; the number its last
//! reservation got must be the same everywhere (and, where the contract says which, that one).

use std::time::Duration;

use access_broker::domain::{AccessNumber, Allocation, BookingTimeout, GroupName};
use access_broker::store::{AddNumbers, GroupSpec, MatchRequest, RemoveNumber};

use crate::stores::{Stores, put_group};
use crate::support::{TestStore, group, number, reserve_request};

const SEC: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(600);

async fn take(t: &TestStore, g: &GroupName) -> AccessNumber {
    let s = t.session(LONG).await;
    t.reserve(&s, g).await.expect("reserved").number
}

async fn take_for(t: &TestStore, g: &GroupName, secs: i64) -> AccessNumber {
    let s = t.session(LONG).await;
    let mut req = reserve_request(&s, g);
    req.timeout = Some(BookingTimeout::from_secs_lenient(secs));
    t.store.reserve(req).await.expect("reserved").number
}

async fn give_back(t: &TestStore, number: AccessNumber) {
    let m = MatchRequest {
        number,
        code: None,
        phone: None,
        code_required: false,
        end_session: false,
        with_fields: true,
    };
    assert!(
        t.store
            .match_reservation(m)
            .await
            .expect("match")
            .into_session()
            .is_some()
    );
}

/// Each store's pick; panics unless all agree (and equal `want`, when given).
fn assert_same(case: &str, picks: Vec<(&'static str, AccessNumber)>, want: Option<&AccessNumber>) {
    let first = &picks[0].1;
    let agree = picks.iter().all(|(_, n)| n == first);
    let right = want.is_none_or(|w| picks.iter().all(|(_, n)| n == w));
    assert!(
        agree && right,
        "{case}: the stores picked {picks:?}{}",
        want.map_or(String::new(), |w| format!(", the contract says {w}"))
    );
}

/// Applies `spec` on every store, runs `scenario` there, and collects the number each store's
/// scenario ends with.
async fn pick_on_each_store(
    spec: &GroupSpec,
    scenario: impl AsyncFn(&TestStore, &GroupName) -> AccessNumber,
) -> Vec<(&'static str, AccessNumber)> {
    let stores = Stores::open().await;
    let mut picks = Vec::new();
    for side in &stores.sides {
        let (t, g) = (&side.t, &spec.settings.name);
        t.store
            .apply_groups(std::slice::from_ref(spec))
            .await
            .expect("apply");
        picks.push((side.name(), scenario(t, g).await));
    }
    picks
}

/// A group switched away from round-robin and back starts again at its first number
/// (`rules::cursor_after_change`).
pub async fn cursor_resets_on_allocation_change() {
    let spec = group("CURSOR", 5, Allocation::RoundRobin);
    let picks = pick_on_each_store(&spec, async |t, g| {
        for _ in 0..2 {
            let n = take(t, g).await;
            give_back(t, n).await;
        }
        for allocation in [Allocation::LeastRecentlyUsed, Allocation::RoundRobin] {
            let change = put_group(&t.store, g, allocation, None).await;
            assert_eq!(change.ok(), Some(false));
        }
        take(t, g).await
    })
    .await;
    let case = "round-robin -> least-recently-used -> round-robin, then reserve";
    assert_same(case, picks, Some(&spec.numbers[0]));
}

/// A group switched to least-recently-used keeps the time each free number became free: the
/// number given back first is the one free the longest.
pub async fn lru_order_after_allocation_change() {
    let spec = group("AGES", 3, Allocation::RoundRobin);
    let picks = pick_on_each_store(&spec, async |t, g| {
        let held = [take(t, g).await, take(t, g).await, take(t, g).await];
        for n in held.into_iter().rev() {
            t.advance(SEC);
            give_back(t, n).await;
        }
        let change = put_group(&t.store, g, Allocation::LeastRecentlyUsed, None).await;
        assert_eq!(change.ok(), Some(false));
        take(t, g).await
    })
    .await;
    let case = "numbers freed last-to-first, then the group switched to least-recently-used";
    assert_same(case, picks, Some(&spec.numbers[2]));
}

/// The same switch made by the config at start (the groups applied again), not the admin API.
pub async fn lru_order_after_config_change() {
    let spec = group("AGESCFG", 3, Allocation::RoundRobin);
    let picks = pick_on_each_store(&spec, async |t, g| {
        let held = [take(t, g).await, take(t, g).await, take(t, g).await];
        for n in held.into_iter().rev() {
            t.advance(SEC);
            give_back(t, n).await;
        }
        t.with_group("AGESCFG", 3, Allocation::LeastRecentlyUsed)
            .await;
        take(t, g).await
    })
    .await;
    let case =
        "numbers freed last-to-first, then the config switched the group to least-recently-used";
    assert_same(case, picks, Some(&spec.numbers[2]));
}

/// Round-robin walks the numbers in the order they were added: a number added after the last
/// one was removed comes after the ones handed out, not in the removed one's place.
pub async fn round_robin_after_replacing_the_last_number() {
    let spec = group("REPLACE", 3, Allocation::RoundRobin);
    let added = number(&format!("{}0100", crate::support::prefix("REPLACE")));
    let picks = pick_on_each_store(&spec, async |t, g| {
        for _ in 0..3 {
            let n = take(t, g).await;
            give_back(t, n).await;
        }
        let removed = t.store.remove_number(g, &spec.numbers[2]).await;
        assert_eq!(removed.ok(), Some(RemoveNumber::Removed));
        let add = t.store.add_numbers(g, vec![added.clone()]).await;
        assert_eq!(add.ok(), Some(AddNumbers::Added(1)));
        take(t, g).await
    })
    .await;
    let case = "3 numbers handed out in turn, the last removed, a new one added, then reserve";
    assert_same(case, picks, Some(&added));
}

/// A number is free from the moment its reservation expired, even when the session is
/// ended later: least-recently-used must then prefer it over one that expired after it.
pub async fn lru_counts_from_expiry_when_the_session_ends_later() {
    let spec = group("EXPIRED", 2, Allocation::LeastRecentlyUsed);
    let picks = pick_on_each_store(&spec, async |t, g| {
        let a = t.session(LONG).await;
        let mut req = reserve_request(&a, g);
        req.timeout = Some(BookingTimeout::from_secs_lenient(10));
        let first = t.store.reserve(req).await.expect("reserved").number;
        assert_eq!(first, spec.numbers[0]);
        t.advance(SEC);
        assert_eq!(take_for(t, g, 10).await, spec.numbers[1]);
        t.advance(20 * SEC);
        // Both reservations expired (at 10 s and 11 s); ending the first one's session
        // must not make its number look freed just now.
        assert!(t.store.end_session(&a).await.expect("end"));
        take(t, g).await
    })
    .await;
    let case = "reservations expired at 10 s and 11 s, the first one's session ended at 21 s";
    assert_same(case, picks, Some(&spec.numbers[0]));
}
