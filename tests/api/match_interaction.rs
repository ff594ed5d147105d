//! match-interaction: code and phone rules, returned data, multiple matches, ending the
//! session, and the number going back to the pool.

use crate::helpers::{Case, TestApp};
use crate::on_every_backend;
use crate::support::Backend;

on_every_backend!(
    match_returns_the_session_and_frees_the_number,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let id = app
            .session(&[("firstname", "Ann"), ("reason", "billing")])
            .await;
        let r = app
            .request_access(
                &id,
                &[
                    ("_provide_code", "true"),
                    ("_phone_number", "+1 650 555 0100"),
                ],
            )
            .await;
        let (number, code) = (r.field("_access_number"), r.field("_access_code"));
        // What a caller keyed is compared, never refused: no code at all is a wrong one.
        let wrong = app
            .match_interaction(&[("_access_number", &number), ("_access_code", "000000#")])
            .await;
        wrong.error(404, "NoMatch");
        let other_code = if code == "111111" { "222222" } else { "111111" };
        let wrong = app
            .match_interaction(&[("_access_number", &number), ("_access_code", other_code)])
            .await;
        assert!(wrong.error(404, "NoMatch").contains(&number));
        let no_code = app.match_interaction(&[("_access_number", &number)]).await;
        no_code.error(404, "NoMatch");
        let wrong_phone = app
            .match_interaction(&[
                ("_access_number", &number),
                ("_access_code", &code),
                ("_phone_number", "+16505550199"),
            ])
            .await;
        wrong_phone.error(404, "NoMatch");
        let too_long = "1".repeat(40);
        let wrong_phone = app
            .match_interaction(&[
                ("_access_number", &number),
                ("_access_code", &code),
                ("_phone_number", &too_long),
            ])
            .await;
        wrong_phone.error(404, "NoMatch");
        let m = app
            .match_interaction(&[
                ("_access_number", &number),
                ("_access_code", &code),
                ("_phone_number", "+1-650-555-0100"),
                ("_return_data", "true"),
            ])
            .await;
        assert_eq!(m.status, 200, "{}", m.text);
        assert_eq!(m.field("_id"), id);
        assert_eq!(m.field("firstname"), "Ann");
        let data_id = m.field("_data_id");
        let data = app.get(&format!("/genesys/1/storage/{data_id}")).await;
        assert_eq!(
            data.field("reason"),
            "billing",
            "the session's data is readable by _data_id"
        );
        // The demo group has a 30 s late-call grace: the IVR's retry gets the same session.
        let again = app
            .match_interaction(&[("_access_number", &number), ("_access_code", &code)])
            .await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(
            (again.field("_id"), again.field("_late_match")),
            (id.clone(), "true".into())
        );
        let next = app.session(&[]).await;
        let r = app.request_access(&next, &[]).await;
        assert_eq!(r.status, 200);
        let session = app.get(&format!("/genesys/1/service/{id}")).await;
        assert_eq!(session.status, 200, "match alone does not end the session");
    }
);

#[tokio::test]
async fn options_multiple_matches_and_delete_service() {
    let app = TestApp::spawn(Backend::Memory).await;
    let id = app.session(&[("k", "v")]).await;
    let number = app.request_access(&id, &[]).await.field("_access_number");
    let m = app
        .match_interaction(&[
            ("_access_number", &number),
            ("_return_multiple_matches", "true"),
            ("_return_user_data", "1"),
            ("_delete_service", "true"),
        ])
        .await;
    let body = m.json();
    let matches = body["matches"].as_array().expect("matches list");
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0]["_id"], id.as_str());
    assert_eq!(matches[0]["k"], "v");
    assert!(matches[0]["_data_id"].is_string());
    app.get(&format!("/genesys/1/service/{id}"))
        .await
        .error(404, "ServiceNotFound");
    // Without data: only the ids.
    let id = app.session(&[("k", "v")]).await;
    let number = app.request_access(&id, &[]).await.field("_access_number");
    let m = app.match_interaction(&[("_access_number", &number)]).await;
    let body = m.json();
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    // Either spelling true returns the data; a stored `_late_match` does not make a live
    // match look late, and stored ids do not replace the answer's.
    let id = app
        .session(&[("k", "v"), ("_late_match", "true"), ("_data_id", "x")])
        .await;
    let number = app.request_access(&id, &[]).await.field("_access_number");
    let m = app
        .match_interaction(&[
            ("_access_number", &number),
            ("_return_data", "false"),
            ("_return_user_data", "true"),
        ])
        .await;
    let body = m.json();
    assert_eq!(body["k"], "v", "{body}");
    assert_eq!(body["_id"], id.as_str(), "{body}");
    assert_eq!(body["_data_id"], format!("{id}.data").as_str(), "{body}");
    assert!(body.get("_late_match").is_none(), "{body}");
}

