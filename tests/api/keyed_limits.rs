//! `Idempotency-Key` meets `[limits]`: a replay of a first answer adds nothing, so it takes no
//! place in a client's quota and no session of `max_sessions`; retries sent while the first
//! call is still writing get its answer, not a refusal; concurrent calls of one session in
//! one group take one place between them. (Found by an outside audit: a replayed keyed
//! request-interaction held a client's quota after its session ended, a client replaying one
//! key kept other clients at 507, a burst of one session's renewals answered 429.)

use crate::helpers::{DEMO, TestApp};
use crate::idempotency::{INTERACTION, post_keyed};
use crate::on_every_backend;

const SESSIONS: &str = "/genesys/1/service/callback";

fn with_limits(limits: &str) -> String {
    format!("{DEMO}\n[limits]\n{limits}\n")
}

fn id_of(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
    json["_id"].as_str().expect("_id").to_owned()
}

on_every_backend!(
    a_replayed_reservation_takes_no_place,
    |backend| async move {
        let app = TestApp::spawn_with(backend, &with_limits("reservations_per_client = 2")).await;
        let first = post_keyed(&app, INTERACTION, "k1", &[("a", "1")]).await;
        assert_eq!(first.0, 200, "{}", first.1);
        assert_eq!(
            app.delete(&format!("/genesys/1/service/{}", id_of(&first.1)))
                .await
                .status,
            200
        );
        let replay = post_keyed(&app, INTERACTION, "k1", &[("a", "1")]).await;
        assert_eq!(replay, first, "the first answer");
        // The client holds nothing: two new reservations fit its quota of two.
        for n in ["1", "2"] {
            let r = app.post(INTERACTION, &[("n", n)]).await;
            assert_eq!(r.status, 200, "reservation {n}: {}", r.text);
        }
        app.post(INTERACTION, &[("n", "3")])
            .await
            .error(429, "QuotaExceeded");
    }
);

on_every_backend!(a_replayed_session_takes_no_room, |backend| async move {
    let app = TestApp::spawn_with(backend, &with_limits("max_sessions = 5")).await;
    for _ in 0..3 {
        app.session(&[]).await;
    }
    let first = post_keyed(&app, SESSIONS, "kx", &[("a", "1")]).await;
    assert_eq!(first.0, 200, "{}", first.1);
    for _ in 0..5 {
        assert_eq!(post_keyed(&app, SESSIONS, "kx", &[("a", "1")]).await, first);
    }
    // Four sessions live: a fifth fits at once (each replay took a session for a second).
    let fifth = app.post(SESSIONS, &[("a", "5")]).await;
    assert_eq!(fifth.status, 200, "{}", fifth.text);
    app.post(SESSIONS, &[("a", "6")])
        .await
        .error(507, "StoreFull");
});

on_every_backend!(
    retries_in_flight_at_a_limit_get_the_first_answer,
    |backend| async move {
        let app = TestApp::spawn_with(backend, &with_limits("max_sessions = 5")).await;
        for _ in 0..4 {
            app.session(&[]).await;
        }
        let sessions = (0..40).map(|_| post_keyed(&app, SESSIONS, "one", &[("a", "1")]));
        let answers = futures::future::join_all(sessions).await;
        assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
        assert_eq!(answers[0].0, 200, "{}", answers[0].1);

        // Two reservations held (the quota is three): forty retries of a third agree.
        let toml = with_limits("reservations_per_client = 3");
        let app = TestApp::spawn_on(crate::support::TestStore::require(backend).await, &toml).await;
        for n in ["1", "2"] {
            let id = app.session(&[]).await;
            assert_eq!(app.request_access(&id, &[("n", n)]).await.status, 200);
        }
        let interactions = (0..40).map(|_| post_keyed(&app, INTERACTION, "two", &[("b", "1")]));
        let answers = futures::future::join_all(interactions).await;
        assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
        assert_eq!(answers[0].0, 200, "{}", answers[0].1);
    }
);

on_every_backend!(
    one_sessions_concurrent_calls_take_one_place,
    |backend| async move {
        let app = TestApp::spawn_with(backend, &with_limits("reservations_per_client = 2")).await;
        let id = app.session(&[]).await;
        for round in ["new", "renewed"] {
            let calls = (0..10).map(|_| app.request_access(&id, &[]));
            let answers = futures::future::join_all(calls).await;
            let numbers: Vec<(u16, String)> = answers
                .iter()
                .map(|r| (r.status.as_u16(), r.text.clone()))
                .collect();
            assert!(
                answers.iter().all(|r| r.status == 200),
                "{round}: {numbers:?}"
            );
            let first = answers[0].field("_access_number");
            assert!(
                answers.iter().all(|r| r.field("_access_number") == first),
                "{round}: one number"
            );
        }
    }
);

// Retries in flight take no room and no place from other calls: a new client's session
// answered 507 at three sessions of four while a key's retries were in flight (each held the
// fourth until its lookup returned; on PostgreSQL that is a round trip), and a reservation
// 429 "1 more on the way".
on_every_backend!(
    retries_in_flight_leave_room_for_others,
    |backend| async move {
        let app = TestApp::spawn_with(backend, &with_limits("max_sessions = 4")).await;
        for _ in 0..2 {
            app.session(&[]).await;
        }
        let first = post_keyed(&app, SESSIONS, "k", &[("a", "1")]).await;
        assert_eq!(first.0, 200, "{}", first.1);
        let retries =
            futures::future::join_all((0..29).map(|_| post_keyed(&app, SESSIONS, "k", &[])));
        let other = app.post(SESSIONS, &[("other", "1")]);
        let (retries, other) = futures::future::join(retries, other).await;
        assert!(retries.iter().all(|r| r == &first), "{retries:?}");
        assert_eq!(other.status, 200, "the fourth session: {}", other.text);

        let toml = with_limits("reservations_per_client = 2");
        let app = TestApp::spawn_on(crate::support::TestStore::require(backend).await, &toml).await;
        let first = post_keyed(&app, INTERACTION, "r", &[("a", "1")]).await;
        assert_eq!(first.0, 200, "{}", first.1);
        let id = app.session(&[]).await;
        let retries =
            futures::future::join_all((0..29).map(|_| post_keyed(&app, INTERACTION, "r", &[])));
        let other = app.request_access(&id, &[]);
        let (retries, other) = futures::future::join(retries, other).await;
        assert!(retries.iter().all(|r| r == &first), "{retries:?}");
        assert_eq!(other.status, 200, "the second reservation: {}", other.text);
    }
);
