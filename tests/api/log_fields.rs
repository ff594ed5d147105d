//! Log lines a parser can trust: a value that comes from a request or an operator (a group
//! name, a refusal's message that repeats it) is written quoted when it could read as other
//! fields, so `group="g user=bob outcome=done"` never becomes a line with a second `user` or
//! `outcome` (found by an outside audit: the audit trail's `detail` and the start line's
//! `groups` were written as they were); and an outage that does not bury the log in one
//! identical line per refused call.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::process::Node;

const NAME: &str = "q user=bob outcome=done";
const ESCAPED: &str = "q%20user%3Dbob%20outcome%3Ddone";

/// The `key=value` fields of a text log line, a quoted value read to its closing quote
/// (`\"` inside it escaped), as a logfmt reader splits them.
fn fields(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while chars.peek().is_some() {
        let mut token = String::new();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' if quoted => {
                    token.push(c);
                    token.extend(chars.next());
                }
                '"' => {
                    quoted = !quoted;
                    token.push(c);
                }
                c if c.is_whitespace() && !quoted => break,
                c => token.push(c),
            }
        }
        if let Some((key, value)) = token.split_once('=') {
            let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if is_key {
                out.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    out
}

fn count(fields: &[(String, String)], key: &str) -> usize {
    fields.iter().filter(|(k, _)| k == key).count()
}

fn send(node: &Node, method: &str, path: &str, body: &str) -> String {
    let mut http = std::net::TcpStream::connect(node.addr()).expect("connect");
    write!(
        http,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    http.read_to_string(&mut answer).expect("answer");
    answer
}

/// The first line after the start that contains `needle`, waiting up to 5 s for it.
fn line_with(node: &Node, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = node
            .log_after_start()
            .into_iter()
            .find(|l| l.contains(needle));
        match found {
            Some(line) => return line,
            None if Instant::now() > deadline => panic!("no log line with {needle:?}"),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn a_group_name_cannot_forge_fields_in_a_log_line() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("c.toml");
    let text = format!(
        "[resource_groups.\"{NAME}\"]\nnumbers = [\"5550100\"]\nquarantine_after_stray_calls = 1\n\
         [resource_groups.Plain-1]\nnumbers = [\"5550200\"]\n\
         [services.match-interaction]\ntype = \"match-interaction\"\n"
    );
    std::fs::write(&config, text).expect("config");
    let mut node = Node::start(&config, "memory://", &[]);

    let start = fields(node.start_line());
    assert_eq!(count(&start, "outcome"), 0, "{}", node.start_line());
    assert!(
        node.start_line()
            .ends_with(r#"groups="q user=bob outcome=done"=1,Plain-1=1"#),
        "a plain name as it is, the other quoted: {}",
        node.start_line()
    );

    // Refused (a group the file defines), logged with the name in its detail.
    let answer = send(
        &node,
        "DELETE",
        &format!("/genesys/1/admin/groups/{ESCAPED}"),
        "",
    );
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    let audit = line_with(&node, "admin change");
    let audit_fields = fields(&audit);
    assert_eq!(count(&audit_fields, "user"), 1, "{audit}");
    assert_eq!(count(&audit_fields, "outcome"), 1, "{audit}");
    assert!(audit.contains("user=anonymous"), "{audit}");
    assert!(audit.contains(r#"outcome="refused""#), "{audit}");

    // A stray call quarantines the number: its warning names the group.
    let answer = send(
        &node,
        "POST",
        "/genesys/1/service/match-interaction",
        "_access_number=5550100",
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let warning = line_with(&node, "number quarantined");
    let warning_fields = fields(&warning);
    assert_eq!(count(&warning_fields, "user"), 0, "{warning}");
    assert_eq!(count(&warning_fields, "outcome"), 0, "{warning}");
    assert!(
        warning.contains(r#"group="q user=bob outcome=done""#),
        "{warning}"
    );
    assert_eq!(node.terminate(), Some(0));
}

/// While the store cannot be reached every call answers 503 `StoreUnavailable`: the log gets
/// one `request failed` line a second, saying how many it left out, not one a call (an
/// outage wrote thousands a second on a busy node, every `/ready` probe one more).
#[test]
fn an_unreachable_store_writes_one_failure_line_a_second() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[resource_groups.G]\nnumbers = [\"100\"]\n").expect("config");
    // Nothing listens on port 1: a well-formed URL whose database is not there yet.
    let store = "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1";
    let mut node = Node::start(&config, store, &[]);
    let started = Instant::now();
    for _ in 0..200 {
        let answer = send(&node, "GET", "/ready", "");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    }
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let lines: Vec<String> = node
        .log_after_start()
        .into_iter()
        .filter(|l| l.contains("request failed"))
        .collect();
    let seconds = usize::try_from(took.as_secs()).unwrap_or(usize::MAX);
    assert!(
        !lines.is_empty() && lines.len() <= seconds + 2,
        "{} lines for 200 refusals in {took:?}: {lines:#?}",
        lines.len()
    );
    assert!(lines[0].contains("left_out=0"), "{}", lines[0]);
    assert_eq!(node.terminate(), Some(0));
}

/// A log that cannot be written (stderr on a full disk: `/dev/full`) costs the log, not the
/// service: the node starts, answers, and exits 0 at SIGTERM; a refused start still exits 2.
/// The subscriber reported a failed write with `eprintln!`, which panics when stderr fails:
/// the node exited 101 at its first line (an outside audit).
#[test]
fn a_log_that_cannot_be_written_does_not_stop_the_node() {
    use std::process::{Command, Stdio};
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[resource_groups.G]\nnumbers = [\"100\"]\n").expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let store = format!("sqlite://{}", dir.path().join("a.db").display());
    let mut node = Command::new(crate::support::process::BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--store",
            &store,
        ])
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(full())
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let asked = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut http| {
            http.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut answer = String::new();
            http.read_to_string(&mut answer).map(|_| answer)
        });
        match asked {
            Ok(answer) if !answer.is_empty() => break answer,
            _ if Instant::now() > deadline || node.try_wait().ok().flatten().is_some() => {
                let _ = node.kill();
                panic!("never served: {:?}", node.wait());
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _ = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status();
    assert_eq!(node.wait().expect("exit").code(), Some(0));

    let refused = Command::new(crate::support::process::BIN)
        .args(["check-config", "--config", "/nonexistent/c.toml"])
        .stdout(Stdio::null())
        .stderr(full())
        .status()
        .expect("check-config runs");
    assert_eq!(refused.code(), Some(2));
}
