//! A node started before its PostgreSQL answers: it serves at once (`/health` 200), answers
//! 503 StoreUnavailable (`/ready` too) while it retries with backoff, and serves normally as
//! soon as the database answers, with no restart. A malformed store URL still exits 2. A
//! store lost while the node runs: a slow one answers what it did, and calls held by a
//! limit's reading of a store that stopped answering get 503, not 507; a node cut off in the
//! middle of a transaction holds its locks no longer than the store timeout.

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
    // The metrics are served all the same, saying the store is down (they answered 503).
    let metrics = get("/metrics").await.expect("metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    assert!(text.contains("access_broker_store_up 0"), "{text}");

    proxy.set(Mode::Pass);
    let started = Instant::now();
    while get("/ready").await.expect("ready").status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "ready once the database answers"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(text.contains("access_broker_store_up 1"), "{text}");
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

/// A store slower than `request_timeout_ms`: once a request is read whole, the store's own
/// bound decides, so the answer says what happened. A 408 here went out while the
/// reservation, or the match, still landed: an error answer that changed something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_slow_store_answers_what_it_did_not_408() {
    support::limit::within(slow_store()).await;
}

async fn slow_store() {
    let schema = Schema::require().await;
    let dir = tempfile::tempdir().expect("dir");
    let (proxy, node) = node_behind_proxy(&schema, &dir, |text| {
        text.replace("[server]\n", "[server]\nrequest_timeout_ms = 300\n")
    })
    .await;
    let c = reqwest::Client::new();
    let post = |service: &str, form: Vec<(&str, String)>| {
        c.post(format!("{}/genesys/1/service/{service}", node.url))
            .form(&form)
            .send()
    };
    let json = |r: reqwest::Response| async move {
        let status = r.status();
        let body: serde_json::Value = r.json().await.expect("json");
        (status.as_u16(), body)
    };
    let (status, session) = json(post("callback", vec![]).await.expect("answer")).await;
    assert_eq!(status, 200, "{session}");
    let id = session["_id"].as_str().expect("id").to_owned();

    // Each round trip to the database now takes ~0.2 s more: a reservation takes longer
    // than the 0.3 s request timeout, and less than the store's 2 s.
    proxy.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    let (status, access) = json(
        post("request-access", vec![("_id", id.clone())])
            .await
            .expect("answer"),
    )
    .await;
    assert_eq!(status, 200, "{access}");
    assert!(
        started.elapsed() > Duration::from_millis(300),
        "the store was slow"
    );
    let number = access["_access_number"]
        .as_str()
        .expect("number")
        .to_owned();
    let code = access["_access_code"].as_str().expect("code").to_owned();
    let (status, matched) = json(
        post(
            "match-interaction",
            vec![("_access_number", number), ("_access_code", code)],
        )
        .await
        .expect("answer"),
    )
    .await;
    assert_eq!(status, 200, "{matched}");
    assert_eq!(matched["_id"], id.as_str());
}

/// A database that accepts connections and never answers (a host still booting, a
/// partition): the node serves within a second or so (`/health` 200, `/ready` 503) while its
/// first opening goes on, and a SIGTERM then stops it with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_silent_database_does_not_hold_the_node_back() {
    support::limit::within(silent()).await;
}

async fn silent() {
    let schema = Schema::require().await;
    let dir = tempfile::tempdir().expect("dir");
    let proxy = FaultProxy::start("127.0.0.1:5432", Mode::Blackhole).await;
    let started = Instant::now();
    let mut node = Node::start(
        &cluster::config(&dir, 1, 10, 600),
        &proxy.url(&schema.url_string()),
        &[],
    );
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "listening in {:?}",
        started.elapsed()
    );
    let c = reqwest::Client::new();
    let get = |path: &str| c.get(format!("{}{path}", node.url)).send();
    assert_eq!(get("/health").await.expect("health").status(), 200);
    assert_eq!(get("/ready").await.expect("ready").status(), 503);
    assert_eq!(node.terminate(), Some(0));
}

