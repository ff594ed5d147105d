//! Every error is the contract's JSON body: the router's own answers (unknown path, wrong
//! method, a path or query that does not decode) included, and no message quotes more than
//! 100 characters of a value.

use crate::helpers::TestApp;
use crate::support::Backend;

#[tokio::test]
async fn router_errors_are_json() {
    let app = TestApp::spawn(Backend::Memory).await;
    let resp = app.get("/no/such/path").await;
    resp.error(404, "NotFound");

    let resp = app
        .send(app.client.put(app.path("/genesys/1/service/callback")))
        .await;
    let msg = resp.error(405, "MethodNotAllowed");
    assert!(msg.contains("PUT"), "{msg}");
    assert!(resp.header("allow").is_some(), "the Allow header stays");

    let resp = app.send(app.client.delete(app.path("/health"))).await;
    resp.error(405, "MethodNotAllowed");

    // A path segment that is not UTF-8 once decoded.
    let resp = app.get("/genesys/1/storage/%FF%FE").await;
    let msg = resp.error(400, "InvalidParameter");
    assert!(
        msg.starts_with("path: \"/genesys/1/storage/%FF%FE\" does not decode"),
        "the path, not the route's parameter name: {msg}"
    );

    // The admin search's query that does not decode.
    // Checked like every route's parameters (it was decoded lossily into "\u{fffd}").
    let resp = app.get("/genesys/1/admin/reservations?number=%FF").await;
    let msg = resp.error(400, "InvalidParameter");
    assert!(msg.starts_with("number: not valid UTF-8"), "{msg}");

    // XML when asked, even for the router's answers.
    let resp = app
        .send(
            app.client
                .put(app.path("/genesys/1/service/callback"))
                .header("accept", "application/xml"),
        )
        .await;
    assert_eq!(resp.status, 405);
    assert!(
        resp.text
            .contains("<exception>MethodNotAllowed</exception>"),
        "{}",
        resp.text
    );
}

#[tokio::test]
async fn messages_quote_at_most_100_characters_of_a_value() {
    let app = TestApp::spawn(Backend::Memory).await;
    let long = "x".repeat(5000);
    let resp = app
        .post("/genesys/1/service/request-access", &[("_id", &long)])
        .await;
    let msg = resp.field("message");
    assert!(msg.len() < 400, "{} characters: {msg}", msg.len());
    assert!(msg.contains('…'), "{msg}");

    let resp = app.get(&format!("/genesys/1/service/{long}")).await;
    let msg = resp.field("message");
    assert!(msg.len() < 400 && msg.contains('…'), "{msg}");

    let resp = app.get(&format!("/{long}")).await;
    let msg = resp.error(404, "NotFound");
    assert!(msg.len() < 400 && msg.contains('…'), "{msg}");

    let spaced = format!("\"{}\"", "a b ".repeat(1000));
    let resp = app
        .post(
            "/genesys/1/service/request-access",
            &[("_id", "1-x"), ("_access_code_length", &spaced)],
        )
        .await;
    let msg = resp.field("message");
    assert!(msg.len() < 400, "{msg}");
}

/// A request head is at most 64 KiB: past it hyper's bare 431 and the connection closes
/// (its default, ~400 KiB, let each slow connection hold ~0.5 MB of an unfinished head).
#[tokio::test]
async fn a_request_head_past_64_kib_is_refused() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn(Backend::Memory).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let status_for = |header_bytes: usize| {
        let addr = addr.clone();
        async move {
            let mut conn = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            let head = format!(
                "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
                "a".repeat(header_bytes)
            );
            conn.write_all(head.as_bytes()).await.expect("head");
            let mut answer = vec![0u8; 1024];
            let n = conn.read(&mut answer).await.expect("read");
            String::from_utf8_lossy(&answer[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(status_for(48 * 1024).await, "HTTP/1.1 200 OK");
    let refused = status_for(80 * 1024).await;
    assert!(
        refused.starts_with("HTTP/1.1 431"),
        "a head past 64 KiB: {refused:?}"
    );
}
