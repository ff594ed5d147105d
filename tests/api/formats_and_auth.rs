//! Request and response formats (XML, multipart, JSON, ISO-8859-1, size limit) and HTTP Basic
//! authentication (server-wide and per service).

use base64::Engine as _;

use crate::helpers::TestApp;
use crate::support::Backend;

#[tokio::test]
async fn xml_when_asked() {
    let app = TestApp::spawn(Backend::Memory).await;
    let id = app.session(&[]).await;
    let req = app
        .client
        .post(app.path("/genesys/1/service/request-access"))
        .header("Accept", "application/xml")
        .form(&[("_id", id.as_str())]);
    let r = app.send(req).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/xml")
    );
    let host = app.url.trim_start_matches("http://");
    let want = format!(
        "<Response xmlns=\"http://{host}/genesys/1/service/request-access\"><_access_number>6504660000</_access_number><_expiration_time>"
    );
    assert!(r.text.contains(&want), "{}", r.text);
    assert!(
        r.text.contains(&format!("<_id>{id}</_id></Response>")),
        "{}",
        r.text
    );
    let req = app
        .client
        .post(app.path("/genesys/1/service/request-access"))
        .header("Accept", "text/xml")
        .form(&[("_id", "1-nope")]);
    let r = app.send(req).await;
    assert_eq!(r.status, 404);
    assert!(
        r.text.contains("<exception>ServiceNotFound</exception>"),
        "{}",
        r.text
    );
}

