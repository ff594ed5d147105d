//! `Idempotency-Key` on session creation, request-interaction and storage POSTs: a retry
//! gets the first answer, never a second session or reservation, even when the same key
//! arrives many times at once; keys are per client and forgotten after 24 h.

use std::time::Duration;

use crate::helpers::TestApp;
use crate::on_every_backend;

pub(crate) const INTERACTION: &str = "/genesys/1/service/request-interaction";

pub(crate) async fn post_keyed(
    app: &TestApp,
    path: &str,
    key: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let req = app
        .client
        .post(app.path(path))
        .header("Idempotency-Key", key)
        .form(form);
    let r = app.send(req).await;
    (r.status.as_u16(), r.text)
}

async fn reserved(app: &TestApp) -> u64 {
    let r = app.get("/genesys/1/admin/groups").await;
    r.json()["groups"][0]["reserved"]
        .as_u64()
        .expect("reserved count")
}

on_every_backend!(a_retry_gets_the_first_answer, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let first = post_keyed(&app, INTERACTION, "k-1", &[("who", "a")]).await;
    assert_eq!(first.0, 200, "{}", first.1);
    let again = post_keyed(&app, INTERACTION, "k-1", &[("who", "a")]).await;
    assert_eq!(again, first, "same answer, status and body");
    assert_eq!(reserved(&app).await, 1, "one reservation");
    let other = post_keyed(&app, INTERACTION, "k-2", &[("who", "b")]).await;
    assert_ne!(other.1, first.1);
    assert_eq!(reserved(&app).await, 2);

    let s1 = post_keyed(&app, "/genesys/1/service/callback", "s-1", &[("f", "1")]).await;
    let s2 = post_keyed(&app, "/genesys/1/service/callback", "s-1", &[("f", "1")]).await;
    assert_eq!((s1.0, &s1.1), (200, &s2.1));
    let d1 = post_keyed(&app, "/genesys/1/storage/600", "d-1", &[("f", "1")]).await;
    let d2 = post_keyed(&app, "/genesys/1/storage/600", "d-1", &[("f", "2")]).await;
    assert_eq!((d1.0, &d1.1), (200, &d2.1));
    let id: serde_json::Value = serde_json::from_str(&d1.1).expect("json");
    let stored = app
        .get(&format!(
            "/genesys/1/storage/{}",
            id["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(stored.field("f"), "1", "the retry changed nothing");
    // An update under a key is applied once: a retry (even one whose body differs) gets the
    // first answer and merges nothing; an unknown entry is 404 and keeps nothing.
    let entry = format!("/genesys/1/storage/{}/600", id["id"].as_str().expect("id"));
    let u1 = post_keyed(&app, &entry, "u-1", &[("g", "1")]).await;
    let u2 = post_keyed(&app, &entry, "u-1", &[("g", "2")]).await;
    assert_eq!((u1.0, &u1.1), (200, &u2.1));
    let stored = app.get(&entry.replace("/600", "")).await;
    assert_eq!(
        (stored.field("f"), stored.field("g")),
        ("1".into(), "1".into())
    );
    let missing = post_keyed(&app, "/genesys/1/storage/1-nope/600", "u-2", &[("g", "1")]).await;
    assert_eq!(missing.0, 404, "{}", missing.1);
    let u3 = post_keyed(&app, &entry, "u-2", &[("g", "3")]).await;
    assert_eq!(u3.0, 200, "the 404 kept nothing under its key: {}", u3.1);

    // A key answers again only the call it came with: on another route it is a new call (a
    // storage POST got the session's answer back and its fields were dropped).
    let elsewhere = post_keyed(&app, "/genesys/1/storage/600", "s-1", &[("h", "1")]).await;
    assert_eq!(elsewhere.0, 200, "{}", elsewhere.1);
    let made: serde_json::Value = serde_json::from_str(&elsewhere.1).expect("json");
    let made = made["id"]
        .as_str()
        .expect("a storage answer, not the session's");
    let kept = app.get(&format!("/genesys/1/storage/{made}")).await;
    assert_eq!(kept.field("h"), "1", "its fields are stored");

    // A Basic-auth user name that no configured credential vouches for is no client of its
    // own: the same address, the same call (were it one, anyone could claim a user's name
    // and replay that user's answers).
    let req = app
        .client
        .post(app.path(INTERACTION))
        .basic_auth("someone", Some("x"))
        .header("Idempotency-Key", "k-1")
        .form(&[("who", "c")]);
    let theirs = app.send(req).await;
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    assert_eq!(theirs.text, first.1);

    // Kept 24 h, then forgotten.
    app.advance(Duration::from_secs(24 * 3600 + 1));
    let later = post_keyed(&app, "/genesys/1/service/callback", "s-1", &[("f", "1")]).await;
    assert_eq!(later.0, 200);
    assert_ne!(later.1, s1.1, "a key older than 24 h is a new call");
});

on_every_backend!(one_key_at_once_creates_once, |backend| async move {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(
                async move { post_keyed(&app, INTERACTION, "race", &[("who", "r")]).await },
            )
        })
        .collect();
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.expect("call"));
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 200);
    assert_eq!(reserved(&app).await, 1, "one reservation for one key");
});

on_every_backend!(a_bad_key_is_refused, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let long = "k".repeat(300);
    let (status, body) = post_keyed(&app, INTERACTION, &long, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Idempotency-Key"), "{body}");
    assert_eq!(reserved(&app).await, 0);
    // Two keys on one call: which one would count is a guess.
    let req = app
        .client
        .post(app.path(INTERACTION))
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b");
    let twice = app.send(req).await;
    assert!(
        twice
            .error(400, "InvalidParameter")
            .contains("more than once")
    );
    assert_eq!(reserved(&app).await, 0);
});
