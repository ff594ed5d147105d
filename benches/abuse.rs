//! The abuse run: `cargo bench --bench abuse` (release build; about a minute).
//!
//! Starts the real binary on 127.0.0.1 (memory store, demo groups) and does what a hostile
//! caller would, bounded in count and time, only to loopback:
//! 1. thousands of malformed requests on every route (bad bodies, charsets, encodings, paths,
//!    methods, huge and many-keyed bodies) plus raw garbage on the socket; counts 5xx answers
//!    and error answers that are not the contract's JSON;
//! 2. 2,000 slow connections, each sending one byte of a header per second, while a normal
//!    client runs request-access / match-interaction; reports that client's p50/p99 and how
//!    many slow connections the server cut (`header_timeout_ms`);
//! 3. a code brute force on one coded reservation: wrong codes until the reservation is gone
//!    (cancelled after `max_code_attempts`) or 5,000 attempts; then the same with
//!    `[limits] requests_per_second = 20` to show the bucket's effect.
//!
//! Prints one Markdown block, the figures docs/security.md quotes.
//! Env: `ABUSE_SLOW` (slow connections, default 2000), `ABUSE_SECS` (slow phase, default 16).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_access-broker");
const DEMO: &str = include_str!("../config/demo.toml");

struct Node {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &str) -> Node {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("abuse.toml");
    // Numbers lent again at once: the normal client's flows run back to back on 100 numbers,
    // which the demo's 30 s cool-down would exhaust (the figures are about the edge).
    let demo = DEMO.replace("cool_down = 30", "cool_down = 0");
    std::fs::write(&config, format!("{demo}\n{extra}\n")).expect("config");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "memory://",
            "--config",
        ])
        .arg(&config)
        .env("RUST_LOG", "warn,access_broker=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("listening line");
    Node {
        child,
        addr,
        _dir: dir,
    }
}

#[derive(Default, Debug)]
struct Tally {
    sent: u64,
    errors: u64,
    server_errors: u64,
    not_json: Vec<String>,
}

impl Tally {
    fn note(&mut self, what: &str, status: u16, content_type: &str, body: &str) {
        self.sent += 1;
        if status >= 400 {
            self.errors += 1;
            let json = content_type.starts_with("application/json")
                && serde_json::from_str::<serde_json::Value>(body)
                    .ok()
                    .is_some_and(|v| v["exception"].is_string() && v["message"].is_string());
            if !json && self.not_json.len() < 1000 {
                self.not_json.push(format!("{what} -> {status} {body:.80}"));
            }
        }
        if status >= 500 && status != 503 && status != 507 {
            self.server_errors += 1;
        }
    }
}

async fn malformed(node: &Node) -> Tally {
    let base = format!("http://{}", node.addr);
    let client = reqwest::Client::new();
    let routes = [
        "/genesys/1/service/callback",
        "/genesys/1/service/request-access",
        "/genesys/1/service/match-interaction",
        "/genesys/1/service/request-interaction",
        "/genesys/1/service/1-x",
        "/genesys/1/storage/60",
        "/genesys/1/storage/1-x/60",
        "/genesys/1/storage/1-x/key",
        "/genesys/1/admin/groups",
        "/genesys/1/admin/groups/DNIS",
        "/genesys/1/admin/groups/DNIS/numbers",
        "/genesys/1/admin/reservations?number=%ZZ",
        "/genesys/1/admin/groups/%FF%FE",
        "/health",
        "/ready",
        "/metrics",
        "/ui/",
        "/nope/%C0%AF",
    ];
    let many_keys: String = (0..6000).map(|i| format!("k{i}=1&")).collect();
    let long = "9".repeat(5000);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/x-www-form-urlencoded", b"_id=%ZZ&_access_number=%".to_vec()),
        ("application/x-www-form-urlencoded", b"_id=\xff\xfe&x=\x00".to_vec()),
        ("application/x-www-form-urlencoded; charset=klingon", b"a=1".to_vec()),
        ("application/x-www-form-urlencoded; charset=utf-16", b"\xd8\x00a=1".to_vec()),
        ("application/x-www-form-urlencoded", many_keys.into_bytes()),
        ("application/x-www-form-urlencoded", format!("_id={long}&_access_number={long}&_access_code={long}&_booking_expiration_timeout={long}&numbers={long}-{long}").into_bytes()),
        ("application/x-www-form-urlencoded", vec![b'a'; 100_000]),
        ("application/json", b"{\"_id\": [1, {\"x\": null}], ".to_vec()),
        ("application/json", b"[1,2,3]".to_vec()),
        ("application/json", b"{\"_id\": 1e999999}".to_vec()),
        ("multipart/form-data; boundary=XyZ", b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx".to_vec()),
        ("multipart/form-data", b"--\r\n".to_vec()),
        ("text/html", b"<script>".to_vec()),
        ("garbage;;;=\"", b"x".to_vec()),
    ];
    let mut tally = Tally::default();
    for round in 0..2 {
        for route in routes {
            for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
                for (ct, body) in &bodies {
                    let req = client
                        .request(method.parse().expect("method"), format!("{base}{route}"))
                        .header("content-type", *ct)
                        .header(
                            "accept",
                            if round == 0 {
                                "application/json"
                            } else {
                                "*/*"
                            },
                        )
                        .body(body.clone());
                    let Ok(resp) = req.send().await else {
                        continue;
                    };
                    let status = resp.status().as_u16();
                    let ct = resp
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let text = resp.text().await.unwrap_or_default();
                    tally.note(&format!("{method} {route} [{ct}]"), status, &ct, &text);
                }
            }
        }
    }
    tally
}

