//! Slow and greedy clients meet the `[server]` limits over real sockets: a half-sent header
//! is cut after `header_timeout_ms`, an idle keep-alive connection is closed, a body that
//! trickles gets 408 after `request_timeout_ms`, connections past `max_connections` wait, and
//! SIGTERM ends the process at once even with a half-sent header open.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::{DEMO, TestApp};
use crate::support::Backend;
use crate::support::process::Node;

fn with_server(extra: &str) -> String {
    // The demo's own `[server]` table, if any, would clash: put ours first.
    DEMO.replacen("[server]\n", &format!("[server]\n{extra}\n"), 1)
}

fn addr(app: &TestApp) -> String {
    app.url.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes; returns what came and how long it took.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_half_sent_header_is_cut_after_header_timeout() {
    let app = TestApp::spawn_with(Backend::Memory, &with_server("header_timeout_ms = 300")).await;
    let addr = addr(&app);
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .expect("write");
        let (_, took) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(took < Duration::from_secs(3), "closed after {took:?}");
        assert!(took >= Duration::from_millis(250), "closed after {took:?}");

        // An idle keep-alive connection is closed too.
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let (got, took) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        assert!(took < Duration::from_secs(3), "idle for {took:?}");
    })
    .await
    .expect("client thread");
}

#[tokio::test]
async fn a_trickling_body_gets_408() {
    let app = TestApp::spawn_with(Backend::Memory, &with_server("request_timeout_ms = 300")).await;
    let addr = addr(&app);
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.write_all(
            b"POST /genesys/1/storage/60 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\na=1",
        )
        .expect("write");
        let (got, _) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(got.contains(r#""exception":"RequestTimeout""#), "{got}");
    })
    .await
    .expect("client thread");
}

#[tokio::test]
async fn connections_past_max_connections_wait() {
    let app = TestApp::spawn_with(
        Backend::Memory,
        &with_server("max_connections = 2\nheader_timeout_ms = 1500"),
    )
    .await;
    let addr = addr(&app);
    tokio::task::spawn_blocking(move || {
        let hold: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(&addr).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let mut third = TcpStream::connect(&addr).expect("the kernel still accepts");
        third
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let (got, _) = read_until_closed(&mut third, Duration::from_secs(10));
        let waited = started.elapsed();
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        // Served only once a held connection was cut by the header timeout.
        assert!(
            waited >= Duration::from_millis(1000),
            "served after {waited:?}"
        );
        drop(hold);
    })
    .await
    .expect("client thread");
}

/// A client that sends requests and never reads the answers is cut once a write has waited
/// `request_timeout_ms`: it kept its connection (and place under `max_connections`) for ever.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut() {
    let app = TestApp::spawn_with(
        Backend::Memory,
        &with_server(
            "max_connections = 1\nrequest_timeout_ms = 500\nheader_timeout_ms = 60000\nmax_body_bytes = 2000000",
        ),
    )
    .await;
    let addr = addr(&app);
    tokio::task::spawn_blocking(move || {
        let id = store_big(&addr, 1_000_000);
        // 16 MB of answers asked for, none read: more than the sockets' buffers hold.
        let mut greedy = TcpStream::connect(&addr).expect("connect");
        let ask = format!("GET /genesys/1/storage/{id} HTTP/1.1\r\nHost: x\r\n\r\n");
        greedy.write_all(ask.repeat(16).as_bytes()).expect("write");
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let mut next = TcpStream::connect(&addr).expect("the kernel still accepts");
        next.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let (got, _) = read_until_closed(&mut next, Duration::from_secs(10));
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(5), "served after {waited:?}");
        drop(greedy);
    })
    .await
    .expect("client thread");
}

