//! Matching: a live reservation matches once and frees its number; the code and phone must
//! agree (with the lenient no-code option); a match may end the whole session.

use access_broker::domain::Allocation;
use access_broker::store::MatchRequest;

use crate::support::{TestStore, number, reserve_request};
use crate::{SEC, code, matches, phone, plain_match, reserve_fresh};

crate::conformance!(
    match_releases_the_number,
    match_checks_code_and_phone,
    match_can_end_the_session,
);

async fn match_releases_the_number(t: TestStore) {
    let g = t.with_group("DNIS", 1, Allocation::RoundRobin).await;
    let s = t.session_with(300 * SEC, vec![("k", "v")]).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    let matched = t.store.match_reservation(plain_match(&r.number)).await;
    let matched = matched.expect("match").into_session().expect("matched");
    assert_eq!(matched.id, s);
    assert_eq!(matched.fields, vec![("k".into(), "v".into())]);
    assert!(!matches(&t, &r.number).await, "released: no second match");
    let session = t.store.session(&s).await.expect("read");
    assert!(session.is_some(), "session still live");
    assert_eq!(reserve_fresh(&t, &g).await.number, r.number, "free again");
    assert!(!matches(&t, &number("999")).await, "unknown number");
}

async fn match_checks_code_and_phone(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let mut req = reserve_request(&s, &g);
    req.code = Some(code("4242"));
    req.provide_code = req.code.is_some();
    req.phone = Some(phone("+1 650 555 0100"));
    let r = t.store.reserve(req).await.expect("reserved");
    let attempt = |code_sent: Option<&str>, phone_sent: Option<&str>, required| MatchRequest {
        code: code_sent.map(code),
        phone: phone_sent.map(phone),
        code_required: required,
        ..plain_match(&r.number)
    };
    // (code, phone, code required) that must not match; none of them releases the number.
    for (code_sent, phone_sent, required) in [
        (Some("4243"), None, true),
        (None, None, true),
        (Some("4242"), Some("+16505550199"), true),
        (Some("4242"), Some("16505550100"), true),
    ] {
        let m = t
            .store
            .match_reservation(attempt(code_sent, phone_sent, required))
            .await
            .expect("match")
            .into_session();
        assert!(m.is_none(), "{code_sent:?} {phone_sent:?} must not match");
    }
    let m = t
        .store
        .match_reservation(attempt(None, Some("+1-650-555-0100"), false))
        .await
        .expect("match")
        .into_session();
    assert_eq!(
        m.map(|s| s.id),
        Some(s.clone()),
        "lenient: no code; phone equal after normalising"
    );
    let mut req = reserve_request(&s, &g);
    req.code = Some(code("777777"));
    req.provide_code = req.code.is_some();
    let r = t.store.reserve(req).await.expect("reserved");
    let m = MatchRequest {
        code: Some(code("777777")),
        ..plain_match(&r.number)
    };
    assert!(
        t.store
            .match_reservation(m)
            .await
            .expect("match")
            .into_session()
            .is_some(),
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
        end_session: true,
        with_fields: true,
        ..plain_match(&r.number)
    };
    assert!(
        t.store
            .match_reservation(m)
            .await
            .expect("match")
            .into_session()
            .is_some()
    );
    let session = t.store.session(&s).await.expect("read");
    assert!(session.is_none(), "session ended");
    let s2 = t.session(300 * SEC).await;
    t.reserve(&s2, &other)
        .await
        .expect("its other reservation was released too");
}