/// Raw bytes on the socket: not HTTP at all, or HTTP with broken framing.
async fn garbage(node: &Node) -> (u64, u64) {
    let inputs: Vec<&[u8]> = vec![
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /genesys/1/storage/60 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
        b"GET /\x00\x01 HTTP/1.1\r\n\r\n",
        b"POST /genesys/1/storage/60 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcde",
    ];
    let (mut sent, mut five_hundreds) = (0, 0);
    for _ in 0..50 {
        for input in &inputs {
            let Ok(mut s) = TcpStream::connect(&node.addr).await else {
                continue;
            };
            sent += 1;
            let _ = s.write_all(input).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut answer)).await;
            if answer.starts_with(b"HTTP/1.1 5") {
                five_hundreds += 1;
            }
        }
    }
    (sent, five_hundreds)
}

async fn slow_connections(node: &Node, count: usize, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut slow = Vec::new();
    for _ in 0..count {
        let addr = node.addr.clone();
        slow.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                return None;
            };
            let opened = Instant::now();
            let header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for byte in header.iter() {
                if Instant::now() > deadline {
                    return Some(Err(opened.elapsed()));
                }
                if s.write_all(&[*byte]).await.is_err() {
                    return Some(Ok(opened.elapsed()));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(Err(opened.elapsed()))
        }));
    }
    // A normal client meanwhile: a session, request-access, match-interaction, in a loop.
    let base = format!("http://{}", node.addr);
    let client = reqwest::Client::new();
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    let mut failed = 0u64;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while Instant::now() < deadline {
        let started = Instant::now();
        let ok = async {
            let s: serde_json::Value = client
                .post(format!("{base}/genesys/1/service/callback"))
                .form(&[("a", "1")])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let id = s["_id"].as_str()?.to_owned();
            let r: serde_json::Value = client
                .post(format!("{base}/genesys/1/service/request-access"))
                .form(&[("_id", id.as_str())])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let number = r["_access_number"].as_str()?.to_owned();
            let m = client
                .post(format!("{base}/genesys/1/service/match-interaction"))
                .form(&[("_access_number", number.as_str())])
                .send()
                .await
                .ok()?;
            m.status().is_success().then_some(())
        }
        .await;
        if ok.is_some() {
            let _ = hist.record(started.elapsed().as_micros() as u64);
        } else {
            failed += 1;
        }
    }
    let mut cut = Vec::new();
    let (mut open, mut oldest_open) = (0, Duration::ZERO);
    for task in slow {
        match task.await.ok().flatten() {
            Some(Ok(after)) => cut.push(after),
            Some(Err(age)) => {
                open += 1;
                oldest_open = oldest_open.max(age);
            }
            None => {}
        }
    }
    cut.sort();
    let median_cut = cut.get(cut.len() / 2).map_or(0.0, |d| d.as_secs_f64());
    format!(
        "| slow connections opened | {count} |\n| cut by the server (header_timeout_ms) | {} (median after {median_cut:.1} s) |\n| still open at the end of the phase (younger than the timeout) | {open}, the oldest {:.1} s old |\n| normal flows (session + request-access + match) during them | {} ok, {failed} failed |\n| normal flow latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        cut.len(),
        oldest_open.as_secs_f64(),
        hist.len(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
    )
}

