//! A node started before its PostgreSQL answers: it serves at once (`/health` 200), answers
//! 503 StoreUnavailable (`/ready` too) while it retries with backoff, and serves normally as
//! soon as the database answers, with no restart. A malformed store URL still exits 2.

mod support;

use std::time::{Duration, Instant};

use support::cluster;
use support::pg::Schema;
use support::process::Node;
use support::proxy::{FaultProxy, Mode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_node_waits_for_its_database() {
    support::limit::within(waits()).await;
}

async fn waits() {
    let schema = Schema::require().await;
    let dir = tempfile::tempdir().expect("dir");
    let proxy = FaultProxy::start("127.0.0.1:5432", Mode::Refuse).await;
    let node = Node::start(
        &cluster::config(&dir, 1, 10, 600),
        &proxy.url(&schema.url_string()),
        &[],
    );
    let c = reqwest::Client::new();
    let get = |path: &str| c.get(format!("{}{path}", node.url)).send();
    assert_eq!(get("/health").await.expect("health").status(), 200);
    assert_eq!(get("/ready").await.expect("ready").status(), 503);
    let r = c
        .post(format!(
            "{}/genesys/1/service/request-interaction",
            node.url
        ))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["exception"], "StoreUnavailable");

    proxy.set(Mode::Pass);
    let started = Instant::now();
    while get("/ready").await.expect("ready").status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "ready once the database answers"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = c
        .post(format!(
            "{}/genesys/1/service/request-interaction",
            node.url
        ))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        r.status(),
        200,
        "the config's groups were applied once connected"
    );
}

#[test]
fn a_malformed_store_url_exits_2() {
    let dir = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(support::process::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(cluster::config(&dir, 1, 10, 600))
        .args(["--store", "postgres://postgres@127.0.0.1:notaport/test"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}
