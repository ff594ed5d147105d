//! `access-broker backup` on a live node: while several tasks keep reserving numbers on a real
//! process over a SQLite file, a second process copies the store; a node started on the copy
//! holds every reservation answered before the backup began (same session, same code).

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::process::{BIN, Node, load_config};

/// Workers and the most reservations each makes: bounded in count and so in time.
const WORKERS: usize = 4;
const PER_WORKER: usize = 500;

/// number -> (session, code)
type Answers = Arc<Mutex<HashMap<String, (String, String)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_holds_every_earlier_reservation() {
    support::limit::within(backup_under_load()).await;
}

async fn backup_under_load() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("b.toml");
    std::fs::write(&config, load_config("5000000-5002999")).expect("config");
    let store = format!("sqlite://{}", dir.path().join("live.db").display());
    let copy = dir.path().join("copy.db");
    let mut node = Node::start(&config, &store, &[]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let before: Answers = Arc::default();
    let during: Answers = Arc::default();
    let backup_started = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, url) = (client.clone(), node.url.clone());
            let (before, during) = (before.clone(), during.clone());
            let (backup_started, stop) = (backup_started.clone(), stop.clone());
            tokio::spawn(async move {
                for _ in 0..PER_WORKER {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Some((number, session, code)) = reserve(&client, &url).await else {
                        continue;
                    };
                    // Read after the answer arrived: `false` means it was answered before
                    // the backup process was started.
                    let answers = if backup_started.load(Ordering::SeqCst) {
                        &during
                    } else {
                        &before
                    };
                    let previous = answers
                        .lock()
                        .expect("lock")
                        .insert(number.clone(), (session, code));
                    assert!(previous.is_none(), "{number} answered twice");
                }
            })
        })
        .collect();

    // Let the load build up, then back up while it runs.
    for _ in 0..200 {
        if before.lock().expect("lock").len() >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    backup_started.store(true, Ordering::SeqCst);
    let (store_arg, to) = (store.clone(), copy.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["backup", "--store", &store_arg, "--to"])
            .arg(&to)
            .output()
            .expect("backup runs")
    })
    .await
    .expect("joined");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&copy.display().to_string()) && stdout.contains("bytes"),
        "{stdout}"
    );
    assert_eq!(stdout.trim().lines().count(), 1, "one line: {stdout}");
    // The load kept going through the backup: reservations were answered during it or after.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    let before = std::mem::take(&mut *before.lock().expect("lock"));
    assert!(
        before.len() >= 100,
        "only {} before the backup",
        before.len()
    );
    assert!(
        !during.lock().expect("lock").is_empty(),
        "no reservation answered while or after the backup ran"
    );
    node.kill9();

    // A second backup to the same file is refused without --force.
    let out = Command::new(BIN)
        .args(["backup", "--store", &store, "--to"])
        .arg(&copy)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));

    // Restore = serve the copy.
    let restored = Node::start(&config, &format!("sqlite://{}", copy.display()), &[]);
    for (number, (session, _)) in &before {
        let found: serde_json::Value = client
            .get(format!(
                "{}/genesys/1/admin/reservations?number={number}",
                restored.url
            ))
            .send()
            .await
            .expect("admin answers")
            .json()
            .await
            .expect("json");
        let ids: Vec<&str> = found["reservations"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["_id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ids, [session.as_str()], "{number}: {found}");
    }
    for (number, (session, code)) in &before {
        let r = client
            .post(format!(
                "{}/genesys/1/service/match-interaction",
                restored.url
            ))
            .form(&[("_access_number", number.as_str()), ("_access_code", code)])
            .send()
            .await
            .expect("match answers");
        assert_eq!(r.status(), 200, "{number}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["_id"].as_str(), Some(session.as_str()), "{number}");
    }
}

/// A session and a reservation for it: (number, session, code), or `None` if not answered 200.
async fn reserve(client: &reqwest::Client, url: &str) -> Option<(String, String, String)> {
    let r = client
        .post(format!("{url}/genesys/1/service/callback"))
        .form(&[("who", "backup")])
        .send()
        .await
        .ok()?;
    let session: serde_json::Value = r.json().await.ok()?;
    let id = session["_id"].as_str()?.to_owned();
    let r = client
        .post(format!("{url}/genesys/1/service/request-access"))
        .form(&[("_id", id.as_str())])
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let body: serde_json::Value = r.json().await.ok()?;
    Some((
        body["_access_number"].as_str()?.to_owned(),
        id,
        body["_access_code"].as_str()?.to_owned(),
    ))
}