/// Wrong codes on one coded reservation until it is gone or `limit` attempts.
async fn brute_force(node: &Node, limit: u64) -> String {
    let base = format!("http://{}", node.addr);
    let client = reqwest::Client::new();
    let s: serde_json::Value = client
        .post(format!("{base}/genesys/1/service/callback"))
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("json");
    let id = s["_id"].as_str().unwrap_or_default().to_owned();
    let r: serde_json::Value = client
        .post(format!("{base}/genesys/1/service/request-access"))
        .form(&[
            ("_id", id.as_str()),
            ("_provide_code", "true"),
            ("_booking_expiration_timeout", "1800"),
        ])
        .send()
        .await
        .expect("access")
        .json()
        .await
        .expect("json");
    let number = r["_access_number"].as_str().unwrap_or_default().to_owned();
    let code = r["_access_code"].as_str().unwrap_or_default().to_owned();
    if number.is_empty() || code.is_empty() {
        return format!("no coded reservation to attack: {r}");
    }
    let started = Instant::now();
    let (mut attempts, mut throttled) = (0u64, 0u64);
    let mut stopped = None;
    let mut guess = 0u64;
    while attempts < limit && started.elapsed() < Duration::from_secs(30) {
        let mut wrong = format!("{guess:06}");
        guess += 1;
        if wrong == code {
            wrong = format!("{guess:06}");
            guess += 1;
        }
        let resp = client
            .post(format!("{base}/genesys/1/service/match-interaction"))
            .form(&[
                ("_access_number", number.as_str()),
                ("_access_code", wrong.as_str()),
            ])
            .send()
            .await;
        let Ok(resp) = resp else { continue };
        if resp.status() == 429 {
            throttled += 1;
            continue;
        }
        attempts += 1;
        // Is the reservation still there?
        let checker = format!("10.9.{}.{}", attempts / 250 % 250, attempts % 250 + 1);
        let live = client
            .get(format!(
                "{base}/genesys/1/admin/reservations?number={number}"
            ))
            .header("x-forwarded-for", checker)
            .send()
            .await
            .expect("admin");
        if !live.status().is_success() {
            continue;
        }
        let live: serde_json::Value = live.json().await.unwrap_or_default();
        if !live.to_string().contains(&id) {
            stopped = Some(attempts);
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    match stopped {
        Some(n) => format!(
            "stopped after {n} wrong codes ({throttled} more refused with 429) in {secs:.1} s"
        ),
        None => format!(
            "NOT stopped: {attempts} wrong codes answered in {secs:.1} s ({:.0}/s; {throttled} refused with 429); a 6-digit space would fall in {:.0} s",
            attempts as f64 / secs,
            1_000_000.0 / (attempts.max(1) as f64 / secs)
        ),
    }
}

#[tokio::main]
async fn main() {
    let slow: usize = std::env::var("ABUSE_SLOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let secs: u64 = std::env::var("ABUSE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let node = start("");
    let started = Instant::now();
    let tally = malformed(&node).await;
    let (raw_sent, raw_5xx) = garbage(&node).await;
    let malformed_secs = started.elapsed().as_secs_f64();
    let slow_table = slow_connections(&node, slow, secs).await;
    let brute = brute_force(&node, 5000).await;
    drop(node);
    // The admin check after each guess counts as another client (its own forwarded address),
    // so only the guesses spend the guesser's bucket.
    let limited =
        start("[limits]\nrequests_per_second = 20\nclient_ip_header = \"x-forwarded-for\"\n");
    let brute_limited = brute_force(&limited, 200).await;
    drop(limited);

    println!("### Abuse run (`cargo bench --bench abuse`)\n");
    println!("| figure | value |\n|---|---|");
    println!(
        "| malformed HTTP requests sent (every route × 5 methods × 14 bodies × 2 Accepts) | {} in {malformed_secs:.1} s |",
        tally.sent
    );
    println!("| of them error answers | {} |", tally.errors);
    println!(
        "| 5xx answers (503/507 excluded) | {} |",
        tally.server_errors
    );
    println!(
        "| error answers that are not the contract's JSON | {} |",
        tally.not_json.len()
    );
    println!(
        "| raw garbage connections (TLS bytes, bad framing, HTTP/9.9) | {raw_sent}, 5xx: {raw_5xx} |"
    );
    println!("{slow_table}");
    println!("| code brute force, defaults | {brute} |");
    println!("| code brute force, requests_per_second = 20 | {brute_limited} |");
    for line in tally.not_json.iter().take(10) {
        println!("\nnot JSON: {line}");
    }
}
