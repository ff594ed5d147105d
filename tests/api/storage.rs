//! The storage API: create, read, read one key, update with a new TTL, delete, expiry.

use std::time::Duration;

use crate::helpers::TestApp;
use crate::on_every_backend;

on_every_backend!(storage_crud_and_ttl, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let r = app
        .post("/genesys/1/storage/60", &[("a", "1"), ("b", "deux")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.field("id");
    let all = app.get(&format!("/genesys/1/storage/{id}")).await;
    assert_eq!(
        (all.field("a"), all.field("b")),
        ("1".into(), "deux".into())
    );
    assert_eq!(
        app.get(&format!("/genesys/1/storage/{id}/b"))
            .await
            .field("b"),
        "deux"
    );
    app.get(&format!("/genesys/1/storage/{id}/zzz"))
        .await
        .error(404, "NotFound");
    let up = app
        .post(
            &format!("/genesys/1/storage/{id}/120"),
            &[("b", "two"), ("c", "3")],
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.text);
    let all = app.get(&format!("/genesys/1/storage/{id}")).await;
    assert_eq!(
        (all.field("a"), all.field("b"), all.field("c")),
        ("1".into(), "two".into(), "3".into())
    );
    app.advance(Duration::from_secs(119));
    assert_eq!(
        app.get(&format!("/genesys/1/storage/{id}")).await.status,
        200
    );
    app.advance(Duration::from_secs(1));
    app.get(&format!("/genesys/1/storage/{id}"))
        .await
        .error(404, "NotFound");
    // A bad TTL means 30 s (GMS rule).
    for ttl in ["0", "abc", "2592001"] {
        let id = app
            .post(&format!("/genesys/1/storage/{ttl}"), &[("x", "y")])
            .await
            .field("id");
        app.advance(Duration::from_secs(29));
        assert_eq!(
            app.get(&format!("/genesys/1/storage/{id}")).await.status,
            200,
            "ttl {ttl}"
        );
        app.advance(Duration::from_secs(1));
        app.get(&format!("/genesys/1/storage/{id}"))
            .await
            .error(404, "NotFound");
    }
    let id = app
        .post("/genesys/1/storage/60", &[("x", "y")])
        .await
        .field("id");
    assert_eq!(
        app.delete(&format!("/genesys/1/storage/{id}")).await.status,
        200
    );
    app.delete(&format!("/genesys/1/storage/{id}"))
        .await
        .error(404, "NotFound");
    app.post("/genesys/1/storage/unknown-id/60", &[("x", "y")])
        .await
        .error(404, "NotFound");
});
