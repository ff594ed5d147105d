//! SQLite keeps stored fields on disk: many megabytes of fields leave the process's memory
//! small, a reopen reads no field (fast), and every entry reads back exactly.
//!
//! The 1 GB measurement on the real binary is ignored by default; run it by hand with
//! `cargo test --release --test sqlite_fields_on_disk -- --ignored --nocapture`.

mod support;

use std::time::{Duration, Instant};

use access_broker::domain::DataId;
use access_broker::store::{self, Fields};
use support::{Backend, TestStore, node, options};

/// The process's resident memory in bytes (Linux: `VmRSS` of `/proc/<pid>/status`).
fn rss_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

/// Entry `i`: five fields of 100 KB, each a letter run that names the entry.
fn big_fields(i: usize) -> Fields {
    (0..5)
        .map(|f| {
            let letter = char::from(b'a' + ((i * 5 + f) % 26) as u8);
            (
                format!("f{f}"),
                format!("{i}:{}", letter.to_string().repeat(100_000)),
            )
        })
        .collect()
}

const MB: u64 = 1 << 20;

#[tokio::test]
async fn megabytes_of_fields_stay_on_disk() {
    let t = TestStore::require(Backend::Sqlite).await;
    let entries = 200; // × 500 KB = 100 MB of fields
    let ids: Vec<DataId> = (0..entries).map(|_| DataId::generate(&node())).collect();
    let before = rss_of("self");
    for (i, id) in ids.iter().enumerate() {
        let ttl = Duration::from_secs(3600);
        t.store
            .put_data(id.clone(), big_fields(i), ttl)
            .await
            .expect("put");
    }
    let grown = rss_of("self").saturating_sub(before);
    eprintln!("100 MB of fields stored: RSS grew by {} MB", grown / MB);
    assert!(
        grown < 40 * MB,
        "100 MB stored, RSS grew by {} MB",
        grown / MB
    );

    // Updates merge on disk; the entry keeps its other fields.
    let update = vec![("f0".to_owned(), "short".to_owned())];
    let ttl = Duration::from_secs(3600);
    assert!(
        t.store
            .update_data(&ids[0], update, ttl)
            .await
            .expect("update")
    );

    let (url, clock) = (t.url.clone(), t.clock.clone());
    drop(t.store);
    let started = Instant::now();
    let reopened = store::open(&url, &options(&clock)).await.expect("reopens");
    let reopen = started.elapsed();
    eprintln!("reopen: {reopen:?}");
    assert!(reopen < Duration::from_secs(2), "reopen took {reopen:?}");
    for (i, id) in ids.iter().enumerate() {
        let mut want = big_fields(i);
        if i == 0 {
            want[0].1 = "short".into();
        }
        let got = reopened.data(id).await.expect("read").expect("live");
        assert!(got == want, "entry {i} reads back exactly");
    }
    let grown = rss_of("self").saturating_sub(before);
    eprintln!("after reading it all back: RSS grew by {} MB", grown / MB);
    assert!(
        grown < 60 * MB,
        "after reading back, RSS grew by {} MB",
        grown / MB
    );
}

/// The figure, on the release binary: 1 GB of live storage entries (2,000 × 500 KB,
/// four clients at a time), then the node's RSS, a `kill -9`, the restart time (spawn to
/// listening) and the RSS after reading entries back. `DISKDATA_MB` changes the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures 1 GB on the real binary; run by hand with --release -- --ignored --nocapture"]
async fn one_gigabyte_on_the_real_binary() {
    use futures::StreamExt;
    let megabytes: usize = std::env::var("DISKDATA_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let entries = megabytes * 2;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("node.toml");
    let toml = format!(
        "[server]\nmax_body_bytes = 1048576\n{}",
        support::process::load_config("6504660000-6504660009")
    );
    std::fs::write(&config, toml).expect("config");
    let store = format!("sqlite://{}", dir.path().join("store.db").display());
    let mut node = support::process::Node::start(&config, &store, &[]);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let ids: Vec<String> = futures::stream::iter(0..entries)
        .map(|i| {
            let (http, url) = (
                http.clone(),
                format!("{}/genesys/1/storage/86400", node.url),
            );
            async move {
                let answer: serde_json::Value = http
                    .post(url)
                    .form(&big_fields(i))
                    .send()
                    .await
                    .expect("post")
                    .json()
                    .await
                    .expect("json");
                answer["id"].as_str().expect("id").to_owned()
            }
        })
        .buffered(4)
        .collect()
        .await;
    let wrote = started.elapsed();
    let pid = node.child.id().to_string();
    let (rss, peak) = (rss_of(&pid), peak_of(&pid));
    node.kill9();
    let started = Instant::now();
    let node = support::process::Node::start(&config, &store, &[]);
    let restart = started.elapsed();
    for i in (0..entries).step_by(entries / 50 + 1) {
        let url = format!("{}/genesys/1/storage/{}", node.url, ids[i]);
        let got: serde_json::Value = http
            .get(url)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            got["f4"].as_str(),
            Some(big_fields(i)[4].1.as_str()),
            "entry {i}"
        );
    }
    let pid = node.child.id().to_string();
    let (rss_after, peak_after) = (rss_of(&pid), peak_of(&pid));
    let db = std::fs::metadata(dir.path().join("store.db")).map_or(0, |m| m.len());
    println!(
        "{entries} entries × 500 KB written in {wrote:?}; file {} MB\n\
         before kill -9: RSS {} MB (peak {} MB)\n\
         restart (spawn to listening): {restart:?}\n\
         after reading {} entries back: RSS {} MB (peak {} MB)",
        db / MB,
        rss / MB,
        peak / MB,
        entries / (entries / 50 + 1),
        rss_after / MB,
        peak_after / MB
    );
    assert!(
        peak < 300 * MB && peak_after < 300 * MB,
        "RSS stays under 300 MB"
    );
    assert!(restart < Duration::from_secs(3), "restart under 3 s");
}

/// The process's peak resident memory (`VmHWM`).
fn peak_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM line")
        * 1024
}
