//! Browser safety over real HTTP: cross-site writes are refused with 403 Forbidden by their
//! `Origin` or `Sec-Fetch-Site`, same-site ones and non-browser clients pass, and `/ui`
//! answers carry the page's security headers.

use crate::helpers::TestApp;
use crate::support::Backend;

#[tokio::test]
async fn cross_site_writes_are_forbidden() {
    let app = TestApp::spawn(Backend::Memory).await;
    let host = app.url.trim_start_matches("http://").to_owned();
    let add = app.path("/genesys/1/admin/groups/DNIS/numbers");
    let form = [("numbers", "5550001")];

    let resp = app
        .send(
            app.client
                .post(&add)
                .header("origin", "http://evil.example")
                .form(&form),
        )
        .await;
    let msg = resp.error(403, "Forbidden");
    assert!(msg.contains("cross-site"), "{msg}");

    let resp = app
        .send(
            app.client
                .post(&add)
                .header("sec-fetch-site", "cross-site")
                .form(&form),
        )
        .await;
    resp.error(403, "Forbidden");

    let resp = app
        .send(
            app.client
                .delete(app.path("/genesys/1/storage/1-x"))
                .header("origin", "null"),
        )
        .await;
    resp.error(403, "Forbidden");

    // Nothing was added by the refused calls.
    let resp = app.get("/genesys/1/admin/groups/DNIS").await;
    assert!(!resp.text.contains("5550001"), "{}", resp.text);

    // The page's own origin, and reads from anywhere, pass.
    let resp = app
        .send(
            app.client
                .post(&add)
                .header("origin", format!("http://{host}"))
                .header("sec-fetch-site", "same-origin")
                .form(&form),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let resp = app
        .send(
            app.client
                .get(app.path("/genesys/1/admin/groups"))
                .header("origin", "http://evil.example"),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    // A client that is no browser sends neither header.
    let session = app.session(&[("a", "1")]).await;
    assert!(!session.is_empty());
}

#[tokio::test]
async fn the_page_carries_its_security_headers() {
    let app = TestApp::spawn(Backend::Memory).await;
    for (method, path, status) in [
        ("GET", "/ui/", 200),
        ("GET", "/ui/app.js", 200),
        ("GET", "/ui/style.css", 200),
        ("GET", "/ui/no-such-page", 404),
        // The router's own refusal, rewritten in the contract's shape, keeps them too.
        ("POST", "/ui", 405),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = app.send(app.client.request(method, app.path(path))).await;
        assert_eq!(resp.status, status, "{path}");
        let csp = resp.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(
            resp.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            resp.header("referrer-policy").as_deref(),
            Some("no-referrer")
        );
        assert_eq!(resp.header("x-frame-options").as_deref(), Some("DENY"));
    }
}
