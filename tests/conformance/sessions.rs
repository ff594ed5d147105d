//! Sessions: they live until their TTL, ending one deletes its data and releases its
//! reservations (a match that ends it still answers its fields), and purging expired rows
//! changes nothing a reader can see.

use access_broker::domain::Allocation;
use access_broker::store::{MatchRequest, ReservationFilter};

use crate::support::TestStore;
use crate::{MS, SEC, reserve_fresh};

crate::conformance!(
    sessions_live_until_their_ttl,
    ending_a_session_deletes_it_and_its_data,
    ending_a_session_releases_its_reservations,
    purge_changes_nothing_visible,
    a_match_ending_its_session_answers_its_fields,
);

async fn sessions_live_until_their_ttl(t: TestStore) {
    let fields = vec![("firstname", "Ann"), ("reason", "billing")];
    let id = t.session_with(10 * SEC, fields).await;
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
    let data = t.store.data(&s.data_id).await.expect("read");
    assert_eq!(data, Some(s.fields.clone()));
    for (step, alive, why) in [
        (10 * SEC - MS, true, "alive 1 ms before its end"),
        (MS, false, "gone at its end"),
    ] {
        t.advance(step);
        let read = t.store.session(&id).await.expect("read");
        assert_eq!(read.is_some(), alive, "{why}");
    }
    assert!(
        !t.store.end_session(&id).await.expect("end"),
        "an expired session cannot be ended"
    );
}

async fn ending_a_session_deletes_it_and_its_data(t: TestStore) {
    let id = t.session_with(60 * SEC, vec![("a", "1")]).await;
    let session = t.store.session(&id).await.expect("read").expect("live");
    assert!(t.store.end_session(&id).await.expect("end"));
    assert!(t.store.session(&id).await.expect("read").is_none());
    assert!(
        t.store
            .data(&session.data_id)
            .await
            .expect("read")
            .is_none()
    );
    assert!(!t.store.end_session(&id).await.expect("end twice"));
}

async fn ending_a_session_releases_its_reservations(t: TestStore) {
    let g = t.with_group("DNIS", 1, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    assert!(t.store.end_session(&s).await.expect("end"));
    let again = reserve_fresh(&t, &g).await;
    assert_eq!(again.number, r.number, "free at once");
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
    let live = t.store.find_reservations(ReservationFilter::default());
    let live = live.await.expect("find");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].number, r.number);
    let stats = t.store.group(&g).await.expect("g").expect("g").stats;
    assert_eq!((stats.free, stats.reserved), (1, 1));
}

/// `_delete_service=true` with `_return_data=true`: the answer carries the fields the session
/// had, and afterwards neither the session nor its data is found (also after a purge).
async fn a_match_ending_its_session_answers_its_fields(t: TestStore) {
    let g = t.with_group("DNIS", 1, Allocation::RoundRobin).await;
    let id = t
        .session_with(60 * SEC, vec![("who", "Ann"), ("why", "billing")])
        .await;
    let r = t.reserve(&id, &g).await.expect("reserved");
    let req = MatchRequest {
        number: r.number,
        code: None,
        phone: None,
        code_required: true,
        end_session: true,
        with_fields: true,
    };
    let outcome = t.store.match_reservation(req).await.expect("match");
    let session = outcome.into_session().expect("matched");
    assert_eq!(
        session.fields,
        vec![
            ("who".into(), "Ann".into()),
            ("why".into(), "billing".into())
        ]
    );
    t.store.purge_expired().await.expect("purge");
    assert!(t.store.session(&id).await.expect("read").is_none());
    let data = t.store.data(&session.data_id).await.expect("read");
    assert!(data.is_none(), "its data ended with it");
}
