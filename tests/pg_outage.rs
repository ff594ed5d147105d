//! PostgreSQL outage: two real nodes under load while the database restarts. Requests answer
//! 503 StoreUnavailable during the outage (never 500, never a hang past the store timeout),
//! the nodes recover by themselves, and every reservation answered before, during or after
//! is still there and matches.
//!
//! This restarts the machine's PostgreSQL cluster (`pg_ctlcluster … restart`), which a plain
//! `cargo test` must never do to a shared database: it runs only in a build with
//! `ACCESS_BROKER_OUTAGE_TESTS=1` (and `TEST_POSTGRES_URL`), as `.ci/run` sets, and is listed as
//! ignored otherwise. It lives alone in its own test binary (`cargo test` runs test binaries
//! one after another), so no other test sees the restart.

mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::cluster::{self, Cluster, Held};
use support::limit::within_for;

fn restart_postgres() -> bool {
    let Ok(versions) = std::fs::read_dir("/etc/postgresql") else {
        return false;
    };
    let Some(version) = versions
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
    else {
        return false;
    };
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .is_ok_and(|s| s.success())
}

#[derive(Default)]
struct Seen {
    ok: usize,
    unavailable: usize,
    other: Vec<String>,
    slowest: Duration,
    held: Vec<Held>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(outage_tests),
    ignore = "restarts the machine's PostgreSQL: set ACCESS_BROKER_OUTAGE_TESTS=1 and TEST_POSTGRES_URL to run"
)]
#[cfg_attr(
    all(outage_tests, no_postgres),
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn nodes_answer_503_during_a_restart_and_recover() {
    // Asked for by name, so a missing tool is a failure, not a skip.
    assert!(
        Command::new("pg_ctlcluster").arg("--help").output().is_ok(),
        "pg_ctlcluster not found; this test restarts the local PostgreSQL cluster with it"
    );
    within_for(cluster::limit(), restart_under_load()).await;
}

async fn restart_under_load() {
    let cluster = Cluster::start(2, 20_000, 1800).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let (client, url, seen, stop) = (
                cluster.client.clone(),
                urls[i % 2].clone(),
                seen.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let started = Instant::now();
                    let r = client
                        .post(format!("{url}/genesys/1/service/request-interaction"))
                        .form(&[("who", "outage")])
                        .send()
                        .await;
                    let outcome = match r {
                        Err(e) => Err(format!("connection error: {e}")),
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let text = r.text().await.unwrap_or_default();
                            match status {
                                200 => Ok(Some(text)),
                                503 if text.contains("StoreUnavailable") => Ok(None),
                                other => Err(format!("{other}: {text}")),
                            }
                        }
                    };
                    let took = started.elapsed();
                    let refused = matches!(outcome, Ok(None));
                    {
                        let mut s = seen.lock().expect("lock");
                        s.slowest = s.slowest.max(took);
                        match outcome {
                            Ok(Some(text)) => {
                                let b: serde_json::Value =
                                    serde_json::from_str(&text).expect("json");
                                s.ok += 1;
                                s.held.push(Held {
                                    number: b["_access_number"].as_str().unwrap_or_default().into(),
                                    code: String::new(),
                                    session: b["_id"].as_str().unwrap_or_default().into(),
                                    granted: Instant::now(),
                                    released: None,
                                });
                            }
                            Ok(None) => s.unavailable += 1,
                            Err(e) => s.other.push(e),
                        }
                    }
                    // Paced, so the pool (20,000 numbers) outlasts the test.
                    tokio::time::sleep(Duration::from_millis(if refused { 50 } else { 10 })).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = seen.lock().expect("lock").ok;
    assert!(restart_postgres(), "PostgreSQL restarted");
    // Recovery without touching the nodes: successes resume within 30 s.
    let restarted = Instant::now();
    let ok_at_restart = seen.lock().expect("lock").ok;
    while seen.lock().expect("lock").ok < ok_at_restart + 50 {
        if restarted.elapsed() > Duration::from_secs(30) {
            let s = seen.lock().expect("lock");
            panic!(
                "nodes did not recover: {} ok, {} unavailable, other: {:?}",
                s.ok,
                s.unavailable,
                &s.other[..s.other.len().min(3)]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered_after = restarted.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    let s = std::mem::take(&mut *seen.lock().expect("lock"));
    eprintln!(
        "outage: {} ok ({before} before the restart), {} answered 503 StoreUnavailable, {} other, slowest answer {:?}, recovered {:?} after the restart",
        s.ok,
        s.unavailable,
        s.other.len(),
        s.slowest,
        recovered_after
    );
    assert!(
        s.other.is_empty(),
        "only 200 or 503: {:?}",
        &s.other[..s.other.len().min(5)]
    );
    assert!(s.unavailable > 0, "the outage was seen as 503");
    assert!(
        s.slowest < Duration::from_secs(6),
        "no answer took longer than the store timeout allows: {:?}",
        s.slowest
    );
    // Nothing answered is lost: every reservation is still live in the store.
    let db = support::pg::connect(&cluster.schema.url_string()).await;
    for h in &s.held {
        let row = db
            .query_one("SELECT count(*) FROM numbers WHERE number = $1 AND session = $2 AND expires_at > (extract(epoch FROM clock_timestamp())*1000)::bigint", &[&h.number, &h.session])
            .await
            .expect("query");
        assert_eq!(
            row.get::<_, i64>(0),
            1,
            "reservation on {} for {} lost",
            h.number,
            h.session
        );
    }
}
