//! Who may reach what: a service's own credentials guard its sessions' data under
//! `/genesys/1/storage/` (the server's do not open it), and one admin request adds at most
//! 100,000 numbers.

use base64::Engine as _;

use crate::helpers::TestApp;

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

crate::on_every_backend!(
    a_services_credentials_guard_its_sessions_data,
    |backend| async move {
        let toml = r#"
        [auth]
        username = "gms"
        password = "secret"
        [resource_groups.DNIS]
        numbers = ["100-109"]
        [services.private]
        type = "session"
        username = "app"
        password = "app-pass"
        [services.callback]
        type = "session"
    "#;
        let app = TestApp::spawn_with(backend, toml).await;
        let create = |service: &str, auth: String| {
            app.client
                .post(app.path(&format!("/genesys/1/service/{service}")))
                .header("authorization", auth)
                .form(&[("secret_note", "42")])
        };
        let own = basic("app", "app-pass");
        let server = basic("gms", "secret");
        let resp = app.send(create("private", own.clone())).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        let data = app
            .send(
                app.client
                    .get(app.path(&format!("/genesys/1/service/{}", resp.field("_id"))))
                    .header("authorization", own.clone()),
            )
            .await
            .field("_data_id");
        let read = |auth: Option<String>| {
            let mut req = app
                .client
                .get(app.path(&format!("/genesys/1/storage/{data}")));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            req
        };
        app.send(read(Some(server.clone())))
            .await
            .error(401, "Unauthorized");
        app.send(read(None)).await.error(401, "Unauthorized");
        let resp = app.send(read(Some(own.clone()))).await;
        assert_eq!(resp.field("secret_note"), "42");
        // Writes and deletes too.
        let resp = app
            .send(
                app.client
                    .delete(app.path(&format!("/genesys/1/storage/{data}")))
                    .header("authorization", server.clone()),
            )
            .await;
        resp.error(401, "Unauthorized");

        // A session of a service without credentials of its own: the server's open its data.
        let resp = app.send(create("callback", server.clone())).await;
        let id = resp.field("_id");
        let resp = app
            .send(
                app.client
                    .get(app.path(&format!("/genesys/1/service/{id}")))
                    .header("authorization", server.clone()),
            )
            .await;
        let data = resp.field("_data_id");
        let resp = app.send(read_other(&app, &data, &server)).await;
        assert_eq!(resp.field("secret_note"), "42");
    }
);

fn read_other(app: &TestApp, data: &str, auth: &str) -> reqwest::RequestBuilder {
    app.client
        .get(app.path(&format!("/genesys/1/storage/{data}")))
        .header("authorization", auth)
}

