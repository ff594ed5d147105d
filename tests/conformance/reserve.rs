//! Reserving: a number for the booking time, one per session and group (renewed, code kept),
//! refusals that name their cause, nothing left behind when refused, and never one number
//! to two callers at once.

use std::collections::HashSet;

use access_broker::domain::Allocation;
use access_broker::store::{DynStore, RemoveNumber, ReserveError};

use crate::support::{Backend, TestStore, new_session, number, reserve_request};
use crate::{MS, SEC, code, exhausted, group_name, reserve_fresh};

crate::conformance!(
    reserve_hands_out_a_number_for_the_booking_time,
    reserve_refuses_unknown_sessions_and_groups,
    a_session_holds_one_reservation_per_group,
    an_empty_pool_refuses_with_retry_after,
    retry_after_skips_a_retiring_number,
    reserve_new_session_leaves_nothing_when_refused,
    concurrent_reserves_never_share_a_number,
    one_session_asking_many_times_at_once_holds_one_number,
);

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
    assert!(
        matches!(
            t.reserve(&s, &group_name("dnis")).await,
            Err(ReserveError::UnknownGroup)
        ),
        "names are case-sensitive"
    );
}

async fn a_session_holds_one_reservation_per_group(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let first = t.reserve(&s, &g).await.expect("reserved");
    t.advance(20 * SEC);
    // Renewals: (code sent, code expected after, why).
    for (sent, kept, why) in [
        ("123456", "123456", "code added when none was given"),
        ("999999", "123456", "an existing code is kept"),
    ] {
        let mut req = reserve_request(&s, &g);
        req.code = Some(code(sent));
        req.provide_code = req.code.is_some();
        let again = t.store.reserve(req).await.expect("renewed");
        assert_eq!(again.number, first.number, "same number");
        assert_eq!(again.expires_in, 30 * SEC, "expiry renewed");
        assert_eq!(again.code.as_ref().map(|c| c.as_str()), Some(kept), "{why}");
        assert_eq!(again.pool_free, 2);
    }
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
    assert_eq!(exhausted(t.reserve(&c, &g).await), 20 * SEC);
    t.advance(20 * SEC - MS);
    assert_eq!(
        exhausted(t.reserve(&c, &g).await),
        SEC,
        "at least one second"
    );
}

/// A retiring number's reservation ends and frees nothing: Retry-After counts the others
/// (it counted the retiring one, so a caller came back to an empty pool).
async fn retry_after_skips_a_retiring_number(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let a = t.session(300 * SEC).await;
    let first = t.reserve(&a, &g).await.expect("reserved");
    let removed = t.store.remove_number(&g, &first.number).await.expect("rm");
    assert_eq!(removed, RemoveNumber::Retiring);
    t.advance(10 * SEC);
    let b = t.session(300 * SEC).await;
    t.reserve(&b, &g).await.expect("reserved");
    let c = t.session(300 * SEC).await;
    assert_eq!(
        exhausted(t.reserve(&c, &g).await),
        30 * SEC,
        "the second number's end, not the retiring one's (20 s)"
    );
    t.advance(21 * SEC);
    assert_eq!(exhausted(t.reserve(&c, &g).await), 9 * SEC, "after it left");
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
    // Refusals: (group asked for, fields); neither may leave its session or data behind.
    for (group, fields) in [(g.clone(), vec![("b", "2")]), (group_name("NOPE"), vec![])] {
        let new = new_session(30 * SEC, fields);
        let refused = t
            .store
            .reserve_new_session(new.clone(), reserve_request(&new.id, &group))
            .await;
        match (group.as_str(), refused) {
            ("DNIS", Err(ReserveError::Exhausted { .. }))
            | ("NOPE", Err(ReserveError::UnknownGroup)) => {}
            (group, other) => panic!("{group}: unexpected {other:?}"),
        }
        let session = t.store.session(&new.id).await.expect("read");
        assert!(session.is_none(), "{group}: no session left behind");
        let data = t.store.data(&new.data_id).await.expect("read");
        assert!(data.is_none(), "{group}: no data left behind");
    }
}

async fn concurrent_reserves_never_share_a_number(t: TestStore) {
    let g = t.with_group("DNIS", 10, Allocation::Random).await;
    // A second handle when the backend can be shared (PostgreSQL), else the same one.
    let second: DynStore = match t.backend {
        Backend::Postgres => t.reopen().await,
        _ => t.store.clone(),
    };
    let mut sessions = Vec::new();
    for _ in 0..60 {
        sessions.push(t.session(300 * SEC).await);
    }
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let store = if i % 2 == 0 { &t.store } else { &second }.clone();
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

/// The same session asking many times at once (one batch on PostgreSQL): the first takes a
/// number, every other renews that one, and so does a later call; the group's other numbers
/// stay free.
async fn one_session_asking_many_times_at_once_holds_one_number(t: TestStore) {
    for (name, allocation) in [
        ("RR", Allocation::RoundRobin),
        ("RANDOM", Allocation::Random),
    ] {
        let g = t.with_group(name, 10, allocation).await;
        let s = t.session(300 * SEC).await;
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, req) = (t.store.clone(), reserve_request(&s, &g));
                tokio::spawn(async move { store.reserve(req).await })
            })
            .collect();
        let mut numbers = HashSet::new();
        for task in tasks {
            let r = task.await.expect("task").expect("reserved");
            numbers.insert(r.number.to_string());
        }
        assert_eq!(numbers.len(), 1, "{name}: {numbers:?}");
        // Asked again later, the session renews that number: the burst's batch recorded it
        // as the session's (a PostgreSQL batch that took it and renewed it at once did not).
        let again = t.reserve(&s, &g).await.expect("renewed");
        assert!(
            numbers.contains(&again.number.to_string()),
            "{name}: {again:?}"
        );
        for _ in 0..9 {
            reserve_fresh(&t, &g).await;
        }
        let last = t.reserve(&t.session(300 * SEC).await, &g).await;
        assert!(
            last.is_err(),
            "{name}: nine others were free, no more: {last:?}"
        );
    }
}