/// The database stops answering while the node applies its config (its connections cut
/// after a given number of bytes from PostgreSQL, swept so that a cut falls in every phase
/// of the start: connecting, migrating, applying the groups): the node serves and waits, as
/// when the database is down from the start. It exited 2 when the cut came after the
/// migrations, while the groups were applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_database_lost_during_the_start_is_waited_for() {
    support::limit::within(lost_during_start()).await;
}

async fn lost_during_start() {
    let schema = Schema::require().await;
    let dir = tempfile::tempdir().expect("dir");
    let config = cluster::config(&dir, 1, 10, 600);
    let proxy = FaultProxy::start("127.0.0.1:5432", Mode::Pass).await;
    let url = proxy.url(&schema.url_string());
    // A first start migrates the schema; the sweep's starts then find it ready, as a
    // restarted node does.
    let mut first = Node::start(&config, &url, &[]);
    assert_eq!(first.terminate(), Some(0));
    let c = reqwest::Client::new();
    for bytes in (START_BYTES.0..START_BYTES.1).step_by(START_BYTES.2) {
        proxy.cut_after(bytes);
        // `Node::start` panics if the node exits before it listens.
        let mut node = Node::start(&config, &url, &[]);
        let health = c.get(format!("{}/health", node.url)).send().await;
        assert_eq!(
            health.expect("health").status(),
            200,
            "cut after {bytes} bytes"
        );
        assert_eq!(node.terminate(), Some(0), "cut after {bytes} bytes");
    }
}

/// Where the sweep cuts, in bytes from PostgreSQL: from, to, step.
const START_BYTES: (u64, u64, usize) = (300, 6000, 150);

/// A store at its `[limits] max_sessions` that stops answering: the calls that found the
/// node's count stale wait for the one reading of the store under way, and when it fails
/// they answer as the store does, 503 StoreUnavailable, not 507 StoreFull on the count the
/// failed reading was to replace (before, the first call alone answered 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn calls_waiting_on_a_failed_reading_of_the_store_answer_503() {
    support::limit::within(failed_reading()).await;
}

async fn failed_reading() {
    let schema = Schema::require().await;
    let dir = tempfile::tempdir().expect("dir");
    let (proxy, node) = node_behind_proxy(&schema, &dir, |text| {
        text.replace("store_timeout_ms = 2000", "store_timeout_ms = 500")
            + "[limits]\nmax_sessions = 2\n"
    })
    .await;
    let c = reqwest::Client::new();
    let create = || async {
        let r = c
            .post(format!("{}/genesys/1/service/callback", node.url))
            .send()
            .await
            .expect("answer");
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.expect("json");
        (status, body["exception"].as_str().unwrap_or("").to_owned())
    };
    // The node serves before its store is open: ready first.
    let ready = format!("{}/ready", node.url);
    while c.get(&ready).send().await.map(|r| r.status().as_u16()).ok() != Some(200) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..2 {
        assert_eq!(create().await.0, 200);
    }
    assert_eq!(create().await, (507, "StoreFull".to_owned()));
    // The node's count goes stale (it is read again after a second), then the store stops
    // answering (connections open, no bytes): the next reading fails at the store timeout.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    proxy.set(Mode::Blackhole);
    let answers = futures::future::join_all((0..6).map(|_| create())).await;
    for answer in &answers {
        assert_eq!(answer, &(503, "StoreUnavailable".to_owned()), "{answers:?}");
    }
}

/// A node cut off from the database in the middle of a transaction (its connection left
/// open, no bytes flowing: the node stopped or paused, or a partition) must not keep what that
/// transaction locked from the other nodes for longer than the store timeout. Here it held
/// the one number of the pool: the other node found the pool empty for as long as the
/// connection stayed open (hours, with TCP keep-alive), not ~2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_node_cut_off_mid_transaction_holds_nothing_past_the_store_timeout() {
    support::limit::within(cut_off_mid_transaction()).await;
}