/// Media types as HTTP allows them: spaces before a `;`, an empty parameter, and `Accept`
/// sent as several lines (one list). Each was refused (400), ignored (a part's charset) or
/// answered in JSON before.
#[tokio::test]
async fn media_types_with_spaces_and_accept_in_several_lines() {
    let app = &TestApp::spawn(Backend::Memory).await;
    let stored = |r: crate::helpers::Resp| async move {
        app.get(&format!("/genesys/1/service/{}", r.field("_id")))
            .await
            .field("name")
    };
    for content_type in [
        "application/x-www-form-urlencoded ; charset=ISO-8859-1",
        "application/x-www-form-urlencoded\t;charset=ISO-8859-1 ;",
    ] {
        let content_type = content_type.replace("\\t", "\t");
        let r = app
            .send(
                app.client
                    .post(app.path("/genesys/1/service/callback"))
                    .header("Content-Type", content_type.as_str())
                    .body("name=Zo%EB"),
            )
            .await;
        assert_eq!(r.status, 200, "{content_type:?}: {}", r.text);
        assert_eq!(stored(r).await, "Zoë", "{content_type:?}");
    }
    let r = app
        .send(
            app.client
                .post(app.path("/genesys/1/service/callback"))
                .header("Content-Type", "application/x-www-form-urlencoded ;")
                .body("name=Zo%C3%AB"),
        )
        .await;
    assert_eq!(stored(r).await, "Zoë");
    // A part's own charset, written with a space.
    let body = b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\nContent-Type: text/plain ; charset=ISO-8859-1\r\n\r\nZo\xeb\r\n--b--\r\n";
    let r = app
        .send(
            app.client
                .post(app.path("/genesys/1/service/callback"))
                .header("Content-Type", "multipart/form-data ; boundary=b")
                .body(body.to_vec()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(stored(r).await, "Zoë");

    let id = &app.session(&[]).await;
    let xml = |accept: &'static [&'static str]| {
        let mut req = app
            .client
            .get(app.path(&format!("/genesys/1/service/{id}")));
        for line in accept {
            req = req.header("Accept", *line);
        }
        async move {
            let r = app.send(req).await;
            r.header("content-type").unwrap_or_default()
        }
    };
    for accept in [
        &["application/xml ;q=0.9"][..],
        &["text/xml ; q=1"],
        &["application/xml ; q=0.9 , application/json;q=0.8"],
        &["text/html", "application/xml"],
    ] {
        assert!(
            xml(accept).await.starts_with("application/xml"),
            "{accept:?}"
        );
    }
    assert!(
        xml(&["application/json", "application/xml"])
            .await
            .starts_with("application/json"),
        "the first named wins at the same q, across lines too"
    );
}

#[tokio::test]
async fn multipart_json_and_latin1_bodies() {
    let app = TestApp::spawn(Backend::Memory).await;
    let form = reqwest::multipart::Form::new()
        .text("name", "Zoë")
        .text("_ttl", "60");
    let r = app
        .send(
            app.client
                .post(app.path("/genesys/1/service/callback"))
                .multipart(form),
        )
        .await;
    let id = r.field("_id");
    assert_eq!(
        app.get(&format!("/genesys/1/service/{id}"))
            .await
            .field("name"),
        "Zoë"
    );

    let r = app
        .send(
            app.client
                .post(app.path("/genesys/1/service/callback"))
                .json(&serde_json::json!({"name": "Zoë", "n": 5})),
        )
        .await;
    let s = app
        .get(&format!("/genesys/1/service/{}", r.field("_id")))
        .await;
    assert_eq!(
        (s.field("name"), s.field("n")),
        ("Zoë".into(), "5".into()),
        "values come back as strings"
    );
    // Numbers read back as written, not through a float.
    let r = app
        .send(
            app.client
                .post(app.path("/genesys/1/storage/60"))
                .header("Content-Type", "application/json")
                .body(r#"{"a":1.50,"b":1e3,"d":98765432109876543210,"e":-0}"#),
        )
        .await;
    let stored = app
        .get(&format!("/genesys/1/storage/{}", r.field("id")))
        .await;
    assert_eq!(
        ["a", "b", "d", "e"].map(|k| stored.field(k)),
        ["1.50", "1e3", "98765432109876543210", "-0"]
    );

    let latin1 = app
        .send(
            app.client
                .post(app.path("/genesys/1/service/callback"))
                .header(
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=ISO-8859-1",
                )
                .body("name=Zo%EB+M%FCller"),
        )
        .await;
    let s = app
        .get(&format!("/genesys/1/service/{}", latin1.field("_id")))
        .await;
    assert_eq!(s.field("name"), "Zoë Müller");

    let bad = app
        .send(
            app.client
                .post(app.path("/genesys/1/service/callback"))
                .header("Content-Type", "application/json")
                .body("{not json"),
        )
        .await;
    bad.error(400, "InvalidParameter");
    let odd = app
        .send(
            app.client
                .post(app.path("/genesys/1/service/callback"))
                .header("Content-Type", "text/csv")
                .body("a,b"),
        )
        .await;
    assert!(
        odd.error(400, "InvalidParameter")
            .starts_with("Content-Type")
    );
}

/// A client's `x-request-id` is kept when it is a plain token; one with spaces or quotes is
/// replaced by our own: text log lines write it unquoted, and such an id forged fields there
/// (`request_id=x user=root action="delete_group" …`, in the admin audit trail too).
#[tokio::test]
async fn a_request_id_that_could_forge_log_fields_is_replaced() {
    let app = TestApp::spawn(Backend::Memory).await;
    let id_for = |sent: &'static str| {
        let app = &app;
        async move {
            let req = app
                .client
                .get(app.path("/health"))
                .header("x-request-id", sent);
            let r = app.send(req).await;
            let id = r.headers.get("x-request-id").expect("an id");
            id.to_str().expect("text").to_owned()
        }
    };
    for kept in ["abc-123", "7f9c:trace/1+x=y@z~"] {
        assert_eq!(id_for(kept).await, kept);
    }
    for forged in ["x user=root", "x\"y", "x\ty"] {
        let id = id_for(forged).await;
        assert_ne!(id, forged);
        assert_eq!(id.len(), 36, "a UUID of ours: {id}");
    }
}

#[tokio::test]
async fn body_size_limit() {
    let app = TestApp::spawn(Backend::Memory).await;
    let big = "x".repeat(70 * 1024);
    let r = app
        .post("/genesys/1/service/callback", &[("blob", big.as_str())])
        .await;
    r.error(413, "PayloadTooLarge");
    let groups = app
        .store
        .store
        .find_reservations(Default::default())
        .await
        .expect("find");
    assert!(groups.is_empty());
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_before_it_comes() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn(Backend::Memory).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(
        b"POST /genesys/1/service/callback HTTP/1.1\r\nHost: t\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n",
    )
    .await
    .expect("head sent");
    // No body follows: the answer must not wait for it (the request timeout is 30 s).
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut head))
        .await
        .expect("answered at once")
        .expect("read");
    let text = String::from_utf8_lossy(&head[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("PayloadTooLarge"), "{text}");
}

/// A body sent in pieces is held to the limit by its size, however it arrives: 65,536 bytes
/// (the default limit) pass, one more does not, with a `Content-Length` or chunked. (The
/// bytes read so far were counted twice once a second piece came, so a body past half the
/// limit could get 413.)
#[tokio::test]
async fn a_body_in_pieces_is_measured_once() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn(Backend::Memory).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    for (size, chunked, status) in [
        (65_536, false, "200"),
        (65_536, true, "200"),
        (65_537, true, "413"),
    ] {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let length = match chunked {
            true => "Transfer-Encoding: chunked".to_owned(),
            false => format!("Content-Length: {size}"),
        };
        let head = format!(
            "POST /genesys/1/storage/100 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{length}\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.expect("head sent");
        let body = format!("a={}", "x".repeat(size - 2));
        for piece in body.as_bytes().chunks(4096) {
            if chunked {
                let size = format!("{:x}\r\n", piece.len());
                conn.write_all(size.as_bytes()).await.expect("chunk size");
            }
            conn.write_all(piece).await.expect("piece sent");
            if chunked {
                conn.write_all(b"\r\n").await.expect("chunk end");
            }
            conn.flush().await.expect("flushed");
            // Apart in time, so that the server reads them as separate pieces.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        if chunked {
            conn.write_all(b"0\r\n\r\n").await.expect("last chunk");
        }
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.expect("answer read");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{size} bytes (chunked: {chunked}): {text}"
        );
    }
}

