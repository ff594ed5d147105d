//! Disk full, for real: the binary runs on a SQLite file in a 3 MB tmpfs that the test fills.
//! Every call answered 503 must leave no trace (no number held, no reservation released, no
//! session kept), reads keep working, `/ready` says 503 until space returns, and then the node
//! resumes by itself; after a restart the file holds exactly what was answered.
//!
//! Mounting needs root, so it runs only with `ACCESS_BROKER_DISK_TESTS=1` (`.ci/run` sets it).

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::process::{Node, load_config};

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(ok.success(), "mount a tmpfs (needs root)");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Writes zeros to `path` until the file system says it is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

async fn post(c: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = c.post(url).form(form).send().await.expect("answer");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).send().await.expect("answer");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn free_numbers(c: &reqwest::Client, base: &str) -> u64 {
    let (status, body) = get(c, &format!("{base}/genesys/1/admin/groups")).await;
    assert_eq!(
        status, 200,
        "admin groups answer while the disk is full: {body}"
    );
    body["groups"][0]["free"].as_u64().expect("free count")
}

async fn holder(c: &reqwest::Client, base: &str, number: &str) -> Option<String> {
    let url = format!("{base}/genesys/1/admin/reservations?number={number}");
    let (status, body) = get(c, &url).await;
    assert_eq!(status, 200, "admin reservations answer: {body}");
    body["reservations"][0]["_id"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(disk_tests),
    ignore = "needs root to mount a tmpfs: set ACCESS_BROKER_DISK_TESTS=1"
)]
async fn a_full_disk_leaves_no_trace_and_the_node_resumes() {
    support::limit::within(full_disk()).await;
}