async fn cut_off_mid_transaction() {
    let schema = Schema::require().await;
    let dir = tempfile::tempdir().expect("dir");
    // One number in the pool; the store timeout is 2 s on both nodes.
    let one = |text: String| text.replace("7000000-7000009", "7000000-7000000");
    // One connection, so that the call below finds its statements prepared by the warm-up
    // (else its first trip prepares them, and the cut comes before anything is locked).
    let (proxy, cut) = node_behind_proxy(&schema, &dir, |text| {
        one(text).replace("store_max_connections = 8", "store_max_connections = 1")
    })
    .await;
    let other_path = cluster::config(&dir, 2, 10, 600);
    let text = std::fs::read_to_string(&other_path).expect("config");
    std::fs::write(&other_path, one(text)).expect("config");
    let other = Node::start(&other_path, &schema.url_string(), &[]);
    let c = reqwest::Client::new();
    let post = |url: &str, service: &str, form: Vec<(&str, String)>| {
        c.post(format!("{url}/genesys/1/service/{service}"))
            .form(&form)
            .send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.expect("json");
        (status, body)
    };
    let session = |url: String| {
        let post = &post;
        async move {
            let (status, body) =
                answer(post(&url, "callback", vec![]).await.expect("answer")).await;
            assert_eq!(status, 200, "{body}");
            body["_id"].as_str().expect("id").to_owned()
        }
    };
    let (mine, theirs) = (
        session(cut.url.clone()).await,
        session(other.url.clone()).await,
    );
    let (status, held) = answer(
        post(&cut.url, "request-access", vec![("_id", mine.clone())])
            .await
            .expect("answer"),
    )
    .await;
    assert_eq!(status, 200, "{held}");
    let form =
        ["_access_number", "_access_code"].map(|k| (k, held[k].as_str().expect(k).to_owned()));
    let (status, matched) = answer(
        post(&cut.url, "match-interaction", form.to_vec())
            .await
            .expect("answer"),
    )
    .await;
    assert_eq!(status, 200, "{matched}");

    // Its request-access reaches the database (0.4 s on the way), which locks the number and
    // answers a node that has stopped meanwhile, its connection open (a partition would do
    // the same; the fault proxy cannot stage one: the node closes its end after the store
    // timeout, and the proxy passes that on).
    proxy.set_latency(Duration::from_millis(400));
    let cut_call = tokio::spawn(post(&cut.url, "request-access", vec![("_id", mine)]));
    tokio::time::sleep(Duration::from_millis(150)).await;
    cut.pause(true);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let started = Instant::now();
    let reserve = || post(&other.url, "request-access", vec![("_id", theirs.clone())]);
    let (status, body) = answer(reserve().await.expect("answer")).await;
    assert_ne!(
        status, 200,
        "the cut-off transaction holds the number: {body}"
    );
    let (status, body) = loop {
        let (status, body) = answer(reserve().await.expect("answer")).await;
        if status == 200 || started.elapsed() > Duration::from_secs(8) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        status,
        200,
        "the number is lent again once the database ends the cut-off transaction, \
         {:?} after: {body}",
        started.elapsed()
    );
    cut.pause(false);
    let (status, body) = answer(cut_call.await.expect("task").expect("answer")).await;
    assert_eq!(
        status, 503,
        "the cut-off node's call changed nothing: {body}"
    );
}

/// A node behind a fault proxy (passing at first), its config `cluster::config`'s as `edit`
/// changes it.
async fn node_behind_proxy(
    schema: &Schema,
    dir: &tempfile::TempDir,
    edit: impl FnOnce(String) -> String,
) -> (FaultProxy, Node) {
    let path = cluster::config(dir, 1, 10, 600);
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, edit(text)).expect("config");
    let proxy = FaultProxy::start("127.0.0.1:5432", Mode::Pass).await;
    let node = Node::start(&path, &proxy.url(&schema.url_string()), &[]);
    (proxy, node)
}
