//! The life of a number around its reservations, on every store: cool-down, late calls,
//! failure reasons, wrong-code lockout, `require_code`, stray calls and quarantine. The rules
//! are `access_broker::rules::{call, lifecycle}`; these cases hold each store to them with
//! the clock stepped onto the boundaries.

use access_broker::domain::{Allocation, NumberPolicy, PolicyChange};
use access_broker::rules::call::Reason;
use access_broker::store::{
    FreeNumber, GroupChange, GroupStats, MatchOutcome, MatchRequest, NumberState, RemoveNumber,
    Reservation,
};

use crate::support::{TestStore, group, number, reserve_request};
use crate::{MS, SEC, code, exhausted, plain_match, reserve_fresh};

crate::conformance!(
    cool_down_rests_a_number_after_every_ending,
    a_cool_down_changed_during_a_reservation_counts_when_it_ends,
    late_calls_find_an_ended_reservation_within_the_grace,
    a_live_reservation_that_accepts_wins_over_a_late_one,
    wrong_codes_count_even_when_a_late_call_answers,
    refused_calls_say_why,
    wrong_codes_cancel_the_reservation_after_the_limit,
    require_code_beats_the_request_and_the_lenient_match,
    stray_calls_quarantine_a_number_until_freed,
    a_number_taken_over_an_expired_reservation_reports_its_expiry,
    a_removed_numbers_reservation_reports_its_expiry,
);

/// A one-group store whose group has `size` numbers and this policy.
pub(crate) async fn with_policy(
    t: &TestStore,
    size: u32,
    policy: NumberPolicy,
) -> access_broker::domain::GroupName {
    let mut spec = group("DNIS", size, Allocation::RoundRobin);
    spec.settings.policy = policy;
    let name = spec.settings.name.clone();
    t.store.apply_groups(&[spec]).await.expect("apply groups");
    name
}

pub(crate) async fn call(t: &TestStore, req: MatchRequest) -> MatchOutcome {
    t.store.match_reservation(req).await.expect("match")
}

pub(crate) fn reason(o: &MatchOutcome) -> Option<Reason> {
    match o {
        MatchOutcome::NoMatch { reason, .. } => Some(*reason),
        MatchOutcome::Matched { .. } => None,
    }
}

fn late_session(o: &MatchOutcome) -> Option<(String, bool)> {
    match o {
        MatchOutcome::Matched { session, late, .. } => Some((session.id.to_string(), *late)),
        MatchOutcome::NoMatch { .. } => None,
    }
}

async fn stats(t: &TestStore, g: &access_broker::domain::GroupName) -> GroupStats {
    t.store
        .group(g)
        .await
        .expect("group")
        .expect("exists")
        .stats
}

pub(crate) async fn state_of(
    t: &TestStore,
    g: &access_broker::domain::GroupName,
    n: &str,
) -> (NumberState, u64) {
    let detail = t.store.group(g).await.expect("group").expect("exists");
    let v = detail
        .numbers
        .into_iter()
        .find(|v| v.number.as_str() == n)
        .expect("listed");
    (v.state, v.stray_calls)
}

pub(crate) async fn reserve_coded(
    t: &TestStore,
    g: &access_broker::domain::GroupName,
    s: &access_broker::domain::SessionId,
    c: &str,
) -> Reservation {
    let mut req = reserve_request(s, g);
    req.code = Some(code(c));
    req.provide_code = true;
    t.store.reserve(req).await.expect("reserved")
}

