//! request-interaction: a session and a reservation in one step, and nothing left behind
//! when the pool is empty.

use crate::helpers::TestApp;
use crate::on_every_backend;
use crate::support::Backend;

on_every_backend!(creates_a_session_and_reserves, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let r = app
        .post(
            "/genesys/1/service/request-interaction",
            &[
                ("firstname", "Bob"),
                ("_provide_code", "true"),
                ("_ttl", "120"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.field("_id");
    assert!(id.starts_with("1-"), "{id}");
    assert_eq!(r.field("_access_code").len(), 6);
    let session = app.get(&format!("/genesys/1/service/{id}")).await;
    assert_eq!(session.field("firstname"), "Bob");
    assert!(
        session.json().get("_provide_code").is_none(),
        "control parameters are not stored"
    );
    assert_eq!(session.field("_service"), "request-interaction");
    let m = app
        .match_interaction(&[
            ("_access_number", &r.field("_access_number")),
            ("_access_code", &r.field("_access_code")),
        ])
        .await;
    assert_eq!(m.field("_id"), id);
});

#[tokio::test]
async fn empty_body_succeeds_and_an_empty_pool_leaves_no_session() {
    let toml = r#"
        [resource_groups.DNIS]
        numbers = ["800"]
        [services.request-interaction]
        type = "request-interaction"
        _resource_group = "DNIS"
    "#;
    let app = TestApp::spawn_with(Backend::Memory, toml).await;
    let r = app
        .send(
            app.client
                .post(app.path("/genesys/1/service/request-interaction")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        matches!(r.field("_expiration_time").as_str(), "29" | "30"),
        "session _ttl defaults to 30 s"
    );
    let refused = app
        .post("/genesys/1/service/request-interaction", &[("who", "late")])
        .await;
    refused.error(503, "PoolExhausted");
    let sessions = app
        .store
        .store
        .find_reservations(Default::default())
        .await
        .expect("find");
    assert_eq!(sessions.len(), 1);
    let bad = app
        .post("/genesys/1/service/request-interaction", &[("_ttl", "0")])
        .await;
    assert!(bad.error(400, "InvalidParameter").starts_with("_ttl"));
}