#[tokio::test]
async fn bad_parameters() {
    let app = TestApp::spawn(Backend::Memory).await;
    let cases: &[Case] = &[
        (&[], 400, "_access_number"),
        (&[("_access_number", "65a")], 400, "_access_number"),
        (
            &[
                ("_access_number", "6504660000"),
                ("_return_data", "perhaps"),
            ],
            400,
            "_return_data",
        ),
        (
            &[("_access_number", "6504660000"), ("_return_user_data", "2")],
            400,
            "_return_user_data",
        ),
        (
            &[
                ("_access_number", "6504660000"),
                ("_return_data", "true"),
                ("_return_user_data", "bogus"),
            ],
            400,
            "_return_user_data",
        ),
        (
            &[("_access_number", "6504660000"), ("_delete_service", "x")],
            400,
            "_delete_service",
        ),
        (
            &[
                ("_access_number", "6504660000"),
                ("_return_multiple_matches", "x"),
            ],
            400,
            "_return_multiple_matches",
        ),
        // A withheld caller id is no number: a call without one, not a bad request.
        (
            &[
                ("_access_number", "6504660000"),
                ("_phone_number", "anonymous"),
            ],
            404,
            "",
        ),
        (
            &[("_access_number", "6504660000"), ("_access_code", "12#")],
            404,
            "",
        ),
        (&[("_access_number", "6504660000")], 404, ""),
        (&[("_access_number", "99999")], 404, ""),
    ];
    for (form, status, param) in cases {
        let r = app.match_interaction(form).await;
        assert_eq!(r.status.as_u16(), *status, "{form:?}: {}", r.text);
        if *status == 400 {
            assert!(
                r.error(400, "InvalidParameter").starts_with(param),
                "{form:?}: {}",
                r.text
            );
        } else {
            r.error(404, "NoMatch");
        }
    }
}

#[tokio::test]
async fn lenient_mode_matches_without_the_code() {
    let toml = r#"
        [resource_groups.DNIS]
        numbers = ["700-701"]
        [services.request-access]
        type = "request-access"
        _resource_group = "DNIS"
        _provide_code = true
        [services.match-interaction]
        type = "match-interaction"
        match_without_code = true
        [services.callback]
        type = "session"
    "#;
    let app = TestApp::spawn_with(Backend::Memory, toml).await;
    let id = app.session(&[]).await;
    let number = app.request_access(&id, &[]).await.field("_access_number");
    let m = app.match_interaction(&[("_access_number", &number)]).await;
    assert_eq!(m.field("_id"), id);
}

