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