/// Stores `size` bytes in one storage entry over a connection that closes (a pooled client's
/// idle connection would hold a place under `max_connections`); returns its id.
fn store_big(addr: &str, size: usize) -> String {
    let mut store = TcpStream::connect(addr).expect("connect");
    let body = format!("v={}", "x".repeat(size));
    let post = format!(
        "POST /genesys/1/storage/600 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    store.write_all(post.as_bytes()).expect("write");
    let (stored, _) = read_until_closed(&mut store, Duration::from_secs(10));
    stored
        .split(r#""id":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an id")
        .to_owned()
}

/// Asks for the entry and reads its answer 16 KiB at a time, `pause` apart; calls
/// `meanwhile` once the first bytes came. Returns the bytes read until the close.
fn read_slowly(addr: &str, id: &str, pause: Duration, meanwhile: impl FnOnce()) -> Vec<u8> {
    let ask =
        format!("GET /genesys/1/storage/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    send_and_read_slowly(addr, ask.as_bytes(), pause, meanwhile)
}

/// Sends `request` and reads what comes back as [`read_slowly`] does.
fn send_and_read_slowly(
    addr: &str,
    request: &[u8],
    pause: Duration,
    meanwhile: impl FnOnce(),
) -> Vec<u8> {
    let mut client = TcpStream::connect(addr).expect("connect");
    client.write_all(request).expect("write");
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut meanwhile = Some(meanwhile);
    loop {
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
        if let Some(f) = meanwhile.take() {
            f();
        }
        std::thread::sleep(pause);
    }
}

/// The whole answer came: its `Content-Length` worth of body after the head.
fn whole(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse::<usize>().ok());
    length == Some(body.len())
}

/// A client reading a large answer steadily but slowly is not cut, however long each write
/// waits: with the kernel's autotuned send buffer a write waited for a megabyte to drain, and
/// a reader slower than ~1.3 MB per `request_timeout_ms` lost its answer half-way.
#[tokio::test]
async fn a_slow_reader_that_reads_is_not_cut() {
    let app = TestApp::spawn_with(
        Backend::Memory,
        &with_server("request_timeout_ms = 200\nmax_body_bytes = 7000000"),
    )
    .await;
    let addr = addr(&app);
    tokio::task::spawn_blocking(move || {
        // 6 MB at ~2 MB/s.
        let id = store_big(&addr, 6_000_000);
        let got = read_slowly(&addr, &id, Duration::from_millis(8), || {});
        assert!(whole(&got), "{} bytes, cut", got.len());
    })
    .await
    .expect("client thread");
}

/// SIGTERM lets an answer being read finish: hyper had taken the whole body (the request was
/// no longer counted in flight) while most of it waited for the client, and it was cut.
#[test]
fn sigterm_lets_an_answer_being_read_finish() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("big.toml");
    std::fs::write(&config, with_server("max_body_bytes = 9000000")).expect("config");
    let mut node = Node::start(&config, "memory://", &[]);
    let addr = node.addr().to_owned();
    // More than the sockets' buffers hold: 8 MB at ~4 MB/s.
    let id = store_big(&addr, 8_000_000);
    let pid = node.child.id().to_string();
    let got = read_slowly(&addr, &id, Duration::from_millis(4), || {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
    });
    assert!(whole(&got), "{} bytes, cut by the shutdown", got.len());
    let status = node.child.wait().expect("exits");
    assert_eq!(status.code(), Some(0));
}

/// A connection closed with requests still unread (sent after `Connection: close`, or
/// pipelined past a shutdown) ends with the answers and a clean end: the socket was dropped
/// with the unread bytes, Linux answered with a reset, and the client lost the answer's tail.
#[tokio::test]
async fn a_close_with_requests_unread_keeps_the_answers() {
    let app = TestApp::spawn_with(Backend::Memory, &with_server("max_body_bytes = 9000000")).await;
    let addr = addr(&app);
    tokio::task::spawn_blocking(move || {
        let id = store_big(&addr, 8_000_000);
        let mut request =
            format!("GET /genesys/1/storage/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        request.push_str(&"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000));
        // ~4 MB/s: the server closes while most of the answer is still on its way.
        let got = send_and_read_slowly(&addr, request.as_bytes(), Duration::from_millis(4), || {});
        assert!(whole(&got), "{} bytes, then a reset", got.len());
    })
    .await
    .expect("client thread");
}

#[test]
fn sigterm_with_a_half_sent_header_open_exits_at_once() {
    let mut node = Node::serve(["--listen", "127.0.0.1:0", "--store", "memory://"], &[]);
    let mut slow = TcpStream::connect(node.addr()).expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Sl")
        .expect("write");
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let code = node.terminate();
    let took = started.elapsed();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(3), "stopped after {took:?}");
    drop(slow);
}

#[test]
fn listening_beyond_loopback_without_auth_warns() {
    let mut node = Node::serve(["--listen", "0.0.0.0:0", "--store", "memory://"], &[]);
    assert_eq!(node.terminate(), Some(0));
    let before = &node.start_log;
    assert!(
        before.iter().any(|l| l.contains("without [auth]")),
        "{before:?}"
    );
}

/// SIGTERM with a request in flight that never ends (its body half sent, the client silent):
/// the process exits 0 within `shutdown_timeout_ms` of the signal, counting its own close.
/// It waited the whole timeout for the connections and closed after it (5.006–5.015 s at
/// 5,000 ms, an outside audit); the connections now get the timeout less a reserve for the
/// close (`server::drain_budget`). Several runs: the overshoot was a few milliseconds.
#[test]
fn sigterm_with_a_request_stuck_exits_within_the_shutdown_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, with_server("shutdown_timeout_ms = 1000")).expect("config");
    let store = format!("sqlite://{}", dir.path().join("x.db").display());
    for run in 0..3 {
        let mut node = Node::start(&config, &store, &[]);
        let mut stuck = TcpStream::connect(node.addr()).expect("connect");
        stuck
            .write_all(
                b"POST /genesys/1/service/callback HTTP/1.1\r\nHost: x\r\n\
                  Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\na=",
            )
            .expect("write");
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let code = node.terminate();
        let took = started.elapsed();
        assert_eq!(code, Some(0), "run {run}");
        assert!(
            took <= Duration::from_millis(1000),
            "run {run}: exited {took:?} after SIGTERM"
        );
        drop(stuck);
    }
}