async fn cool_down_rests_a_number_after_every_ending(t: TestStore) {
    let policy = NumberPolicy {
        cool_down: 10,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 1, policy).await;
    let r = reserve_fresh(&t, &g).await;
    let n = r.number.to_string();
    let other = t.session(300 * SEC).await;
    assert_eq!(
        exhausted(t.reserve(&other, &g).await),
        40 * SEC,
        "held 30 s, then 10 s rest"
    );
    assert!(late_session(&call(&t, plain_match(&r.number)).await).is_some());
    assert_eq!(
        state_of(&t, &g, &n).await.0,
        NumberState::Cooling { seconds_left: 10 }
    );
    let s = stats(&t, &g).await;
    assert_eq!(
        (s.free, s.reserved, s.cooling),
        (0, 0, 1),
        "cooling is neither free nor reserved"
    );
    assert_eq!(exhausted(t.reserve(&other, &g).await), 10 * SEC);
    t.advance(10 * SEC - MS);
    assert_eq!(
        exhausted(t.reserve(&other, &g).await),
        SEC,
        "at least a second"
    );
    t.advance(MS);
    assert_eq!(
        t.reserve(&other, &g).await.expect("lent again").number,
        r.number
    );
    // An expiry rests the number too, counted from the expiry.
    t.advance(30 * SEC);
    let third = t.session(300 * SEC).await;
    assert_eq!(exhausted(t.reserve(&third, &g).await), 10 * SEC);
    assert_eq!(
        state_of(&t, &g, &n).await.0,
        NumberState::Cooling { seconds_left: 10 }
    );
    // An operator ends the rest.
    assert_eq!(
        t.store.free_number(&g, &r.number).await.expect("free"),
        FreeNumber::Freed
    );
    assert_eq!(
        t.store.free_number(&g, &r.number).await.expect("free"),
        FreeNumber::NotResting
    );
    assert!(t.reserve(&third, &g).await.is_ok(), "free at once");
}

/// The rest a number takes is the group's `cool_down` when its reservation ends, also when an
/// operator changed it while the number was reserved, both ways; a rest already running keeps
/// its end. (PostgreSQL writes the end of the rest as a reservation is made: it kept the
/// `cool_down` of that moment, so it refused callers for a rest the operator had removed.)
async fn a_cool_down_changed_during_a_reservation_counts_when_it_ends(t: TestStore) {
    let policy = NumberPolicy {
        cool_down: 10,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 1, policy).await;
    let set_cool_down = |secs| GroupChange {
        name: g.clone(),
        allocation: None,
        booking_timeout: None,
        policy: PolicyChange {
            cool_down: Some(secs),
            ..PolicyChange::default()
        },
        numbers: Vec::new(),
    };
    let r = reserve_fresh(&t, &g).await;
    t.store.put_group(set_cool_down(0)).await.expect("put");
    let other = t.session(300 * SEC).await;
    assert_eq!(
        exhausted(t.reserve(&other, &g).await),
        30 * SEC,
        "no rest now"
    );
    t.advance(30 * SEC);
    let lent = t.reserve(&other, &g).await.expect("free at its expiry");
    assert_eq!(lent.number, r.number);
    t.store.put_group(set_cool_down(20)).await.expect("put");
    let third = t.session(300 * SEC).await;
    assert_eq!(
        exhausted(t.reserve(&third, &g).await),
        50 * SEC,
        "held 30 s, then 20 s"
    );
    t.advance(30 * SEC);
    let n = r.number.to_string();
    assert_eq!(
        state_of(&t, &g, &n).await.0,
        NumberState::Cooling { seconds_left: 20 }
    );
    // A change once the rest runs leaves it as it is.
    t.store.put_group(set_cool_down(0)).await.expect("put");
    assert_eq!(exhausted(t.reserve(&third, &g).await), 20 * SEC);
}

async fn late_calls_find_an_ended_reservation_within_the_grace(t: TestStore) {
    let policy = NumberPolicy {
        late_match_grace: 20,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 2, policy).await;
    let s = t.session_with(3600 * SEC, vec![("k", "v")]).await;
    let r = reserve_coded(&t, &g, &s, "4242").await;
    t.advance(30 * SEC);
    let with_code = MatchRequest {
        code: Some(code("4242")),
        ..plain_match(&r.number)
    };
    let late = call(&t, with_code.clone()).await;
    assert_eq!(
        late_session(&late),
        Some((s.to_string(), true)),
        "expired 0 s ago"
    );
    assert_eq!(
        late_session(&call(&t, with_code.clone()).await),
        Some((s.to_string(), true)),
        "a retry gets the same"
    );
    let lenient = MatchRequest {
        code_required: false,
        ..plain_match(&r.number)
    };
    assert_eq!(
        reason(&call(&t, lenient).await),
        Some(Reason::Expired),
        "its code, lenient or not; refused, the number tells how its reservation ended"
    );
    t.advance(20 * SEC - MS);
    assert!(
        late_session(&call(&t, with_code.clone()).await).is_some(),
        "last ms of the grace"
    );
    t.advance(MS);
    assert_eq!(
        reason(&call(&t, with_code.clone()).await),
        Some(Reason::Expired),
        "grace over"
    );
    // A match, then the IVR's retry after a timeout.
    let r = reserve_coded(&t, &g, &s, "1111").await;
    let m = MatchRequest {
        code: Some(code("1111")),
        ..plain_match(&r.number)
    };
    assert_eq!(
        late_session(&call(&t, m.clone()).await),
        Some((s.to_string(), false))
    );
    assert_eq!(
        late_session(&call(&t, m.clone()).await),
        Some((s.to_string(), true))
    );
    // A session that ended takes its late matches with it.
    assert!(t.store.end_session(&s).await.expect("end"));
    assert_eq!(reason(&call(&t, m).await), Some(Reason::SessionEnded));
}