/// Failure reasons only where the service tells them; late calls and lockouts counted.
#[tokio::test]
async fn reasons_late_calls_and_lockouts_over_http() {
    let toml = r#"
        [resource_groups.DNIS]
        numbers = ["500-502"]
        late_match_grace = 60
        max_code_attempts = 1
        quarantine_after_stray_calls = 2
        [services.request-access]
        type = "request-access"
        _resource_group = "DNIS"
        _provide_code = true
        [services.match-interaction]
        type = "match-interaction"
        return_failure_reason = true
        [services.quiet]
        type = "match-interaction"
        [services.callback]
        type = "session"
    "#;
    let app = TestApp::spawn_with(Backend::Memory, toml).await;
    let id = app.session(&[]).await;
    let r = app.request_access(&id, &[]).await;
    let (number, code) = (r.field("_access_number"), r.field("_access_code"));
    let reason = |resp: &crate::helpers::Resp| resp.json()["reason"].clone();
    let other = if code == "111111" { "222222" } else { "111111" };
    let quiet = app
        .post(
            "/genesys/1/service/quiet",
            &[("_access_number", &number), ("_access_code", other)],
        )
        .await;
    quiet.error(404, "NoMatch");
    assert!(
        quiet.json().get("reason").is_none(),
        "told only where the service allows"
    );
    let locked = app
        .match_interaction(&[("_access_number", &number), ("_access_code", other)])
        .await;
    locked.error(404, "NoMatch");
    assert_eq!(
        reason(&locked),
        "locked",
        "the second wrong code cancels (max 1)"
    );
    assert_eq!(
        reason(&app.match_interaction(&[("_access_number", "999")]).await),
        "unknown_number"
    );
    let r = app.request_access(&id, &[]).await;
    assert_ne!(
        r.field("_access_code"),
        code,
        "a new code after the lockout"
    );
    let (number, code) = (r.field("_access_number"), r.field("_access_code"));
    let first = app
        .match_interaction(&[("_access_number", &number), ("_access_code", &code)])
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.json().get("_late_match").is_none());
    let again = app
        .match_interaction(&[("_access_number", &number), ("_access_code", &code)])
        .await;
    assert_eq!(again.field("_late_match"), "true");
    assert_eq!(again.field("_id"), id);
    let stray = app.match_interaction(&[("_access_number", "502")]).await;
    assert_eq!(reason(&stray), "not_reserved");
    app.match_interaction(&[("_access_number", "502")]).await;
    let page = app.get("/genesys/1/admin/groups/DNIS").await.json();
    let n502 = page["numbers"]
        .as_array()
        .expect("numbers")
        .iter()
        .find(|n| n["number"] == "502")
        .cloned()
        .expect("listed");
    assert_eq!(
        (n502["state"].as_str(), n502["stray_calls"].as_u64()),
        (Some("quarantined"), Some(2))
    );
    let freed = app
        .post("/genesys/1/admin/groups/DNIS/numbers/502/free", &[])
        .await;
    assert_eq!(freed.field("state"), "freed");
    let metrics = app.get("/metrics").await.text;
    for needle in [
        "access_broker_code_lockouts_total{group=\"DNIS\"} 1",
        "access_broker_stray_calls_total{group=\"DNIS\"} 2",
        "access_broker_matches_total{outcome=\"late\"} 1",
        "access_broker_pool_quarantined",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }
}

