//! request-access: the flow on every backend, then every parameter's good and bad forms.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::{Case, TestApp};
use crate::on_every_backend;
use crate::support::Backend;

on_every_backend!(reserves_renews_and_exhausts, |backend| async move {
    let toml = r#"
        [resource_groups.SMALL]
        numbers = ["100-102"]
        [services.request-access]
        type = "request-access"
        _resource_group = "SMALL"
        [services.callback]
        type = "session"
    "#;
    let app = TestApp::spawn_with(backend, toml).await;
    let id = app.session(&[]).await;
    let r = app.request_access(&id, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["_id"], id.as_str());
    assert_eq!(body["_access_number"], "100");
    assert!(
        matches!(body["_expiration_time"].as_str(), Some("29" | "30")),
        "{body}"
    );
    assert!(body.get("_access_code").is_none());
    let again = app.request_access(&id, &[]).await;
    assert_eq!(
        again.field("_access_number"),
        "100",
        "same session, same number"
    );
    for want in ["101", "102"] {
        let other = app.session(&[]).await;
        assert_eq!(
            app.request_access(&other, &[])
                .await
                .field("_access_number"),
            want
        );
    }
    let late = app.session(&[]).await;
    let refused = app.request_access(&late, &[]).await;
    let message = refused.error(503, "PoolExhausted");
    assert!(message.contains("SMALL"), "{message}");
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((29..=30).contains(&retry), "{retry}");
});

// Every session asks twice at once, so on PostgreSQL the calls land in shared batches with
// the same session in one batch or in two concurrent ones.
on_every_backend!(
    many_parallel_requests_never_share_a_number,
    |backend| async move {
        let toml = r#"
        [resource_groups.DNIS]
        numbers = ["200-219"]
        allocation = "round-robin"
        [services.request-access]
        type = "request-access"
        _resource_group = "DNIS"
        [services.callback]
        type = "session"
    "#;
        let app = TestApp::spawn_with(backend, toml).await;
        let mut ids = Vec::new();
        for _ in 0..150 {
            ids.push(app.session(&[]).await);
        }
        let app = std::sync::Arc::new(app);
        let calls: Vec<_> = ids
            .iter()
            .chain(ids.iter())
            .map(|id| {
                let (app, id) = (app.clone(), id.clone());
                tokio::spawn(async move { (id.clone(), app.request_access(&id, &[]).await) })
            })
            .collect();
        let mut answers: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for call in calls {
            let (id, r) = call.await.expect("task");
            let answer = match r.status.as_u16() {
                200 => Some(r.field("_access_number")),
                503 => None,
                other => panic!("unexpected {other}: {}", r.text),
            };
            answers.entry(id).or_default().push(answer);
        }
        let mut holders: HashMap<String, String> = HashMap::new();
        for (id, got) in &answers {
            assert!(
                got.iter().all(|a| a == &got[0]),
                "session {id} got different answers: {got:?}"
            );
            if let Some(number) = &got[0] {
                let other = holders.insert(number.clone(), id.clone());
                assert!(other.is_none(), "number {number} handed to two sessions");
            }
        }
        assert_eq!(holders.len(), 20, "every number handed out once");
    }
);

