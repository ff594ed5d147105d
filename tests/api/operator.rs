//! The operator's path (issue 14): the audit trail of admin changes, the 409 that guards the
//! groups of the config file, and the phone search that compares digits whatever the `+`.

use serde_json::Value;

use crate::helpers::TestApp;
use crate::on_every_backend;
use crate::support::Backend;

const TOML: &str = r#"
[auth.admin]
username = "alice"
password = "wonderland"
[resource_groups.DNIS]
numbers = ["100-104"]
booking_expiration_timeout = 60
[resource_groups.SOLO]
numbers = ["700"]
[services.request-access]
type = "request-access"
_resource_group = "DNIS"
[services.match-interaction]
type = "match-interaction"
[services.callback]
type = "session"
"#;

/// The admin API as `alice`.
#[derive(Clone, Copy)]
struct Admin<'a>(&'a TestApp);

impl Admin<'_> {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.0
            .client
            .request(method, self.0.path(path))
            .basic_auth("alice", Some("wonderland"))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> crate::helpers::Resp {
        self.0.send(req).await
    }

    async fn delete(&self, path: &str) -> crate::helpers::Resp {
        self.send(self.req(reqwest::Method::DELETE, path)).await
    }

    async fn entries(&self) -> Vec<Value> {
        let r = self
            .send(self.req(reqwest::Method::GET, "/genesys/1/admin/audit"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["entries"].as_array().cloned().unwrap_or_default()
    }
}

/// `(action, outcome, group, number, detail)` of an audit entry, `""` for what it lacks.
fn summary(e: &Value) -> (String, String, String, String, String) {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
    (
        s("action"),
        s("outcome"),
        s("group"),
        s("number"),
        s("detail"),
    )
}

on_every_backend!(
    audit_lists_each_change_with_its_user,
    |backend| async move {
        let app = TestApp::spawn_with(backend, TOML).await;
        let admin = Admin(&app);
        let put = |path: &str, form: &[(&str, &str)]| {
            admin.req(reqwest::Method::PUT, path).form(&form.to_vec())
        };
        assert!(admin.entries().await.is_empty(), "nothing changed yet");

        let r = admin
            .send(put(
                "/genesys/1/admin/groups/DNIS",
                &[
                    ("allocation", "random"),
                    ("booking_expiration_timeout", "90"),
                    ("cool_down", "5"),
                    ("require_code", "false"),
                ],
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = admin
            .send(
                admin
                    .req(
                        reqwest::Method::POST,
                        "/genesys/1/admin/groups/DNIS/numbers",
                    )
                    .form(&[("numbers", "200-201")]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = admin
            .send(put(
                "/genesys/1/admin/groups/NEW",
                &[("numbers", "900-902")],
            ))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = app.session(&[]).await;
        let number = app.request_access(&id, &[]).await.field("_access_number");
        let r = admin
            .delete(&format!("/genesys/1/admin/reservations/{number}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = admin
            .delete("/genesys/1/admin/groups/DNIS/numbers/200")
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        // Refused: a config group without force=true. Listed, but as refused, not done.
        admin
            .delete("/genesys/1/admin/groups/DNIS")
            .await
            .error(409, "Conflict");
        let r = admin.delete("/genesys/1/admin/groups/NEW").await;
        assert_eq!(r.status, 200, "{}", r.text);

        let entries = admin.entries().await;
        assert!(
            entries.iter().all(|e| e["user"] == "alice"),
            "every entry names the admin user: {entries:?}"
        );
        assert!(
            entries
                .iter()
                .all(|e| e["at"].as_i64().is_some_and(|at| at > 0))
        );
        let got: Vec<_> = entries.iter().map(summary).collect();
        let want = |a: &str, o: &str, g: &str, n: &str, d: &str| {
            (
                a.to_owned(),
                o.to_owned(),
                g.to_owned(),
                n.to_owned(),
                d.to_owned(),
            )
        };
        assert_eq!(
            got,
            vec![
                want("delete_group", "done", "NEW", "", "group deleted"),
                want(
                    "delete_group",
                    "refused",
                    "DNIS",
                    "",
                    "group DNIS is defined in the config file; it would come back at the next start; add force=true to delete it anyway"
                ),
                want("remove_number", "done", "DNIS", "200", "number 200 removed"),
                want(
                    "release",
                    "done",
                    "DNIS",
                    &number,
                    &format!("reservation on {number} released")
                ),
                want(
                    "put_group",
                    "done",
                    "NEW",
                    "",
                    "group created: allocation round-robin, booking_expiration_timeout 30 (default), require_code false, max_code_attempts 5, cool_down 0, late_match_grace 0, quarantine_after_stray_calls 0, 3 numbers (900-902)"
                ),
                want(
                    "add_numbers",
                    "done",
                    "DNIS",
                    "",
                    "2 numbers added (of 200-201)"
                ),
                want(
                    "put_group",
                    "done",
                    "DNIS",
                    "",
                    "allocation round-robin→random, booking_expiration_timeout 60→90, cool_down 0→5"
                ),
            ],
            "newest first"
        );
        // The refusal changed nothing.
        let r = admin
            .send(admin.req(reqwest::Method::GET, "/genesys/1/admin/groups/DNIS"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
);

#[tokio::test]
async fn audit_without_admin_auth_names_anonymous() {
    let app = TestApp::spawn_with(
        Backend::Memory,
        &TOML.replace(
            "[auth.admin]\nusername = \"alice\"\npassword = \"wonderland\"\n",
            "",
        ),
    )
    .await;
    let r = app
        .post(
            "/genesys/1/admin/groups/DNIS/numbers",
            &[("numbers", "300")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let entries = app.get("/genesys/1/admin/audit").await.json();
    let first = &entries["entries"][0];
    assert_eq!(
        (first["user"].as_str(), first["detail"].as_str()),
        (Some("anonymous"), Some("1 numbers added (of 300)"))
    );
}

on_every_backend!(config_groups_need_force, |backend| async move {
    let app = TestApp::spawn_with(backend, TOML).await;
    let admin = Admin(&app);

    // Deleting a group of the config file: 409 saying why, unless force=true.
    for path in [
        "/genesys/1/admin/groups/DNIS",
        "/genesys/1/admin/groups/DNIS?force=false",
    ] {
        let message = admin.delete(path).await.error(409, "Conflict");
        assert_eq!(
            message,
            "group DNIS is defined in the config file; it would come back at the next start; add force=true to delete it anyway"
        );
    }
    admin
        .delete("/genesys/1/admin/groups/DNIS?force=maybe")
        .await
        .error(400, "InvalidParameter");

    // Emptying one: its last number in service is refused too; others are not.
    let message = admin
        .delete("/genesys/1/admin/groups/SOLO/numbers/700")
        .await
        .error(409, "Conflict");
    assert_eq!(
        message,
        "number 700 is the last number in service of group SOLO, which the config file defines; the group would lend nothing until the next start puts its numbers back; add force=true to remove it anyway"
    );
    let r = admin
        .delete("/genesys/1/admin/groups/DNIS/numbers/104")
        .await;
    assert_eq!(r.json()["state"], "removed", "{}", r.text);
    // force=true in the form body works like the query string.
    let r = admin
        .send(
            admin
                .req(
                    reqwest::Method::DELETE,
                    "/genesys/1/admin/groups/SOLO/numbers/700",
                )
                .form(&[("force", "true")]),
        )
        .await;
    assert_eq!(r.json()["state"], "removed", "{}", r.text);

    // A group made through the API is not guarded: the config would not bring it back.
    let r = admin
        .send(
            admin
                .req(reqwest::Method::PUT, "/genesys/1/admin/groups/ADHOC")
                .form(&[("numbers", "800")]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin
        .delete("/genesys/1/admin/groups/ADHOC/numbers/800")
        .await;
    assert_eq!(r.json()["state"], "removed", "{}", r.text);
    assert_eq!(
        admin.delete("/genesys/1/admin/groups/ADHOC").await.status,
        200
    );

    // force=true does not override the live-reservation rule.
    let id = app.session(&[]).await;
    let number = app.request_access(&id, &[]).await.field("_access_number");
    let message = admin
        .delete("/genesys/1/admin/groups/DNIS?force=true")
        .await
        .error(409, "Conflict");
    assert!(message.contains("live reservations"), "{message}");
    let r = admin
        .delete(&format!("/genesys/1/admin/reservations/{number}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = admin
        .delete("/genesys/1/admin/groups/DNIS?force=true")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    admin
        .send(admin.req(reqwest::Method::GET, "/genesys/1/admin/groups/DNIS"))
        .await
        .error(404, "NotFound");
    // An unknown group is 404, whether or not force is given.
    admin
        .delete("/genesys/1/admin/groups/NOPE")
        .await
        .error(404, "NotFound");
});

on_every_backend!(phone_search_compares_digits, |backend| async move {
    let app = TestApp::spawn_with(backend, TOML).await;
    let admin = Admin(&app);
    let find = |phone: &'static str| async move {
        let url = format!(
            "/genesys/1/admin/reservations?phone={}",
            percent_encode(phone)
        );
        let r = admin.send(admin.req(reqwest::Method::GET, &url)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["reservations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v["number"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let with_plus = app.session(&[]).await;
    let a = app
        .request_access(&with_plus, &[("_phone_number", "+15557654321")])
        .await
        .field("_access_number");
    let without = app.session(&[]).await;
    let b = app
        .request_access(&without, &[("_phone_number", "1 555 000 1111")])
        .await
        .field("_access_number");

    for same in ["15557654321", "+1 (555) 765-4321", "+15557654321"] {
        assert_eq!(find(same).await, vec![a.clone()], "{same}");
    }
    assert_eq!(find("+15550001111").await, vec![b.clone()]);
    for other in ["5557654321", "+15557654320"] {
        assert!(find(other).await.is_empty(), "{other}");
    }

    // Matching keeps the contract's rule, where the `+` counts: the search is looser on
    // purpose (it lists, it never grants a match).
    let refused = app
        .match_interaction(&[("_access_number", &a), ("_phone_number", "15557654321")])
        .await;
    refused.error(404, "NoMatch");
    let matched = app
        .match_interaction(&[("_access_number", &a), ("_phone_number", "+1 555 765 4321")])
        .await;
    assert_eq!(matched.status, 200, "{}", matched.text);
    assert_eq!(matched.field("_id"), with_plus);
});

/// Enough percent-encoding for the phone numbers above.
fn percent_encode(s: &str) -> String {
    s.replace('+', "%2B")
        .replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
}
