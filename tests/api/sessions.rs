//! Service sessions: create, read, end, TTL.

use std::time::Duration;

use crate::helpers::TestApp;
use crate::on_every_backend;
use crate::support::Backend;

on_every_backend!(create_read_end, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let id = app
        .session(&[("firstname", "Zoë"), ("_customer_number", "5551234")])
        .await;
    assert!(id.starts_with("1-") && id.len() == 38, "{id}");
    let s = app.get(&format!("/genesys/1/service/{id}")).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.field("firstname"), "Zoë");
    assert_eq!(s.field("_customer_number"), "5551234");
    assert_eq!(s.field("_id"), id);
    assert_eq!(s.field("_service"), "callback");
    assert!(matches!(
        s.field("_expiration_time").as_str(),
        "299" | "300"
    ));
    let number = app.request_access(&id, &[]).await.field("_access_number");
    let d = app.delete(&format!("/genesys/1/service/{id}")).await;
    assert_eq!(d.status, 200, "{}", d.text);
    app.get(&format!("/genesys/1/service/{id}"))
        .await
        .error(404, "ServiceNotFound");
    app.delete(&format!("/genesys/1/service/{id}"))
        .await
        .error(404, "ServiceNotFound");
    app.match_interaction(&[("_access_number", &number)])
        .await
        .error(404, "NoMatch");
});

#[tokio::test]
async fn ttl_from_request_or_service() {
    let app = TestApp::spawn(Backend::Memory).await;
    let short = app.session(&[("_ttl", "5")]).await;
    let long = app.session(&[]).await;
    app.advance(Duration::from_secs(5));
    app.get(&format!("/genesys/1/service/{short}"))
        .await
        .error(404, "ServiceNotFound");
    assert_eq!(
        app.get(&format!("/genesys/1/service/{long}")).await.status,
        200
    );
    for bad in ["0", "86401", "abc", "-1"] {
        let r = app
            .post("/genesys/1/service/callback", &[("_ttl", bad)])
            .await;
        assert!(
            r.error(400, "InvalidParameter").starts_with("_ttl"),
            "{bad}: {}",
            r.text
        );
    }
    app.get("/genesys/1/service/nonsense-id")
        .await
        .error(404, "ServiceNotFound");
}