#[tokio::test]
async fn booking_timeout_precedence_and_gms_fallback() {
    let toml = r#"
        [resource_groups.G]
        numbers = ["300-309"]
        booking_expiration_timeout = 120
        [resource_groups.H]
        numbers = ["400-409"]
        [services.request-access]
        type = "request-access"
        _resource_group = "G"
        [services.ra-with-timeout]
        type = "request-access"
        _resource_group = "G"
        _booking_expiration_timeout = 600
        [services.callback]
        type = "session"
        _ttl = 3600
    "#;
    let app = TestApp::spawn_with(Backend::Memory, toml).await;
    // (service, request value, expected seconds): request > service > group > 30.
    let cases = [
        ("request-access", None, 120),
        ("request-access", Some("5"), 5),
        ("request-access", Some("1800"), 1800),
        ("request-access", Some("4"), 30),
        ("request-access", Some("1801"), 30),
        ("request-access", Some("-5"), 30),
        ("ra-with-timeout", None, 600),
        ("ra-with-timeout", Some("60"), 60),
    ];
    for (service, value, want) in cases {
        let id = app.session(&[]).await;
        let mut form = vec![("_id", id.as_str())];
        if let Some(v) = value {
            form.push(("_booking_expiration_timeout", v));
        }
        let r = app
            .post(&format!("/genesys/1/service/{service}"), &form)
            .await;
        let got: u64 = r.field("_expiration_time").parse().expect("seconds");
        assert!(
            got == want || got + 1 == want,
            "{service} {value:?}: {got} (want {want})"
        );
    }
    let id = app.session(&[]).await;
    let r = app.request_access(&id, &[("_resource_group", "H")]).await;
    assert!(
        matches!(r.field("_expiration_time").as_str(), "29" | "30"),
        "default 30"
    );
    for bad in ["ten", "2.5", "30s"] {
        let id = app.session(&[]).await;
        let r = app
            .request_access(&id, &[("_booking_expiration_timeout", bad)])
            .await;
        assert!(
            r.error(400, "InvalidParameter")
                .starts_with("_booking_expiration_timeout"),
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn parameters_good_and_bad() {
    let app = TestApp::spawn(Backend::Memory).await;
    // (extra params, expected status, parameter named in the error)
    let cases: &[Case] = &[
        (&[("_provide_code", "true")], 200, ""),
        (&[("_provide_code", "TRUE")], 200, ""),
        (&[("_provide_code", "1")], 200, ""),
        (&[("_provide_code", "False")], 200, ""),
        (&[("_provide_code", "0")], 200, ""),
        (&[("_provide_code", "yes")], 400, "_provide_code"),
        (
            &[("_provide_code", "true"), ("_access_code_length", "4")],
            200,
            "",
        ),
        (
            &[("_provide_code", "true"), ("_access_code_length", "12")],
            200,
            "",
        ),
        (
            &[("_provide_code", "true"), ("_access_code_length", "3")],
            400,
            "_access_code_length",
        ),
        (
            &[("_provide_code", "true"), ("_access_code_length", "13")],
            400,
            "_access_code_length",
        ),
        (&[("_access_code_length", "x")], 400, "_access_code_length"),
        (&[("_resource_group", "DNIS")], 200, ""),
        (&[("_resource_group", "dnis")], 400, "_resource_group"),
        (&[("_resource_group", "a/b")], 400, "_resource_group"),
        (&[("_phone_number", "+1 (650) 555-0100")], 200, ""),
        (&[("_phone_number", "call me")], 400, "_phone_number"),
        (
            &[("_return_pool_health", "maybe")],
            400,
            "_return_pool_health",
        ),
    ];
    for (extra, status, param) in cases {
        let id = app.session(&[]).await;
        let r = app.request_access(&id, extra).await;
        assert_eq!(r.status.as_u16(), *status, "{extra:?}: {}", r.text);
        if *status == 400 {
            let kind = if *param == "_resource_group" && !extra[0].1.contains('/') {
                "UnknownResourceGroup"
            } else {
                "InvalidParameter"
            };
            let message = r.error(400, kind);
            assert!(message.starts_with(param), "{extra:?}: {message}");
        }
    }
}

#[tokio::test]
async fn codes_have_the_asked_length_and_the_node_prefix() {
    let toml = r#"
        [server]
        access_code_prefix = "7-9"
        [resource_groups.DNIS]
        numbers = ["500-599"]
        [services.request-access]
        type = "request-access"
        _resource_group = "DNIS"
        _provide_code = true
        _access_code_length = 8
        [services.callback]
        type = "session"
    "#;
    let app = TestApp::spawn_with(Backend::Memory, toml).await;
    for (extra, len) in [(vec![], 8), (vec![("_access_code_length", "5")], 5)] {
        let id = app.session(&[]).await;
        let code = app.request_access(&id, &extra).await.field("_access_code");
        assert_eq!(code.len(), len, "{code}");
        assert!(matches!(code.as_bytes()[0], b'7'..=b'9'), "{code}");
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
    }
    let id = app.session(&[]).await;
    let first = app.request_access(&id, &[("_provide_code", "false")]).await;
    assert!(
        first.json().get("_access_code").is_none(),
        "request beats service option"
    );
    let again = app.request_access(&id, &[]).await;
    assert_eq!(again.field("_access_number"), first.field("_access_number"));
    assert_eq!(
        again.field("_access_code").len(),
        8,
        "a code is added when asked again"
    );
    let third = app.request_access(&id, &[]).await;
    assert_eq!(
        third.field("_access_code"),
        again.field("_access_code"),
        "and then kept"
    );
}

#[tokio::test]
async fn session_and_group_errors() {
    let toml = r#"
        [resource_groups.DNIS]
        numbers = ["500-509"]
        [services.ra-no-default]
        type = "request-access"
        [services.request-access]
        type = "request-access"
        _resource_group = "DNIS"
        [services.callback]
        type = "session"
        _ttl = 10
    "#;
    let app = TestApp::spawn_with(Backend::Memory, toml).await;
    let r = app.post("/genesys/1/service/request-access", &[]).await;
    assert_eq!(r.error(400, "InvalidParameter"), "_id: required");
    let r = app.request_access("1-unknown", &[]).await;
    assert_eq!(
        r.error(404, "ServiceNotFound"),
        "session \"1-unknown\" not found"
    );
    // GET and DELETE of a service's own path look a session up: the answer says so.
    for r in [
        app.get("/genesys/1/service/request-access?_id=x").await,
        app.delete("/genesys/1/service/request-access").await,
    ] {
        assert_eq!(
            r.error(404, "ServiceNotFound"),
            "\"request-access\" is a service, not a session id: a service is called with POST"
        );
    }
    // An id that cannot be a session's (too long, odd characters) names no live session.
    for bad in ["A".repeat(129), "no such id".to_owned()] {
        let r = app.request_access(&bad, &[]).await;
        let message = r.error(404, "ServiceNotFound");
        assert!(
            message.chars().count() < 130,
            "quoted at most 100: {message}"
        );
    }
    let id = app.session(&[]).await;
    let r = app
        .post("/genesys/1/service/ra-no-default", &[("_id", &id)])
        .await;
    assert!(
        r.error(400, "InvalidParameter")
            .starts_with("_resource_group")
    );
    let r = app
        .request_access(&id, &[("_resource_group", "NOPE")])
        .await;
    assert!(r.error(400, "UnknownResourceGroup").contains("NOPE"));
    let r = app.request_access(&id, &[]).await;
    assert!(
        matches!(r.field("_expiration_time").as_str(), "9" | "10"),
        "capped at the session's 10 s: {}",
        r.text
    );
    app.advance(Duration::from_secs(10));
    let r = app.request_access(&id, &[]).await;
    r.error(404, "ServiceNotFound");
    let r = app.post("/genesys/1/service/no-such-service", &[]).await;
    assert!(r.error(404, "ServiceNotFound").contains("no-such-service"));
}

#[tokio::test]
async fn pool_health_and_expiry_free_the_number() {
    let toml = r#"
        [resource_groups.DNIS]
        numbers = ["600"]
        [services.request-access]
        type = "request-access"
        _resource_group = "DNIS"
        [services.callback]
        type = "session"
    "#;
    let app = TestApp::spawn_with(Backend::Memory, toml).await;
    let a = app.session(&[]).await;
    let r = app
        .request_access(
            &a,
            &[
                ("_return_pool_health", "true"),
                ("_booking_expiration_timeout", "5"),
            ],
        )
        .await;
    assert_eq!(
        (r.field("_pool_size"), r.field("_pool_free")),
        ("1".into(), "0".into())
    );
    let b = app.session(&[]).await;
    let refused = app.request_access(&b, &[]).await;
    refused.error(503, "PoolExhausted");
    assert_eq!(refused.header("retry-after").as_deref(), Some("5"));
    app.advance(Duration::from_secs(5));
    assert_eq!(
        app.request_access(&b, &[]).await.field("_access_number"),
        "600",
        "free at expiry"
    );
}