/// A body whose chunked framing is broken is a 400 naming the body, not a 413: it is no size
/// at all (it was answered "larger than 65536 bytes").
#[tokio::test]
async fn a_body_that_cannot_be_read_is_a_400_not_a_413() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn(Backend::Memory).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    for body in ["ZZ\r\nabc\r\n0\r\n\r\n", "3\r\nabcde\r\n0\r\n\r\n"] {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let request = format!(
            "POST /genesys/1/storage/100 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        conn.write_all(request.as_bytes()).await.expect("sent");
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.expect("answer read");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 400"), "{body:?}: {text}");
        assert!(text.contains("InvalidParameter"), "{body:?}: {text}");
        assert!(text.contains("body"), "{body:?}: {text}");
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn basic_auth_server_wide_and_per_service() {
    let toml = r#"
        [auth]
        username = "gms"
        password = "secret"
        [resource_groups.DNIS]
        numbers = ["100-109"]
        [services.request-access]
        type = "request-access"
        _resource_group = "DNIS"
        [services.match-interaction]
        type = "match-interaction"
        username = "ivr"
        password = "ivr-pass"
        [services.callback]
        type = "session"
    "#;
    let app = TestApp::spawn_with(Backend::Memory, toml).await;
    let post = |path: &str, auth: Option<String>, form: Vec<(&'static str, String)>| {
        let mut req = app.client.post(app.path(path)).form(&form);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req
    };
    let r = app
        .send(post("/genesys/1/service/callback", None, vec![]))
        .await;
    r.error(401, "Unauthorized");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Basic realm=\"access-broker\"")
    );
    app.send(post(
        "/genesys/1/service/callback",
        Some(basic("gms", "wrong")),
        vec![],
    ))
    .await
    .error(401, "Unauthorized");
    let r = app
        .send(post(
            "/genesys/1/service/callback",
            Some(basic("gms", "secret")),
            vec![],
        ))
        .await;
    let id = r.field("_id");
    let r = app
        .send(post(
            "/genesys/1/service/request-access",
            Some(basic("gms", "secret")),
            vec![("_id", id.clone())],
        ))
        .await;
    let number = r.field("_access_number");
    let m = post(
        "/genesys/1/service/match-interaction",
        Some(basic("gms", "secret")),
        vec![("_access_number", number.clone())],
    );
    app.send(m).await.error(401, "Unauthorized");
    let m = post(
        "/genesys/1/service/match-interaction",
        Some(basic("ivr", "ivr-pass")),
        vec![("_access_number", number)],
    );
    assert_eq!(app.send(m).await.field("_id"), id);
    app.get(&format!("/genesys/1/service/{id}"))
        .await
        .error(401, "Unauthorized");
    app.get("/genesys/1/storage/whatever")
        .await
        .error(401, "Unauthorized");
    // A path no route serves, a wrong method, an undecodable path: 401 without credentials
    // (no word on which routes exist), the router's answer with any configured ones.
    let cases = [
        (reqwest::Method::GET, "/genesys/1/nope", 404, "NotFound"),
        (
            reqwest::Method::PUT,
            "/genesys/1/service/callback",
            405,
            "MethodNotAllowed",
        ),
        (
            reqwest::Method::GET,
            "/genesys/1/service/%FF",
            400,
            "InvalidParameter",
        ),
    ];
    for (method, path, status, kind) in cases {
        let refused = app
            .send(app.client.request(method.clone(), app.path(path)))
            .await;
        // Not even the route's methods (the router adds `Allow` to a wrong method's answer).
        assert_eq!(refused.header("allow"), None, "{method} {path}");
        refused.error(401, "Unauthorized");
        for who in [basic("gms", "secret"), basic("ivr", "ivr-pass")] {
            let r = app
                .send(
                    app.client
                        .request(method.clone(), app.path(path))
                        .header("Authorization", who),
                )
                .await;
            r.error(status, kind);
        }
    }
    assert_eq!(app.get("/health").await.status, 200, "health needs no auth");
    app.get("/nope").await.error(404, "NotFound");
    assert_eq!(app.get("/ready").await.status, 200);
}

#[tokio::test]
async fn unknown_routes_get_the_error_body() {
    let app = TestApp::spawn(Backend::Memory).await;
    app.get("/nope").await.error(404, "NotFound");
}
