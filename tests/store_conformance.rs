//! One conformance suite, every backend: memory, SQLite, and PostgreSQL when configured.
//!
//! Each case gets a fresh store and a manual clock, and steps the clock across expiry
//! boundaries exactly (`now >= expires_at` ends a reservation), so backends cannot disagree on
//! expiry without this suite noticing.

mod support;

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use access_broker::domain::{AccessCode, Allocation, BookingTimeout, DataId, PhoneNumber};
use access_broker::store::{
    AddNumbers, DeleteGroup, GroupChange, MatchRequest, NumberState, PutGroup, RemoveNumber,
    ReservationFilter, ReserveError,
};
use support::{Backend, TestStore, group, new_session, node, number, reserve_request};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(TestStore) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(store) = TestStore::open(backend).await {
        case(store).await;
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory { $( #[tokio::test] async fn $case() { super::run(super::Backend::Memory, super::$case).await } )* }
        mod sqlite { $( #[tokio::test] async fn $case() { super::run(super::Backend::Sqlite, super::$case).await } )* }
        mod postgres { $( #[tokio::test] async fn $case() { super::run(super::Backend::Postgres, super::$case).await } )* }
    };
}

conformance!(
    sessions_live_until_their_ttl,
    ending_a_session_deletes_it_and_its_data,
    reserve_hands_out_a_number_for_the_booking_time,
    reserve_refuses_unknown_sessions_and_groups,
    a_session_holds_one_reservation_per_group,
    an_empty_pool_refuses_with_retry_after,
    reservations_end_exactly_at_expiry,
    reservations_never_outlive_their_session,
    booking_timeout_falls_back_to_group_then_30,
    match_releases_the_number,
    match_checks_code_and_phone,
    match_can_end_the_session,
    ending_a_session_releases_its_reservations,
    round_robin_walks_in_order,
    least_recently_used_picks_the_longest_free,
    random_hands_out_every_number,
    reserve_new_session_leaves_nothing_when_refused,
    storage_put_get_update_delete_expire,
    admin_counts_and_states,
    admin_add_and_remove_numbers,
    admin_delete_group,
    admin_change_allocation_keeps_reservations,
    admin_find_and_release,
    apply_groups_is_idempotent_and_retires_dropped_numbers,
    the_config_wins_again_after_admin_changes,
    purge_changes_nothing_visible,
    concurrent_reserves_never_share_a_number,
);

async fn sessions_live_until_their_ttl(t: TestStore) {
    let id = t
        .session_with(10 * SEC, vec![("firstname", "Ann"), ("reason", "billing")])
        .await;
    let s = t.store.session(&id).await.expect("read").expect("live");
    assert_eq!(
        s.fields,
        vec![
            ("firstname".into(), "Ann".into()),
            ("reason".into(), "billing".into())
        ]
    );
    assert_eq!(s.service.as_str(), "callback");
    assert_eq!(s.expires_in.as_secs(), 10);
    assert_eq!(
        t.store.data(&s.data_id).await.expect("read"),
        Some(s.fields.clone())
    );
    t.advance(10 * SEC - MS);
    assert!(
        t.store.session(&id).await.expect("read").is_some(),
        "alive 1 ms before its end"
    );
    t.advance(MS);
    assert!(
        t.store.session(&id).await.expect("read").is_none(),
        "gone at its end"
    );
    assert!(
        !t.store.end_session(&id).await.expect("end"),
        "an expired session cannot be ended"
    );
}

async fn ending_a_session_deletes_it_and_its_data(t: TestStore) {
    let id = t.session_with(60 * SEC, vec![("a", "1")]).await;
    let data_id = t
        .store
        .session(&id)
        .await
        .expect("read")
        .expect("live")
        .data_id;
    assert!(t.store.end_session(&id).await.expect("end"));
    assert!(t.store.session(&id).await.expect("read").is_none());
    assert!(t.store.data(&data_id).await.expect("read").is_none());
    assert!(!t.store.end_session(&id).await.expect("end twice"));
}

async fn reserve_hands_out_a_number_for_the_booking_time(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    assert_eq!(r.number, number("5550000"));
    assert_eq!(r.expires_in, 30 * SEC);
    assert_eq!(r.code, None);
    assert_eq!((r.pool_size, r.pool_free), (3, 2));
}

async fn reserve_refuses_unknown_sessions_and_groups(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let ghost = new_session(SEC, vec![]).id;
    assert!(matches!(
        t.reserve(&ghost, &g).await,
        Err(ReserveError::SessionNotFound)
    ));
    let other = access_broker::domain::GroupName::parse("dnis").expect("name");
    assert!(
        matches!(t.reserve(&s, &other).await, Err(ReserveError::UnknownGroup)),
        "names are case-sensitive"
    );
}

async fn a_session_holds_one_reservation_per_group(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let first = t.reserve(&s, &g).await.expect("reserved");
    t.advance(20 * SEC);
    let mut req = reserve_request(&s, &g);
    req.code = Some(AccessCode::parse("123456").expect("code"));
    let again = t.store.reserve(req).await.expect("renewed");
    assert_eq!(again.number, first.number, "same number");
    assert_eq!(again.expires_in, 30 * SEC, "expiry renewed");
    assert_eq!(
        again.code.as_ref().map(|c| c.as_str()),
        Some("123456"),
        "code added when none was given"
    );
    let mut req = reserve_request(&s, &g);
    req.code = Some(AccessCode::parse("999999").expect("code"));
    let third = t.store.reserve(req).await.expect("renewed");
    assert_eq!(
        third.code.as_ref().map(|c| c.as_str()),
        Some("123456"),
        "an existing code is kept"
    );
    assert_eq!(third.pool_free, 2);
    t.advance(25 * SEC);
    let other = t.session(300 * SEC).await;
    let r = t.reserve(&other, &g).await.expect("reserved");
    assert_ne!(
        r.number, first.number,
        "the renewed reservation is still live after the first expiry"
    );
}

async fn an_empty_pool_refuses_with_retry_after(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let a = t.session(300 * SEC).await;
    t.reserve(&a, &g).await.expect("reserved");
    t.advance(10 * SEC);
    let b = t.session(300 * SEC).await;
    t.reserve(&b, &g).await.expect("reserved");
    let c = t.session(300 * SEC).await;
    match t.reserve(&c, &g).await {
        Err(ReserveError::Exhausted { retry_after }) => assert_eq!(retry_after, 20 * SEC),
        other => panic!("expected Exhausted, got {other:?}"),
    }
    t.advance(20 * SEC - MS);
    match t.reserve(&c, &g).await {
        Err(ReserveError::Exhausted { retry_after }) => {
            assert_eq!(retry_after, SEC, "at least one second")
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
}

async fn reservations_end_exactly_at_expiry(t: TestStore) {
    let g = t.with_group("DNIS", 1, Allocation::RoundRobin).await;
    let a = t.session(300 * SEC).await;
    let r = t.reserve(&a, &g).await.expect("reserved");
    let b = t.session(300 * SEC).await;
    t.advance(30 * SEC - MS);
    assert!(
        matches!(t.reserve(&b, &g).await, Err(ReserveError::Exhausted { .. })),
        "held 1 ms before expiry"
    );
    let found = t.store.find_reservations(ReservationFilter {
        number: Some(r.number.clone()),
        ..Default::default()
    });
    assert_eq!(found.await.expect("find").len(), 1);
    t.advance(MS);
    let found = t.store.find_reservations(ReservationFilter {
        number: Some(r.number.clone()),
        ..Default::default()
    });
    assert!(found.await.expect("find").is_empty(), "not live at expiry");
    let m = MatchRequest {
        number: r.number.clone(),
        code: None,
        phone: None,
        code_required: true,
        end_session: false,
    };
    assert!(
        t.store.match_reservation(m).await.expect("match").is_none(),
        "expired: no match"
    );
    let r2 = t
        .reserve(&b, &g)
        .await
        .expect("free at expiry, no sweeper needed");
    assert_eq!(r2.number, r.number);
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
    let g = spec.settings.name.clone();
    t.store.apply_groups(&[spec]).await.expect("apply");
    let a = t.session(3000 * SEC).await;
    assert_eq!(
        t.reserve(&a, &g).await.expect("reserved").expires_in,
        90 * SEC,
        "group timeout"
    );
    let b = t.session(3000 * SEC).await;
    let mut req = reserve_request(&b, &g);
    req.timeout = Some(BookingTimeout::from_secs_lenient(600));
    assert_eq!(
        t.store.reserve(req).await.expect("reserved").expires_in,
        600 * SEC,
        "request beats group"
    );
    let g2 = t.with_group("OTHER", 1, Allocation::RoundRobin).await;
    assert_eq!(
        t.reserve(&a, &g2).await.expect("reserved").expires_in,
        30 * SEC,
        "default 30"
    );
}

async fn match_releases_the_number(t: TestStore) {
    let g = t.with_group("DNIS", 1, Allocation::RoundRobin).await;
    let s = t.session_with(300 * SEC, vec![("k", "v")]).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    let m = MatchRequest {
        number: r.number.clone(),
        code: None,
        phone: None,
        code_required: true,
        end_session: false,
    };
    let matched = t
        .store
        .match_reservation(m.clone())
        .await
        .expect("match")
        .expect("matched");
    assert_eq!(matched.id, s);
    assert_eq!(matched.fields, vec![("k".into(), "v".into())]);
    assert!(
        t.store.match_reservation(m).await.expect("match").is_none(),
        "released: no second match"
    );
    assert!(
        t.store.session(&s).await.expect("read").is_some(),
        "session still live"
    );
    let other = t.session(300 * SEC).await;
    assert_eq!(
        t.reserve(&other, &g).await.expect("free again").number,
        r.number
    );
    let unknown = MatchRequest {
        number: number("999"),
        code: None,
        phone: None,
        code_required: true,
        end_session: false,
    };
    assert!(
        t.store
            .match_reservation(unknown)
            .await
            .expect("match")
            .is_none()
    );
}

async fn match_checks_code_and_phone(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let mut req = reserve_request(&s, &g);
    req.code = Some(AccessCode::parse("4242").expect("code"));
    req.phone = Some(PhoneNumber::parse("+1 650 555 0100").expect("phone"));
    let r = t.store.reserve(req).await.expect("reserved");
    let attempt = |code: Option<&str>, phone: Option<&str>, code_required: bool| MatchRequest {
        number: r.number.clone(),
        code: code.map(|c| AccessCode::parse(c).expect("code")),
        phone: phone.map(|p| PhoneNumber::parse(p).expect("phone")),
        code_required,
        end_session: false,
    };
    for (code, phone, required) in [
        (Some("4243"), None, true),
        (None, None, true),
        (Some("4242"), Some("+16505550199"), true),
        (Some("4242"), Some("16505550100"), true),
    ] {
        let m = t
            .store
            .match_reservation(attempt(code, phone, required))
            .await
            .expect("match");
        assert!(m.is_none(), "{code:?} {phone:?} must not match");
    }
    let m = t
        .store
        .match_reservation(attempt(None, Some("+1-650-555-0100"), false))
        .await
        .expect("match");
    assert_eq!(
        m.map(|s| s.id),
        Some(s.clone()),
        "lenient: no code; phone equal after normalising"
    );
    let r = t.store.reserve({
        let mut req = reserve_request(&s, &g);
        req.code = Some(AccessCode::parse("777777").expect("code"));
        req
    });
    let r = r.await.expect("reserved");
    let m = MatchRequest {
        number: r.number,
        code: AccessCode::parse("777777").ok(),
        phone: None,
        code_required: true,
        end_session: false,
    };
    assert!(
        t.store.match_reservation(m).await.expect("match").is_some(),
        "right code, no phone given"
    );
}

async fn match_can_end_the_session(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let other = t.with_group("OTHER", 1, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    t.reserve(&s, &other).await.expect("reserved");
    let m = MatchRequest {
        number: r.number,
        code: None,
        phone: None,
        code_required: true,
        end_session: true,
    };
    assert!(t.store.match_reservation(m).await.expect("match").is_some());
    assert!(
        t.store.session(&s).await.expect("read").is_none(),
        "session ended"
    );
    let s2 = t.session(300 * SEC).await;
    t.reserve(&s2, &other)
        .await
        .expect("its other reservation was released too");
}

async fn ending_a_session_releases_its_reservations(t: TestStore) {
    let g = t.with_group("DNIS", 1, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    assert!(t.store.end_session(&s).await.expect("end"));
    let s2 = t.session(300 * SEC).await;
    assert_eq!(
        t.reserve(&s2, &g).await.expect("free at once").number,
        r.number
    );
}

async fn round_robin_walks_in_order(t: TestStore) {
    let g = t.with_group("DNIS", 4, Allocation::RoundRobin).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let s = t.session(300 * SEC).await;
        got.push(
            t.reserve(&s, &g)
                .await
                .expect("reserved")
                .number
                .to_string(),
        );
        if got.len() == 1 {
            assert!(
                t.store.end_session(&s).await.expect("end"),
                "free the first one again"
            );
        }
    }
    assert_eq!(
        got,
        ["5550000", "5550001", "5550002"],
        "walks on from the last one, not back to a freed one"
    );
    for want in ["5550003", "5550000"] {
        let s = t.session(300 * SEC).await;
        assert_eq!(
            t.reserve(&s, &g)
                .await
                .expect("reserved")
                .number
                .to_string(),
            want,
            "then wraps"
        );
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
        let s = t.session(300 * SEC).await;
        assert_eq!(
            t.reserve(&s, &g).await.expect("reserved").number,
            holders[i].1
        );
    }
}

async fn random_hands_out_every_number(t: TestStore) {
    let g = t.with_group("DNIS", 20, Allocation::Random).await;
    let mut seen = HashSet::new();
    for _ in 0..20 {
        let s = t.session(300 * SEC).await;
        assert!(seen.insert(t.reserve(&s, &g).await.expect("reserved").number));
    }
    let s = t.session(300 * SEC).await;
    assert!(matches!(
        t.reserve(&s, &g).await,
        Err(ReserveError::Exhausted { .. })
    ));
}

async fn reserve_new_session_leaves_nothing_when_refused(t: TestStore) {
    let g = t.with_group("DNIS", 1, Allocation::RoundRobin).await;
    let first = new_session(30 * SEC, vec![("a", "1")]);
    let (session, r) = t
        .store
        .reserve_new_session(first.clone(), reserve_request(&first.id, &g))
        .await
        .expect("reserved");
    assert_eq!(session.id, first.id);
    assert_eq!(session.fields, vec![("a".into(), "1".into())]);
    assert_eq!(r.expires_in, 30 * SEC);
    let second = new_session(30 * SEC, vec![("b", "2")]);
    let refused = t
        .store
        .reserve_new_session(second.clone(), reserve_request(&second.id, &g))
        .await;
    assert!(matches!(refused, Err(ReserveError::Exhausted { .. })));
    assert!(
        t.store.session(&second.id).await.expect("read").is_none(),
        "no session left behind"
    );
    assert!(
        t.store.data(&second.data_id).await.expect("read").is_none(),
        "no data left behind"
    );
    let unknown = access_broker::domain::GroupName::parse("NOPE").expect("name");
    let third = new_session(30 * SEC, vec![]);
    let refused = t
        .store
        .reserve_new_session(third.clone(), reserve_request(&third.id, &unknown))
        .await;
    assert!(matches!(refused, Err(ReserveError::UnknownGroup)));
    assert!(t.store.session(&third.id).await.expect("read").is_none());
}

async fn storage_put_get_update_delete_expire(t: TestStore) {
    let id = DataId::generate(&node());
    let fields = vec![
        ("name".to_owned(), "Zoë".to_owned()),
        ("n".to_owned(), "1".to_owned()),
    ];
    t.store
        .put_data(id.clone(), fields.clone(), 10 * SEC)
        .await
        .expect("put");
    assert_eq!(t.store.data(&id).await.expect("get"), Some(fields));
    t.advance(5 * SEC);
    let update = vec![
        ("n".to_owned(), "2".to_owned()),
        ("extra".to_owned(), "x".to_owned()),
    ];
    assert!(
        t.store
            .update_data(&id, update, 10 * SEC)
            .await
            .expect("update")
    );
    let want = vec![
        ("name".into(), "Zoë".into()),
        ("n".into(), "2".into()),
        ("extra".into(), "x".into()),
    ];
    assert_eq!(t.store.data(&id).await.expect("get"), Some(want));
    t.advance(10 * SEC - MS);
    assert!(
        t.store.data(&id).await.expect("get").is_some(),
        "new ttl counts from the update"
    );
    t.advance(MS);
    assert!(t.store.data(&id).await.expect("get").is_none());
    assert!(
        !t.store
            .update_data(&id, vec![], 10 * SEC)
            .await
            .expect("update"),
        "expired: unknown"
    );
    assert!(!t.store.delete_data(&id).await.expect("delete"));
    let id2 = DataId::generate(&node());
    t.store
        .put_data(id2.clone(), vec![], 10 * SEC)
        .await
        .expect("put");
    assert!(t.store.delete_data(&id2).await.expect("delete"));
    assert!(t.store.data(&id2).await.expect("get").is_none());
}

async fn admin_counts_and_states(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    t.with_group("ALPHA", 1, Allocation::Random).await;
    let s = t.session(300 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    let groups = t.store.groups().await.expect("groups");
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["ALPHA", "DNIS"], "sorted by name");
    let dnis = &groups[1];
    assert_eq!(
        (dnis.size, dnis.free, dnis.reserved, dnis.retiring),
        (3, 2, 1, 0)
    );
    assert_eq!(dnis.allocation, Allocation::RoundRobin);
    let detail = t.store.group(&g).await.expect("group").expect("exists");
    assert_eq!(detail.numbers.len(), 3);
    assert_eq!(detail.numbers[0].number, r.number);
    assert_eq!(
        detail.numbers[0].state,
        NumberState::Reserved {
            session: s.clone(),
            expires_in: 30
        }
    );
    assert_eq!(detail.numbers[1].state, NumberState::Free);
    t.advance(30 * SEC);
    let detail = t.store.group(&g).await.expect("group").expect("exists");
    assert_eq!(
        detail.numbers[0].state,
        NumberState::Free,
        "expired shows free"
    );
    assert_eq!(detail.stats.free, 3);
    let missing = access_broker::domain::GroupName::parse("NOPE").expect("name");
    assert!(t.store.group(&missing).await.expect("group").is_none());
}

async fn admin_add_and_remove_numbers(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let other = t.with_group("OTHER", 1, Allocation::RoundRobin).await;
    let added = t
        .store
        .add_numbers(&g, vec![number("7000"), number("7001")])
        .await
        .expect("add");
    assert_eq!(added, AddNumbers::Added(2));
    let others = group("OTHER", 1, Allocation::RoundRobin).numbers[0].clone();
    let taken = t
        .store
        .add_numbers(&g, vec![number("7002"), others.clone()])
        .await
        .expect("add");
    assert!(
        matches!(taken, AddNumbers::Taken(ref n, ref owner) if *n == others && *owner == other),
        "{taken:?}"
    );
    assert_eq!(
        t.store.group(&g).await.expect("g").expect("g").stats.size,
        4,
        "refused whole: 7002 not added"
    );
    let nope = access_broker::domain::GroupName::parse("NOPE").expect("name");
    assert_eq!(
        t.store
            .add_numbers(&nope, vec![number("1")])
            .await
            .expect("add"),
        AddNumbers::UnknownGroup
    );

    assert_eq!(
        t.store
            .remove_number(&g, &number("7001"))
            .await
            .expect("rm"),
        RemoveNumber::Removed
    );
    assert_eq!(
        t.store
            .remove_number(&g, &number("7001"))
            .await
            .expect("rm"),
        RemoveNumber::UnknownNumber
    );
    assert_eq!(
        t.store.remove_number(&g, &others).await.expect("rm"),
        RemoveNumber::UnknownNumber,
        "other group's"
    );
    assert_eq!(
        t.store
            .remove_number(&nope, &number("7000"))
            .await
            .expect("rm"),
        RemoveNumber::UnknownGroup
    );

    // A reserved number retires: it stays held until the reservation ends, then leaves.
    let s = t.session(300 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    assert_eq!(
        t.store.remove_number(&g, &r.number).await.expect("rm"),
        RemoveNumber::Retiring
    );
    let stats = t.store.group(&g).await.expect("g").expect("g");
    assert_eq!(
        (stats.stats.size, stats.stats.reserved, stats.stats.retiring),
        (2, 0, 1)
    );
    assert!(
        stats
            .numbers
            .iter()
            .any(|n| n.number == r.number && matches!(n.state, NumberState::Retiring { .. }))
    );
    let m = MatchRequest {
        number: r.number.clone(),
        code: None,
        phone: None,
        code_required: true,
        end_session: false,
    };
    assert!(
        t.store.match_reservation(m).await.expect("match").is_some(),
        "a retiring reservation still matches"
    );
    let stats = t.store.group(&g).await.expect("g").expect("g");
    assert_eq!((stats.stats.size, stats.stats.retiring), (2, 0));
    assert!(
        stats.numbers.iter().all(|n| n.number != r.number),
        "gone once released"
    );
    assert_eq!(
        t.store
            .add_numbers(&other, vec![r.number.clone()])
            .await
            .expect("add"),
        AddNumbers::Added(1),
        "free to join another group"
    );
}

async fn admin_delete_group(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    t.reserve(&s, &g).await.expect("reserved");
    assert_eq!(
        t.store.delete_group(&g).await.expect("delete"),
        DeleteGroup::Busy
    );
    t.advance(30 * SEC);
    assert_eq!(
        t.store.delete_group(&g).await.expect("delete"),
        DeleteGroup::Deleted
    );
    assert_eq!(
        t.store.delete_group(&g).await.expect("delete"),
        DeleteGroup::NotFound
    );
    assert!(t.store.groups().await.expect("groups").is_empty());
    assert!(matches!(
        t.reserve(&s, &g).await,
        Err(ReserveError::UnknownGroup)
    ));
    let g2 = t.with_group("NEW", 0, Allocation::RoundRobin).await;
    assert_eq!(
        t.store
            .add_numbers(&g2, vec![number("5550000")])
            .await
            .expect("add"),
        AddNumbers::Added(1),
        "numbers of a deleted group are free to reuse"
    );
}

async fn admin_change_allocation_keeps_reservations(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    let created = t
        .store
        .put_group(GroupChange {
            name: g.clone(),
            allocation: Some(Allocation::LeastRecentlyUsed),
            booking_timeout: BookingTimeout::from_secs_strict(60).ok(),
            numbers: Vec::new(),
        })
        .await
        .expect("put");
    assert_eq!(created, PutGroup::Changed);
    let stats = t.store.group(&g).await.expect("g").expect("g").stats;
    assert_eq!(
        (
            stats.allocation,
            stats.booking_timeout,
            stats.reserved,
            stats.free
        ),
        (Allocation::LeastRecentlyUsed, Some(60), 1, 2)
    );
    let s2 = t.session(300 * SEC).await;
    let r2 = t.reserve(&s2, &g).await.expect("reserved");
    assert_ne!(r2.number, r.number);
    assert_eq!(r2.expires_in, 60 * SEC, "new group timeout applies");
    let fresh = access_broker::domain::GroupName::parse("FRESH").expect("name");
    assert_eq!(
        t.store
            .put_group(GroupChange {
                name: fresh,
                allocation: Some(Allocation::Random),
                booking_timeout: None,
                numbers: Vec::new(),
            })
            .await
            .expect("put"),
        PutGroup::Created
    );
}

async fn admin_find_and_release(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    let a = t.session(300 * SEC).await;
    let b = t.session(300 * SEC).await;
    let mut req = reserve_request(&a, &g);
    req.phone = Some(PhoneNumber::parse("+33 1 23").expect("phone"));
    let ra = t.store.reserve(req).await.expect("reserved");
    let rb = t.reserve(&b, &g).await.expect("reserved");
    let by_session = t
        .store
        .find_reservations(ReservationFilter {
            session: Some(b.clone()),
            ..Default::default()
        })
        .await
        .expect("find");
    assert_eq!(by_session.len(), 1);
    assert_eq!(by_session[0].number, rb.number);
    assert_eq!(by_session[0].group, g);
    let by_phone = t
        .store
        .find_reservations(ReservationFilter {
            phone: PhoneNumber::parse("+33123").ok(),
            ..Default::default()
        })
        .await
        .expect("find");
    assert_eq!(
        by_phone
            .iter()
            .map(|r| r.session.clone())
            .collect::<Vec<_>>(),
        vec![a.clone()]
    );
    let all = t
        .store
        .find_reservations(ReservationFilter::default())
        .await
        .expect("find");
    assert_eq!(all.len(), 2);
    let none = t
        .store
        .find_reservations(ReservationFilter {
            number: Some(ra.number.clone()),
            session: Some(b.clone()),
            phone: None,
        })
        .await
        .expect("find");
    assert!(none.is_empty(), "criteria combine");
    assert!(t.store.release(&ra.number).await.expect("release"));
    assert!(!t.store.release(&ra.number).await.expect("release twice"));
    assert!(
        !t.store
            .release(&number("42"))
            .await
            .expect("release unknown")
    );
    let c = t.session(300 * SEC).await;
    t.reserve(&c, &g).await.expect("reserved");
    let d = t.session(300 * SEC).await;
    assert_eq!(
        t.reserve(&d, &g)
            .await
            .expect("released number is free")
            .number,
        ra.number
    );
}

async fn apply_groups_is_idempotent_and_retires_dropped_numbers(t: TestStore) {
    let spec = group("DNIS", 3, Allocation::RoundRobin);
    let g = spec.settings.name.clone();
    t.store
        .apply_groups(std::slice::from_ref(&spec))
        .await
        .expect("apply");
    let notes = t
        .store
        .apply_groups(std::slice::from_ref(&spec))
        .await
        .expect("apply again");
    assert!(notes.is_empty(), "nothing differs: {notes:?}");
    let s = t.session(300 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    assert_eq!(r.number, number("5550000"));
    // The config drops 5550000 (reserved) and 5550001 (free), and adds 5559999.
    let mut smaller = spec.clone();
    smaller.numbers = vec![number("5550002"), number("5559999")];
    smaller.settings.allocation = Allocation::Random;
    let notes = t
        .store
        .apply_groups(std::slice::from_ref(&smaller))
        .await
        .expect("apply");
    assert!(!notes.is_empty(), "differences are reported");
    let detail = t.store.group(&g).await.expect("g").expect("g");
    assert_eq!(
        (
            detail.stats.size,
            detail.stats.retiring,
            detail.stats.allocation
        ),
        (2, 1, Allocation::Random)
    );
    let m = MatchRequest {
        number: r.number.clone(),
        code: None,
        phone: None,
        code_required: true,
        end_session: false,
    };
    assert!(
        t.store.match_reservation(m).await.expect("match").is_some(),
        "live reservation untouched"
    );
    let numbers = group_numbers(&t, &g).await;
    assert_eq!(numbers.len(), 2);
    assert!(numbers.contains(&"5550002".to_owned()) && numbers.contains(&"5559999".to_owned()));
}

// Applying the same config again (a node restart) must still undo admin changes made since:
// on PostgreSQL this checks that admin changes clear the group's config fingerprint.
async fn the_config_wins_again_after_admin_changes(t: TestStore) {
    let spec = group("DNIS", 3, Allocation::RoundRobin);
    let g = spec.settings.name.clone();
    let apply = || t.store.apply_groups(std::slice::from_ref(&spec));
    apply().await.expect("apply");
    let removed = t
        .store
        .remove_number(&g, &number("5550001"))
        .await
        .expect("remove");
    assert_eq!(removed, RemoveNumber::Removed);
    let added = t
        .store
        .add_numbers(&g, vec![number("5558888")])
        .await
        .expect("add");
    assert_eq!(added, AddNumbers::Added(1));
    let notes = apply().await.expect("apply again");
    assert!(!notes.is_empty(), "the differences are reported: {notes:?}");
    let mut numbers = group_numbers(&t, &g).await;
    numbers.sort();
    assert_eq!(numbers, ["5550000", "5550001", "5550002"]);
    let notes = apply().await.expect("apply a third time");
    assert!(notes.is_empty(), "nothing differs now: {notes:?}");
}

/// The numbers a group lists, in the store's order.
async fn group_numbers(t: &TestStore, g: &access_broker::domain::GroupName) -> Vec<String> {
    let detail = t
        .store
        .group(g)
        .await
        .expect("group")
        .expect("the group exists");
    detail
        .numbers
        .iter()
        .map(|n| n.number.to_string())
        .collect()
}

async fn purge_changes_nothing_visible(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let short = t.session(5 * SEC).await;
    let long = t.session(300 * SEC).await;
    t.reserve(&short, &g).await.expect("reserved");
    let r = t.reserve(&long, &g).await.expect("reserved");
    t.advance(6 * SEC);
    t.store.purge_expired().await.expect("purge");
    assert!(t.store.session(&short).await.expect("read").is_none());
    assert!(t.store.session(&long).await.expect("read").is_some());
    let live = t
        .store
        .find_reservations(ReservationFilter::default())
        .await
        .expect("find");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].number, r.number);
    let stats = t.store.group(&g).await.expect("g").expect("g").stats;
    assert_eq!((stats.free, stats.reserved), (1, 1));
}

async fn concurrent_reserves_never_share_a_number(t: TestStore) {
    let g = t.with_group("DNIS", 10, Allocation::Random).await;
    let second = t.reopen_if_shared().await;
    let mut sessions = Vec::new();
    for _ in 0..60 {
        sessions.push(t.session(300 * SEC).await);
    }
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let store = if i % 2 == 0 {
                t.store.clone()
            } else {
                second.clone()
            };
            let g = g.clone();
            tokio::spawn(async move { store.reserve(reserve_request(&s, &g)).await })
        })
        .collect();
    let mut winners = HashSet::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(r) => assert!(
                winners.insert(r.number.clone()),
                "{} handed out twice",
                r.number
            ),
            Err(ReserveError::Exhausted { .. }) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((winners.len(), refused), (10, 50));
}

trait Reopen {
    async fn reopen_if_shared(&self) -> access_broker::store::DynStore;
}

impl Reopen for TestStore {
    /// A second handle when the backend can be shared (PostgreSQL), else the same one.
    async fn reopen_if_shared(&self) -> access_broker::store::DynStore {
        match self.backend {
            Backend::Postgres => self.reopen().await,
            _ => self.store.clone(),
        }
    }
}