async fn full_disk() {
    let fs = Tmpfs::mount("3m");
    let config = fs.0.path().join("disk.toml");
    let interaction = "[services.request-interaction]\ntype = \"request-interaction\"\n_resource_group = \"DNIS\"\n";
    std::fs::write(&config, load_config("7000000-7000019") + interaction).expect("config");
    let store = format!("sqlite://{}", fs.0.path().join("disk.db").display());
    let mut node = Node::start(&config, &store, &[]);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let base = node.url.clone();
    let service = |name: &str| format!("{base}/genesys/1/service/{name}");

    // Before: two sessions, one holding a number, and a stored record.
    let (_, s1) = post(&c, &service("callback"), &[("who", "held")]).await;
    let s1 = s1["_id"].as_str().expect("session").to_owned();
    let (_, s2) = post(&c, &service("callback"), &[("who", "waiting")]).await;
    let s2 = s2["_id"].as_str().expect("session").to_owned();
    let (status, held) = post(&c, &service("request-access"), &[("_id", &s1)]).await;
    assert_eq!(status, 200, "{held}");
    let number = held["_access_number"].as_str().expect("number").to_owned();
    let code = held["_access_code"].as_str().expect("code").to_owned();
    let (_, stored) = post(&c, &format!("{base}/genesys/1/storage/600"), &[("k", "v")]).await;
    let stored = stored["id"].as_str().expect("storage id").to_owned();
    let free_before = free_numbers(&c, &base).await;

    // Fill the disk, then write until the store refuses (the WAL may still have room).
    fill(&fs.0.path().join("filler"));
    let big = "x".repeat(16 * 1024);
    let mut refused = false;
    for _ in 0..500 {
        let (status, _) = post(&c, &format!("{base}/genesys/1/storage/600"), &[("k", &big)]).await;
        if status == 503 {
            refused = true;
            break;
        }
        assert_eq!(status, 200);
    }
    assert!(refused, "a full disk refuses writes");

    // Writes answer 503 StoreUnavailable and change nothing.
    let (status, body) = post(&c, &service("request-access"), &[("_id", &s2)]).await;
    assert_eq!(
        (status, body["exception"].as_str()),
        (503, Some("StoreUnavailable"))
    );
    assert_eq!(
        holder(&c, &base, &number).await.as_deref(),
        Some(s1.as_str())
    );
    let (status, _) = post(&c, &service("request-interaction"), &[("who", "new")]).await;
    assert_eq!(status, 503);
    let (status, _) = post(
        &c,
        &service("match-interaction"),
        &[("_access_number", &number), ("_access_code", &code)],
    )
    .await;
    assert_eq!(status, 503, "a match needs a write");
    assert_eq!(
        holder(&c, &base, &number).await.as_deref(),
        Some(s1.as_str()),
        "a match answered 503 released nothing"
    );
    assert_eq!(
        free_numbers(&c, &base).await,
        free_before,
        "no number held by a 503"
    );
    let (status, body) = get(
        &c,
        &format!("{base}/genesys/1/admin/reservations?session={s2}"),
    )
    .await;
    assert_eq!(
        (status, body["reservations"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    // Reads that need no write keep working; /ready says the store cannot write.
    assert_eq!(get(&c, &service(&s1)).await.0, 200);
    assert_eq!(
        get(&c, &format!("{base}/genesys/1/storage/{stored}"))
            .await
            .0,
        200
    );
    assert_eq!(get(&c, &format!("{base}/ready")).await.0, 503);
    assert_eq!(get(&c, &format!("{base}/health")).await.0, 200);
    // So do calls that would change nothing: they answered 503 like writes.
    let unknown = "1-00000000-0000-4000-8000-000000000000";
    let kinds = [
        (
            post(
                &c,
                &service("match-interaction"),
                &[("_access_number", "9999999")],
            )
            .await,
            "NoMatch",
        ),
        (
            post(&c, &service("request-access"), &[("_id", unknown)]).await,
            "ServiceNotFound",
        ),
        (
            post(
                &c,
                &service("request-access"),
                &[("_id", &s2), ("_resource_group", "NOPE")],
            )
            .await,
            "UnknownResourceGroup",
        ),
        (
            post(
                &c,
                &service("request-interaction"),
                &[("_resource_group", "NOPE")],
            )
            .await,
            "UnknownResourceGroup",
        ),
    ];
    for ((status, body), kind) in kinds {
        assert_eq!(body["exception"].as_str(), Some(kind), "{status}: {body}");
    }
    let admin = format!("{base}/genesys/1/admin");
    let free_number = "7000000019";
    for (method, url) in [
        ("DELETE", format!("{base}/genesys/1/storage/{unknown}")),
        ("DELETE", format!("{admin}/groups/NOPE")),
        ("DELETE", format!("{admin}/groups/DNIS/numbers/7999999999")),
        ("DELETE", format!("{admin}/reservations/{free_number}")),
        (
            "POST",
            format!("{admin}/groups/NOPE/numbers/{free_number}/free"),
        ),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let gone = c.request(method, &url).send().await.expect("answer");
        assert_eq!(
            gone.status(),
            404,
            "{url}: what is not there changes nothing"
        );
    }

    // Space returns: the node resumes by itself.
    std::fs::remove_file(fs.0.path().join("filler")).expect("free space");
    let started = Instant::now();
    while get(&c, &format!("{base}/ready")).await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, again) = post(&c, &service("request-access"), &[("_id", &s2)]).await;
    assert_eq!(status, 200, "{again}");
    let second = again["_access_number"].as_str().expect("number").to_owned();
    assert_ne!(second, number);

    // After a restart the file holds what was answered, and nothing else.
    node.kill9();
    let node = Node::start(&config, &store, &[]);
    let base = node.url.clone();
    assert_eq!(
        holder(&c, &base, &number).await.as_deref(),
        Some(s1.as_str())
    );
    assert_eq!(
        holder(&c, &base, &second).await.as_deref(),
        Some(s2.as_str())
    );
    assert_eq!(free_numbers(&c, &base).await, free_before - 1);
}

#[test]
fn a_corrupt_database_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("corrupt.db");
    let mut junk = b"SQLite format 3\0".to_vec();
    junk.extend(std::iter::repeat_n(0xA5u8, 8192));
    std::fs::write(&db, junk).expect("junk");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, load_config("7000000-7000019")).expect("config");
    let out = Command::new(support::process::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("corrupt.db"), "names the file: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(disk_tests),
    ignore = "needs root to mount a tmpfs: set ACCESS_BROKER_DISK_TESTS=1"
)]
async fn sigterm_exits_while_the_disk_is_full() {
    support::limit::within(sigterm_when_full()).await;
}

async fn sigterm_when_full() {
    let fs = Tmpfs::mount("3m");
    let config = fs.0.path().join("disk.toml");
    std::fs::write(&config, load_config("7000000-7000019")).expect("config");
    let store = format!("sqlite://{}", fs.0.path().join("disk.db").display());
    let mut node = Node::start(&config, &store, &[]);
    let c = reqwest::Client::new();
    fill(&fs.0.path().join("filler"));
    let big = "x".repeat(16 * 1024);
    let url = format!("{}/genesys/1/storage/600", node.url);
    for _ in 0..500 {
        if post(&c, &url, &[("k", &big)]).await.0 == 503 {
            break;
        }
    }
    assert_eq!(
        get(&c, &format!("{}/ready", node.url)).await.0,
        503,
        "writes fail"
    );
    let pid = node.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()));
    let started = Instant::now();
    loop {
        if let Some(status) = node.child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0), "a clean exit");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "SIGTERM exits although the disk is full"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