async fn a_live_reservation_that_accepts_wins_over_a_late_one(t: TestStore) {
    let policy = NumberPolicy {
        late_match_grace: 60,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 1, policy).await;
    let (s1, s2) = (t.session(600 * SEC).await, t.session(600 * SEC).await);
    let r1 = reserve_coded(&t, &g, &s1, "1111").await;
    t.advance(30 * SEC);
    let r2 = reserve_coded(&t, &g, &s2, "2222").await;
    assert_eq!(r1.number, r2.number, "one number, lent again");
    let with = |c: &str| MatchRequest {
        code: Some(code(c)),
        ..plain_match(&r1.number)
    };
    assert_eq!(
        late_session(&call(&t, with("1111")).await),
        Some((s1.to_string(), true))
    );
    assert_eq!(
        late_session(&call(&t, with("2222")).await),
        Some((s2.to_string(), false))
    );
}

async fn refused_calls_say_why(t: TestStore) {
    let g = with_policy(&t, 3, NumberPolicy::default()).await;
    assert_eq!(
        reason(&call(&t, plain_match(&number("999"))).await),
        Some(Reason::UnknownNumber)
    );
    let s = t.session(600 * SEC).await;
    let mut req = reserve_request(&s, &g);
    req.code = Some(code("4242"));
    req.provide_code = true;
    req.phone = Some(crate::phone("+15550100"));
    let r = t.store.reserve(req).await.expect("reserved");
    let cases = [
        (Some("1234"), None, Reason::WrongCode),
        (None, None, Reason::CodeRequired),
        (Some("4242"), Some("+15550199"), Reason::WrongPhone),
    ];
    for (c, p, want) in cases {
        let req = MatchRequest {
            code: c.map(code),
            phone: p.map(crate::phone),
            ..plain_match(&r.number)
        };
        assert_eq!(reason(&call(&t, req).await), Some(want), "{c:?} {p:?}");
    }
    t.advance(30 * SEC);
    assert_eq!(
        reason(&call(&t, plain_match(&r.number)).await),
        Some(Reason::Expired)
    );
    let r = reserve_fresh(&t, &g).await;
    let owner = t
        .store
        .find_reservations(Default::default())
        .await
        .expect("find");
    let owner = owner
        .iter()
        .find(|v| v.number == r.number)
        .expect("live")
        .session
        .clone();
    assert!(t.store.end_session(&owner).await.expect("end"));
    assert_eq!(
        reason(&call(&t, plain_match(&r.number)).await),
        Some(Reason::SessionEnded)
    );
    let never = group("DNIS", 3, Allocation::RoundRobin).numbers[2].clone();
    assert_eq!(
        reason(&call(&t, plain_match(&never)).await),
        Some(Reason::NotReserved)
    );
    let r = reserve_fresh(&t, &g).await;
    assert!(t.store.release(&r.number).await.expect("release"));
    assert_eq!(
        reason(&call(&t, plain_match(&r.number)).await),
        Some(Reason::NotReserved),
        "released by an operator"
    );
}