// What an IVR passes on is compared, never refused: a keyed code with the terminator (`#`) is
// a wrong code (one attempt of max_code_attempts), a withheld caller id (`anonymous`) is a
// call that gives no number and matches on its code, one too long to be a number is a wrong
// phone.
on_every_backend!(
    keyed_values_are_compared_not_refused,
    |backend| async move {
        let toml = r#"
        [resource_groups.DNIS]
        numbers = ["500-502"]
        max_code_attempts = 2
        [services.request-access]
        type = "request-access"
        _resource_group = "DNIS"
        _provide_code = true
        [services.match-interaction]
        type = "match-interaction"
        return_failure_reason = true
        [services.callback]
        type = "session"
    "#;
        let app = TestApp::spawn_with(backend, toml).await;
        let id = app.session(&[]).await;
        let r = app
            .request_access(&id, &[("_phone_number", "+1 650 555 0100")])
            .await;
        let (number, code) = (r.field("_access_number"), r.field("_access_code"));
        let reason = |resp: crate::helpers::Resp| {
            resp.error(404, "NoMatch");
            resp.json()["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let keyed = format!("{code}#");
        let tries = [
            (keyed.as_str(), "+16505550100", "wrong_code"),
            (code.as_str(), "16505550100", "wrong_phone"),
            (code.as_str(), &"1".repeat(40), "wrong_phone"),
        ];
        for (code, phone, want) in tries {
            let m = app
                .match_interaction(&[
                    ("_access_number", &number),
                    ("_access_code", code),
                    ("_phone_number", phone),
                ])
                .await;
            assert_eq!(reason(m), want, "{code} {phone}");
        }
        let m = app
            .match_interaction(&[
                ("_access_number", &number),
                ("_access_code", &code),
                ("_phone_number", "anonymous"),
            ])
            .await;
        assert_eq!(m.status, 200, "{}", m.text);
        assert_eq!(m.field("_id"), id);

        // The keyed code counted: with max_code_attempts = 2, a second wrong one locks.
        let r = app.request_access(&id, &[]).await;
        let number = r.field("_access_number");
        for want in ["wrong_code", "wrong_code", "locked"] {
            let m = app
                .match_interaction(&[("_access_number", &number), ("_access_code", "1#")])
                .await;
            assert_eq!(reason(m), want);
        }
    }
);

/// A group of one number, 600, with codes, a 30 s late-call grace and `max` code attempts;
/// match-interaction tells its reasons.
fn one_number(max: u32) -> String {
    format!(
        r#"
        [resource_groups.ONE]
        numbers = ["600"]
        max_code_attempts = {max}
        late_match_grace = 30
        [services.request-access]
        type = "request-access"
        _resource_group = "ONE"
        _provide_code = true
        [services.match-interaction]
        type = "match-interaction"
        return_failure_reason = true
        [services.callback]
        type = "session"
    "#
    )
}

/// A call on 600 with `code`.
async fn call_600(app: &TestApp, code: &str) -> crate::helpers::Resp {
    app.match_interaction(&[("_access_number", "600"), ("_access_code", code)])
        .await
}

// A late call changes nothing, not even the attempts of the number's next reservation: the
// first holder's IVR retrying with its own code twice left the second holder's reservation
// cancelled (max_code_attempts = 1), so the second caller got `locked`.
on_every_backend!(
    a_late_call_does_not_wear_down_the_next_holder,
    |backend| async move {
        let app = TestApp::spawn_with(backend, &one_number(1)).await;
        let (a, b) = (app.session(&[]).await, app.session(&[]).await);
        let first = app.request_access(&a, &[]).await;
        let code_a = first.field("_access_code");
        assert_eq!(call_600(&app, &code_a).await.field("_id"), a);
        let second = app.request_access(&b, &[]).await;
        assert_eq!(second.field("_access_number"), "600", "{}", second.text);
        let code_b = second.field("_access_code");
        for _ in 0..2 {
            let late = call_600(&app, &code_a).await;
            assert_eq!(
                (late.field("_id"), late.field("_late_match")),
                (a.clone(), "true".to_owned()),
                "{}",
                late.text
            );
        }
        let m = call_600(&app, &code_b).await;
        assert_eq!(m.status, 200, "the second holder's call: {}", m.text);
        assert_eq!(m.field("_id"), b);
    }
);

// Guessing an ended reservation's code within its grace is bounded as on a live one: each
// wrong code was a stray call that nothing limited, so a 4-digit code fell in seconds and the
// right one got the session (an outside audit). After `max_code_attempts` of them the grace
// is over: the right code answers `locked`.
on_every_backend!(
    guesses_at_a_late_reservation_close_its_grace,
    |backend| async move {
        let app = TestApp::spawn_with(backend, &one_number(3)).await;
        let id = app.session(&[]).await;
        let code = app.request_access(&id, &[]).await.field("_access_code");
        assert_eq!(call_600(&app, &code).await.field("_id"), id);
        assert_eq!(
            call_600(&app, &code).await.field("_late_match"),
            "true",
            "its own retry"
        );
        let wrong = if code == "111111" { "222222" } else { "111111" };
        for _ in 0..3 {
            call_600(&app, wrong).await.error(404, "NoMatch");
        }
        let closed = call_600(&app, &code).await;
        closed.error(404, "NoMatch");
        assert_eq!(closed.json()["reason"], "locked", "{}", closed.text);
    }
);

// `_access_number` is trimmed like every other parameter (it was 400 with a space around it).
#[tokio::test]
async fn an_access_number_is_read_trimmed() {
    let app = TestApp::spawn(crate::support::Backend::Memory).await;
    let id = app.session(&[]).await;
    let number = app.request_access(&id, &[]).await.field("_access_number");
    let m = app
        .match_interaction(&[("_access_number", &format!(" {number} "))])
        .await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.field("_id"), id);
}