#[tokio::test]
async fn one_admin_request_adds_at_most_100000_numbers() {
    let app = TestApp::spawn(crate::support::Backend::Memory).await;
    let resp = app
        .post(
            "/genesys/1/admin/groups/DNIS/numbers",
            &[("numbers", "7000000000-7000100000")],
        )
        .await;
    let msg = resp.error(400, "InvalidParameter");
    assert!(
        msg.starts_with("numbers:") && msg.contains("100000"),
        "{msg}"
    );
    let resp = app
        .post(
            "/genesys/1/admin/groups/DNIS/numbers",
            &[("numbers", "7000000000-7000000009")],
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
}

// A session's data lives with its session: a ttl the storage API gave it past the session's
// end does not take it out of its service's guard. Once the session has ended its data
// answers 404 to everyone (it answered 200 to the server's credentials, or to anyone without
// `[auth]`, and 401 to its own service), and its own service hears 404 for the session too.
crate::on_every_backend!(
    a_sessions_data_ends_with_its_session_for_every_caller,
    |backend| async move {
        for with_server_auth in [true, false] {
            let server_auth = "[auth]\nusername = \"gms\"\npassword = \"secret\"\n";
            let toml = format!(
                "{}[resource_groups.DNIS]\nnumbers = [\"100-109\"]\n\
                 [services.private]\ntype = \"session\"\nusername = \"app\"\npassword = \"app-pass\"\n",
                if with_server_auth { server_auth } else { "" }
            );
            let app = TestApp::spawn_with(backend, &toml).await;
            let own = basic("app", "app-pass");
            let call = |method: reqwest::Method, path: String, auth: Option<&str>| {
                let mut req = app.client.request(method, app.path(&path));
                if let Some(auth) = auth {
                    req = req.header("authorization", auth);
                }
                req
            };
            let created = app
                .send(
                    call(
                        reqwest::Method::POST,
                        "/genesys/1/service/private".into(),
                        Some(&own),
                    )
                    .form(&[("note", "42"), ("_ttl", "60")]),
                )
                .await;
            assert_eq!(created.status, 200, "{}", created.text);
            let id = created.field("_id");
            let data = format!("/genesys/1/storage/{id}.data");
            let longer = app
                .send(
                    call(reqwest::Method::POST, format!("{data}/600"), Some(&own))
                        .form(&[("more", "x")]),
                )
                .await;
            assert_eq!(longer.status, 200, "{}", longer.text);
            app.advance(std::time::Duration::from_secs(61));
            let server = basic("gms", "secret");
            let callers = match with_server_auth {
                true => vec![Some(server.as_str()), Some(own.as_str())],
                false => vec![None, Some(own.as_str())],
            };
            for auth in callers {
                let read = app
                    .send(call(reqwest::Method::GET, data.clone(), auth))
                    .await;
                read.error(404, "NotFound");
                let write = app
                    .send(
                        call(reqwest::Method::POST, format!("{data}/600"), auth)
                            .form(&[("note", "tampered")]),
                    )
                    .await;
                write.error(404, "NotFound");
            }
            if with_server_auth {
                let anonymous = app
                    .send(call(reqwest::Method::GET, data.clone(), None))
                    .await;
                anonymous.error(401, "Unauthorized");
            }
            let session = format!("/genesys/1/service/{id}");
            let read = app
                .send(call(reqwest::Method::GET, session.clone(), Some(&own)))
                .await;
            read.error(404, "ServiceNotFound");
            let ended = app
                .send(call(reqwest::Method::DELETE, session, Some(&own)))
                .await;
            ended.error(404, "ServiceNotFound");
        }
    }
);

// The credentials are checked before the body is read: a caller without the service's gets
// 401 whatever its body (it got the body's 400 or 413, or an unknown service's 404).
crate::on_every_backend!(credentials_come_before_the_body, |backend| async move {
    for with_server_auth in [true, false] {
        let toml = format!(
            "{}[auth.metrics]\nusername = \"prom\"\npassword = \"p\"\n\
                 [resource_groups.DNIS]\nnumbers = [\"100-109\"]\n\
                 [services.private]\ntype = \"session\"\nusername = \"app\"\npassword = \"app-pass\"\n",
            if with_server_auth {
                "[auth]\nusername = \"gms\"\npassword = \"secret\"\n"
            } else {
                ""
            }
        );
        let app = TestApp::spawn_with(backend, &toml).await;
        let post = |service: &str, auth: Option<String>, body: &str| {
            let mut req = app
                .client
                .post(app.path(&format!("/genesys/1/service/{service}")))
                .header("content-type", "application/json")
                .body(body.to_owned());
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            req
        };
        let huge = format!("{{\"a\":\"{}\"}}", "x".repeat(70_000));
        for auth in [None, Some(basic("prom", "p"))] {
            for body in ["{bad", huge.as_str()] {
                let resp = app.send(post("private", auth.clone(), body)).await;
                resp.error(401, "Unauthorized");
            }
            if with_server_auth {
                let resp = app.send(post("nosuchservice", auth.clone(), "{}")).await;
                resp.error(401, "Unauthorized");
            }
        }
        let own = app
            .send(post("private", Some(basic("app", "app-pass")), "{bad"))
            .await;
        own.error(400, "InvalidParameter");
    }
});

// A service's own credentials guard request-access for its sessions too: the server's (or
// anyone's, without `[auth]`) reserved a number for a session they may not read, and the
// match handed them its fields and could end it. Only the owner's credentials reserve for
// it now (found by an outside audit); a session of a service without its own still takes
// the server's, and an unknown id answers 404 to any known credentials, as a read of it.
crate::on_every_backend!(
    a_services_credentials_guard_request_access_for_its_sessions,
    |backend| async move {
        for with_server_auth in [true, false] {
            let toml = format!(
                "{}[resource_groups.DNIS]\nnumbers = [\"100-109\"]\n\
                 [services.private]\ntype = \"session\"\nusername = \"app\"\npassword = \"app-pass\"\n\
                 [services.callback]\ntype = \"session\"\n\
                 [services.request-access]\ntype = \"request-access\"\n_resource_group = \"DNIS\"\n\
                 [services.match-interaction]\ntype = \"match-interaction\"\n",
                if with_server_auth {
                    "[auth]\nusername = \"gms\"\npassword = \"secret\"\n"
                } else {
                    ""
                }
            );
            let app = TestApp::spawn_with(backend, &toml).await;
            let own = Some(basic("app", "app-pass"));
            let server = with_server_auth.then(|| basic("gms", "secret"));
            let post = |service: &str, auth: &Option<String>, form: &[(&str, &str)]| {
                let mut req = app
                    .client
                    .post(app.path(&format!("/genesys/1/service/{service}")))
                    .form(form);
                if let Some(a) = auth {
                    req = req.header("authorization", a.clone());
                }
                req
            };
            let created = app
                .send(post("private", &own, &[("secret_note", "42")]))
                .await;
            assert_eq!(created.status, 200, "{}", created.text);
            let private = created.field("_id");

            let theirs = app
                .send(post("request-access", &server, &[("_id", &private)]))
                .await;
            theirs.error(401, "Unauthorized");
            let mut admin = app.client.get(app.path("/genesys/1/admin/reservations"));
            if let Some(a) = &server {
                admin = admin.header("authorization", a.clone());
            }
            let reservations = app.send(admin).await;
            assert_eq!(reservations.status, 200, "{}", reservations.text);
            assert!(
                !reservations.text.contains(&private),
                "nothing reserved: {}",
                reservations.text
            );

            let mine = app
                .send(post("request-access", &own, &[("_id", &private)]))
                .await;
            assert_eq!(mine.status, 200, "{}", mine.text);
            let number = mine.field("_access_number");
            let matched = app
                .send(post(
                    "match-interaction",
                    &server,
                    &[("_access_number", &number), ("_return_data", "true")],
                ))
                .await;
            assert_eq!(matched.field("secret_note"), "42");

            let callback = app.send(post("callback", &server, &[])).await.field("_id");
            let resp = app
                .send(post("request-access", &server, &[("_id", &callback)]))
                .await;
            assert_eq!(resp.status, 200, "{}", resp.text);
            if with_server_auth {
                let resp = app
                    .send(post("request-access", &own, &[("_id", &callback)]))
                    .await;
                resp.error(401, "Unauthorized");
            }

            let unknown = "0123456789abcdef0123456789abcdef";
            for auth in [&own, &server] {
                let resp = app
                    .send(post("request-access", auth, &[("_id", unknown)]))
                    .await;
                resp.error(404, "ServiceNotFound");
            }
        }
    }
);