async fn wrong_codes_cancel_the_reservation_after_the_limit(t: TestStore) {
    let policy = NumberPolicy {
        max_code_attempts: 2,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 2, policy).await;
    let s = t.session(600 * SEC).await;
    let r = reserve_coded(&t, &g, &s, "4242").await;
    let wrong = MatchRequest {
        code: Some(code("0000")),
        ..plain_match(&r.number)
    };
    for _ in 0..2 {
        assert_eq!(
            reason(&call(&t, wrong.clone()).await),
            Some(Reason::WrongCode)
        );
    }
    let third = call(&t, wrong).await;
    assert!(
        matches!(
            third,
            MatchOutcome::NoMatch {
                reason: Reason::Locked,
                locked: Some(ref held_by),
                ..
            } if *held_by == s
        ),
        "{third:?}"
    );
    let right = MatchRequest {
        code: Some(code("4242")),
        ..plain_match(&r.number)
    };
    assert_eq!(
        reason(&call(&t, right).await),
        Some(Reason::Locked),
        "cancelled, even for the right code"
    );
    assert!(
        t.store.session(&s).await.expect("read").is_some(),
        "the session lives on"
    );
    let again = reserve_coded(&t, &g, &s, "5151").await;
    assert_eq!(again.code, Some(code("5151")), "a new code");
    // A renewal keeps the count; 0 means no limit.
    let unlimited = with_policy(
        &t,
        2,
        NumberPolicy {
            max_code_attempts: 0,
            ..NumberPolicy::default()
        },
    )
    .await;
    let s2 = t.session(600 * SEC).await;
    let r2 = reserve_coded(&t, &unlimited, &s2, "4242").await;
    for _ in 0..12 {
        let wrong = MatchRequest {
            code: Some(code("0000")),
            ..plain_match(&r2.number)
        };
        assert_eq!(reason(&call(&t, wrong).await), Some(Reason::WrongCode));
    }
}

async fn require_code_beats_the_request_and_the_lenient_match(t: TestStore) {
    let policy = NumberPolicy {
        require_code: true,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 2, policy).await;
    let s = t.session(600 * SEC).await;
    let mut req = reserve_request(&s, &g);
    req.code = Some(code("9876"));
    req.provide_code = false;
    let r = t.store.reserve(req).await.expect("reserved");
    assert_eq!(
        r.code,
        Some(code("9876")),
        "a code although the request said no"
    );
    let lenient = MatchRequest {
        code_required: false,
        ..plain_match(&r.number)
    };
    assert_eq!(reason(&call(&t, lenient).await), Some(Reason::CodeRequired));
}

async fn stray_calls_quarantine_a_number_until_freed(t: TestStore) {
    let policy = NumberPolicy {
        quarantine_after_stray_calls: 2,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 1, policy).await;
    let n = group("DNIS", 1, Allocation::RoundRobin).numbers[0].clone();
    let first = call(&t, plain_match(&n)).await;
    assert!(
        matches!(
            first,
            MatchOutcome::NoMatch {
                stray: true,
                quarantined: false,
                ..
            }
        ),
        "{first:?}"
    );
    assert_eq!(state_of(&t, &g, n.as_str()).await, (NumberState::Free, 1));
    let second = call(&t, plain_match(&n)).await;
    assert!(
        matches!(
            second,
            MatchOutcome::NoMatch {
                stray: true,
                quarantined: true,
                ..
            }
        ),
        "{second:?}"
    );
    assert_eq!(
        state_of(&t, &g, n.as_str()).await,
        (NumberState::Quarantined, 2)
    );
    assert_eq!(stats(&t, &g).await.quarantined, 1);
    let s = t.session(600 * SEC).await;
    assert!(t.reserve(&s, &g).await.is_err(), "lent to no one");
    assert_eq!(
        t.store.free_number(&g, &n).await.expect("free"),
        FreeNumber::Freed
    );
    assert_eq!(state_of(&t, &g, n.as_str()).await, (NumberState::Free, 0));
    assert_eq!(t.reserve(&s, &g).await.expect("free again").number, n);
    // Strays older than a day do not count.
    assert!(t.store.release(&n).await.expect("release"));
    t.advance(SEC);
    let _ = call(&t, plain_match(&n)).await;
    t.advance(24 * 3600 * SEC);
    let later = call(&t, plain_match(&n)).await;
    assert!(
        matches!(
            later,
            MatchOutcome::NoMatch {
                quarantined: false,
                ..
            }
        ),
        "{later:?}"
    );
}

