//! `[server.tls]`: HTTPS with a certificate made here (rcgen), a client that trusts only it,
//! and a config error naming the key when a file is missing.

use std::time::Duration;

use access_broker::app::App;
use access_broker::config::Config;

use crate::helpers::DEMO;

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write key");
    let toml = format!(
        "{DEMO}\n[server.tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let (config, _) = Config::from_toml(&toml, "tls.toml").expect("valid");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let store = access_broker::store::open(
        &"memory://".parse().expect("url"),
        &access_broker::store::StoreOptions::default(),
    )
    .await
    .expect("store");
    let app = App::build(config, listener, store).await.expect("app");
    let port = app.local_addr().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async {
        let _ = rx.await;
    }));

    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).expect("pem"),
        )
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let resp = client
        .get(format!("https://localhost:{port}/health"))
        .send()
        .await
        .expect("https answers");
    assert_eq!(resp.status(), 200);

    // Plain HTTP on the TLS port gets nothing served.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    let _ = tx.send(());
}

#[test]
fn a_missing_certificate_names_the_key() {
    let toml = format!(
        "{DEMO}\n[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n"
    );
    let err = Config::from_toml(&toml, "tls.toml").expect_err("refused");
    assert!(err.to_string().contains("server.tls.cert"), "{err}");
    let toml = format!("{DEMO}\n[server.tls]\ncert = \"/nonexistent/cert.pem\"\n");
    let err = Config::from_toml(&toml, "tls.toml").expect_err("refused");
    assert!(err.to_string().contains("server.tls.key"), "{err}");
}

/// A truncated certificate and a key without a PEM private key say so in words (rustls
/// printed the end marker as a list of bytes, and "no items found").
#[test]
fn broken_pem_files_are_named_in_words() {
    let dir = tempfile::tempdir().expect("dir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let cert = made.cert.pem();
    let truncated = dir.path().join("trunc.pem");
    std::fs::write(&truncated, &cert[..cert.len() / 2]).expect("write");
    let key = dir.path().join("key.pem");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write");
    let toml = |cert: &std::path::Path, key: &std::path::Path| {
        format!(
            "{DEMO}\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        )
    };
    let err = Config::from_toml(&toml(&truncated, &key), "tls.toml").expect_err("refused");
    assert!(
        err.to_string()
            .contains("no end line (-----END CERTIFICATE-----)"),
        "{err}"
    );
    let whole = dir.path().join("cert.pem");
    std::fs::write(&whole, &cert).expect("write");
    let err = Config::from_toml(&toml(&whole, &whole), "tls.toml").expect_err("refused");
    assert!(
        err.to_string().contains("server.tls.key")
            && err.to_string().contains("no unencrypted PEM item"),
        "{err}"
    );
}

/// An X.509 v1 certificate (what `openssl x509 -req` makes without extensions) is named as
/// such under `server.tls.cert`: rustls's `UnsupportedCertVersion` was reported under
/// `server.tls.key` as a key that "does not fit the certificate". The fixture is a
/// certificate alone (its key was thrown away).
#[test]
fn a_v1_certificate_is_named_as_such() {
    let dir = tempfile::tempdir().expect("dir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let key = dir.path().join("key.pem");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write");
    let cert = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/x509-v1-cert.pem"
    );
    let toml = format!(
        "{DEMO}\n[server.tls]\ncert = {cert:?}\nkey = {:?}\n",
        key.display().to_string()
    );
    let err = Config::from_toml(&toml, "tls.toml")
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("server.tls.cert") && err.contains("X.509 v1 certificate; TLS needs v3"),
        "{err}"
    );
}

/// A certificate that has expired, or is not valid yet, starts with a warning naming it and
/// the date (it started without a word, and every client then failed).
#[test]
fn a_certificate_out_of_its_dates_is_warned_about() {
    let dir = tempfile::tempdir().expect("dir");
    for (from, to, says) in [
        (
            (2019, 1, 1),
            (2020, 2, 1),
            "expired on 2020-02-01T00:00:00Z",
        ),
        (
            (2090, 1, 1),
            (2091, 1, 1),
            "is not valid before 2090-01-01T00:00:00Z",
        ),
        ((2020, 1, 1), (2090, 1, 1), ""),
    ] {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        let key_pair = rcgen::KeyPair::generate().expect("key");
        let made = params.self_signed(&key_pair).expect("cert");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, made.pem()).expect("write");
        std::fs::write(&key, key_pair.serialize_pem()).expect("write");
        let toml = format!(
            "{DEMO}\n[server.tls]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        );
        let (_, warnings) = Config::from_toml(&toml, "tls.toml").expect("starts all the same");
        let tls: Vec<_> = warnings
            .iter()
            .filter(|w| w.contains("server.tls.cert"))
            .collect();
        match says {
            "" => assert!(tls.is_empty(), "{tls:?}"),
            says => assert!(tls.len() == 1 && tls[0].contains(says), "{warnings:?}"),
        }
    }
}

/// PostgreSQL's `sslmode`: `disable`, `prefer` and `require` connect to the test server (TLS
/// or not, as it offers), and `require` against a server that refuses TLS (a fake one here,
/// answering `N` to the TLS request as PostgreSQL without TLS does) fails saying so.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn postgres_sslmode_is_honoured() {
    use crate::support::pg::Schema;
    let schema = Schema::require().await;
    let options = access_broker::store::StoreOptions {
        timeout: Duration::from_secs(3),
        ..Default::default()
    };
    for mode in ["disable", "prefer", "require"] {
        let url = format!("{}&sslmode={mode}", schema.url_string());
        let store = access_broker::store::open(&url.parse().expect("url"), &options).await;
        assert!(
            store.is_ok(),
            "sslmode={mode}: {:?}",
            store.err().map(|e| e.to_string())
        );
    }
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = fake.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = fake.accept().await {
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).await.is_ok() {
                let _ = socket.write_all(b"N").await;
            }
        }
    });
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{port}/test?sslmode=require");
    let err = access_broker::store::open(&url.parse().expect("url"), &options)
        .await
        .err()
        .map(|e| e.to_string())
        .expect("sslmode=require fails on a server without TLS");
    assert!(err.contains("TLS"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(!err.contains("not supported yet"), "{err}");
}

/// A connection still in its TLS handshake when SIGTERM comes has nothing in flight: it is
/// closed at once, as an idle one is (it held the exit until the header timeout, 15 s here,
/// or the shutdown's end, found by an outside audit), both silent and with the handshake's
/// first bytes sent.
#[test]
fn sigterm_does_not_wait_for_a_stalled_tls_handshake() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("dir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write key");
    let config = dir.path().join("tls.toml");
    let toml = format!(
        "[server]\nheader_timeout_ms = 15000\nshutdown_timeout_ms = 10000\n\
         [server.tls]\ncert = {:?}\nkey = {:?}\n\
         [resource_groups.G]\nnumbers = [\"100\"]\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    std::fs::write(&config, toml).expect("config");
    for first_bytes in [&b""[..], b"\x16\x03\x01"] {
        let mut node = crate::support::process::Node::start(&config, "memory://", &[]);
        let mut stalled = std::net::TcpStream::connect(node.addr()).expect("connect");
        stalled.write_all(first_bytes).expect("send");
        std::thread::sleep(Duration::from_millis(300));
        let asked = std::time::Instant::now();
        assert_eq!(node.terminate(), Some(0));
        let took = asked.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "exit {took:?} after SIGTERM with {first_bytes:?} sent"
        );
    }
}