/// A guesser cannot hide behind an older reservation without a code: each wrong code for the
/// live reservation counts even when the ended one answers the call late, and the one too many
/// cancels the live reservation.
async fn wrong_codes_count_even_when_a_late_call_answers(t: TestStore) {
    let policy = NumberPolicy {
        late_match_grace: 60,
        max_code_attempts: 2,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 1, policy).await;
    let (s1, s2) = (t.session(600 * SEC).await, t.session(600 * SEC).await);
    let r1 = t.reserve(&s1, &g).await.expect("reserved without a code");
    t.advance(30 * SEC);
    let r2 = reserve_coded(&t, &g, &s2, "2222").await;
    assert_eq!(r1.number, r2.number);
    let guess = MatchRequest {
        code: Some(code("9999")),
        ..plain_match(&r1.number)
    };
    for locks in [false, false, true] {
        let o = call(&t, guess.clone()).await;
        assert!(
            matches!(&o, MatchOutcome::Matched { late: true, locked, .. }
                if *locked == locks.then(|| s2.clone())),
            "{o:?}"
        );
    }
    let live = t
        .store
        .find_reservations(Default::default())
        .await
        .expect("find");
    assert!(
        live.is_empty(),
        "the coded reservation was cancelled: {live:?}"
    );
}

/// A reservation that expired unmatched and that nothing released yet is reported expired
/// (at its expiry, for its session) by the reservation that takes its number, before that
/// one's own event, whatever the group's allocation.
async fn a_number_taken_over_an_expired_reservation_reports_its_expiry(t: TestStore) {
    use access_broker::events::EventKind;
    for (name, allocation) in [
        ("RR", Allocation::RoundRobin),
        ("RANDOM", Allocation::Random),
        ("LRU", Allocation::LeastRecentlyUsed),
    ] {
        let g = t.with_group(name, 1, allocation).await;
        let mut events = t.bus.subscribe();
        let first = t.session(3600 * SEC).await;
        let r = t.reserve(&first, &g).await.expect("reserved");
        t.advance(r.expires_in);
        let second = t.session(3600 * SEC).await;
        let again = t
            .reserve(&second, &g)
            .await
            .expect("the expired one's number is free");
        assert_eq!(again.number, r.number, "{name}");
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            let session = e.session.as_ref().map(|s| s.to_string());
            seen.push((e.kind, e.number.to_string(), session, e.time));
        }
        let n = r.number.to_string();
        let kinds: Vec<_> = seen
            .iter()
            .map(|e| (e.0, e.1.clone(), e.2.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (EventKind::Created, n.clone(), Some(first.to_string())),
                (EventKind::Expired, n.clone(), Some(first.to_string())),
                (EventKind::Created, n, Some(second.to_string())),
            ],
            "{name}: {seen:?}"
        );
        assert_eq!(
            seen[1].3, seen[2].3,
            "{name}: dated at its expiry, which is now"
        );
    }
}

/// A number removed while reserved retires when its reservation ends; a reservation that ends
/// by expiry then is owed its `reservation.expired` like any other (PostgreSQL's purge dropped
/// the retired row before it recorded the expiry, so the event never came).
async fn a_removed_numbers_reservation_reports_its_expiry(t: TestStore) {
    use access_broker::events::EventKind;
    let g = t.with_group("RET", 2, Allocation::RoundRobin).await;
    let mut events = t.bus.subscribe();
    let s = t.session(3600 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    let removed = t.store.remove_number(&g, &r.number).await.expect("removed");
    assert_eq!(removed, RemoveNumber::Retiring, "{removed:?}");
    t.advance(r.expires_in + SEC);
    t.store.purge_expired().await.expect("purge");
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push((
            e.kind,
            e.number.to_string(),
            e.session.map(|s| s.to_string()),
        ));
    }
    let n = r.number.to_string();
    assert_eq!(
        seen,
        vec![
            (EventKind::Created, n.clone(), Some(s.to_string())),
            (EventKind::Expired, n, Some(s.to_string())),
        ]
    );
}
